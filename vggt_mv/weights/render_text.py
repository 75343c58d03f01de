"""The report as terminal text: totals, a collapsed module tree, mismatches, unexpected keys, tensors that look
untrained, anomalies."""

from __future__ import annotations

from collections import Counter

from vggt_mv.weights.report import LoadReport, mismatch_groups, suspect_groups
from vggt_mv.weights.tree import STATUSES, group_children, loaded_share, suspect_count

BAR_WIDTH = 20
UNEXPECTED_PREFIX_DEPTH = 2
LABEL_WIDTH = 24
MAX_MISMATCH_LINES = 40
MAX_SUSPECT_LINES = 20


def coverage_bar(share: float) -> str:
    """[#######.............] for a loaded share."""
    filled = round(share * BAR_WIDTH)
    return "[" + "#" * filled + "." * (BAR_WIDTH - filled) + "]"


def human_count(count: int) -> str:
    """1256537516 -> '1.26B'."""
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if count >= size:
            return f"{count / size:.2f}{unit}"
    return str(count)


def status_mix(node: dict, statuses: list[str] = STATUSES) -> str:
    """'checkpoint 12 (4.20M) | random 2 (10)' for one tree node, statuses in `statuses` order."""
    parts = []
    for status in statuses:
        tensors = node["tensors"].get(status, 0)
        if tensors:
            parts.append(f"{status} {tensors} ({human_count(node['parameters'][status])})")
    return " | ".join(parts)


def merged_node(tree: dict, members: list[str]) -> dict:
    """Sum of several sibling nodes (a collapsed index range)."""
    merged = {"tensors": Counter(), "parameters": Counter(), "suspect_untrained": None}
    for member in members:
        merged["tensors"].update(tree[member]["tensors"])
        merged["parameters"].update(tree[member]["parameters"])
        suspects = tree[member].get("suspect_untrained")
        if suspects is not None:
            total = merged["suspect_untrained"] or {"tensors": 0, "parameters": 0}
            merged["suspect_untrained"] = {name: total[name] + suspects[name] for name in total}
    return merged


def suspect_text(node: dict) -> str:
    """' | SUSPECT untrained 12 (1.20M)' for a node holding tensors that look untrained, else ''."""
    if not suspect_count(node):
        return ""
    suspects = node["suspect_untrained"]
    return f" | SUSPECT untrained {suspects['tensors']} ({human_count(suspects['parameters'])})"


def render_tree(tree: dict, path: str = "", depth: int = 0, max_depth: int = 3,
                statuses: list[str] = STATUSES) -> list[str]:
    """Module lines down to max_depth, identical sibling blocks collapsed into one line."""
    lines = []
    for label, members in group_children(tree, path):
        node = merged_node(tree, members)
        lines.append(f"{'  ' * depth}{label:<{48 - 2 * depth}} {coverage_bar(loaded_share(node))} "
                     f"{status_mix(node, statuses)}{suspect_text(node)}")
        if depth + 1 < max_depth:
            lines.extend(render_tree(tree, members[0], depth + 1, max_depth, statuses)
                         if len(members) == 1 else [])
    return lines


def summary_label(name: str) -> str:
    """`checkpoint_loaded`, `pi3_loaded` (the seed's words), `<name>_loaded` for any other source."""
    return f"{name}_loaded"


def mismatch_lines(report: LoadReport) -> list[str]:
    """One line per group of mismatches that differ only in block indices (the tree's ranges)."""
    lines = []
    groups = mismatch_groups(report.mismatched)
    for group in groups[:MAX_MISMATCH_LINES]:
        row = group["row"]
        if group["count"] == 1:
            lines.append(f"  {row['key']} <- {row['source']}:{row['source_key']}: {mismatch_detail(row)}")
        else:
            lines.append(f"  {group['key']} <- {group['source']}: {group['count']} tensors, e.g. {row['key']}: "
                         f"{mismatch_detail(row)}")
    if len(groups) > MAX_MISMATCH_LINES:
        lines.append(f"  ... and {len(groups) - MAX_MISMATCH_LINES} more groups ({len(report.mismatched)} tensors in "
                     "all; --json lists every one)")
    return lines


def suspect_lines(report: LoadReport) -> list[str]:
    """Tensors that look untrained, grouped by module and collapsed over block indices like the mismatches: one
    line per group, with its first tensor's evidence."""
    records = report.suspect_records()
    groups = suspect_groups(records)
    lines = []
    for group in groups[:MAX_SUSPECT_LINES]:
        first = group["row"]
        example = f"{group['count']} tensors, e.g. {first['key']}: " if group["count"] > 1 else ""
        lines.append(f"  {group['key']} <- {group['source']}: {example}{first['suspect_untrained']['reason']}")
    if len(groups) > MAX_SUSPECT_LINES:
        lines.append(f"  ... and {len(groups) - MAX_SUSPECT_LINES} more groups ({len(records)} tensors in all; "
                     "--json lists every one)")
    return lines


def suspect_summary_line(report: LoadReport) -> str:
    """How many loaded tensors look untrained, or why that was not checked."""
    summary = report.summary()
    if summary["suspect_untrained"] is None:
        return (f"  {'suspect_untrained':<{LABEL_WIDTH}}    not checked (a dry run reads no data)" if report.dry_run
                else f"  {'suspect_untrained':<{LABEL_WIDTH}}    not checked")
    return (f"  {'suspect_untrained':<{LABEL_WIDTH}} {summary['suspect_untrained']:>6} tensors  "
            f"{human_count(summary['parameters']['suspect_untrained']):>8} parameters (loaded, but look like an init)")


def unexpected_by_prefix(keys: list[str]) -> list[str]:
    """Unused keys grouped by their first two name parts, counted."""
    counts = Counter(".".join(key.split(".")[:UNEXPECTED_PREFIX_DEPTH]) for key in keys)
    return [f"{prefix}.* ({count})" if count > 1 else prefix for prefix, count in sorted(counts.items())]


def mismatch_detail(row: dict) -> str:
    """'model [1, 2, 4, 1024] vs source [1, 1, 5, 1024]', or the dtypes when the dtype is what is wrong."""
    if row.get("reason") == "dtype":
        return f"model dtype {row['model_dtype']} vs source dtype {row['source_dtype']}"
    return f"model {row['model_shape']} vs source {row['source_shape']}"


def render_report(report: LoadReport, max_depth: int = 3) -> str:
    """Everything a person needs to judge a load, in one screen or two."""
    summary = report.summary()
    parameters = summary["parameters"]
    lines = [f"{'DRY RUN (headers only)' if report.dry_run else 'LOADED'}: "
             f"{summary['total']} tensors, {human_count(parameters['total'])} parameters"]
    for role, source in report.sources.items():
        rules = f", rules {source['rules']}" if source.get("rules") else ""
        lines.append(f"  {role}: {source['location']} ({source['format']}, {source['num_tensors']} tensors{rules})")
        lines.extend(f"    note: {note}" for note in source["notes"])
    lines.append("")
    rows = [(summary_label(name), summary["loaded"][name], parameters["loaded"][name]) for name in summary["loaded"]]
    rows += [(name, summary[name], parameters[name]) for name in ("derived", "random", "overridden", "mismatched")]
    for name, tensors, count in rows:
        lines.append(f"  {name:<{LABEL_WIDTH}} {tensors:>6} tensors  {human_count(count):>8} parameters")
    for role, count in summary["unexpected"].items():
        lines.append(f"  {f'unexpected ({role})':<{LABEL_WIDTH}} {count:>6} tensors (of the source)")
    lines.append(suspect_summary_line(report))
    lines.append(f"  loaded: {parameters['loaded_fraction']:.2%} of parameters")
    lines += ["", "Module tree (#: loaded share of parameters):"]
    lines += render_tree(report.tree(), max_depth=max_depth, statuses=report.statuses())
    if report.mismatched:
        lines += ["", "Shape and dtype mismatches (not loaded; the model keeps what it had):"]
        lines += mismatch_lines(report)
    if report.suspect_records():
        lines += ["", "Look untrained (loaded, but the values match their module's initialisation):"]
        lines += suspect_lines(report)
    for role, keys in report.unexpected.items():
        if keys:
            lines += ["", f"Unexpected keys of {role} (used by no rule), by prefix:"]
            lines += [f"  {group}" for group in unexpected_by_prefix(keys)]
    lines += ["", "Rules (tensors matched):"]
    for rule in report.rules:
        lines.append(f"  {rule['name']:<26} {rule['matched']:>5}  {rule['description']}")
        lines.extend(f"  {'':<26}        {mapping}" for mapping in rule["mappings"])
    if report.anomalies:
        lines += ["", "ANOMALIES:"]
        for anomaly in report.anomalies:
            lines += [f"  ! {anomaly.message}", f"    fix: {anomaly.suggestion}"]
    return "\n".join(lines)
