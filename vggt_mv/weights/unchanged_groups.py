"""The unchanged modules of a comparison as a person reads them: the topmost ones, by finding (frozen, never trained,
unknown), grouped by module range like the tree.

Two random inits share every LayerNorm, LayerScale and zero bias of every block: listed one by one that is a wall
of names. Grouped, it is one line per range of blocks with the same unchanged parts:
`aggregator.frame_blocks.{0..3}: attn.k_norm, attn.q_norm, ls1, ls2, norm1, norm2`.
"""

from __future__ import annotations

from dataclasses import dataclass

from vggt_mv.weights.compare import Comparison
from vggt_mv.weights.tree import collapse_keys

KINDS = ("frozen", "never_trained", "unknown")


@dataclass(frozen=True)
class UnchangedGroup:
    """Unchanged modules of one kind: `label` (a module or a range of them) and the parts of it that are unchanged
    (empty when the whole of it is), how many modules and parameters that is."""

    kind: str
    label: str
    parts: tuple[str, ...]
    modules: int
    parameters: int

    def text(self) -> str:
        """'aggregator.frame_blocks.{0..3}: ls1, ls2, norm1' or the label alone."""
        return f"{self.label}: {', '.join(self.parts)}" if self.parts else self.label


def topmost_unchanged(comparison: Comparison) -> list[str]:
    """Unchanged modules whose parent is the whole model or changed (their descendants say the same)."""
    modules = comparison.modules
    return [path for path, module in modules.items() if path and module.unchanged
            and ("." not in path or not modules[path.rpartition(".")[0]].unchanged)]


def split_unit(path: str) -> tuple[str, str]:
    """(unit, rest): the unit is the path up to its first block index ("aggregator.frame_blocks.0", "attn.q_norm"),
    else its parent ("camera_head", "token_norm"); a top-level module is its own unit."""
    parts = path.split(".")
    index = next((i for i, part in enumerate(parts) if part.isdigit()), None)
    if index is not None:
        return ".".join(parts[:index + 1]), ".".join(parts[index + 1:])
    if len(parts) == 1:
        return path, ""
    return ".".join(parts[:-1]), parts[-1]


def unchanged_groups(comparison: Comparison) -> list[UnchangedGroup]:
    """Every topmost unchanged module in one group, by kind (KINDS order), units with the same unchanged parts
    collapsed over their block indices; groups in path order within a kind."""
    rests: dict[str, dict[str, list[str]]] = {kind: {} for kind in KINDS}
    for path in topmost_unchanged(comparison):
        unit, rest = split_unit(path)
        rests[comparison.modules[path].unchanged_kind].setdefault(unit, []).append(rest)
    groups = []
    for kind in KINDS:
        by_parts: dict[tuple[str, ...], list[str]] = {}
        for unit, unit_rests in rests[kind].items():
            by_parts.setdefault(tuple(sorted(rest for rest in unit_rests if rest)), []).append(unit)
        for parts, units in by_parts.items():
            for label, members in collapse_keys(units):
                paths = [f"{unit}.{part}" if part else unit for unit in members for part in (parts or ("",))]
                groups.append(UnchangedGroup(kind, label, parts, len(paths),
                                             sum(comparison.modules[path].parameters for path in paths)))
    return groups
