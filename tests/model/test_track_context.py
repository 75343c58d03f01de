"""Tracks added later from a kept track context equal tracks computed in the forward, without the aggregator."""

import numpy as np
import pytest
import torch

from tests.support.models import random_images, tiny_model
from vggt_mv.inference import predict, predict_tracks, predict_with_track_context

QUERIES = torch.tensor([[[3.0, 5.0], [10.0, 7.0], [40.0, 20.0], [0.0, 27.0]]])


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize("time_steps, cameras, mode", [
    (3, 2, None),       # multi-view: Time-SA and View-SA
    (4, 1, None),       # single-view: VGGT over T frames
    (2, 3, "global"),   # VGGT over all T*N frames
])
def test_track_on_a_kept_context_equals_tracks_from_the_forward(model, time_steps, cameras, mode):
    images = random_images(time_steps, cameras)
    with torch.inference_mode():
        full = model(images, query_points=QUERIES, mode=mode)
        predictions, context = model.forward_with_track_context(images, mode=mode)
        later = model.track(context, QUERIES)
    assert set(later) == {"track", "vis", "conf"}
    for name in later:
        assert torch.equal(later[name], full[name]), name
    assert later["track"].shape == (1, time_steps, cameras, 4, 2)
    for name, value in predictions.items():
        assert torch.equal(value, full[name]), name


def test_one_context_serves_any_number_of_query_sets(model):
    images = random_images(2, 2, seed=3)
    with torch.inference_mode():
        _, context = model.forward_with_track_context(images)
        for queries in (QUERIES[:, :1], QUERIES, torch.tensor([[[20.5, 13.25]] * 7])):
            assert torch.equal(model.track(context, queries)["track"], model(images, query_points=queries)["track"])


def test_the_context_keeps_only_the_layers_the_track_head_reads(model):
    with torch.inference_mode():
        _, context = model.forward_with_track_context(random_images(2, 2))
    assert sorted(context.layers) == sorted(set(model.config.dpt_intermediate_layer_idx))
    tokens_per_frame = 1 + model.config.num_register_tokens + (28 // 14) * (42 // 14)
    assert context.layer_bytes == 4 * 4 * tokens_per_frame * 2 * model.config.embed_dim * 4
    assert context.grid == (1, 2, 2) and context.frames.shape == (1, 4, 3, 28, 42)


def test_a_context_is_kept_even_when_no_dense_head_reads_those_layers():
    model = tiny_model(enable_depth=False, enable_point=False, dpt_intermediate_layer_idx=[0, 1, 1, 2])
    images = random_images(2, 2)
    with torch.inference_mode():
        predictions, context = model.forward_with_track_context(images)
        full = model(images, query_points=QUERIES)
        assert "depth" not in predictions and sorted(context.layers) == [0, 1, 2]
        assert torch.equal(model.track(context, QUERIES)["track"], full["track"])


def test_bf16_autocast_context_gives_the_same_tracks_as_the_autocast_forward(model):
    images = random_images(2, 2, seed=5)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        full = model(images, query_points=QUERIES)
        _, context = model.forward_with_track_context(images)
    # Kept as the aggregator produced them: LayerScale's fp32 gammas keep the residual stream in fp32.
    assert all(t.dtype == torch.float32 for t in context.layers.values())
    with torch.inference_mode():
        later = model.track(context, QUERIES)
    for name in later:
        assert torch.equal(later[name], full[name]), name


def test_predict_keeps_the_context_on_the_cpu_and_predict_tracks_matches_predict(model):
    images = random_images(2, 3, seed=7)[0]
    expected = predict(model, images, query_points=QUERIES[0])
    predictions, context = predict_with_track_context(model, images)
    assert all(t.device.type == "cpu" for t in context.layers.values())
    assert "track" not in predictions
    tracks = predict_tracks(model, context, QUERIES[0].numpy())
    assert tracks["track"].shape == (2, 3, 4, 2) and tracks["vis"].shape == tracks["conf"].shape == (2, 3, 4)
    for name in ("track", "vis", "conf"):
        np.testing.assert_array_equal(tracks[name], expected[name])
    np.testing.assert_array_equal(predictions["depth"], expected["depth"])


def test_a_model_without_a_track_head_keeps_no_context_and_refuses_to_track():
    model = tiny_model(enable_track=False)
    with torch.inference_mode():
        _, context = model.forward_with_track_context(random_images(1, 2))
        assert context is None
        _, kept = tiny_model().forward_with_track_context(random_images(1, 2))
        with pytest.raises(ValueError, match="no track head"):
            model.track(kept, QUERIES)


def test_query_points_of_the_wrong_shape_are_refused(model):
    with torch.inference_mode():
        _, context = model.forward_with_track_context(random_images(1, 2))
        for bad in (torch.zeros(4, 3), torch.zeros(2, 4, 2), torch.zeros(8)):
            with pytest.raises(ValueError, match="query_points must be"):
                model.track(context, bad)
