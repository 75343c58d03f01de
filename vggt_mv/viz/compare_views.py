"""A checkpoint comparison as the Weights tab shows it, beside its treemap: a summary, one table row per module
(ranges collapsed like the tree, for a grid the visitor sorts and filters) and the unchanged modules by finding,
grouped by module range. Names come from files, so every one is shown as inline code that cannot break out."""

from __future__ import annotations

from vggt_mv.weights.compare import FINDINGS, Comparison, ModuleChange, band_groups, merged_module
from vggt_mv.weights.render_compare import change_text
from vggt_mv.weights.render_text import human_count, unexpected_by_prefix
from vggt_mv.weights.unchanged_groups import KINDS, unchanged_groups

TABLE_DEPTH = 3
MAX_LISTED_PREFIXES = 20
MAX_LISTED_GROUPS = 40
# The table's columns: header, grid datatype, width. Widths are shares of the full-width grid, each wide enough
# for its header's longest word at the grid's font (the browser test measures it), the module column the widest.
TABLE_COLUMNS = (("module", "str", "27%"), ("finding", "str", "17%"), ("relative change", "number", "9%"),
                 ("parameters", "number", "9%"), ("compared", "number", "8%"), ("unchanged", "number", "8%"),
                 ("at init", "number", "6%"), ("only in a", "number", "5%"), ("only in b", "number", "5%"),
                 ("other shape", "number", "6%"))
TABLE_HEADERS = [header for header, _, _ in TABLE_COLUMNS]
TABLE_TYPES = [kind for _, kind, _ in TABLE_COLUMNS]
TABLE_WIDTHS = [width for _, _, width in TABLE_COLUMNS]


def as_code(text: str) -> str:
    """Text from a file as inline markdown code: no backticks, pipes (table cells) or control characters to break
    out of it."""
    cleaned = "".join(char if ord(char) >= 32 and ord(char) != 127 else "?" for char in text)
    return "`" + cleaned.replace("`", "'").replace("|", "¦") + "`"


def plain(text: str) -> str:
    """A name from a file for a grid cell (shown as text, never markup): control characters replaced."""
    return "".join(char if ord(char) >= 32 and ord(char) != 127 else "?" for char in text)


def rounded(value: float | None) -> float | None:
    """A relative change to 3 significant digits (sortable as a number; None stays an empty cell)."""
    return None if value is None else float(f"{value:.3g}")


def table_row(label: str, module: ModuleChange) -> list:
    """One row: TABLE_COLUMNS in order."""
    change = 0.0 if module.unchanged else rounded(module.relative_change)
    return [plain(label), FINDINGS[module.finding], change, module.parameters, module.compared_tensors,
            module.unchanged_tensors, module.at_init_tensors, module.only_a, module.only_b, module.mismatched]


def change_table(comparison: Comparison, path: str = "", depth: int = 0) -> list[list]:
    """Rows per module down to TABLE_DEPTH, siblings in the same band as one range row (as in the text view); a
    range or an unchanged module is not expanded (its descendants say the same)."""
    rows = []
    for label, members in band_groups(comparison, path):
        module = merged_module(comparison, label, members)
        rows.append(table_row(label, module))
        if depth + 1 < TABLE_DEPTH and len(members) == 1 and not module.unchanged:
            rows += change_table(comparison, members[0], depth + 1)
    return rows


def plural(count: int, word: str) -> str:
    return f"{count:,} {word}" + ("" if count == 1 else "s")


def findings_lines(comparison: Comparison) -> list[str]:
    """How many unchanged modules of each kind, and what told them apart."""
    groups = unchanged_groups(comparison)
    counts = [f"**{sum(g.modules for g in groups if g.kind == kind):,}** {FINDINGS[kind]}" for kind in KINDS
              if any(g.kind == kind for g in groups)]
    lines = ["", "Unchanged modules (every value equal): " + (" · ".join(counts) if counts else "none"), ""]
    if comparison.init_reference:
        lines.append(f"Frozen and never trained are told apart by the untrained-tensor check on both sides, against "
                     f"{as_code(comparison.init_reference.replace('`', ''))}.")
    else:
        lines.append("Frozen and never trained are not told apart: neither header is a VGGT_MV state dict, so no "
                     "init is known.")
    return lines


def one_sided_lines(comparison: Comparison) -> list[str]:
    """Keys only one side has, and shape mismatches, by prefix."""
    lines = []
    a, b = comparison.a.role, comparison.b.role
    for status, title in (("only_a", f"Only in {a}"), ("only_b", f"Only in {b}"),
                          ("mismatched", "In both, with other shapes")):
        keys = comparison.keys_with(status)
        if keys:
            prefixes = unexpected_by_prefix(keys)
            more = f" and {len(prefixes) - MAX_LISTED_PREFIXES} more" if len(prefixes) > MAX_LISTED_PREFIXES else ""
            lines += ["", f"**{title}** ({plural(len(keys), 'key')}): "
                      + ", ".join(as_code(p) for p in prefixes[:MAX_LISTED_PREFIXES]) + more]
    return lines


def summary_markdown(comparison: Comparison) -> str:
    """The sides, the overall change, the findings, and keys only one side has."""
    a, b = comparison.a, comparison.b
    totals = comparison.totals
    lines = [f"### Compare {a.role} with {b.role}",
             f"- {a.role}: {as_code(a.location)} ({a.tensors:,} tensors, {human_count(a.parameters)} parameters)",
             f"- {b.role}: {as_code(b.location)} ({b.tensors:,} tensors, {human_count(b.parameters)} parameters)", "",
             f"Overall relative change ||{a.role} − {b.role}|| / ||{b.role}||: **{change_text(totals)}** · "
             f"{totals.changed_tensors:,} tensors changed, {totals.unchanged_tensors:,} unchanged, "
             f"{totals.mismatched:,} with other shapes, {totals.only_a:,} only in {a.role}, "
             f"{totals.only_b:,} only in {b.role}"]
    return "\n".join(lines + findings_lines(comparison) + one_sided_lines(comparison))


def unchanged_markdown(comparison: Comparison) -> str:
    """Per finding, its unchanged modules grouped by module range: one line per range, not one per tensor."""
    groups = unchanged_groups(comparison)
    lines = []
    for kind in KINDS:
        chosen = [group for group in groups if group.kind == kind]
        if not chosen:
            continue
        total = sum(group.modules for group in chosen)
        lines += ["", f"#### Unchanged, {FINDINGS[kind]}: {plural(total, 'module')} in {plural(len(chosen), 'group')}"]
        lines += [f"- {as_code(group.text())} ({plural(group.modules, 'module')}, "
                  f"{human_count(group.parameters)} parameters)" for group in chosen[:MAX_LISTED_GROUPS]]
        if len(chosen) > MAX_LISTED_GROUPS:
            lines.append(f"- … and {len(chosen) - MAX_LISTED_GROUPS} more groups (the JSON lists every module)")
    return "\n".join(lines).strip() or "No module is unchanged."
