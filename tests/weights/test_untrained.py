"""Loaded but untrained: tensors that look like their module's init are flagged, trained-looking ones are not."""

import weakref

import pytest
import torch
import torch.nn as nn

from tests.support.checkpoints import write_safetensors
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.layers.vision_transformer import DinoVisionTransformer
from vggt_mv.weights.meta_build import build_on_meta
from vggt_mv.weights.sources import open_source
from vggt_mv.weights.tree import build_tree
from vggt_mv.weights.untrained import (MIN_RANDOM_VALUES, InitSpec, find_untrained, find_untrained_in_source,
                                       init_specs, init_verdict, suspects_per_module)

HEADS = ("camera_head.", "point_head.", "depth_head.", "track_head.")
# Every optional module on, so the lambda logits and memory tokens are covered too.
TINY = dict(enable_sparse_global=True, enable_dual_stream=True)


def fresh_tiny(seed: int = 0) -> VGGT_MV:
    torch.manual_seed(seed)
    return VGGT_MV(VGGTMVConfig.from_preset("tiny", **TINY))


def trained_looking(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What training does to a tensor, roughly: its values move by a good fraction of their spread."""
    spread = float(tensor.std()) if tensor.numel() > 1 and float(tensor.std()) > 0 else 0.02
    return tensor + 0.5 * spread * torch.randn(tensor.shape, generator=generator)


def reasons(suspicions) -> dict[str, str]:
    return {s.key: s.reason for s in suspicions}


@pytest.fixture(scope="module")
def fresh():
    model = fresh_tiny()
    return model, {k: v.detach() for k, v in model.state_dict().items()}


def test_a_fresh_tiny_init_is_flagged_tensor_by_tensor_with_the_init_it_matches(fresh):
    model, state = fresh
    found = reasons(find_untrained(model, state))
    specs = init_specs(model)
    assert set(specs) == set(state), "every tensor of the model has a known init"
    decidable = {k for k, v in state.items()
                 if v.numel() >= MIN_RANDOM_VALUES or any(s.kind == "constant" for s in specs[k])}
    assert set(found) == decidable
    assert found["aggregator.frame_blocks.0.ls1.gamma"] == "every value is 0.01: LayerScale init_values 0.01"
    assert found["camera_head.trunk.0.ls2.gamma"] == "every value is 0.01: LayerScale init_values 0.01"
    assert found["aggregator.frame_blocks.2.norm1.bias"] == "every value is 0: zero LayerNorm bias"
    assert found["depth_head.norm.weight"] == "every value is 1: unit LayerNorm weight"
    assert found["track_head.tracker.ffeat_norm.weight"] == "every value is 1: unit GroupNorm weight"
    assert found["aggregator.lambda_pose_logit"] == "every value is -4: the dual-stream lambda logit init"
    assert found["track_head.tracker.updateformer.time_blocks.0.attn.in_proj_bias"] == \
        "every value is 0: zero nn.MultiheadAttention in_proj bias"
    qkv = found["aggregator.global_blocks.1.attn.qkv.weight"]
    assert qkv.endswith("matches nn.Linear's kaiming-uniform init: uniform in ±1/sqrt(fan_in 64)"), qkv
    assert "every value within ±0.125" in qkv
    assert "nn.Conv2d's kaiming-uniform init" in found["point_head.scratch.layer3_rn.weight"]
    assert "nn.ConvTranspose2d's kaiming-uniform init" in found["depth_head.resize_layers.0.weight"]
    assert "xavier-uniform" in found["track_head.tracker.updateformer.time_blocks.0.attn.in_proj_weight"]
    assert "matches the memory tokens' normal(std=0.02) init" in found["aggregator.memory_tokens"]


def test_a_trained_looking_copy_of_the_same_init_is_not_flagged(fresh):
    model, state = fresh
    generator = torch.Generator().manual_seed(1)
    trained = {k: trained_looking(v, generator) for k, v in state.items()}
    assert find_untrained(model, trained) == []


def test_near_init_is_not_init_a_trained_bias_near_zero_or_a_norm_near_one_is_not_flagged(fresh):
    model, state = fresh
    generator = torch.Generator().manual_seed(2)
    nearly = {"aggregator.frame_blocks.0.norm1.bias": state["aggregator.frame_blocks.0.norm1.bias"]
              + 1e-6 * torch.randn(64, generator=generator),
              "aggregator.frame_blocks.0.norm1.weight": 1 + 1e-4 * torch.randn(64, generator=generator),
              "aggregator.frame_blocks.0.ls1.gamma": torch.full((64,), 0.0101)}
    assert find_untrained(model, nearly) == []
    one_exact = dict(nearly, **{"aggregator.frame_blocks.0.norm1.bias": torch.zeros(64)})
    assert list(reasons(find_untrained(model, one_exact))) == ["aggregator.frame_blocks.0.norm1.bias"]


def test_a_drifted_std_or_a_shrunk_range_is_not_a_uniform_init():
    torch.manual_seed(3)
    layer = nn.Linear(1024, 1024)
    weight = layer.weight.detach()
    assert [s.key for s in find_untrained(layer, {"weight": weight})] == ["weight"]
    for drifted in (weight * 1.02, weight * 0.98, weight + 0.1 * weight.std() * torch.randn_like(weight)):
        assert find_untrained(layer, {"weight": drifted}) == []


def test_dinov2_trunc_normal_002_is_flagged_and_a_drifted_or_heavy_tailed_weight_is_not():
    torch.manual_seed(4)
    vit = DinoVisionTransformer(img_size=28, patch_size=14, embed_dim=64, depth=1, num_heads=4, init_values=1.0)
    weight = vit.blocks[0].mlp.fc1.weight.detach()
    found = reasons(find_untrained(vit, {"blocks.0.mlp.fc1.weight": weight}))
    assert found["blocks.0.mlp.fc1.weight"].endswith("matches DINOv2's trunc_normal(0.02) Linear init")
    assert found["blocks.0.mlp.fc1.weight"].startswith("std 0.0")
    generator = torch.Generator().manual_seed(5)
    drifted = torch.randn(weight.shape, generator=generator) * 0.0215  # std 7.5% above the init's
    laplace = torch.distributions.Laplace(0.0, 0.02 / 2 ** 0.5).sample(weight.shape)  # std 0.02, heavy tails
    for trained in (drifted, laplace):
        assert find_untrained(vit, {"blocks.0.mlp.fc1.weight": trained}) == []


def test_a_checkpoint_with_random_heads_and_a_trained_aggregator_flags_only_the_heads(tmp_path):
    """The seed's bug from the other side: a checkpoint saved from a model whose heads never loaded."""
    saved = fresh_tiny(seed=11)
    generator = torch.Generator().manual_seed(12)
    state = {k: (v.detach() if k.startswith(HEADS) else trained_looking(v.detach(), generator))
             for k, v in saved.state_dict().items()}
    path = write_safetensors(tmp_path / "saved.safetensors", state)
    model = build_on_meta(lambda: VGGT_MV(VGGTMVConfig.from_preset("tiny", **TINY)))
    suspicions = find_untrained_in_source(model, open_source("checkpoint", path, with_data=True))
    flagged = {s.key for s in suspicions}
    assert flagged and all(key.startswith(HEADS) for key in flagged)
    counts = suspects_per_module(suspicions)
    assert "aggregator" not in counts
    for head in ("camera_head", "point_head", "depth_head", "track_head"):
        assert counts[head]["tensors"] > 10, head
    assert counts[""]["tensors"] == len(suspicions)
    assert counts[""]["parameters"] == sum(state[k].numel() for k in flagged)
    tree = build_tree([{"key": k, "status": "checkpoint", "numel": v.numel()} for k, v in state.items()])
    assert set(counts) <= set(tree), "per-module counts use the module tree's node paths"
    assert counts["camera_head.trunk.0"]["tensors"] == sum(k.startswith("camera_head.trunk.0.") for k in flagged)


def test_half_precision_checkpoints_of_an_init_are_flagged_the_same(fresh):
    model, state = fresh
    in_fp32 = {s.key for s in find_untrained(model, state)}
    for dtype in (torch.bfloat16, torch.float16):
        assert {s.key for s in find_untrained(model, {k: v.to(dtype) for k, v in state.items()})} == in_fp32


def test_tensors_are_streamed_one_at_a_time_and_unusable_ones_skipped(fresh):
    model, state = fresh
    alive: list[weakref.ref] = []  # tensors are freed by reference counting as soon as nothing holds them

    def one_at_a_time():
        for key, value in state.items():
            assert sum(ref() is not None for ref in alive) <= 1, "an earlier tensor is still held"
            tensor = value.clone()
            alive.append(weakref.ref(tensor))
            yield key, tensor
            del tensor

    assert len(find_untrained(model, one_at_a_time())) == len(find_untrained(model, state))
    skipped = {"not.in.the.model": torch.zeros(4), "aggregator.frame_blocks.0.norm1.bias": torch.zeros(7),
               "aggregator.frame_blocks.0.norm1.weight": torch.ones(64, device="meta"),
               "aggregator.frame_blocks.0.ls1.gamma": torch.zeros(64, dtype=torch.int64)}
    assert find_untrained(model, skipped) == []


def test_suspicions_serialise_for_the_report(fresh):
    model, state = fresh
    first = find_untrained(model, state)[0]
    assert set(first.to_dict()) == {"key", "numel", "init", "reason"}
    assert first.to_dict()["numel"] == state[first.key].numel()


def test_an_init_verdict_says_at_init_trained_or_that_it_cannot_tell():
    """The comparison's three answers: True at init, False judged trained, None where no verdict is possible."""
    generator = torch.Generator().manual_seed(3)
    ones, zero = [InitSpec("constant", 1.0, "unit norm weight")], [InitSpec("constant", 0.0, "zero bias")]
    uniform = [InitSpec("uniform", 0.1, "kaiming-uniform")]
    assert init_verdict(torch.ones(64), ones) is True
    assert init_verdict(torch.ones(64) + 1e-3, ones) is False, "a constant init is judged at any size"
    drawn = (torch.rand(4096, generator=generator) * 2 - 1) * 0.1
    assert init_verdict(drawn, uniform) is True
    assert init_verdict(drawn * 1.3, uniform) is False
    assert init_verdict(drawn[:MIN_RANDOM_VALUES - 1] * 1.3, uniform) is None, "too few values for a random init"
    assert init_verdict(drawn[:100] * 1.3, uniform + zero) is False, "its constant init alone is judged"
    assert init_verdict(torch.ones(64), []) is None, "no init known"
    assert init_verdict(torch.empty(64, device="meta"), ones) is None, "no data"
