"""The compare treemap: area = parameters, colour = relative change (log scale), unchanged modules marked."""

import math

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.viz.compare_treemap import (ROOT_ID, STATUS_COLORS, UNCHANGED_COLORS, UNCHANGED_PATTERN,
                                         build_compare_treemap, change_color, decade_range, module_id, range_id,
                                         tensor_id)
from vggt_mv.weights.compare import SideInfo, TensorChange, build_comparison, compare_checkpoints
from vggt_mv.weights.known_layouts import reference_layout


def by_id(figure) -> dict[str, dict]:
    trace = figure.data[0]
    return {node_id: {"color": color, "pattern": pattern, "value": value, "hover": hover, "parent": parent}
            for node_id, color, pattern, value, hover, parent in zip(
                trace.ids, trace.marker.colors, trace.marker.pattern.shape, trace.values, trace.hovertext,
                trace.parents)}


@pytest.fixture(scope="module")
def tiny_comparison(tmp_path_factory):
    folder = tmp_path_factory.mktemp("treemap")
    a = tiny_state(seed=5)
    b = {k: (v * 1.1 if k.startswith("camera_head.") else v + 1e-3 * v.abs().mean() if k.startswith("depth_head.")
             else v) for k, v in a.items()}
    del b["point_head.norm.bias"]
    return compare_checkpoints(str(write_safetensors(folder / "a.safetensors", a)),
                               str(write_safetensors(folder / "b.safetensors", b)))


def test_colours_follow_the_change_and_unchanged_modules_are_hatched_in_their_findings_colour(tiny_comparison):
    nodes = by_id(build_compare_treemap(tiny_comparison))
    decades = decade_range(tiny_comparison)
    camera, depth = (tiny_comparison.modules[p] for p in ("camera_head", "depth_head"))
    assert nodes[module_id("camera_head")]["color"] == change_color(camera.relative_change, decades)
    assert nodes[module_id("depth_head")]["color"] == change_color(depth.relative_change, decades)
    assert nodes[module_id("camera_head")]["color"] != nodes[module_id("depth_head")]["color"]
    for unchanged in ("aggregator", "track_head", "aggregator.frame_blocks"):  # a fresh init on both sides
        assert nodes[module_id(unchanged)]["color"] == UNCHANGED_COLORS["never_trained"]
        assert nodes[module_id(unchanged)]["pattern"] == UNCHANGED_PATTERN
    assert nodes[tensor_id("aggregator.frame_blocks.0.norm1.weight")]["color"] == UNCHANGED_COLORS["never_trained"]
    assert "still at init in both (never trained)" in nodes[module_id("track_head")]["hover"]
    assert nodes[module_id("camera_head")]["pattern"] == ""
    assert nodes[tensor_id("point_head.norm.bias")]["color"] == STATUS_COLORS["only_a"]


def test_hover_shows_the_numbers_and_areas_add_up(tiny_comparison):
    nodes = by_id(build_compare_treemap(tiny_comparison))
    hover = nodes[module_id("camera_head")]["hover"]
    assert "||a - b|| / ||b|| = 9.091e-02" in hover, hover  # ||a - 1.1a|| / ||1.1a|| = 1/11
    assert "unchanged" in nodes[module_id("track_head")]["hover"].lower()
    assert "only in a 1" in nodes[module_id("point_head")]["hover"]
    leaf = nodes[tensor_id("camera_head.embed_pose.weight")]["hover"]
    assert "a [128, 9] torch.float32" in leaf and "9.091e-02" in leaf
    assert nodes[ROOT_ID]["value"] == tiny_comparison.totals.parameters
    children: dict[str, int] = {}
    for node in nodes.values():
        if node["parent"]:
            children[node["parent"]] = children.get(node["parent"], 0) + node["value"]
    for parent, total in children.items():
        assert nodes[parent]["value"] == total, parent


def test_full_size_treemap_collapses_ranges_and_stays_small():
    """VGGT-1B's layout with made-up norms: blocks 0..17 of each stack changed by 1%, everything else unchanged."""
    changes = []
    for key, shape in reference_layout("vggt-1b").items():
        trained = any(key.startswith(f"aggregator.{stack}.{i}.") for stack in ("frame_blocks", "global_blocks")
                      for i in range(18))
        norm = math.sqrt(math.prod(shape)) * 0.02
        changes.append(TensorChange(key, "changed" if trained else "unchanged", shape_a=shape, shape_b=shape,
                                    dtype_a="torch.float32", dtype_b="torch.float32",
                                    diff_norm=0.01 * norm if trained else 0.0, ref_norm=norm,
                                    at_init=None if trained else False))
    total = sum(math.prod(shape) for shape in reference_layout("vggt-1b").values())
    side = SideInfo("a", "a.safetensors", len(changes), total)
    comparison = build_comparison(side, SideInfo("b", "b.safetensors", len(changes), total), changes)
    figure = build_compare_treemap(comparison)
    assert len(figure.to_json().encode()) <= 2 * 1024 * 1024
    nodes = by_id(figure)
    decades = decade_range(comparison)
    for stack in ("frame_blocks", "global_blocks"):
        assert nodes[range_id(f"aggregator.{stack}.{{0..17}}")]["color"] == change_color(0.01, decades)
        assert nodes[range_id(f"aggregator.{stack}.{{18..23}}")]["color"] == UNCHANGED_COLORS["frozen"]
    assert nodes[module_id("camera_head")]["pattern"] == UNCHANGED_PATTERN


def test_keys_named_like_modules_or_the_root_cannot_collide(tmp_path):
    """A hostile file: a tensor named like a module that holds other tensors, and one named like the root id."""
    state = {"a.b": torch.ones(2), "a.b.c": torch.ones(3), ROOT_ID: torch.ones(1), "module:a": torch.ones(1)}
    other = {key: value * 2 for key, value in state.items()}
    comparison = compare_checkpoints(str(write_safetensors(tmp_path / "x.safetensors", state)),
                                     str(write_safetensors(tmp_path / "y.safetensors", other)))
    ids = build_compare_treemap(comparison).data[0].ids
    assert len(ids) == len(set(ids))


def test_the_legend_names_both_findings_and_tells_frozen_from_never_trained_by_colour(tiny_comparison):
    title = build_compare_treemap(tiny_comparison).layout.title.text
    frozen = f"<span style='color:{UNCHANGED_COLORS['frozen']}'>■</span> frozen (equal, trained), hatched"
    fresh = (f"<span style='color:{UNCHANGED_COLORS['never_trained']}'>■</span> still at init in both (never "
             "trained), hatched")
    assert frozen in title and fresh in title
    assert UNCHANGED_COLORS["frozen"] != UNCHANGED_COLORS["never_trained"]
    # Tiny modules of a fresh init (a [1, 16] Linear) are too small to judge: the third finding, listed as present.
    assert tiny_comparison.modules["aggregator.spatial_mask_head.3"].unchanged_kind == "unknown"
    assert "unchanged (not known whether trained), hatched" in title
    side = SideInfo("a", "a.safetensors", 1, 4)
    judged = build_comparison(side, side, [TensorChange("w", "unchanged", shape_a=(4,), shape_b=(4,), diff_norm=0.0,
                                                        ref_norm=2.0, at_init=False)])
    assert "not known whether trained" not in build_compare_treemap(judged).layout.title.text
