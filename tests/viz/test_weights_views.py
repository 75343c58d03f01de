"""Views of a load report: the treemap (colours = provenance), the expandable tree, the tables."""

import time

import pytest
import torch

from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.viz.weights_tree_html import mismatched_rows, render_tree_html, rule_rows, unexpected_rows
from vggt_mv.viz.weights_treemap import STATUS_COLORS, build_treemap
from vggt_mv.weights import load_weights


@pytest.fixture(scope="module")
def full_size_report(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse")
    checkpoint = write_sparse_safetensors(folder / "vggt.safetensors", reference_layout("vggt-1b"))
    pi3 = write_sparse_safetensors(folder / "pi3.safetensors", reference_layout("pi3"))
    with torch.device("meta"):
        model = VGGT_MV(VGGTMVConfig())
    return load_weights(model, checkpoint=checkpoint, pi3=pi3, dry_run=True)


def node_colors(figure) -> dict[str, str]:
    trace = figure.data[0]
    return dict(zip(trace.ids, trace.marker.colors))


def test_full_size_treemap_is_fast_small_and_shows_the_provenance(full_size_report):
    start = time.perf_counter()
    figure = build_treemap(full_size_report)
    payload = figure.to_json()
    assert time.perf_counter() - start <= 2.0
    assert len(payload.encode()) <= 2 * 1024 * 1024
    colors = node_colors(figure)
    for stack in ("frame_blocks", "global_blocks"):
        assert colors[f"aggregator.{stack}.{{0..17}}"] == STATUS_COLORS["pi3"]
        assert colors[f"aggregator.{stack}.{{18..23}}"] == STATUS_COLORS["checkpoint"]
        assert colors[f"aggregator.{stack}.3"] == STATUS_COLORS["pi3"]
        assert colors[f"aggregator.{stack}.3.attn.qkv.weight"] == STATUS_COLORS["pi3"]
    assert colors["aggregator.spatial_mask_head"] == STATUS_COLORS["random"]
    assert colors["aggregator.register_token"] == STATUS_COLORS["checkpoint"]
    assert colors["aggregator"] not in STATUS_COLORS.values(), "a parent with several sources shows a blend"
    trace = figure.data[0]
    hover = dict(zip(trace.ids, trace.hovertext))["aggregator.frame_blocks.3.attn.qkv.weight"]
    assert "decoder.6.attn.qkv.weight" in hover and "overrode checkpoint" in hover and "[3072, 1024]" in hover
    register = dict(zip(trace.ids, trace.hovertext))["aggregator.register_token"]
    assert "NOT loaded from pi3:register_token: model [1, 2, 4, 1024] vs source [1, 1, 5, 1024]" in register


def test_every_tensor_leaf_is_coloured_by_its_status(full_size_report):
    colors = node_colors(build_treemap(full_size_report))
    for record in full_size_report.tensors:
        assert colors[record["key"]] == STATUS_COLORS[record["status"]], record["key"]


def test_tree_html_collapses_ranges_names_aliases_once_and_tables_list_the_facts(full_size_report):
    tree = render_tree_html(full_size_report)
    assert "aggregator.frame_blocks.{0..17}" in tree and "aggregator.global_blocks.{18..23}" in tree
    assert tree.count("aggregator.time_blocks") == 1 and tree.count("aggregator.view_blocks") == 1
    assert "<details open>" in tree
    assert mismatched_rows(full_size_report) == [["aggregator.register_token", "pi3", "register_token",
                                                   "[1, 2, 4, 1024]", "[1, 1, 5, 1024]"]]
    assert ["pi3", "encoder.blocks", 336] in unexpected_rows(full_size_report)
    assert ["pi3", "pi3:decoder-even", 324, "decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}"] \
        in rule_rows(full_size_report)


def test_a_dtype_mismatch_says_so_in_the_table_and_the_hover(tmp_path):
    from tests.support.checkpoints import tiny_state, write_safetensors
    from vggt_mv import VGGTMVConfig
    from vggt_mv.viz.weights_treemap import build_treemap
    from vggt_mv.weights import build_and_load

    state = tiny_state()
    state["camera_head.token_norm.weight"] = state["camera_head.token_norm.weight"].to(torch.int8)
    _, report = build_and_load(VGGTMVConfig.from_preset("tiny"), dry_run=True,
                               checkpoint=write_safetensors(tmp_path / "int8.safetensors", state))
    row, = [r for r in mismatched_rows(report) if r[0] == "camera_head.token_norm.weight"]
    assert row[3].endswith("float32") and row[4].endswith("int8")
    trace = build_treemap(report).data[0]
    hover = dict(zip(trace.ids, trace.hovertext))["camera_head.token_norm.weight"]
    assert "NOT loaded" in hover and "source dtype int8" in hover


def test_any_source_name_gets_its_own_colour_and_checkpoint_keeps_its_own(tmp_path):
    from tests.support.checkpoints import tiny_state, write_safetensors
    from vggt_mv.viz.weights_treemap import EXTRA_SOURCE_COLORS
    from vggt_mv.weights import build_and_load

    state = tiny_state()
    heads = {k: v for k, v in state.items() if k.startswith("camera_head.")}
    _, report = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint=write_safetensors(tmp_path / "a.safetensors", state),
                               sources=[("finetune", write_safetensors(tmp_path / "b.safetensors", heads))], dry_run=True)
    colors = node_colors(build_treemap(report))
    assert colors["camera_head.token_norm.weight"] == EXTRA_SOURCE_COLORS[0]
    assert colors["aggregator.camera_token"] == STATUS_COLORS["checkpoint"]
    assert colors["camera_head"] == EXTRA_SOURCE_COLORS[0]
    tree = render_tree_html(report)
    assert f"background:{EXTRA_SOURCE_COLORS[0]}" in tree and "finetune" in tree


def test_suspect_untrained_counts_and_reasons_show_in_hover_and_tree(tmp_path):
    from tests.support.checkpoints import tiny_state, write_safetensors
    from vggt_mv.weights import build_and_load

    state = tiny_state()  # a model saved right after its init: every head looks untrained
    _, report = build_and_load(VGGTMVConfig.from_preset("tiny"),
                               checkpoint=write_safetensors(tmp_path / "fresh.safetensors", state))
    hover = dict(zip(build_treemap(report).data[0].ids, build_treemap(report).data[0].hovertext))
    count = report.tree()["camera_head"]["suspect_untrained"]["tensors"]
    assert f"SUSPECT untrained: {count} tensors" in hover["camera_head"]
    assert "SUSPECT untrained: every value is 0.01: LayerScale init_values 0.01" in hover["camera_head.trunk.0.ls1.gamma"]
    tree = render_tree_html(report)
    assert f"⚠ {count} look untrained" in tree


class MarkupNames(torch.nn.Module):
    """A user's model (inspect --model) whose module names are markup: every view shows them as text."""

    def __init__(self):
        super().__init__()
        self.add_module("<img src=x onerror=alert(1)>", torch.nn.LayerNorm(8))


def test_hostile_module_names_are_escaped_in_the_treemap_and_the_tree(tmp_path):
    from tests.support.checkpoints import write_safetensors
    from vggt_mv.weights.meta_build import build_on_meta

    path = write_safetensors(tmp_path / "markup.safetensors", MarkupNames().state_dict())
    report = load_weights(build_on_meta(MarkupNames), checkpoint=path)
    assert report.summary()["suspect_untrained"] == 2
    trace = build_treemap(report).data[0]
    for text in list(trace.hovertext) + list(trace.labels) + [render_tree_html(report)]:
        assert "<img" not in text
    assert any("&lt;img src=x onerror=alert(1)&gt;" in text for text in trace.hovertext)
