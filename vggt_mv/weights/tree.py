"""The module tree of a report: per-node counts by status, and the collapsed index ranges views print."""

from __future__ import annotations

from collections import defaultdict

STATUSES = ("checkpoint", "pi3", "derived", "random")


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


def build_tree(tensors: list[dict]) -> dict[str, dict]:
    """Per module path: {"tensors": {status: n}, "parameters": {status: n}} (only statuses present)."""
    nodes: dict[str, dict] = defaultdict(lambda: {"tensors": defaultdict(int), "parameters": defaultdict(int)})
    for record in tensors:
        for path in [""] + module_paths(record["key"]):
            node = nodes[path]
            node["tensors"][record["status"]] += 1
            node["parameters"][record["status"]] += record["numel"]
    return {path: {"tensors": dict(node["tensors"]), "parameters": dict(node["parameters"])}
            for path, node in sorted(nodes.items())}


def loaded_share(node: dict) -> float:
    """Share of a node's parameters that came from a source (checkpoint, Pi3 or derived)."""
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
    """Children, with consecutive numeric siblings of identical status mix merged: ("frame_blocks.{0..17}", paths)."""
    groups: list[tuple[str, list[str]]] = []
    for child in children(tree, path):
        last = child.rsplit(".", 1)[-1]
        signature = tuple(sorted(tree[child]["tensors"].items()))
        if groups and last.isdigit():
            label, members = groups[-1]
            previous = members[-1]
            previous_last = previous.rsplit(".", 1)[-1]
            same_mix = tuple(sorted(tree[previous]["tensors"].items())) == signature
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
