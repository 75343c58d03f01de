"""The module tree of a report: per-node counts, and the collapsed index ranges every view prints."""

import pytest

from vggt_mv.weights.render_text import render_tree, unexpected_by_prefix
from vggt_mv.weights.tree import build_tree, collapse_indices, group_children, loaded_share


@pytest.mark.parametrize("indices, label", [
    (range(18), "{0..17}"),
    (range(0, 35, 2), "{0..34 even}"),
    (range(1, 36, 2), "{1..35 odd}"),
    ([3], "{3}"),
    ([0, 1, 3], "{0,1,3}"),
    ([7, 0, 1, 2, 3, 9, 10, 2], "{0..3,7,9,10}"),
    ([], "{}"),
])
def test_collapse_indices(indices, label):
    assert collapse_indices(list(indices)) == label


def record(key, status, numel=10):
    return {"key": key, "status": status, "numel": numel}


TENSORS = [record(f"aggregator.frame_blocks.{i}.{name}", "pi3" if i < 3 else "checkpoint")
           for i in range(5) for name in ("attn.weight", "norm.bias")] + [
    record("aggregator.camera_token", "checkpoint", 4), record("camera_head.fc.weight", "random", 100)]


def test_every_node_counts_tensors_and_parameters_per_status():
    tree = build_tree(TENSORS)
    assert tree[""]["tensors"] == {"pi3": 6, "checkpoint": 5, "random": 1}
    assert tree[""]["parameters"] == {"pi3": 60, "checkpoint": 44, "random": 100}
    assert tree["aggregator.frame_blocks.4.attn"] == {"tensors": {"checkpoint": 1}, "parameters": {"checkpoint": 10},
                                                      "suspect_untrained": None}
    assert loaded_share(tree["aggregator"]) == 1.0 and loaded_share(tree["camera_head"]) == 0.0
    assert loaded_share(tree[""]) == pytest.approx(104 / 204)


def test_numbered_siblings_with_the_same_status_mix_collapse_into_one_range():
    tree = build_tree(TENSORS)
    groups = group_children(tree, "aggregator.frame_blocks")
    assert [label for label, _ in groups] == ["aggregator.frame_blocks.{0..2}", "aggregator.frame_blocks.{3,4}"]
    assert groups[1][1] == ["aggregator.frame_blocks.3", "aggregator.frame_blocks.4"]
    lines = render_tree(tree, max_depth=3)
    assert any(line.strip().startswith("aggregator.frame_blocks.{0..2}") and "pi3 6 (60)" in line for line in lines)
    assert any(line.strip().startswith("camera_head ") and "[....................]" in line for line in lines)


def test_unexpected_keys_are_grouped_by_prefix_with_counts():
    keys = [f"point_decoder.blocks.{i}.w" for i in range(4)] + ["image_mean", "camera_head.fc_t.bias"]
    assert unexpected_by_prefix(keys) == ["camera_head.fc_t", "image_mean", "point_decoder.blocks.* (4)"]
