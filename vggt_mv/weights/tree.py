"""The module tree of a report: per-node counts by status, and the collapsed index ranges views print."""

from __future__ import annotations

import re
from collections import defaultdict
from typing import Iterable

# The default sources' statuses and the two that are not sources; any other status is a source's own name.
STATUSES = ("checkpoint", "pi3", "derived", "random")
UNLOADED = ("derived", "random")
NUMERIC_PART = re.compile(r"(?<![^.])\d+(?![^.])")


def status_order(statuses: Iterable[str], sources: Iterable[str] = ()) -> list[str]:
    """Statuses for display: sources in loading order (then any other loaded status), derived, random."""
    present = list(dict.fromkeys(statuses))
    ordered = [s for s in sources if s in present]
    ordered += [s for s in present if s not in ordered and s not in UNLOADED]
    return ordered + [s for s in UNLOADED if s in present]


def collapse_indices(indices: list[int]) -> str:
    """[0..17] -> "{0..17}", evens -> "{0..34 even}", else runs joined: "{0..3,7,9,10}"."""
    values = sorted(set(indices))
    if not values:
        return "{}"
    if len(values) == 1:
        return f"{{{values[0]}}}"
    steps = {b - a for a, b in zip(values, values[1:])}
    if steps == {2} and len(values) > 2:
        parity = "even" if values[0] % 2 == 0 else "odd"
        return f"{{{values[0]}..{values[-1]} {parity}}}"
    runs: list[str] = []
    start = previous = values[0]
    for value in values[1:] + [None]:
        if value is not None and value == previous + 1:
            previous = value
            continue
        if previous - start >= 2:
            runs.append(f"{start}..{previous}")
        else:
            runs.extend(str(index) for index in range(start, previous + 1))
        start = previous = value
    return "{" + ",".join(runs) + "}"


def module_paths(key: str) -> list[str]:
    """Every module node above a tensor key: a.b.c.weight -> [a, a.b, a.b.c]."""
    parts = key.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


def build_tree(tensors: list[dict], suspects_checked: bool = False) -> dict[str, dict]:
    """Per module path: {"tensors": {status: n}, "parameters": {status: n}} (only statuses present), and
    "suspect_untrained": {"tensors": n, "parameters": n} of records whose `suspect_untrained` is set (None when the
    data was not checked: a dry run)."""
    nodes: dict[str, dict] = defaultdict(lambda: {"tensors": defaultdict(int), "parameters": defaultdict(int),
                                                  "suspect_untrained": {"tensors": 0, "parameters": 0}})
    for record in tensors:
        suspect = suspects_checked and bool(record.get("suspect_untrained"))
        for path in [""] + module_paths(record["key"]):
            node = nodes[path]
            node["tensors"][record["status"]] += 1
            node["parameters"][record["status"]] += record["numel"]
            if suspect:
                node["suspect_untrained"]["tensors"] += 1
                node["suspect_untrained"]["parameters"] += record["numel"]
    return {path: {"tensors": dict(node["tensors"]), "parameters": dict(node["parameters"]),
                   "suspect_untrained": node["suspect_untrained"] if suspects_checked else None}
            for path, node in sorted(nodes.items())}


def suspect_count(node: dict) -> int:
    """Tensors under a node that look untrained (0 when none, or not checked)."""
    return (node.get("suspect_untrained") or {}).get("tensors", 0)


def loaded_share(node: dict) -> float:
    """Share of a node's parameters that came from a source (any source, or derived)."""
    parameters = node["parameters"]
    total = sum(parameters.values())
    return (total - parameters.get("random", 0)) / total if total else 0.0


def children(tree: dict[str, dict], path: str) -> list[str]:
    """Direct child module paths of a node, numeric indices in numeric order."""
    depth = 0 if path == "" else path.count(".") + 1
    prefix = "" if path == "" else path + "."
    found = [p for p in tree if p.startswith(prefix) and p != path and p.count(".") == depth and p]

    def order(child: str):
        last = child.rsplit(".", 1)[-1]
        return (0, int(last), "") if last.isdigit() else (1, 0, last)

    return sorted(found, key=order)


def group_children(tree: dict[str, dict], path: str) -> list[tuple[str, list[str]]]:
    """Children, with consecutive numeric siblings of identical status mix (and suspect count) merged:
    ("frame_blocks.{0..17}", paths)."""

    def mix(node: dict) -> tuple:
        return tuple(sorted(node["tensors"].items())), suspect_count(node)

    groups: list[tuple[str, list[str]]] = []
    for child in children(tree, path):
        last = child.rsplit(".", 1)[-1]
        signature = mix(tree[child])
        if groups and last.isdigit():
            label, members = groups[-1]
            previous = members[-1]
            previous_last = previous.rsplit(".", 1)[-1]
            same_mix = mix(tree[previous]) == signature
            if previous_last.isdigit() and same_mix:
                members.append(child)
                continue
        groups.append((child, [child]))
    labelled = []
    for label, members in groups:
        if len(members) > 1:
            parent = members[0].rsplit(".", 1)[0]
            label = f"{parent}.{collapse_indices([int(m.rsplit('.', 1)[-1]) for m in members])}"
        labelled.append((label, members))
    return labelled


def collapse_keys(keys: list[str]) -> list[tuple[str, list[str]]]:
    """Keys that differ only in numbered parts, grouped like the tree: ("a.frame_blocks.{0..3}.w", members), in
    first-seen order; a group where several numbers vary is split until one does."""
    groups: dict[str, list[tuple[str, tuple[int, ...]]]] = {}
    for key in keys:
        groups.setdefault(NUMERIC_PART.sub("#", key), []).append(
            (key, tuple(int(n) for n in NUMERIC_PART.findall(key))))
    collapsed: list[tuple[str, list[str]]] = []
    for template, members in groups.items():
        collapsed.extend(_collapse_group(template, members))
    return collapsed


def _collapse_group(template: str, members: list[tuple[str, tuple[int, ...]]]) -> list[tuple[str, list[str]]]:
    """One template's keys as labelled ranges: split on every varying number but the first."""
    if len(members) == 1:
        return [(members[0][0], [members[0][0]])]
    width = len(members[0][1])
    varying = [i for i in range(width) if len({numbers[i] for _, numbers in members}) > 1]
    if len(varying) > 1:
        rest = varying[1:]
        split: dict[tuple, list] = {}
        for key, numbers in members:
            split.setdefault(tuple(numbers[i] for i in rest), []).append((key, numbers))
        return [group for part in split.values() for group in _collapse_group(template, part)]
    position = varying[0] if varying else None
    pieces = template.split("#")
    numbers = members[0][1]
    label = pieces[0]
    for index, piece in enumerate(pieces[1:]):
        label += (collapse_indices([n[index] for _, n in members]) if index == position else str(numbers[index])) + piece
    return [(label, [key for key, _ in members])]
