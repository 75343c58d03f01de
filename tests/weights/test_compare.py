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
    assert data["schema_version"] == 2
    assert data["init_reference"] == "VGGT_MV, the `tiny` preset (read off b's header)"
    assert data["a"]["role"] == "a" and data["b"]["tensors"] == comparison.b.tensors
    assert data["totals"]["module"] == "" and data["totals"] == data["modules"][""]
    row = next(r for r in data["tensors"] if r["key"] == "camera_head.embed_pose.weight")
    assert set(row) == {"key", "status", "numel", "shape_a", "shape_b", "dtype_a", "dtype_b", "diff_norm",
                        "ref_norm", "relative_change", "finite", "at_init"}
    assert row["dtype_a"] == "torch.float32" and row["status"] == "changed" and row["at_init"] is None
    assert set(data["modules"]["aggregator"]) == {
        "module", "parameters", "compared_tensors", "compared_parameters", "unchanged_tensors", "changed_tensors",
        "mismatched", "only_a", "only_b", "non_finite", "diff_norm", "ref_norm", "relative_change", "unchanged",
        "at_init_tensors", "frozen_tensors", "unchanged_kind"}
    blocks = data["modules"]["aggregator.global_blocks"]
    assert blocks["unchanged"] is True and blocks["unchanged_kind"] == "never_trained", "a is a fresh init"
    assert blocks["at_init_tensors"] + blocks["frozen_tensors"] <= blocks["unchanged_tensors"]
    assert data["modules"]["camera_head"]["unchanged_kind"] is None
    assert data["only_a"] == ["depth_head.norm.weight"]


def test_the_text_collapses_sibling_blocks_in_the_same_band(comparison):
    text = render_comparison(comparison, max_depth=3)
    tree = text.split("Modules (relative change):\n", 1)[1].split("\n\n", 1)[0]
    lines = {line.split()[0]: line for line in tree.splitlines()}
    assert "aggregator.frame_blocks.{0..2}" in lines
    assert "NEVER TRAINED" in lines["aggregator.frame_blocks.3"], "the pair's untouched blocks are a fresh init"
    assert "NEVER TRAINED" in lines["aggregator.global_blocks"]
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
    assert "NEVER TRAINED" in render_comparison(result).splitlines()[4], "a fresh init compared with itself"


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


def fake_training(state: dict[str, torch.Tensor], seed: int, scale: float = 0.05) -> dict[str, torch.Tensor]:
    """Every value moved off its init, as training would (constants no longer constant, stds no longer the
    init's)."""
    generator = torch.Generator().manual_seed(seed)
    return {key: value + scale * torch.randn(value.shape, generator=generator) for key, value in state.items()}


def test_two_random_inits_share_their_constant_inits_and_those_are_never_trained(tmp_path):
    a = write_safetensors(tmp_path / "seed1.safetensors", tiny_state(seed=1))
    b = write_safetensors(tmp_path / "seed2.safetensors", tiny_state(seed=2))
    result = compare_checkpoints(str(a), str(b))
    unchanged = [change for change in result.tensors if change.status == "unchanged"]
    assert unchanged and all(change.at_init is True for change in unchanged), "every shared tensor is an init"
    assert {change.key.rsplit(".", 1)[-1] for change in unchanged} >= {"weight", "bias", "gamma"}
    for path in ("aggregator.frame_blocks.0.norm1", "aggregator.frame_blocks.0.ls1", "camera_head.trunk_norm"):
        assert result.modules[path].unchanged_kind == "never_trained", path
    assert not any(module.unchanged_kind == "frozen" for module in result.modules.values())
    assert result.modules["aggregator.frame_blocks.0"].unchanged_kind is None, "its random weights differ"
    text = render_comparison(result)
    assert "still at init in both (never trained): " in text and "frozen (equal, trained)" not in text
    assert "  aggregator.frame_blocks.{0..3}: attn.k_norm, attn.q_norm, ls1, ls2, norm1, norm2" in text


def test_a_fine_tune_with_a_frozen_trained_aggregator_says_frozen_and_its_heads_changed(tmp_path):
    trained = fake_training(tiny_state(seed=4), seed=5)
    tuned = {key: (value if key.startswith("aggregator.") else value * 1.01) for key, value in trained.items()}
    result = compare_checkpoints(str(write_safetensors(tmp_path / "tuned.safetensors", tuned)),
                                 str(write_safetensors(tmp_path / "trained.safetensors", trained)))
    aggregator = result.modules["aggregator"]
    assert aggregator.unchanged and aggregator.unchanged_kind == "frozen"
    assert aggregator.frozen_tensors > 0 and aggregator.at_init_tensors == 0
    for head in ("camera_head", "depth_head", "point_head", "track_head"):
        assert result.modules[head].unchanged_kind is None
        assert result.modules[head].relative_change == pytest.approx(0.01 / 1.0, rel=1e-5)
    data = result.to_dict()
    assert data["modules"]["aggregator"]["unchanged_kind"] == "frozen"
    assert data["modules"]["aggregator.frame_blocks.0.norm1"]["unchanged_kind"] == "frozen"
    text = render_comparison(result, max_depth=1)
    line = next(row for row in text.splitlines() if row.startswith("aggregator "))
    assert "FROZEN" in line and "frozen (equal, trained): 1 module (marked FROZEN below)" in text
    assert "Frozen (equal, trained), by module range:\n  aggregator" in text


def test_a_trained_checkpoint_against_a_fresh_init_of_its_frozen_part_is_never_both_at_init(tmp_path):
    """Only both sides at their init make "never trained": here b's aggregator is a's trained one."""
    fresh = tiny_state(seed=6)
    trained = fake_training(fresh, seed=7)
    mixed = {key: (trained[key] if key.startswith("aggregator.") else value) for key, value in fresh.items()}
    result = compare_checkpoints(str(write_safetensors(tmp_path / "mixed.safetensors", mixed)),
                                 str(write_safetensors(tmp_path / "trained.safetensors", trained)))
    assert result.modules["aggregator"].unchanged_kind == "frozen"
    assert result.modules["camera_head"].unchanged_kind is None


def test_without_a_vggt_mv_header_equal_modules_are_unchanged_without_a_verdict(tmp_path):
    state = {f"resnet.layer{i}.conv.weight": torch.zeros(64, 64) for i in range(3)}
    result = compare_checkpoints(str(write_safetensors(tmp_path / "x.safetensors", state)),
                                 str(write_safetensors(tmp_path / "y.safetensors", dict(state))))
    assert result.init_reference is None and result.to_dict()["init_reference"] is None
    assert result.modules["resnet"].unchanged_kind == "unknown"
    assert all(change.at_init is None for change in result.tensors)
    text = render_comparison(result)
    assert "UNCHANGED" in text and "not told apart" in text


def test_the_init_check_can_be_skipped(tmp_path):
    path = write_safetensors(tmp_path / "m.safetensors", tiny_state(seed=8))
    result = compare_checkpoints(str(path), str(path), check_init=False)
    assert result.init_reference is None and result.totals.unchanged_kind == "unknown"


def test_an_unchanged_tensor_stored_in_another_dtype_is_judged_on_both_sides(tmp_path):
    state = tiny_state(seed=12)
    half = {key: value.to(torch.bfloat16) for key, value in state.items()}
    result = compare_checkpoints(str(write_safetensors(tmp_path / "f32.safetensors", state)),
                                 str(write_safetensors(tmp_path / "bf16.safetensors", half)))
    norm = next(c for c in result.tensors if c.key == "aggregator.frame_blocks.0.norm1.weight")
    assert (norm.status, norm.dtype_b, norm.at_init) == ("unchanged", "torch.bfloat16", True), "1.0 in both dtypes"
    assert result.modules["aggregator.frame_blocks.0.norm1"].unchanged_kind == "never_trained"
