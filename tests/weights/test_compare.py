"""Comparing two checkpoints: relative change per tensor and module, unchanged modules, keys on one side only."""

import json
import math

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.weights import WeightsSourceError
from vggt_mv.weights.compare import CHUNK_VALUES, compare_checkpoints, tensor_change
from vggt_mv.weights.render_compare import render_comparison

TRAINED_BLOCKS = ("aggregator.frame_blocks.0.", "aggregator.frame_blocks.1.", "aggregator.frame_blocks.2.")


def reference_norms(a: torch.Tensor, b: torch.Tensor) -> tuple[float, float]:
    """||a - b||^2 and ||b||^2 computed the obvious way, in float64 over whole tensors."""
    a64, b64 = a.double(), b.double()
    return float(((a64 - b64) ** 2).sum()), float((b64 ** 2).sum())


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """b = a with frame blocks 0..2 and the camera head moved, one key dropped, one added, one reshaped."""
    folder = tmp_path_factory.mktemp("compare")
    a = tiny_state(seed=7)
    generator = torch.Generator().manual_seed(3)
    b = dict(a)
    for key, value in a.items():
        if key.startswith(TRAINED_BLOCKS):
            b[key] = value + 0.01 * torch.randn(value.shape, generator=generator)
        elif key.startswith("camera_head."):
            b[key] = value * 1.5
    del b["depth_head.norm.weight"]
    b["extra_head.proj.weight"] = torch.ones(3, 3)
    b["point_head.norm.weight"] = torch.ones(7)
    paths = write_safetensors(folder / "a.safetensors", a), write_safetensors(folder / "b.safetensors", b)
    return a, b, paths


@pytest.fixture(scope="module")
def comparison(pair):
    _, _, (path_a, path_b) = pair
    return compare_checkpoints(str(path_a), str(path_b))


def test_each_matching_tensor_has_its_relative_change_and_unchanged_ones_are_exact(pair, comparison):
    a, b, _ = pair
    changes = {c.key: c for c in comparison.tensors}
    for key in a:
        if key not in b or a[key].shape != b[key].shape:
            continue
        change = changes[key]
        diff_squared, ref_squared = reference_norms(a[key], b[key])
        assert change.diff_norm == pytest.approx(math.sqrt(diff_squared), rel=1e-12, abs=0)
        assert change.ref_norm == pytest.approx(math.sqrt(ref_squared), rel=1e-12)
        expected_status = "unchanged" if torch.equal(a[key], b[key]) else "changed"
        assert change.status == expected_status, key
    camera = changes["camera_head.embed_pose.weight"]
    assert camera.relative_change == pytest.approx(1 / 3, rel=1e-7), "||a - 1.5a|| / ||1.5a||"
    assert changes["aggregator.global_blocks.0.attn.qkv.weight"].relative_change == 0.0


def test_module_figures_are_over_all_their_tensors_and_unchanged_modules_are_flagged(pair, comparison):
    a, b, _ = pair
    block = comparison.modules["aggregator.frame_blocks.1"]
    keys = [k for k in a if k.startswith("aggregator.frame_blocks.1.")]
    sums = [reference_norms(a[k], b[k]) for k in keys]
    expected = math.sqrt(sum(d for d, _ in sums)) / math.sqrt(sum(r for _, r in sums))
    assert block.relative_change == pytest.approx(expected, rel=1e-12)
    assert block.compared_tensors == len(keys) and not block.unchanged
    assert comparison.modules["camera_head"].relative_change == pytest.approx(1 / 3, rel=1e-7)
    for unchanged in ("aggregator.frame_blocks.3", "aggregator.global_blocks", "track_head", "aggregator.patch_embed"):
        assert comparison.modules[unchanged].unchanged, unchanged
    assert not comparison.modules["aggregator"].unchanged
    assert not comparison.modules["aggregator.frame_blocks"].unchanged


def test_keys_on_one_side_and_shape_differences_are_reported_not_compared(comparison):
    assert comparison.keys_with("only_a") == ["depth_head.norm.weight"]
    assert comparison.keys_with("only_b") == ["extra_head.proj.weight"]
    assert comparison.keys_with("mismatched") == ["point_head.norm.weight"]
    mismatch = next(c for c in comparison.tensors if c.key == "point_head.norm.weight")
    assert (mismatch.shape_a, mismatch.shape_b) == ((128,), (7,))
    assert comparison.modules["depth_head"].only_a == 1 and comparison.modules["depth_head"].unchanged
    assert comparison.modules["extra_head"].compared_tensors == 0 and not comparison.modules["extra_head"].unchanged
    assert comparison.totals.only_b == 1 and comparison.totals.mismatched == 1


def test_json_is_strict_and_follows_the_schema(comparison):
    data = json.loads(json.dumps(comparison.to_dict(), allow_nan=False))
    assert data["schema_version"] == 1
    assert data["a"]["role"] == "a" and data["b"]["tensors"] == comparison.b.tensors
    assert data["totals"]["module"] == "" and data["totals"] == data["modules"][""]
    row = next(r for r in data["tensors"] if r["key"] == "camera_head.embed_pose.weight")
    assert set(row) == {"key", "status", "numel", "shape_a", "shape_b", "dtype_a", "dtype_b", "diff_norm",
                        "ref_norm", "relative_change", "finite"}
    assert row["dtype_a"] == "torch.float32" and row["status"] == "changed"
    assert data["modules"]["aggregator.global_blocks"]["unchanged"] is True
    assert data["only_a"] == ["depth_head.norm.weight"]


def test_the_text_collapses_sibling_blocks_in_the_same_band(comparison):
    text = render_comparison(comparison, max_depth=3)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "aggregator.frame_blocks.{0..2}" in lines
    assert "UNCHANGED" in lines["aggregator.frame_blocks.3"]
    assert "UNCHANGED" in lines["aggregator.global_blocks"]
    assert "aggregator.global_blocks.{0..3}" not in lines, "a wholly unchanged module is not expanded"
    assert "3.33e-01" in lines["camera_head"]
    assert "Only in a, by prefix:" in text and "  depth_head.norm" in text
    assert "point_head.norm.weight: a [128] torch.float32 vs b [7] torch.float32" in text


def test_a_checkpoint_compared_with_itself_in_another_format_is_unchanged(tmp_path):
    state = tiny_state(seed=2)
    safetensors = write_safetensors(tmp_path / "m.safetensors", state)
    torch.save({"model": state}, tmp_path / "m.pt")
    result = compare_checkpoints(str(tmp_path / "m.pt"), str(safetensors))
    assert result.totals.unchanged and result.totals.relative_change == 0.0
    assert all(module.unchanged for module in result.modules.values())
    assert "UNCHANGED" in render_comparison(result).splitlines()[4]


def test_big_tensors_are_chunked_and_still_accurate_and_dtypes_may_differ():
    generator = torch.Generator().manual_seed(0)
    b = torch.randn(5 * CHUNK_VALUES + 17, generator=generator)
    a = b + 1e-6 * torch.randn(b.shape, generator=generator)
    change = tensor_change("w", a, b)
    diff_squared, ref_squared = reference_norms(a, b)
    assert change.relative_change == pytest.approx(math.sqrt(diff_squared / ref_squared), rel=1e-10)
    half = tensor_change("w", b, b.to(torch.bfloat16))
    assert half.status == "changed" and half.dtype_b == "torch.bfloat16"
    exact = tensor_change("w", b.to(torch.bfloat16).float(), b.to(torch.bfloat16))
    assert exact.status == "unchanged", "values compare equal across dtypes"


def test_zero_and_non_finite_tensors_have_no_made_up_figures():
    assert tensor_change("z", torch.zeros(4), torch.zeros(4)).relative_change == 0.0
    from_zero = tensor_change("z", torch.ones(4), torch.zeros(4))
    assert from_zero.status == "changed" and from_zero.relative_change is None
    nan = torch.tensor([1.0, float("nan")])
    assert tensor_change("n", nan, nan.clone()).status == "unchanged"
    broken = tensor_change("n", nan, torch.ones(2))
    assert broken.status == "changed" and not broken.finite and broken.relative_change is None
    assert json.dumps(broken.to_dict(), allow_nan=False)


def test_a_bad_location_is_one_line(tmp_path):
    with pytest.raises(WeightsSourceError) as error:
        compare_checkpoints(str(tmp_path / "missing.safetensors"), str(tmp_path / "also-missing.safetensors"))
    assert "\n" not in str(error.value) and "missing.safetensors" in str(error.value)
