"""Pure planning: from the model's layout and the sources' headers, decide where every tensor comes from."""

from __future__ import annotations

import re
from collections import defaultdict
from dataclasses import dataclass, field

import torch

from vggt_mv.weights.rules import Rule, derived_source
from vggt_mv.weights.sources import Source, TensorInfo

# A loaded tensor's status is its source's name (`checkpoint`, `pi3`, or any other); these two are not sources.
UNLOADED_STATUSES = ("derived", "random")


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
    """A source tensor that would have loaded but has the wrong shape or dtype; the target keeps what it had
    (a real load refuses a source with dtype mismatches: see loader.refuse_unloadable_dtypes)."""

    key: str
    source: str
    source_key: str
    model_shape: tuple[int, ...]
    source_shape: tuple[int, ...]
    reason: str = "shape"  # "shape" | "dtype"
    model_dtype: torch.dtype | None = None
    source_dtype: torch.dtype | None = None


@dataclass
class RuleUse:
    """What one rule did: how many keys it mapped, and which block indices went where."""

    source: str
    rule: Rule
    matched: int = 0
    # (source stack, source index, target stack, target index), e.g. ("decoder", 34, "aggregator.frame_blocks", 17)
    index_moves: list[tuple[str, int, str, int]] = field(default_factory=list)
    not_loaded_keys: list[str] = field(default_factory=list)  # a not_loaded rule's keys (matched counts them)


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


def split_block_index(key: str) -> tuple[str, int] | None:
    """("aggregator.frame_blocks", 3) for "aggregator.frame_blocks.3.attn.qkv.weight"; None without an index."""
    match = re.search(r"\.(\d+)\.", key)
    return (key[:match.start()], int(match.group(1))) if match else None


def matched_keys(source: Source, rules: list[Rule], layout: dict[str, TensorInfo]) -> tuple[list, list, list[str]]:
    """(source_key, info, rule, target) for keys a rule maps onto a model key (the first such rule wins),
    canonical spellings before aliases; (source_key, rule) for the other keys a not_loaded rule names; and the keys
    no rule uses (unexpected)."""
    matched, not_loaded, unused = [], [], []
    declared = [rule for rule in rules if rule.not_loaded]
    for source_key, info in source.tensors.items():
        rule, target = next(((r, t) for r in rules if (t := r.map_key(source_key)) in layout), (None, None))
        if rule is not None:
            matched.append((source_key, info, rule, target))
            continue
        rule = next((r for r in declared if r.pattern.fullmatch(source_key)), None)
        if rule is None:
            unused.append(source_key)
        else:
            not_loaded.append((source_key, rule))
    matched.sort(key=lambda item: item[2].is_alias)  # stable: file order otherwise
    return matched, not_loaded, unused


def loadable_dtype(source: torch.dtype, target: torch.dtype) -> bool:
    """Floating point converts to floating point; anything else (integers, bool, complex) only to itself, so no
    cast can ever turn a model's weights into integers or complex numbers."""
    return source == target or (source.is_floating_point and target.is_floating_point)


def record_use(use: RuleUse, source_key: str, target: str) -> None:
    """Count a match, and where its block index moved."""
    use.matched += 1
    source_index, target_index = split_block_index(source_key), split_block_index(target)
    if use.rule.indexed and source_index and target_index:
        use.index_moves.append((*source_index, *target_index))


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
        matched, not_loaded, unexpected[source.role] = matched_keys(source, rules, layout)
        for source_key, rule in not_loaded:
            uses[rule.name].matched += 1
            uses[rule.name].not_loaded_keys.append(source_key)
        claimed: set[str] = set()
        for source_key, info, rule, target in matched:
            record_use(uses[rule.name], source_key, target)
            if target in claimed:
                aliases[target].append(source_key)
                continue
            claimed.add(target)
            model = layout[target]
            if not loadable_dtype(info.dtype, model.dtype):
                mismatched.append(Mismatch(target, source.role, source_key, model.shape, info.shape, "dtype",
                                           model.dtype, info.dtype))
                continue
            if rule.target_shape(info.shape) != model.shape:
                mismatched.append(Mismatch(target, source.role, source_key, model.shape, info.shape, "shape",
                                           model.dtype, info.dtype))
                continue
            previous = assignments.get(target)
            overrode = None if previous is None else {"source": previous.status, "source_key": previous.source_key}
            assignments[target] = Assignment(source.role, source_key, info.dtype, rule, overrode)
    for key in layout:
        if key in assignments:
            continue
        origin = derived_source(key)
        loaded_origin = origin in assignments and assignments[origin].status not in UNLOADED_STATUSES
        if loaded_origin and layout[origin].shape == layout[key].shape:
            assignments[key] = Assignment("derived", origin, assignments[origin].source_dtype)
        else:
            assignments[key] = Assignment("random")
    ordered = {key: assignments[key] for key in layout}
    return LoadPlan(layout, ordered, mismatched, unexpected, dict(aliases), rule_uses,
                    [source for source, _ in sources])
