"""Rules as data: which source key goes to which model key, for the VGGT checkpoint and for Pi3.

A rule matches source keys with a regular expression and names the model key; it may carry a
tensor transform (with the shape it produces). Rules never look at the model: the planner checks
that targets exist and shapes agree.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

PI3_RULE_SETS = ("decoder", "decoder+encoder")
# Aliases of the aggregator's stacks that code registering them as submodules would have saved.
ALIASES = {"time_blocks": "frame_blocks", "view_blocks": "global_blocks"}
ALIAS_KEY = re.compile(r"((?:.+\.)?)(time_blocks|view_blocks)\.(\d+)\.(.+)")


@dataclass(frozen=True)
class Rule:
    """Source keys matching `pattern` load into `target(match)`, optionally transformed."""

    name: str
    pattern: re.Pattern
    target: Callable[[re.Match], str]
    description: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    transformed_shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None
    indexed: bool = False  # moves numbered blocks: the report lists which indices went where
    optional: bool = False  # matching nothing is normal (no anomaly)
    is_alias: bool = False  # its keys name tensors that the canonical spelling also names; canonical wins

    def map_key(self, key: str) -> str | None:
        """The model key for a source key, or None when the rule does not apply."""
        match = self.pattern.fullmatch(key)
        return self.target(match) if match else None

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape after the transform (the source shape without one)."""
        return tuple(self.transformed_shape(shape)) if self.transformed_shape else shape


def canonical_key(key: str) -> str:
    """Map alias spellings (`*time_blocks.N.*`, `*view_blocks.N.*`, under any prefix) to the stored names.

    Use it only for keys that are not model keys: the track head's own `time_blocks` are real modules.
    """
    match = ALIAS_KEY.fullmatch(key)
    if match is None:
        return key
    prefix, alias, index, rest = match.groups()
    return f"{prefix}{ALIASES[alias]}.{index}.{rest}"


def checkpoint_rules() -> list[Rule]:
    """A VGGT/VGGT_MV checkpoint maps onto the whole model, key for key (aliases to their stored names)."""
    return [
        Rule("checkpoint:identity", re.compile(r"(.+)"), lambda m: m.group(1),
             "every key -> the same key of the whole model"),
        # Only for keys that are not model keys themselves (the track head has real `time_blocks`).
        Rule("checkpoint:alias", ALIAS_KEY, lambda m: canonical_key(m.group(0)),
             "*.{time,view}_blocks.* -> *.{frame,global}_blocks.* (aliases)", indexed=True, optional=True,
             is_alias=True),
    ]


def _decoder_target(match: re.Match) -> str:
    """Pi3 alternates frame (even) and global (odd) attention blocks in one list."""
    index = int(match.group(1))
    stack = "frame_blocks" if index % 2 == 0 else "global_blocks"
    return f"aggregator.{stack}.{index // 2}.{match.group(2)}"


def pi3_rules(rule_set: str = "decoder") -> list[Rule]:
    """Pi3 -> VGGT_MV rules; `decoder+encoder` also brings Pi3's DINOv2 encoder into the patch embed."""
    if rule_set not in PI3_RULE_SETS:
        raise ValueError(f"unknown Pi3 rule set {rule_set!r}; choose one of {', '.join(PI3_RULE_SETS)}")
    rules = [
        Rule("pi3:decoder-even", re.compile(r"decoder\.(\d*[02468])\.(.+)"), _decoder_target,
             "decoder.{even i}.* -> aggregator.frame_blocks.{i/2}.*", indexed=True),
        Rule("pi3:decoder-odd", re.compile(r"decoder\.(\d*[13579])\.(.+)"), _decoder_target,
             "decoder.{odd i}.* -> aggregator.global_blocks.{i//2}.*", indexed=True),
        Rule("pi3:register-token", re.compile(r"register_token"), lambda m: "aggregator.register_token",
             "register_token -> aggregator.register_token"),
    ]
    if rule_set == "decoder+encoder":
        rules.append(Rule("pi3:encoder", re.compile(r"encoder\.(.+)"), lambda m: f"aggregator.patch_embed.{m.group(1)}",
                          "encoder.* -> aggregator.patch_embed.*", indexed=True))
    return rules


def derived_source(model_key: str) -> str | None:
    """Dual-stream blocks start as copies of the shared block they run beside."""
    match = re.fullmatch(r"aggregator\.(pose|geo)_(frame|global)_blocks\.(.+)", model_key)
    return f"aggregator.{match.group(2)}_blocks.{match.group(3)}" if match else None
