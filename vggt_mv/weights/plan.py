"""Pure planning: from the model's layout and the sources' headers, decide where every tensor comes from."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from vggt_mv.weights.rules import Rule, derived_source
from vggt_mv.weights.sources import Source, TensorInfo

STATUSES = ("checkpoint", "pi3", "derived", "random")


@dataclass
class Assignment:
    """Where one model tensor's values come from."""

    status: str
    source_key: str | None = None
    source_dtype: torch.dtype | None = None
    rule: Rule | None = None
    overrode: dict | None = None


@dataclass
class Mismatch:
    """A source tensor that would have loaded but has the wrong shape; the target keeps what it had."""

    key: str
    source: str
    source_key: str
    model_shape: tuple[int, ...]
    source_shape: tuple[int, ...]


@dataclass
class RuleUse:
    """What one rule did: how many keys it mapped, and which block indices went where."""

    source: str
    rule: Rule
    matched: int = 0
    index_pairs: list[tuple[int, int]] = field(default_factory=list)
    example: tuple[str, str] | None = None


@dataclass
class LoadPlan:
    """Every decision of a load, before any tensor data is touched."""

    layout: dict[str, TensorInfo]
    assignments: dict[str, Assignment]
    mismatched: list[Mismatch]
    unexpected: dict[str, list[str]]
    aliases: dict[str, list[str]]
    rule_uses: list[RuleUse]
    sources: list[Source]


def _block_index(key: str) -> int | None:
    """The first `.N.` index in a model key (which block of a stack)."""
    match = re.search(r"\.(\d+)\.", key)
    return int(match.group(1)) if match else None


def plan_load(layout: dict[str, TensorInfo], sources: list[tuple[Source, list[Rule]]]) -> LoadPlan:
    """Apply each source's rules in order (later sources override), then derived inits; the rest stays random."""
    assignments: dict[str, Assignment] = {}
    mismatched: list[Mismatch] = []
    unexpected: dict[str, list[str]] = {}
    aliases: dict[str, list[str]] = defaultdict(list)
    rule_uses: list[RuleUse] = []
    for source, rules in sources:
        uses = {rule.name: RuleUse(source.role, rule) for rule in rules}
        rule_uses.extend(uses.values())
        unused: list[str] = []
        claimed: dict[str, str] = {}
        for source_key, info in source.tensors.items():
            rule, target = next(((r, t) for r in rules if (t := r.map_key(source_key)) is not None), (None, None))
            if rule is None or target not in layout:
                unused.append(source_key)
                continue
            use = uses[rule.name]
            use.matched += 1
            use.example = use.example or (source_key, target)
            if rule.index_group:
                source_index = int(rule.pattern.fullmatch(source_key).group(int(rule.index_group)))
                use.index_pairs.append((source_index, _block_index(target)))
            if target in claimed:
                aliases[target].append(source_key)
                continue
            claimed[target] = source_key
            model_shape = layout[target].shape
            shape = rule.target_shape(info.shape)
            if shape != model_shape:
                mismatched.append(Mismatch(target, source.role, source_key, model_shape, info.shape))
                continue
            previous = assignments.get(target)
            overrode = None if previous is None else {"source": previous.status, "source_key": previous.source_key}
            assignments[target] = Assignment(source.role, source_key, info.dtype, rule, overrode)
        unexpected[source.role] = unused
    for key in layout:
        if key in assignments:
            continue
        origin = derived_source(key)
        loaded_origin = origin is not None and origin in assignments and assignments[origin].status in ("checkpoint", "pi3")
        if loaded_origin and layout[origin].shape == layout[key].shape:
            assignments[key] = Assignment("derived", origin, assignments[origin].source_dtype)
        else:
            assignments[key] = Assignment("random")
    ordered = {key: assignments[key] for key in layout}
    return LoadPlan(layout, ordered, mismatched, unexpected, dict(aliases), rule_uses,
                    [source for source, _ in sources])
