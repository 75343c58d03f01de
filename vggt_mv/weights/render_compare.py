"""A comparison of two checkpoints as terminal text: totals, a collapsed module tree of relative changes, the
unchanged modules told apart (frozen, or still at init in both) and grouped by range, and the keys only one side
has or whose shapes differ (what `inspect --compare A B` prints)."""

from __future__ import annotations

from vggt_mv.weights.compare import FINDINGS, Comparison, ModuleChange, band_groups, merged_module
from vggt_mv.weights.render_text import human_count, unexpected_by_prefix
from vggt_mv.weights.unchanged_groups import KINDS, unchanged_groups

LABEL_WIDTH = 48
MAX_LISTED_MISMATCHES = 20
MAX_LISTED_GROUPS = 30
# The tree's tag for each kind of unchanged module (the summary spells each out with FINDINGS).
TAGS = {"frozen": "FROZEN", "never_trained": "NEVER TRAINED", "unknown": "UNCHANGED"}


def change_text(module: ModuleChange) -> str:
    """'1.23e-02', 'FROZEN', 'NEVER TRAINED', 'UNCHANGED' (not known which), 'not compared', 'b is zero',
    'non-finite'."""
    if module.compared_tensors == 0:
        return "not compared"
    if module.unchanged:
        return TAGS[module.unchanged_kind]
    change = module.relative_change
    if change is None:
        return "non-finite" if module.non_finite else "b is zero"
    return f"{change:.2e}"


def range_text(comparison: Comparison, members: list[str]) -> str:
    """For a collapsed range whose members differ: ' (1.1e-02..3.4e-02 per block)'."""
    changes = [comparison.modules[m].relative_change for m in members]
    values = [c for c in changes if c is not None]
    if len(members) < 2 or len(values) < 2 or f"{min(values):.1e}" == f"{max(values):.1e}":
        return ""
    return f" ({min(values):.1e}..{max(values):.1e} each)"


def unchanged_detail(module: ModuleChange) -> str:
    """' (40 at init in both, 2 trained)': what the untrained check said of a module's unchanged tensors."""
    parts = [f"{count} {label}" for count, label in ((module.at_init_tensors, "at init in both"),
                                                    (module.frozen_tensors, "trained")) if count]
    return f" ({', '.join(parts)})" if parts else ""


def counts_text(module: ModuleChange) -> str:
    """'12 compared (4.20M), 3 unchanged (3 at init in both), 1 only in a' (only the counts that are not zero
    after the first)."""
    parts = [f"{module.compared_tensors} compared ({human_count(module.compared_parameters)})"]
    for name, label in (("unchanged_tensors", "unchanged"), ("mismatched", "different shape"),
                        ("only_a", "only in a"), ("only_b", "only in b"), ("non_finite", "non-finite")):
        count = getattr(module, name)
        if count and not (name == "unchanged_tensors" and module.unchanged):
            parts.append(f"{count} {label}" + (unchanged_detail(module) if name == "unchanged_tensors" else ""))
    return ", ".join(parts)


def settled(module: ModuleChange) -> bool:
    """Unchanged with nothing missing or mismatched: every descendant says the same, so it is not expanded."""
    return module.unchanged and not (module.only_a or module.only_b or module.mismatched)


def render_change_tree(comparison: Comparison, path: str = "", depth: int = 0, max_depth: int = 3) -> list[str]:
    """One line per module (collapsed ranges for siblings in the same band), down to max_depth; a settled
    (wholly unchanged) module is one line."""
    lines = []
    for label, members in band_groups(comparison, path):
        module = merged_module(comparison, label, members)
        indent = "  " * depth
        lines.append(f"{indent}{label:<{LABEL_WIDTH - 2 * depth}} {change_text(module):>13}"
                     f"{range_text(comparison, members)}  {counts_text(module)}")
        if depth + 1 < max_depth and len(members) == 1 and not settled(module):
            lines.extend(render_change_tree(comparison, members[0], depth + 1, max_depth))
    return lines


def side_line(side) -> str:
    return f"  {side.role}: {side.location} ({side.tensors} tensors, {human_count(side.parameters)} parameters)"


def render_comparison(comparison: Comparison, max_depth: int = 3) -> str:
    """Everything `inspect --compare` prints."""
    totals = comparison.totals
    lines = [f"COMPARE {comparison.a.role} with {comparison.b.role} "
             f"(relative change = ||{comparison.a.role} - {comparison.b.role}|| / ||{comparison.b.role}||)",
             side_line(comparison.a), side_line(comparison.b), "",
             f"  overall relative change: {change_text(totals)}",
             f"  {totals.changed_tensors} tensors changed, {totals.unchanged_tensors} unchanged (every value equal), "
             f"{totals.mismatched} with different shapes, {totals.only_a} only in {comparison.a.role}, "
             f"{totals.only_b} only in {comparison.b.role}"]
    groups = unchanged_groups(comparison)
    for kind in KINDS:
        count = sum(group.modules for group in groups if group.kind == kind)
        if count:
            lines.append(f"  {FINDINGS[kind]}: {count} module{'' if count == 1 else 's'} (marked {TAGS[kind]} below)")
    lines.append(f"  frozen or never trained: told apart by the untrained-tensor check against "
                 f"{comparison.init_reference}" if comparison.init_reference else
                 "  frozen or never trained: not told apart (neither header is a VGGT_MV state dict, so no init is "
                 "known)")
    lines += ["", "Modules (relative change):"]
    lines += render_change_tree(comparison, max_depth=max_depth)
    lines += unchanged_lines(groups)
    mismatched = [change for change in comparison.tensors if change.status == "mismatched"]
    if mismatched:
        lines += ["", "Different shapes (not compared):"]
        lines += [f"  {c.key}: {comparison.a.role} {list(c.shape_a)} {c.dtype_a} vs {comparison.b.role} "
                  f"{list(c.shape_b)} {c.dtype_b}" for c in mismatched[:MAX_LISTED_MISMATCHES]]
        if len(mismatched) > MAX_LISTED_MISMATCHES:
            lines.append(f"  ... and {len(mismatched) - MAX_LISTED_MISMATCHES} more")
    dtype_changes = [c for c in comparison.tensors if c.compared and c.dtype_a != c.dtype_b]
    if dtype_changes:
        lines += ["", f"Different dtypes (compared as float64): {len(dtype_changes)} tensors, e.g. "
                      f"{dtype_changes[0].key}: {dtype_changes[0].dtype_a} vs {dtype_changes[0].dtype_b}"]
    for status, role in (("only_a", comparison.a.role), ("only_b", comparison.b.role)):
        keys = comparison.keys_with(status)
        if keys:
            lines += ["", f"Only in {role}, by prefix:"] + [f"  {group}" for group in unexpected_by_prefix(keys)]
    return "\n".join(lines)


def unchanged_lines(groups: list) -> list[str]:
    """Per kind, its unchanged modules by module range (at most MAX_LISTED_GROUPS lines each)."""
    lines = []
    for kind in KINDS:
        chosen = [group for group in groups if group.kind == kind]
        if not chosen:
            continue
        lines += ["", f"{FINDINGS[kind][0].upper()}{FINDINGS[kind][1:]}, by module range:"]
        lines += [f"  {group.text()}" for group in chosen[:MAX_LISTED_GROUPS]]
        if len(chosen) > MAX_LISTED_GROUPS:
            lines.append(f"  ... and {len(chosen) - MAX_LISTED_GROUPS} more groups (--json lists every module)")
    return lines
