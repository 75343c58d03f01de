"""The report as an expandable HTML tree with a coverage bar per module, the CLI's collapsed index ranges, and a
warning on modules holding tensors that look untrained (loaded, but still their init)."""

from __future__ import annotations

import html
from collections import Counter

from vggt_mv.viz.weights_treemap import report_colors
from vggt_mv.weights.render_text import human_count, merged_node
from vggt_mv.weights.report import mismatch_groups
from vggt_mv.weights.tree import group_children, suspect_count

# Stacks that have a second, alias name (properties on the aggregator, never extra weights).
ALIASES = {"aggregator.frame_blocks": "aggregator.time_blocks", "aggregator.global_blocks": "aggregator.view_blocks"}
OPEN_DEPTH = 1


def coverage_bar(node: dict, colors: dict[str, str]) -> str:
    """A stacked bar of the node's parameters by status (statuses in `colors` order)."""
    total = sum(node["parameters"].values()) or 1
    parts = "".join(
        f"<span title='{html.escape(status, quote=True)}' style='display:inline-block;height:10px;"
        f"width:{120 * count / total:.1f}px;background:{color}'></span>"
        for status, color in colors.items() if (count := node["parameters"].get(status, 0)))
    return f"<span style='display:inline-block;width:120px;background:#eee;vertical-align:middle'>{parts}</span>"


def node_summary(label: str, node: dict, colors: dict[str, str]) -> str:
    """'name [bar] 98% loaded · 12.3M params · checkpoint 10, random 2'."""
    total = sum(node["parameters"].values())
    loaded = total - node["parameters"].get("random", 0)
    counts = html.escape(", ".join(f"{status} {node['tensors'][status]}" for status in colors
                                   if node["tensors"].get(status)))
    shown = html.escape(label)
    alias = ALIASES.get(label)
    if alias:
        shown += f" <i>(also {html.escape(alias)})</i>"
    return (f"<code>{shown}</code> {coverage_bar(node, colors)} {loaded / total if total else 0:.0%} loaded · "
            f"{human_count(total)} params · {counts}{suspect_badge(node)}")


def suspect_badge(node: dict) -> str:
    """' ⚠ 12 look untrained' in red, for a module holding tensors whose values match their init."""
    if not suspect_count(node):
        return ""
    suspects = node["suspect_untrained"]
    return (f" · <b class='suspect-untrained' style='color:#b2182b' title='loaded, but the values match the "
            f"module&#39;s initialisation'>⚠ {suspects['tensors']} look untrained "
            f"({human_count(suspects['parameters'])})</b>")


def render_tree_html(report, max_depth: int = 4) -> str:
    """Nested <details> elements; the top level starts open."""
    tree = report.tree()
    colors = report_colors(report)

    def render(path: str, depth: int) -> str:
        items = []
        for label, members in group_children(tree, path):
            node = merged_node(tree, members) if len(members) > 1 else tree[members[0]]
            children = render(members[0], depth + 1) if len(members) == 1 and depth + 1 < max_depth else ""
            if children:
                opened = " open" if depth < OPEN_DEPTH else ""
                items.append(f"<details{opened}><summary>{node_summary(label, node, colors)}</summary>{children}</details>")
            else:
                items.append(f"<div style='margin-left:1.1em'>{node_summary(label, node, colors)}</div>")
        return f"<div style='margin-left:1em'>{''.join(items)}</div>" if items else ""

    legend = " ".join(f"<span style='color:{color}'>■</span> {html.escape(status)}" for status, color in colors.items())
    return f"<div class='weights-tree' style='font-size:13px'><div>{legend}</div>{render('', 0)}</div>"


def unexpected_rows(report) -> list[list]:
    """[source, key prefix, count] for the unexpected-keys table."""
    rows = []
    for role, keys in report.unexpected.items():
        for prefix, count in sorted(Counter(".".join(k.split(".")[:2]) for k in keys).items()):
            rows.append([role, prefix, count])
    return rows


def mismatched_rows(report) -> list[list]:
    """[model key, source, source key, model shape, source shape], collapsed by module range like the tree (a
    group shows its count and its first tensor's shapes); a dtype mismatch shows the dtypes beside the (equal)
    shapes, so the row says what is wrong."""
    def described(shape, dtype, reason) -> str:
        return f"{shape} {dtype}" if reason == "dtype" else str(shape)

    rows = []
    for group in mismatch_groups(report.mismatched):
        m = group["row"]
        source_key = m["source_key"] if group["count"] == 1 else f"{group['count']} tensors, e.g. {m['source_key']}"
        example = "" if group["count"] == 1 else " (e.g.)"
        rows.append([group["key"], m["source"], source_key,
                     described(m["model_shape"], m.get("model_dtype"), m.get("reason")) + example,
                     described(m["source_shape"], m.get("source_dtype"), m.get("reason")) + example])
    return rows


def overridden_rows(report) -> list[list]:
    """[model key, now from, source key, overrode]."""
    return [[t["key"], t["status"], t["source_key"], f"{t['overrode']['source']}:{t['overrode']['source_key']}"]
            for t in report.tensors if t["overrode"]]


def rule_rows(report) -> list[list]:
    """[source, rule, matched, mapping]."""
    return [[r["source"], r["name"], r["matched"], "; ".join(r["mappings"]) or r["description"]] for r in report.rules]
