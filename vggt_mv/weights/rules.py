"""Rules: which source key goes to which model key.

A rule matches source keys with a regular expression and names the model key; it may carry a
tensor transform (with the shape it produces). Rules never look at the model: the planner checks
that targets exist and shapes agree. Rules are written as data (rule_files.py compiles TOML/JSON
rule sets, the built-ins `identity`, `pi3-decoder`, `pi3-decoder+encoder` included) into these objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

# What `pi3_rules=` (and the CLI's --pi3-rules) takes: Pi3's rule sets by their short names, Pi3X's by their own.
PI3_RULE_SETS = ("decoder", "decoder+encoder", "pi3x-decoder", "pi3x-decoder+encoder")
# Aliases of the aggregator's stacks that code registering them as submodules would have saved.
ALIASES = {"time_blocks": "frame_blocks", "view_blocks": "global_blocks"}
ALIAS_KEY = re.compile(r"((?:.+\.)?)(time_blocks|view_blocks)\.(\d+)\.(.+)")


@dataclass(frozen=True)
class Rule:
    """Source keys matching `pattern` load into `target(match)`, optionally transformed."""

    name: str
    pattern: re.Pattern
    target: Callable[[re.Match], str | None]  # None: the rule does not apply to this key
    description: str
    transform: Callable[[torch.Tensor], torch.Tensor] | None = None
    transformed_shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None
    indexed: bool = False  # moves numbered blocks: the report lists which indices went where
    optional: bool = False  # matching nothing is normal (no anomaly)
    is_alias: bool = False  # its keys name tensors that the canonical spelling also names; canonical wins
    not_loaded: bool = False  # maps nothing: its keys are known to have no counterpart in the model

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


def checkpoint_rules(source_name: str = "checkpoint") -> list[Rule]:
    """A VGGT/VGGT_MV checkpoint maps onto the whole model, key for key (aliases to their stored names): the
    built-in `identity` rule set."""
    from vggt_mv.weights.rule_files import builtin_rule_set

    return builtin_rule_set("identity").for_source(source_name)


def pi3_rule_set_name(rule_set: str) -> str:
    """The built-in rule set a `pi3_rules` value names: "decoder" -> "pi3-decoder", "pi3x-decoder" as it is."""
    if rule_set not in PI3_RULE_SETS:
        raise ValueError(f"unknown Pi3 rule set {rule_set!r}; choose one of {', '.join(PI3_RULE_SETS)}")
    return rule_set if rule_set.startswith("pi3x-") else f"pi3-{rule_set}"


def pi3_rules(rule_set: str = "decoder", source_name: str = "pi3") -> list[Rule]:
    """Pi3 (or Pi3X) -> VGGT_MV rules (built-in `pi3-decoder`, `pi3-decoder+encoder`, `pi3x-decoder` or
    `pi3x-decoder+encoder`)."""
    from vggt_mv.weights.rule_files import builtin_rule_set

    return builtin_rule_set(pi3_rule_set_name(rule_set)).for_source(source_name)


def derived_source(model_key: str) -> str | None:
    """Dual-stream blocks start as copies of the shared block they run beside."""
    match = re.fullmatch(r"aggregator\.(pose|geo)_(frame|global)_blocks\.(.+)", model_key)
    return f"aggregator.{match.group(2)}_blocks.{match.group(3)}" if match else None
