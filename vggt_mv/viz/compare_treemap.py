"""Treemap of a checkpoint comparison: area = parameters, colour = relative change ||a - b|| / ||b|| (log scale).

Modules whose compared tensors are all exactly equal are hatched, in the colour of their finding: grey when frozen
(equal, trained), sand when still at init in both (never trained), light grey when that is not known; keys only
one side has, and shape mismatches, get their own colours. Siblings in the same decade
of change collapse into one range box (`aggregator.frame_blocks.{0..5}`), as in the text rendering; hover shows
the numbers. Same layout and style as the provenance treemap (weights_treemap.py).
"""

from __future__ import annotations

import math
from html import escape

import plotly.graph_objects as go
from plotly.colors import sample_colorscale

from vggt_mv.weights.compare import FINDINGS, Comparison, ModuleChange, TensorChange, band_groups, merged_module
from vggt_mv.weights.render_text import human_count

COLORSCALE = "Viridis"
# Unchanged modules and tensors, by finding: frozen (equal, trained), never trained (still at init in both),
# unknown (no verdict). All hatched, so "equal" reads at a glance and the colour says which finding.
UNCHANGED_COLORS = {"frozen": "#bdbdbd", "never_trained": "#e6c88f", "unknown": "#e0e0e0"}
UNCHANGED_PATTERN = "x"
STATUS_COLORS = {"only_a": "#e7298a", "only_b": "#d95f02", "mismatched": "#000000", "not compared": "#f0f0f0"}
ROOT_ID = "root"


def decade_range(comparison: Comparison) -> tuple[int, int]:
    """[lo, hi] decades of the colour scale: those of the smallest and largest non-zero change, one at least."""
    changes = [c.relative_change for c in comparison.tensors if c.relative_change]
    changes += [m.relative_change for m in comparison.modules.values() if m.relative_change]
    if not changes:
        return -3, 0
    lo, hi = math.floor(math.log10(min(changes))), math.ceil(math.log10(max(changes)))
    return lo, max(hi, lo + 1)


def change_color(change: float, decades: tuple[int, int]) -> str:
    """The scale's colour for a positive relative change (clamped to the scale's decades)."""
    lo, hi = decades
    position = (math.log10(change) - lo) / (hi - lo)
    return sample_colorscale(COLORSCALE, [min(1.0, max(0.0, position))])[0]


def tensor_kind(change: TensorChange) -> str:
    """An unchanged tensor's finding: "frozen" (trained values), "never_trained" (at init in both), "unknown"."""
    return {True: "never_trained", False: "frozen", None: "unknown"}[change.at_init]


def module_color(module: ModuleChange, decades: tuple[int, int]) -> str:
    if module.compared_tensors == 0:
        return STATUS_COLORS["not compared"]
    if module.unchanged:
        return UNCHANGED_COLORS[module.unchanged_kind]
    change = module.relative_change
    return change_color(change, decades) if change else STATUS_COLORS["not compared"]


def tensor_color(change: TensorChange, decades: tuple[int, int]) -> str:
    if change.status in STATUS_COLORS:
        return STATUS_COLORS[change.status]
    if change.status == "unchanged":
        return UNCHANGED_COLORS[tensor_kind(change)]
    value = change.relative_change
    return change_color(value, decades) if value else STATUS_COLORS["not compared"]


def number(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}e}"


def module_hover(label: str, module: ModuleChange, a: str, b: str) -> str:
    """The numbers behind a module's colour (names escaped: a file's keys are not markup)."""
    figure = (f"UNCHANGED, {FINDINGS[module.unchanged_kind]} (every value equal)" if module.unchanged
              else number(module.relative_change))
    at_init = f" ({module.at_init_tensors} at init in both, {module.frozen_tensors} trained)" \
        if module.unchanged_tensors else ""
    lines = [escape(label), f"||{a} - {b}|| / ||{b}|| = {figure}",
             f"||{a} - {b}|| {number(module.diff_norm)} · ||{b}|| {number(module.ref_norm)}",
             f"{module.compared_tensors} tensors compared ({human_count(module.compared_parameters)} parameters), "
             f"{module.unchanged_tensors} unchanged{at_init}"]
    extra = [f"{text} {count}" for text, count in ((f"only in {a}", module.only_a), (f"only in {b}", module.only_b),
                                                  ("different shape", module.mismatched),
                                                  ("non-finite", module.non_finite)) if count]
    return "<br>".join(lines + ([" · ".join(extra)] if extra else []))


def tensor_hover(change: TensorChange, a: str, b: str) -> str:
    """One tensor's shapes, dtypes and change."""
    shapes = f"{a} {list(change.shape_a) if change.shape_a else '-'} {change.dtype_a or ''} · " \
             f"{b} {list(change.shape_b) if change.shape_b else '-'} {change.dtype_b or ''}"
    status = {"only_a": f"only in {a}", "only_b": f"only in {b}", "mismatched": "different shape: not compared",
              "unchanged": f"UNCHANGED, {FINDINGS[tensor_kind(change)]} (every value equal)"}.get(change.status)
    if status is None:
        status = f"||{a} - {b}|| / ||{b}|| = {number(change.relative_change)}" if change.finite else "non-finite values"
    lines = [escape(change.key), shapes, status]
    if change.diff_norm is not None:
        lines.append(f"||{a} - {b}|| {number(change.diff_norm)} · ||{b}|| {number(change.ref_norm)}")
    return "<br>".join(lines)


def module_id(path: str) -> str:
    return f"module:{path}"


def range_id(label: str) -> str:
    return f"range:{label}"


def tensor_id(key: str) -> str:
    return f"tensor:{key}"


def treemap_nodes(comparison: Comparison) -> dict[str, list]:
    """ids/labels/parents/values/colors/patterns/hover for every module, collapsed range and tensor.

    Ids are `module_id(path)`, `range_id(label)` and `tensor_id(key)`: prefixed, so no key a file holds (one
    named like a module, or like the root) can make two nodes share an id; the labels read like the model.
    """
    decades = decade_range(comparison)
    a, b = comparison.a.role, comparison.b.role
    nodes = {"ids": [], "labels": [], "parents": [], "values": [], "colors": [], "patterns": [], "hover": []}

    def add(node_id: str, label: str, parent: str, value: int, color: str, unchanged: bool, hover: str) -> None:
        for name, item in (("ids", node_id), ("labels", label), ("parents", parent), ("values", value),
                           ("colors", color), ("patterns", UNCHANGED_PATTERN if unchanged else ""),
                           ("hover", hover)):
            nodes[name].append(item)

    def add_module(node_id: str, label: str, parent: str, module: ModuleChange, title: str) -> None:
        add(node_id, label, parent, module.parameters, module_color(module, decades), module.unchanged,
            module_hover(title, module, a, b))

    totals = comparison.totals
    add_module(ROOT_ID, f"{a} vs {b}", "", totals, "whole model")
    tensors_by_parent: dict[str, list[TensorChange]] = {}
    for change in comparison.tensors:
        tensors_by_parent.setdefault(change.key.rpartition(".")[0], []).append(change)

    def visit(path: str, node_id: str) -> None:
        for label, members in band_groups(comparison, path):
            parent_id = node_id
            if len(members) > 1:
                add_module(range_id(label), label[len(path) + 1:] if path else label, node_id,
                           merged_module(comparison, label, members), label)
                parent_id = range_id(label)
            for member in members:
                add_module(module_id(member), member.rsplit(".", 1)[-1], parent_id, comparison.modules[member],
                           member)
                visit(member, module_id(member))
        for change in tensors_by_parent.get(path, []):
            add(tensor_id(change.key), change.key.rsplit(".", 1)[-1], node_id, change.numel,
                tensor_color(change, decades), change.status == "unchanged", tensor_hover(change, a, b))

    visit("", ROOT_ID)
    return nodes


def colour_key(decades: tuple[int, int], a: str, b: str,
               kinds: tuple[str, ...] = ("frozen", "never_trained")) -> list[str]:
    """Swatches for the title, two lines: one per decade of the scale; then each finding of unchanged modules in
    `kinds` and the special colours."""
    lo, hi = decades
    swatch = "<span style='color:{}'>■</span> {}"
    steps = [swatch.format(change_color(10.0 ** d, decades), f"1e{d}") for d in range(lo, hi + 1)]
    special = [swatch.format(UNCHANGED_COLORS[kind], f"{FINDINGS[kind]}, hatched") for kind in kinds]
    special += [swatch.format(STATUS_COLORS[s], text) for s, text in
                (("only_a", f"only in {a}"), ("only_b", f"only in {b}"), ("mismatched", "different shape"))]
    return ["  ".join(steps), "  ".join(special)]


def build_compare_treemap(comparison: Comparison, max_depth: int = 4) -> go.Figure:
    """The compare view's treemap (click a box to zoom in; the path bar zooms out)."""
    nodes = treemap_nodes(comparison)
    decades = decade_range(comparison)
    a, b = comparison.a.role, comparison.b.role
    present = {module.unchanged_kind for module in comparison.modules.values()}
    kinds = ("frozen", "never_trained") + (("unknown",) if "unknown" in present else ())
    legend = "".join(f"<br><sup>{line}</sup>" for line in colour_key(decades, a, b, kinds))
    figure = go.Figure(go.Treemap(
        ids=nodes["ids"], labels=nodes["labels"], parents=nodes["parents"], values=nodes["values"],
        branchvalues="total",
        marker={"colors": nodes["colors"], "line": {"width": 0.5, "color": "#ffffff"},
                "pattern": {"shape": nodes["patterns"], "fillmode": "overlay", "fgcolor": "#8c8c8c", "size": 8,
                            "solidity": 0.15}},
        hovertext=nodes["hover"], hoverinfo="text", maxdepth=max_depth, textinfo="label",
        pathbar={"visible": True}, root={"color": "#f5f5f5"}))
    figure.update_layout(margin={"l": 4, "r": 4, "t": 80, "b": 4}, height=620,
                         title={"text": f"Relative change ||{a} - {b}|| / ||{b}|| per module (area = parameters, "
                                        f"log colour scale){legend}", "x": 0.01})
    return figure
