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
ALIASES = (("aggregator.time_blocks.", "aggregator.frame_blocks."),
           ("aggregator.view_blocks.", "aggregator.global_blocks."))


@dataclass(frozen=True)
class Rule:
    """Source keys matching `pattern` load into `target(match)`, optionally transformed."""

    name: str
    pattern: re.Pattern
    target: Callable[[re.Match], str]
    description: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    transformed_shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None
    index_group: str | None = None
    optional: bool = False

    def map_key(self, key: str) -> str | None:
        """The model key for a source key, or None when the rule does not apply."""
        match = self.pattern.fullmatch(key)
        return self.target(match) if match else None

    def target_shape(self, shape: tuple[int, ...]) -> tuple[int, ...]:
        """Shape after the transform (the source shape without one)."""
        return tuple(self.transformed_shape(shape)) if self.transformed_shape else shape


def canonical_key(key: str) -> str:
    """Map alias spellings (`aggregator.view_blocks.*`, `aggregator.time_blocks.*`) to the stored names."""
    for alias, canonical in ALIASES:
        if key.startswith(alias):
            return canonical + key[len(alias):]
    return key


def checkpoint_rules() -> list[Rule]:
    """A VGGT/VGGT_MV checkpoint maps onto the whole model, key for key (aliases to their stored names)."""
    return [
        Rule("checkpoint:alias", re.compile(r"aggregator\.(time|view)_blocks\.(\d+)\.(.+)"),
             lambda m: canonical_key(m.group(0)),
             "aggregator.{time,view}_blocks.* -> aggregator.{frame,global}_blocks.* (aliases)", index_group="2",
             optional=True),
        Rule("checkpoint:identity", re.compile(r"(.+)"), lambda m: m.group(1),
             "every key -> the same key of the whole model"),
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
             "decoder.{even i}.* -> aggregator.frame_blocks.{i/2}.*", index_group="1"),
        Rule("pi3:decoder-odd", re.compile(r"decoder\.(\d*[13579])\.(.+)"), _decoder_target,
             "decoder.{odd i}.* -> aggregator.global_blocks.{i//2}.*", index_group="1"),
        Rule("pi3:register-token", re.compile(r"register_token"), lambda m: "aggregator.register_token",
             "register_token -> aggregator.register_token"),
    ]
    if rule_set == "decoder+encoder":
        rules.append(Rule("pi3:encoder", re.compile(r"encoder\.(.+)"), lambda m: f"aggregator.patch_embed.{m.group(1)}",
                          "encoder.* -> aggregator.patch_embed.*"))
    return rules


def derived_source(model_key: str) -> str | None:
    """Dual-stream blocks start as copies of the shared block they run beside."""
    match = re.fullmatch(r"aggregator\.(pose|geo)_(frame|global)_blocks\.(.+)", model_key)
    return f"aggregator.{match.group(2)}_blocks.{match.group(3)}" if match else None
