"""Treemap of a load report: area = parameters, colour = provenance; parents blend their children's mix; hover
says how many tensors below look untrained (loaded, but still their init) and, on a tensor, why.

A treemap rather than a sunburst: rectangles keep area comparisons readable for a model whose modules
span six orders of magnitude (a 1M-parameter mask head next to 300M-parameter stacks), and their
labels fit horizontally; a sunburst's outer rings turn small modules into unreadable slivers.
"""

from __future__ import annotations

import html

import numpy as np
import plotly.graph_objects as go

from vggt_mv.weights.render_text import mismatch_detail
from vggt_mv.weights.render_text import human_count, merged_node
from vggt_mv.weights.tree import group_children, suspect_count

STATUS_COLORS = {"checkpoint": "#2b8cbe", "pi3": "#31a354", "derived": "#dd8a2e", "random": "#d7301f"}
# Other sources, in loading order: distinct from the four above and from each other (the tab allows 4 sources).
EXTRA_SOURCE_COLORS = ("#756bb1", "#e7298a", "#17becf", "#8c6d31", "#bcbd22", "#636363", "#1b9e77", "#fb9a99")
ROOT_ID = "model"


def provenance_colors(statuses: list[str]) -> dict[str, str]:
    """A colour per status: the fixed ones for checkpoint, pi3, derived and random, then the palette in order."""
    colors = {status: STATUS_COLORS[status] for status in statuses if status in STATUS_COLORS}
    others = [status for status in statuses if status not in STATUS_COLORS]
    for number, status in enumerate(others):
        colors[status] = EXTRA_SOURCE_COLORS[number % len(EXTRA_SOURCE_COLORS)]
    return colors


def report_colors(report) -> dict[str, str]:
    """Colours of every status of a report, sources in loading order."""
    return provenance_colors(report.statuses())


def blend(parameters: dict[str, int], colors: dict[str, str] = STATUS_COLORS) -> str:
    """Parameter-weighted mix of status colours, so a parent shows what it is made of."""
    total = sum(parameters.values())
    if not total:
        return "#cccccc"
    rgb = sum(np.array([int(colors[s][i:i + 2], 16) for i in (1, 3, 5)], float) * n / total
              for s, n in parameters.items())
    return "#" + "".join(f"{int(round(c)):02x}" for c in rgb)


def _mix_text(parameters: dict[str, int]) -> str:
    """'checkpoint 80% · pi3 20%' for hover text."""
    total = sum(parameters.values()) or 1
    return " · ".join(f"{status} {count / total:.0%}" for status, count in parameters.items() if count)


def suspect_hover(node: dict) -> str:
    """'<br>SUSPECT untrained: 12 tensors (1.20M parameters)' under a node holding look-alikes of an init."""
    if not suspect_count(node):
        return ""
    suspects = node["suspect_untrained"]
    return (f"<br>SUSPECT untrained: {suspects['tensors']} tensor{'s' if suspects['tensors'] > 1 else ''} "
            f"({human_count(suspects['parameters'])} parameters) look like their init")


def tensor_hover(record: dict, mismatch_note: str) -> str:
    """A tensor's shape, dtype, status, source key, what it overrode, mismatch and suspect notes (text from the
    file escaped: a key is not markup)."""
    overrode = record["overrode"]
    suspect = record.get("suspect_untrained")
    return (f"{html.escape(record['key'])}<br>shape {record['shape']} · {record['dtype']}<br>status "
            f"{html.escape(record['status'])}<br>source key {html.escape(record['source_key'] or '-')}"
            + (f"<br>overrode {html.escape(overrode['source'])}:{html.escape(overrode['source_key'])}"
               if overrode else "")
            + mismatch_note
            + (f"<br>SUSPECT untrained: {html.escape(suspect['reason'])}" if suspect else ""))


def treemap_nodes(report) -> dict[str, list]:
    """ids/labels/parents/values/colors/hover for every module node, index-range group and tensor.

    Ids are the module paths and tensor keys themselves (unique), range groups their label
    (`aggregator.frame_blocks.{0..17}`), so a click path reads like the model.
    """
    tree = report.tree()
    colors = report_colors(report)
    nodes = {"ids": [], "labels": [], "parents": [], "values": [], "colors": [], "hover": []}

    def add(node_id: str, label: str, parent: str, parameters: dict[str, int], hover: str) -> None:
        nodes["ids"].append(node_id)
        nodes["labels"].append(html.escape(label))
        nodes["parents"].append(parent)
        nodes["values"].append(sum(parameters.values()))
        nodes["colors"].append(blend(parameters, colors))
        nodes["hover"].append(hover)

    add(ROOT_ID, "model", "", tree[""]["parameters"], _mix_text(tree[""]["parameters"]) + suspect_hover(tree[""]))
    mismatches = _mismatch_notes(report)
    tensors_by_parent: dict[str, list[dict]] = {}
    for record in report.tensors:
        tensors_by_parent.setdefault(record["key"].rpartition(".")[0], []).append(record)

    def visit(path: str, node_id: str) -> None:
        for label, members in group_children(tree, path):
            if len(members) > 1:
                group_parameters: dict[str, int] = {}
                for member in members:
                    for status, count in tree[member]["parameters"].items():
                        group_parameters[status] = group_parameters.get(status, 0) + count
                group_id = label
                add(group_id, label[len(path) + 1:] if path else label, node_id, group_parameters,
                    f"{html.escape(label)}<br>{_mix_text(group_parameters)}"
                    + suspect_hover(merged_node(tree, members)))
                parent_id = group_id
            else:
                parent_id = node_id
            for member in members:
                member_id = member
                parameters = tree[member]["parameters"]
                add(member_id, member.rsplit(".", 1)[-1], parent_id, parameters,
                    f"{html.escape(member)}<br>{_mix_text(parameters)}" + suspect_hover(tree[member]))
                visit(member, member_id)
        for record in tensors_by_parent.get(path, []):
            hover = tensor_hover(record, mismatches.get(record["key"], ""))
            add(record["key"], record["key"].rsplit(".", 1)[-1], node_id,
                {record["status"]: record["numel"]}, hover)

    visit("", ROOT_ID)
    return nodes


def _mismatch_notes(report) -> dict[str, str]:
    """Hover lines for tensors a source offered with the wrong shape or a non-floating dtype."""
    return {m["key"]: "<br>" + html.escape(f"NOT loaded from {m['source']}:{m['source_key']}: {mismatch_detail(m)}")
            for m in report.mismatched}


def build_treemap(report, max_depth: int = 4) -> go.Figure:
    """The Weights tab's treemap (click a box to zoom in; the path bar zooms out)."""
    nodes = treemap_nodes(report)
    figure = go.Figure(go.Treemap(
        ids=nodes["ids"], labels=nodes["labels"], parents=nodes["parents"], values=nodes["values"],
        branchvalues="total", marker={"colors": nodes["colors"], "line": {"width": 0.5, "color": "#ffffff"}},
        hovertext=nodes["hover"], hoverinfo="text", maxdepth=max_depth, textinfo="label",
        pathbar={"visible": True}, root={"color": "#f5f5f5"}))
    key = "   ".join(f"<span style='color:{color}'>■</span> {html.escape(status)}"
                     for status, color in report_colors(report).items())
    figure.update_layout(margin={"l": 4, "r": 4, "t": 56, "b": 4}, height=620,
                         title={"text": f"Where each parameter came from (area = parameters)<br><sup>{key}; "
                                        "mixed colours = modules with several sources</sup>", "x": 0.01})
    return figure
