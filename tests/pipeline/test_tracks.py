"""Tracks on a cached run: the track head alone from the kept context, a view that leaves the shared cached run
untouched, bounded memory, hostile query points."""

import numpy as np
import pytest
import torch

from tests.support.models import forward_calls
from tests.support.videos import write_video
from vggt_mv import pipeline
from vggt_mv.geometry import unproject_depth_map_to_point_map
from vggt_mv.inference import predict
from vggt_mv.pipeline import (ReconstructionError, ReconstructionSettings, add_tracks, clear_cache,
                              estimate_track_context_bytes, kept_track_context_bytes, reconstruct, tracks_unavailable,
                              with_tracks)
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.viz.export import NPZ_KEYS, write_npz

POINTS = [[10, 40], [300, 100], [517, 0]]
TRACK_KEYS = ("query_points", "track", "vis", "conf", "track_world_points")


@pytest.fixture(scope="module")
def served():
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


@pytest.fixture(autouse=True)
def empty_cache():
    clear_cache()
    yield
    clear_cache()


@pytest.fixture
def aggregator_calls(served):
    with forward_calls(served.model.aggregator) as calls:
        yield calls


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_video(folder / f"cam{i}.mp4", frames=6, width=56 + 14 * i, height=28) for i in range(3)]


def test_tracks_added_later_equal_tracks_from_one_forward_and_skip_the_aggregator(served, videos, aggregator_calls):
    result = reconstruct(served, videos[:2], ReconstructionSettings(frames_per_camera=2))
    assert aggregator_calls == [1] and tracks_unavailable(result.key) is None
    view = add_tracks(served, result.key, POINTS)
    assert aggregator_calls == [1], "clicking points must not re-run the aggregator"
    assert view is not result and view.key == result.key and view.clip is result.clip
    assert not set(TRACK_KEYS) & set(result.predictions), "the cached run, shared by every session, holds no tracks"
    predictions = view.predictions
    steps, cameras, height, width = predictions["valid_mask"].shape
    assert predictions["track"].shape == (steps, cameras, 3, 2)
    assert predictions["vis"].shape == predictions["conf"].shape == (steps, cameras, 3)
    assert predictions["track_world_points"].shape == (steps, cameras, 3, 3)
    np.testing.assert_array_equal(predictions["query_points"], np.float32(POINTS))
    expected = predict(served.model, torch.from_numpy(result.clip.images), query_points=torch.tensor(POINTS).float())
    for name in ("track", "vis", "conf"):
        np.testing.assert_array_equal(predictions[name], expected[name])
    np.testing.assert_array_equal(predictions["track"][0, 0], np.float32(POINTS))  # the reference frame: the query
    assert predictions["depth"] is result.predictions["depth"], "a view shares the run's arrays, it does not copy them"


def test_two_sets_of_tracks_on_one_run_are_independent_views(served, videos):
    result = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2))
    one = add_tracks(served, result.key, POINTS[:1])
    grid = add_tracks(served, result.key, track_grid=6)
    assert one.predictions["track"].shape[2] == 1 and grid.predictions["track"].shape[2] > 1
    assert pipeline.cached_reconstruction(result.key) is result and "track" not in result.predictions
    assert "track" not in with_tracks(one, {}).predictions and "track" in one.predictions


def test_track_world_points_use_each_frames_depth_and_camera(served, videos):
    result = reconstruct(served, videos[:2], ReconstructionSettings(frames_per_camera=2))
    p = add_tracks(served, result.key, POINTS).predictions
    dense = unproject_depth_map_to_point_map(torch.from_numpy(p["depth"][0, 0]), torch.from_numpy(p["extrinsic"][0, 0]),
                                             torch.from_numpy(p["intrinsic"][0, 0])).numpy()
    at_queries = np.stack([dense[y, x] for x, y in POINTS])
    np.testing.assert_allclose(p["track_world_points"][0, 0], at_queries, rtol=1e-4, atol=1e-4)


def test_query_points_in_the_settings_give_tracks_without_changing_the_cache_key(served, videos, aggregator_calls):
    tracked = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2, query_points=((5, 5),)))
    assert tracked.predictions["track"].shape[2] == 1
    plain = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2))
    assert plain is pipeline.cached_reconstruction(tracked.key) and plain.key == tracked.key
    assert not set(TRACK_KEYS) & set(plain.predictions), "one request's tracks never reach the next one"
    grid = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2, track_grid=12))
    assert grid.key == tracked.key and aggregator_calls == [1] and "track" not in plain.predictions
    query = grid.predictions["query_points"]
    assert 1 < len(query) <= 12 and grid.predictions["track"].shape[2] == len(query)
    assert grid.predictions["valid_mask"][0, 0][np.round(query[:, 1]).astype(int), np.round(query[:, 0]).astype(int)].all()


def test_a_dropped_context_says_run_again_and_a_run_with_points_then_runs_the_model(served, videos, monkeypatch,
                                                                                    aggregator_calls):
    monkeypatch.setattr(pipeline, "TRACK_CONTEXT_RUNS", 1)
    first = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2))
    reconstruct(served, videos[1:2], ReconstructionSettings(frames_per_camera=2))
    assert "run it again" in tracks_unavailable(first.key)
    with pytest.raises(ReconstructionError, match="dropped to bound memory.*run it again"):
        add_tracks(served, first.key, POINTS)
    assert len(aggregator_calls) == 2, "no silent re-run"
    again = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2, query_points=tuple(POINTS)))
    assert len(aggregator_calls) == 3 and again.predictions["track"].shape[2] == 3
    assert any("Ran the model again to add tracks" in note for note in again.notes)
    assert "track" not in pipeline.cached_reconstruction(first.key).predictions
    same = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2, query_points=tuple(POINTS)))
    assert same.key == again.key and len(aggregator_calls) == 3, "the re-run kept its context: track head only"
    np.testing.assert_array_equal(same.predictions["track"], again.predictions["track"])


def test_kept_contexts_stay_within_the_budget_and_match_the_estimate(served, videos, monkeypatch):
    result = reconstruct(served, videos[:2], ReconstructionSettings(frames_per_camera=2))
    steps, cameras, height, width = result.predictions["valid_mask"].shape
    one_run = estimate_track_context_bytes(served.config, steps, cameras, height, width)
    assert kept_track_context_bytes() == one_run
    monkeypatch.setattr(pipeline, "TRACK_CONTEXT_BUDGET_BYTES", int(one_run * 1.5))
    for video in videos:
        reconstruct(served, [video], ReconstructionSettings(frames_per_camera=2))
        assert kept_track_context_bytes() <= one_run * 1.5
    assert "dropped" in tracks_unavailable(result.key)
    monkeypatch.setattr(pipeline, "TRACK_CONTEXT_BUDGET_BYTES", 10)
    big = reconstruct(served, videos[:2], ReconstructionSettings(frames_per_camera=3))
    with pytest.raises(ReconstructionError, match="exceed the .* kept for tracks"):
        add_tracks(served, big.key, POINTS)
    with_points = reconstruct(served, videos[:2], ReconstructionSettings(frames_per_camera=3, query_points=((9, 9),)))
    assert with_points.predictions["track"].shape[2] == 1, "as the message says, a run with the points gets them"
    assert "track" not in pipeline.cached_reconstruction(big.key).predictions


def test_changed_weights_or_an_evicted_run_are_refused_with_a_message(served, videos, monkeypatch):
    result = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2))
    monkeypatch.setattr(served, "report", object())
    with pytest.raises(ReconstructionError, match="weights changed"):
        add_tracks(served, result.key, POINTS)
    with pytest.raises(ReconstructionError, match="no longer cached"):
        add_tracks(served, "0123456789abcdef", POINTS)


HOSTILE_POINTS = [
    ([], "no query points"),
    ("1,2", "must be a list"),
    ({"x": 1}, "must be a list"),
    ([[1, 2, 3]], "must be a pair"),
    ([["1", "2"]], "must be a pair"),
    ([[float("nan"), 1]], "not finite"),
    ([[1e309, 1]], "not finite"),
    ([[518, 10]], "outside the 518x"),
    ([[10, -2]], "outside the 518x"),
    ([[10, 10]] * 257, "at most 256"),
]


def test_hostile_query_points_are_refused_and_the_server_keeps_serving(served, videos, aggregator_calls):
    result = reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2))
    for points, message in HOSTILE_POINTS:
        with pytest.raises(ReconstructionError, match=message):
            add_tracks(served, result.key, points)
        assert not served.lock.locked() and not set(TRACK_KEYS) & set(result.predictions)
    assert add_tracks(served, result.key, POINTS).predictions["track"].shape[2] == 3
    assert aggregator_calls == [1]


def test_a_query_point_on_padding_is_refused(served, videos):
    short_and_tall = reconstruct(served, [videos[2], videos[0]], ReconstructionSettings(frames_per_camera=2))
    valid = short_and_tall.predictions["valid_mask"][0, 0]
    assert not valid[0].any(), "the reference camera is the short one, padded above and below"
    with pytest.raises(ReconstructionError, match="padding"):
        add_tracks(served, short_and_tall.key, [[100, 0]])


@pytest.mark.parametrize("settings, message", [
    (ReconstructionSettings(query_points=((1, 2),), track_grid=4), "not both"),
    (ReconstructionSettings(track_grid=-3), "whole number of points from 1 to 256"),
    (ReconstructionSettings(track_grid=2.5), "whole number"),
    (ReconstructionSettings(track_grid=10 ** 400), "whole number"),
    (ReconstructionSettings(track_grid=float("nan")), "whole number"),
    (ReconstructionSettings(track_grid="8"), "whole number"),
    (ReconstructionSettings(query_points=(("a", 1),)), "must be a pair"),
    (ReconstructionSettings(query_points=5), "must be a list"),
])
def test_bad_track_settings_are_refused_before_anything_is_decoded(served, videos, settings, message, monkeypatch):
    monkeypatch.setattr(pipeline, "decode_clip", lambda plan: pytest.fail("decoded a refused request"))
    with pytest.raises(ReconstructionError, match=message):
        reconstruct(served, videos[:1], settings)


def test_tracks_land_in_the_prediction_arrays_the_npz_writer_reads(served, videos, tmp_path):
    result = add_tracks(served, reconstruct(served, videos[:1], ReconstructionSettings(frames_per_camera=2)).key,
                        POINTS)
    assert all(isinstance(result.predictions[key], np.ndarray) for key in TRACK_KEYS)
    assert set(TRACK_KEYS) <= set(NPZ_KEYS)
    saved = np.load(write_npz(tmp_path / "p.npz", result.predictions))
    for key in TRACK_KEYS:
        np.testing.assert_array_equal(saved[key], result.predictions[key])


def test_a_run_with_points_writes_its_tracks_to_its_npz_and_a_plain_run_of_the_same_videos_none(served, videos,
                                                                                               tmp_path):
    settings = ReconstructionSettings(frames_per_camera=2, query_points=tuple(POINTS))
    *_, tracked = pipeline.run_stages(served, videos[:1], settings, tmp_path / "a", render=lambda result: None)
    assert np.load(tracked.outputs["npz"])["track"].shape[2] == 3
    *_, plain = pipeline.run_stages(served, videos[:1], ReconstructionSettings(frames_per_camera=2), tmp_path / "b",
                                    render=lambda result: None)
    assert plain.result.key == tracked.result.key
    assert not set(TRACK_KEYS) & set(np.load(plain.outputs["npz"]).files)
    assert not set(TRACK_KEYS) & set(pipeline.cached_reconstruction(plain.result.key).predictions)
