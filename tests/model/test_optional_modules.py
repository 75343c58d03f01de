"""Sparse Global-SA memory tokens and the dual stream behave as DESIGN.md describes."""

import torch

from tests.support.models import random_images, tiny_model


def test_dual_stream_copied_from_shared_blocks_starts_almost_at_the_base_model():
    base = tiny_model(seed=3)
    dual = tiny_model(seed=3, enable_dual_stream=True)
    dual.load_state_dict(base.state_dict(), strict=False)
    dual.aggregator.copy_shared_blocks_into_streams()
    images = random_images(2, 2)
    with torch.inference_mode():
        expected, got = base(images), dual(images)
    for key in ("pose_enc", "depth", "world_points"):
        scale = expected[key].abs().max()
        difference = (got[key] - expected[key]).abs().max()
        assert difference <= 0.05 * scale, key


def test_dual_stream_mixing_weight_controls_how_far_heads_move():
    dual = tiny_model(seed=3, enable_dual_stream=True)
    images = random_images(2, 2)
    with torch.inference_mode():
        near = dual(images)["depth"]
        dual.aggregator.lambda_geo_logit.fill_(4.0)
        far = dual(images)["depth"]
    assert not torch.allclose(near, far, atol=1e-4)


def test_memory_tokens_join_view_attention_only_in_multi_view_mode():
    model = tiny_model(seed=4, enable_sparse_global=True)
    plain = tiny_model(seed=4)
    plain.load_state_dict(model.state_dict(), strict=False)
    images = random_images(3, 2)
    with torch.inference_mode():
        multi, plain_multi = model(images, mode="multi"), plain(images, mode="multi")
        global_, plain_global = model(images, mode="global"), plain(images, mode="global")
    assert multi["depth"].shape == (1, 3, 2, 28, 42, 1)
    assert not torch.allclose(multi["depth"], plain_multi["depth"], atol=1e-5)
    torch.testing.assert_close(global_["depth"], plain_global["depth"])

