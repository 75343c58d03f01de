"""Tracks in the pipeline's stages: the track head alone on a kept context equals a forward with the points, views
that leave the run untouched, world points per frame, hostile query points.

Tracks on the app's cached runs (add_tracks, kept contexts and their bounds, shared runs) are tested in
tests/serving/test_app_state.py."""

import numpy as np
import pytest
import torch

from tests.support.videos import write_video
from vggt_mv import pipeline
from vggt_mv.geometry import unproject_depth_map_to_point_map
from vggt_mv.inference import predict
from vggt_mv.pipeline import (ReconstructionError, ReconstructionSettings, attach_images, infer, reconstruct,
                              resolve_query_points, track, track_arrays, tracks_of, with_tracks)
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings

POINTS = [[10, 40], [300, 100], [517, 0]]
TRACK_KEYS = ("query_points", "track", "vis", "conf", "track_world_points")


@pytest.fixture(scope="module")
def served():
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_video(folder / f"cam{i}.mp4", frames=6, width=56 + 14 * i, height=28) for i in range(3)]


@pytest.fixture(scope="module")
def plain_run(served, videos):
    """Two cameras at T=2 without tracks (shared by the tests that only read it)."""
    return reconstruct(served.model, videos[:2], ReconstructionSettings(frames_per_camera=2))


def test_the_track_head_on_a_kept_context_equals_a_forward_with_the_query_points(served, plain_run):
    images = plain_run.clip.images
    mode = plain_run.mode.mode
    outputs = infer(served.model, images, mode)
    assert outputs.track_context is not None and outputs.track_context.frames.numel() == 0, \
        "what a GPU call hands back does not repeat the input images"
    assert "images" not in outputs.predictions
    predictions, context = attach_images(outputs, images)
    points = np.float32(POINTS)
    tracks = track(served.model, context, points)
    expected = predict(served.model, torch.from_numpy(images), mode=mode, query_points=torch.from_numpy(points))
    for name in ("track", "vis", "conf"):
        np.testing.assert_array_equal(tracks[name], expected[name])
    steps, cameras = plain_run.clip.grid
    assert tracks["track"].shape == (steps, cameras, 3, 2)
    assert tracks["vis"].shape == tracks["conf"].shape == (steps, cameras, 3)
    np.testing.assert_array_equal(tracks["track"][0, 0], points)  # the reference frame: the query itself
    arrays = track_arrays(predictions, points, tracks)
    assert set(arrays) == set(TRACK_KEYS) and arrays["track_world_points"].shape == (steps, cameras, 3, 3)
    no_geometry = track_arrays({"images": images}, points, tracks)
    assert "track_world_points" not in no_geometry, "nothing to unproject with"


def test_a_view_with_tracks_shares_the_runs_arrays_and_leaves_the_run_untouched(served, videos, plain_run):
    settings = ReconstructionSettings(frames_per_camera=2, query_points=tuple(map(tuple, POINTS)))
    tracked = reconstruct(served.model, videos[:2], settings)
    tracks = tracks_of(tracked)
    assert set(tracks) == set(TRACK_KEYS)
    view = with_tracks(plain_run, tracks)
    assert view is not plain_run and view.key == plain_run.key and view.clip is plain_run.clip
    assert not set(TRACK_KEYS) & set(plain_run.predictions), "the run a view was made of holds no tracks"
    assert view.predictions["depth"] is plain_run.predictions["depth"], "a view shares the run's arrays"
    assert tracks_of(plain_run) == {}
    untracked = with_tracks(view, {})
    assert "track" not in untracked.predictions and "track" in view.predictions
    regrid = with_tracks(view, {"track": tracks["track"][:, :, :1]})
    assert regrid.predictions["track"].shape[2] == 1 and "vis" not in regrid.predictions, \
        "a view carries exactly the tracks it was given, none of the earlier ones"


def test_track_world_points_use_each_frames_depth_and_camera(served, videos):
    settings = ReconstructionSettings(frames_per_camera=2, query_points=tuple(map(tuple, POINTS)))
    p = reconstruct(served.model, videos[:2], settings).predictions
    dense = unproject_depth_map_to_point_map(torch.from_numpy(p["depth"][0, 0]), torch.from_numpy(p["extrinsic"][0, 0]),
                                             torch.from_numpy(p["intrinsic"][0, 0])).numpy()
    at_queries = np.stack([dense[y, x] for x, y in POINTS])
    np.testing.assert_allclose(p["track_world_points"][0, 0], at_queries, rtol=1e-4, atol=1e-4)


def test_query_points_or_a_grid_in_the_settings_give_tracks_on_real_pixels(served, videos):
    tracked = reconstruct(served.model, videos[:1], ReconstructionSettings(frames_per_camera=2, query_points=((5, 5),)))
    assert tracked.predictions["track"].shape[2] == 1
    assert "tracks" in tracked.seconds, "the track head's time is its own stage"
    grid = reconstruct(served.model, videos[:1], ReconstructionSettings(frames_per_camera=2, track_grid=12))
    query = grid.predictions["query_points"]
    assert 1 < len(query) <= 12 and grid.predictions["track"].shape[2] == len(query)
    assert grid.predictions["valid_mask"][0, 0][np.round(query[:, 1]).astype(int), np.round(query[:, 0]).astype(int)].all()
    plain = reconstruct(served.model, videos[:1], ReconstructionSettings(frames_per_camera=2))
    assert not set(TRACK_KEYS) & set(plain.predictions), "one request's tracks never reach the next one"


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


def test_hostile_query_points_are_refused(served, videos, plain_run):
    valid = plain_run.predictions["valid_mask"][0, 0]
    for points, message in HOSTILE_POINTS:
        with pytest.raises(ReconstructionError, match=message):
            resolve_query_points(points, 0, valid)
    # Through a run: an empty list in the settings means no tracks, not a refusal; a negative coordinate is refused
    # before anything is decoded, so before the frame's size is known.
    for points, message in HOSTILE_POINTS[1:]:
        with pytest.raises(ReconstructionError, match=message.replace("518x", "")):
            reconstruct(served.model, videos[:1], ReconstructionSettings(frames_per_camera=2, query_points=points))
    np.testing.assert_array_equal(resolve_query_points(POINTS, 0, valid), np.float32(POINTS))


def test_a_query_point_on_padding_is_refused(served, videos):
    short_and_tall = [videos[2], videos[0]]
    settings = ReconstructionSettings(frames_per_camera=2)
    valid = reconstruct(served.model, short_and_tall, settings).predictions["valid_mask"][0, 0]
    assert not valid[0].any(), "the reference camera is the short one, padded above and below"
    with pytest.raises(ReconstructionError, match="padding"):
        resolve_query_points([[100, 0]], 0, valid)
    with pytest.raises(ReconstructionError, match="padding"):
        reconstruct(served.model, short_and_tall, ReconstructionSettings(frames_per_camera=2, query_points=((100, 0),)))


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
        reconstruct(served.model, videos[:1], settings)
