"""The compare mode's table and lists: module ranges collapsed like the tree, sortable numbers, unchanged modules
grouped by range, and names from files shown as text."""

import math

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.viz.compare_views import (TABLE_HEADERS, TABLE_TYPES, TABLE_WIDTHS, change_table, summary_markdown,
                                       unchanged_markdown)
from vggt_mv.weights.compare import FINDINGS, SideInfo, TensorChange, build_comparison, compare_checkpoints
from vggt_mv.weights.known_layouts import reference_layout


@pytest.fixture(scope="module")
def seeds_pair(tmp_path_factory):
    """Two random inits of the tiny model: every block's weights differ, its norms and LayerScales do not."""
    folder = tmp_path_factory.mktemp("views")
    return compare_checkpoints(str(write_safetensors(folder / "a.safetensors", tiny_state(seed=1))),
                               str(write_safetensors(folder / "b.safetensors", tiny_state(seed=2))))


def test_every_row_fills_every_column_with_numbers_where_the_grid_sorts_numbers(seeds_pair):
    rows = change_table(seeds_pair)
    assert len(TABLE_HEADERS) == len(TABLE_TYPES) == len(TABLE_WIDTHS)
    assert sum(float(width.rstrip("%")) for width in TABLE_WIDTHS) == 100
    for row in rows:
        assert len(row) == len(TABLE_HEADERS)
        for value, kind in zip(row, TABLE_TYPES):
            assert isinstance(value, str) if kind == "str" else (value is None or isinstance(value, (int, float)))
    assert {row[1] for row in rows} <= set(FINDINGS.values())


def test_rows_are_modules_collapsed_by_range_and_unchanged_ones_say_which_finding(seeds_pair):
    rows = {row[0]: row for row in change_table(seeds_pair)}
    assert "aggregator.frame_blocks.{0..3}" in rows and "aggregator.frame_blocks.0" not in rows
    header = dict(zip(TABLE_HEADERS, rows["camera_head.trunk_norm"]))
    assert header["finding"] == "still at init in both (never trained)" and header["relative change"] == 0.0
    assert header["unchanged"] == header["at init"] == header["compared"] == 2
    blocks = dict(zip(TABLE_HEADERS, rows["aggregator.frame_blocks.{0..3}"]))
    assert blocks["finding"] == "changed" and blocks["relative change"] == pytest.approx(
        seeds_pair.modules["aggregator.frame_blocks"].relative_change, rel=1e-2)
    assert blocks["parameters"] == seeds_pair.modules["aggregator.frame_blocks"].parameters


def test_the_unchanged_list_is_one_line_per_range_not_one_chip_per_tensor(seeds_pair):
    text = unchanged_markdown(seeds_pair)
    assert text.startswith("#### Unchanged, still at init in both (never trained): ")
    assert "- `aggregator.frame_blocks.{0..3}: attn.k_norm, attn.q_norm, ls1, ls2, norm1, norm2` (24 modules" in text
    lines = [line for line in text.splitlines() if line.startswith("- ")]
    assert len(lines) < 20 < sum(1 for change in seeds_pair.tensors if change.status == "unchanged")
    summary = summary_markdown(seeds_pair)
    assert "still at init in both (never trained)" in summary and "frozen (equal, trained)" not in summary


def test_a_full_size_table_stays_a_few_dozen_rows():
    changes = []
    for key, shape in reference_layout("vggt-1b").items():
        moved = key.startswith("aggregator.frame_blocks.")
        norm = math.sqrt(math.prod(shape))
        changes.append(TensorChange(key, "changed" if moved else "unchanged", shape_a=shape, shape_b=shape,
                                    diff_norm=0.01 * norm if moved else 0.0, ref_norm=norm,
                                    at_init=None if moved else False))
    side = SideInfo("a", "a.safetensors", len(changes), 1)
    rows = {row[0]: row for row in change_table(build_comparison(side, side, changes))}
    assert len(rows) < 60
    assert rows["aggregator.frame_blocks.{0..23}"][1:3] == ["changed", 0.01]
    assert rows["aggregator.global_blocks"][1] == "frozen (equal, trained)"
    assert not any(label.startswith("aggregator.global_blocks.") for label in rows), "an unchanged module is one row"


def test_names_from_a_file_are_text_and_code_never_markup(tmp_path):
    state = {"evil`|<b>x</b>\x07.w": torch.ones(2), "ok.w": torch.ones(2)}
    other = {"evil`|<b>x</b>\x07.w": torch.ones(2), "ok.w": torch.zeros(2)}
    comparison = compare_checkpoints(str(write_safetensors(tmp_path / "x.safetensors", state)),
                                     str(write_safetensors(tmp_path / "y.safetensors", other)))
    labels = [row[0] for row in change_table(comparison)]
    assert "evil`|<b>x</b>?" in labels, "a control character is replaced; the grid shows the rest as text"
    text = unchanged_markdown(comparison)
    assert "`evil'¦<b>x</b>?`" in text, "one code span that no backtick or pipe can close"
