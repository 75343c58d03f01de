"""The side effects of a real load: what stays random is initialised as the constructor would, loaded values are
never overwritten, a failure changes nothing, and dtype/device requests are honoured."""

import pytest
import torch
import torch.nn as nn

from tests.support.checkpoints import tiny_source_model, tiny_state, write_safetensors
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights import WeightsSourceError, build_and_load, load_weights
from vggt_mv.weights.loader import has_own_init
from vggt_mv.weights.sources import Source

ALL_OPTIONS = VGGTMVConfig.from_preset("tiny", enable_dual_stream=True, enable_sparse_global=True)


def init_differences(built: nn.Module, reference: nn.Module) -> list[str]:
    """Keys whose init differs in kind: a constant (zeros, ones, layer-scale) vs not, or a spread off by 2x."""
    different = []
    for key, expected in reference.state_dict().items():
        got = built.state_dict()[key].float()
        expected = expected.float()
        expected_constant = bool((expected == expected.flatten()[0]).all())
        got_constant = bool((got == got.flatten()[0]).all())
        if expected.numel() == 1:
            continue  # a single random draw says nothing about its distribution
        if expected_constant != got_constant or (expected_constant and not torch.equal(got, expected)):
            different.append(key)
        elif expected.numel() >= 64 and not expected_constant and not 0.5 < float(got.std() / expected.std()) < 2:
            different.append(key)
    return different


@pytest.fixture(scope="module")
def unloaded_meta_build():
    """A meta build with no source at all: every tensor stays random and must be initialised."""
    model, report = build_and_load(ALL_OPTIONS)
    torch.manual_seed(0)
    return model, report, VGGT_MV(ALL_OPTIONS)


def test_without_sources_every_tensor_is_materialised_and_initialised_like_the_constructor(unloaded_meta_build):
    model, report, reference = unloaded_meta_build
    assert report.summary()["random"] == len(reference.state_dict())
    assert not any(t.is_meta for t in list(model.parameters()) + list(model.buffers()))
    torch.testing.assert_close(model.aggregator._resnet_std, reference.aggregator._resnet_std)
    assert model.aggregator.lambda_geo_logit.item() == pytest.approx(-4.0)
    assert init_differences(model, reference) == []


@pytest.mark.parametrize("config", [ALL_OPTIONS, VGGTMVConfig()], ids=["tiny-all-options", "vggt-1b"])
def test_every_module_that_owns_tensors_has_its_own_init(config):
    with torch.device("meta"):
        model = VGGT_MV(config)
    without = {type(m).__name__ for m in model.modules()
               if next(m.parameters(recurse=False), None) is not None and not has_own_init(m)}
    assert without == set()


def test_an_init_that_reaches_into_children_never_overwrites_loaded_values(tmp_path):
    state = tiny_state()
    attention = "track_head.tracker.updateformer.time_blocks.0.attn."
    with torch.no_grad():
        state[attention + "out_proj.bias"] = torch.full_like(state[attention + "out_proj.bias"], 0.5)
    # nn.MultiheadAttention's init zeroes out_proj.bias; it must run (in_proj stays random) but not reach the loaded bias
    partial = {k: v for k, v in state.items() if k != attention + "in_proj_weight"}
    model, report = build_and_load(VGGTMVConfig.from_preset("tiny"),
                                   checkpoint=write_safetensors(tmp_path / "partial.safetensors", partial))
    assert report.summary()["random"] == 1
    mha = model.track_head.tracker.updateformer.time_blocks[0].attn
    torch.testing.assert_close(mha.out_proj.bias, torch.full_like(mha.out_proj.bias, 0.5))
    assert torch.isfinite(mha.in_proj_weight).all() and mha.in_proj_weight.std() > 0
    torch.testing.assert_close(mha.in_proj_bias, state[attention + "in_proj_bias"])


@pytest.mark.parametrize("option, new_tensor", [("enable_sparse_global", "memory_tokens"),
                                                ("enable_dual_stream", "lambda_pose_logit")])
def test_a_module_with_loaded_and_random_tensors_keeps_the_loaded_ones(tmp_path, option, new_tensor):
    state = tiny_state()
    model, report = build_and_load(VGGTMVConfig.from_preset("tiny", **{option: True}),
                                   checkpoint=write_safetensors(tmp_path / "vggt.safetensors", state))
    assert next(t for t in report.tensors if t["key"] == f"aggregator.{new_tensor}")["status"] == "random"
    torch.testing.assert_close(model.aggregator.camera_token, state["aggregator.camera_token"])
    torch.testing.assert_close(model.aggregator.register_token, state["aggregator.register_token"])
    assert torch.isfinite(getattr(model.aggregator, new_tensor)).all()


def test_dtype_and_device_requests_are_applied_and_reported(tmp_path):
    path = write_safetensors(tmp_path / "tiny.safetensors", tiny_state())
    model, report = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint=path, dtype=torch.bfloat16)
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    assert {p.device.type for p in model.parameters()} == {"cpu"}
    assert {t["dtype"] for t in report.tensors} == {"bfloat16"} and {t["source_dtype"] for t in report.tensors} == {
        "float32"}
    assert f"{len(report.tensors)} tensors stored as float32, loaded as bfloat16" in report.sources["checkpoint"]["notes"]


def test_a_source_failing_during_the_load_leaves_the_model_untouched(tmp_path, monkeypatch):
    state = tiny_state(seed=5)
    path = write_safetensors(tmp_path / "tiny.safetensors", state)
    model = tiny_source_model(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    real_tensor = Source.tensor
    calls = []

    def fail_late(self, key):
        calls.append(key)
        if len(calls) == len(state) - 1:
            raise OSError("Input/output error")
        return real_tensor(self, key)

    monkeypatch.setattr(Source, "tensor", fail_late)
    with pytest.raises(WeightsSourceError, match="cannot read tensor .*Input/output error"):
        load_weights(model, checkpoint=path)
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def assert_untouched(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    for key, value in model.state_dict().items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key]), key


def test_non_finite_weights_are_named_first_few_and_counted_and_nothing_loads(tmp_path):
    state = tiny_state(seed=5)
    poisoned = list(state)[-5:]
    for key in poisoned:
        state[key] = torch.full_like(state[key], float("nan") if key.endswith("bias") else float("-inf"))
    path = write_safetensors(tmp_path / "poisoned.safetensors", state)
    model = tiny_source_model(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _, dry_run = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint=path, dry_run=True)
    assert dry_run.summary()["checkpoint_loaded"] == len(state), "a dry run reads no values, so it cannot see them"
    with pytest.raises(WeightsSourceError) as raised:
        load_weights(model, checkpoint=path)
    named = ", ".join(repr(key) for key in poisoned[:3])
    assert f"5 tensors hold NaN or Inf values: {named} and 2 more; refusing to load them" in str(raised.value)
    assert_untouched(model, before)


def test_integer_weights_are_refused_by_a_load_into_a_built_model_which_keeps_its_dtype(tmp_path):
    state = tiny_state(seed=5)
    key = list(state)[-1]
    path = write_safetensors(tmp_path / "int.safetensors", {**state, key: state[key].to(torch.int32)})
    model = tiny_source_model(seed=2)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(WeightsSourceError, match=f"tensor '{key}' has dtype int32; weights must be floating point"):
        load_weights(model, checkpoint=path)
    assert_untouched(model, before)


class WithConstant(nn.Module):
    """Any module works with the loader; a non-persistent buffer needs a hook after a meta build."""

    def __init__(self):
        super().__init__()
        self.linear = nn.Linear(2, 2)
        self.register_buffer("scale", torch.full((2,), 3.0), persistent=False)


class WithConstantAndHook(WithConstant):
    def init_non_persistent_buffers(self, device=None):
        self.scale = torch.full((2,), 3.0, device=device)


def test_a_non_persistent_buffer_left_without_data_is_an_error_naming_the_hook(tmp_path):
    path = write_safetensors(tmp_path / "linear.safetensors", {"linear.weight": torch.eye(2), "linear.bias": torch.ones(2)})
    with torch.device("meta"):
        forgetful, careful = WithConstant(), WithConstantAndHook()
    with pytest.raises(RuntimeError, match="init_non_persistent_buffers"):
        load_weights(forgetful, checkpoint=path)
    report = load_weights(careful, checkpoint=path)
    assert report.summary()["checkpoint_loaded"] == 2
    torch.testing.assert_close(careful.linear(torch.ones(1, 2)) * careful.scale, torch.full((1, 2), 6.0))


@pytest.mark.parametrize("poison, finite", [(None, True), (float("nan"), False), (float("inf"), False),
                                            (float("-inf"), False)])
def test_the_finite_check_sees_every_non_finite_value_and_no_false_alarm_from_overflow(poison, finite):
    from vggt_mv.weights.loader import is_finite

    huge = torch.full((8,), 3e38)  # finite values whose sum overflows
    assert is_finite(huge)
    value = torch.randn(1000)
    if poison is not None:
        value[777] = poison
    assert is_finite(value) is finite
    assert is_finite(value.half()) is finite
