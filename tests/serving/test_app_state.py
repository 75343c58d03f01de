"""What the app keeps between requests (vggt_mv.serving.app_state): runs cached by content, tracks added to a cached
run by the track head alone from its kept context, views that leave the shared run untouched, bounded contexts,
and the app's run through the GPU call (progress, refusals, stage times)."""

import re
import time

import numpy as np
import pytest
import torch

from tests.pipeline.test_tracks import HOSTILE_POINTS
from tests.support.models import forward_calls
from tests.support.videos import write_video
from vggt_mv import pipeline
from vggt_mv.inference import predict
from vggt_mv.io.examples import list_examples
from vggt_mv.pipeline import (
    ReconstructionError,
    ReconstructionSettings,
    content_key,
    estimate_track_context_bytes,
    tracks_of,
    with_tracks,
)
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.model_store import ModelRecipe, load_served_model
from vggt_mv.serving.reconstruct_tab import DisplayChoices, UserFacingError
from vggt_mv.serving.runs import RunCache
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.viz.export import NPZ_KEYS, write_npz

POINTS = [[10, 40], [300, 100], [517, 0]]
TRACK_KEYS = ("query_points", "track", "vis", "conf", "track_world_points")
TWO = ReconstructionSettings(frames_per_camera=2)


@pytest.fixture
def aggregator_calls(served):
    with forward_calls(served.model.aggregator) as calls:
        yield calls


@pytest.fixture(scope="module")
def videos(tmp_path_factory):
    folder = tmp_path_factory.mktemp("videos")
    return [write_video(folder / f"cam{i}.mp4", frames=6, width=56 + 14 * i, height=28) for i in range(3)]


def with_points(points, frames: int = 2) -> ReconstructionSettings:
    """Settings asking for tracks of these points."""
    return ReconstructionSettings(frames_per_camera=frames, query_points=tuple(map(tuple, points)))


def test_same_videos_and_settings_are_served_from_the_cache_of_that_state_only(served, state, tmp_path):
    video = write_video(tmp_path / "a.mp4", frames=6, width=56, height=28)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(video.read_bytes())
    first = state.reconstruct([video], TWO)
    assert state.reconstruct([copy], TWO) is first and state.runs.get(first.key) is first
    assert state.reconstruct([video], ReconstructionSettings(frames_per_camera=3)) is not first
    other = AppState(served, tmp_path / "other-sessions")
    try:
        assert other.runs.get(first.key) is None, "two app states share nothing"
        assert other.reconstruct([video], TWO) is not first
    finally:
        served.replaced.remove(other.forget_runs)


def test_out_of_memory_in_the_gpu_call_becomes_a_message_and_nothing_is_cached(served, state, tmp_path, monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")

    monkeypatch.setattr("vggt_mv.pipeline.predict_with_track_context", exhausted)
    video = write_video(tmp_path / "oom.mp4", frames=4, width=70, height=28)
    settings = ReconstructionSettings(frames_per_camera=1)
    with pytest.raises(ReconstructionError, match="ran out of memory"):
        state.reconstruct([video], settings)
    assert not served.lock.locked() and not state.gpu_lock.locked()
    assert state.runs.get(content_key([video], settings, served.tag)) is None


def test_a_run_too_big_for_the_memory_is_refused_naming_where_the_figure_comes_from(served, tmp_path):
    small = AppState(served, tmp_path / "sessions", gpu_memory_bytes=1024)
    try:
        with pytest.raises(ReconstructionError, match=r"GiB is available \(the --gpu-memory setting\)"):
            small.reconstruct([write_video(tmp_path / "a.mp4")], TWO)
    finally:
        served.replaced.remove(small.forget_runs)


def test_model_progress_reaches_the_caller_through_the_gpu_call_and_never_goes_back(served, state, tmp_path):
    video = write_video(tmp_path / "p.mp4", frames=6, width=70, height=28)
    reports = []
    state.reconstruct([video], ReconstructionSettings(frames_per_camera=3),
                      progress=lambda fraction, message: reports.append((fraction, message)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] <= 0.9
    layers = [message for _, message in reports if "aggregator layer" in message]
    assert len(layers) == served.config.depth


def test_predictions_that_are_not_finite_are_refused_not_cached_and_not_written(served, state, tmp_path, monkeypatch):
    real_predict = pipeline.predict_with_track_context

    def broken(*args, **kwargs):
        predictions, context = real_predict(*args, **kwargs)
        return {k: np.full_like(v, np.nan) if k != "images" else v for k, v in predictions.items()}, context

    monkeypatch.setattr(pipeline, "predict_with_track_context", broken)
    video = write_video(tmp_path / "nan.mp4", frames=4, width=56, height=28)
    with pytest.raises(UserFacingError, match="NaN"):
        reconstruct_tab.run(state, [str(video)], None, 1, 0.0, 1.0, "", "auto", DisplayChoices(), "nan-session")
    settings = ReconstructionSettings(frames_per_camera=1)
    assert state.runs.get(content_key([video], settings, served.tag)) is None
    assert not state.sessions_root.exists() or not [p for p in state.sessions_root.rglob("*") if p.is_file()]


def test_the_apps_run_shows_the_scene_and_writes_no_file_and_its_stage_times_cover_the_wall_time(state):
    example = list_examples()[0].name
    started = time.perf_counter()
    updates = list(reconstruct_tab.run_progressively(state, None, example, 2, 0.1, 0.9, "", "auto",
                                                     DisplayChoices(point_budget=3000), "timed-session"))
    wall = time.perf_counter() - started
    ((_, _, downloads, status, _),) = updates
    timing = re.compile(r"\): (.*) \(total ([\d.]+) s\)\.")

    def stage_names(text: str) -> list[str]:
        return re.findall(r"(\w+) [\d.]+ s", timing.search(text).group(1))

    assert downloads == [] and "Downloads are built when you ask" in status
    assert stage_names(status) == ["decode", "inference", "scene"]
    assert not state.sessions_root.exists() or not [p for p in state.sessions_root.rglob("*") if p.is_file()]
    assert float(timing.search(status).group(2)) == pytest.approx(wall, rel=0.1)


def test_tracks_added_later_equal_tracks_from_one_forward_and_skip_the_aggregator(served, state, videos,
                                                                                  aggregator_calls):
    result = state.reconstruct(videos[:2], TWO)
    assert aggregator_calls == [1] and state.runs.tracks_unavailable(result.key) is None
    view = state.add_tracks(result.key, POINTS)
    assert aggregator_calls == [1], "clicking points must not re-run the aggregator"
    assert view is not result and view.key == result.key and view.clip is result.clip
    assert not set(TRACK_KEYS) & set(result.predictions), "the cached run, shared by every session, holds no tracks"
    predictions = view.predictions
    steps, cameras, height, width = predictions["valid_mask"].shape
    assert predictions["track"].shape == (steps, cameras, 3, 2)
    assert predictions["vis"].shape == predictions["conf"].shape == (steps, cameras, 3)
    assert predictions["track_world_points"].shape == (steps, cameras, 3, 3)
    np.testing.assert_array_equal(predictions["query_points"], np.float32(POINTS))
    expected = predict(served.model, torch.from_numpy(result.clip.images), mode=result.mode.mode,
                       query_points=torch.tensor(POINTS).float())
    for name in ("track", "vis", "conf"):
        np.testing.assert_array_equal(predictions[name], expected[name])
    np.testing.assert_array_equal(predictions["track"][0, 0], np.float32(POINTS))  # the reference frame: the query
    assert predictions["depth"] is result.predictions["depth"], "a view shares the run's arrays, it does not copy them"


def test_two_sets_of_tracks_on_one_run_are_independent_views(state, videos):
    result = state.reconstruct(videos[:1], TWO)
    one = state.add_tracks(result.key, POINTS[:1])
    grid = state.add_tracks(result.key, track_grid=6)
    assert one.predictions["track"].shape[2] == 1 and grid.predictions["track"].shape[2] > 1
    assert state.runs.get(result.key) is result and "track" not in result.predictions
    assert "track" not in with_tracks(one, {}).predictions and "track" in one.predictions


def test_query_points_in_the_settings_give_tracks_without_changing_the_cache_key(state, videos, aggregator_calls):
    tracked = state.reconstruct(videos[:1], with_points([(5, 5)]))
    assert tracked.predictions["track"].shape[2] == 1
    plain = state.reconstruct(videos[:1], TWO)
    assert plain is state.runs.get(tracked.key) and plain.key == tracked.key
    assert not set(TRACK_KEYS) & set(plain.predictions), "one request's tracks never reach the next one"
    grid = state.reconstruct(videos[:1], ReconstructionSettings(frames_per_camera=2, track_grid=12))
    assert grid.key == tracked.key and aggregator_calls == [1] and "track" not in plain.predictions
    query = grid.predictions["query_points"]
    assert 1 < len(query) <= 12 and grid.predictions["track"].shape[2] == len(query)
    assert grid.predictions["valid_mask"][0, 0][np.round(query[:, 1]).astype(int), np.round(query[:, 0]).astype(int)].all()


def test_a_dropped_context_says_run_again_and_a_run_with_points_then_runs_the_model(state, videos, aggregator_calls):
    state.runs = RunCache(context_runs=1)
    first = state.reconstruct(videos[:1], TWO)
    state.reconstruct(videos[1:2], TWO)
    assert "run it again" in state.runs.tracks_unavailable(first.key)
    with pytest.raises(ReconstructionError, match="dropped to bound memory.*run it again"):
        state.add_tracks(first.key, POINTS)
    assert len(aggregator_calls) == 2, "no silent re-run"
    again = state.reconstruct(videos[:1], with_points(POINTS))
    assert len(aggregator_calls) == 3 and again.predictions["track"].shape[2] == 3
    assert any("Ran the model again to add tracks" in note for note in again.notes)
    assert "track" not in state.runs.get(first.key).predictions
    same = state.reconstruct(videos[:1], with_points(POINTS))
    assert same.key == again.key and len(aggregator_calls) == 3, "the re-run kept its context: track head only"
    np.testing.assert_array_equal(same.predictions["track"], again.predictions["track"])


def test_kept_contexts_stay_within_the_budget_and_match_the_estimate(served, state, videos):
    result = state.reconstruct(videos[:2], TWO)
    steps, cameras, height, width = result.predictions["valid_mask"].shape
    one_run = estimate_track_context_bytes(served.config, steps, cameras, height, width)
    assert state.runs.kept_track_context_bytes() == one_run
    state.runs.context_budget_bytes = int(one_run * 1.5)
    for video in videos:
        state.reconstruct([video], TWO)
        assert state.runs.kept_track_context_bytes() <= one_run * 1.5
    assert "dropped" in state.runs.tracks_unavailable(result.key)
    state.runs.context_budget_bytes = 10
    big = state.reconstruct(videos[:2], ReconstructionSettings(frames_per_camera=3))
    with pytest.raises(ReconstructionError, match="exceed the .* kept for tracks"):
        state.add_tracks(big.key, POINTS)
    tracked = state.reconstruct(videos[:2], with_points([(9, 9)], frames=3))
    assert tracked.predictions["track"].shape[2] == 1, "as the message says, a run with the points gets them"
    assert "track" not in state.runs.get(big.key).predictions


def test_changed_weights_or_an_evicted_run_are_refused_with_a_message(served, state, videos, monkeypatch):
    result = state.reconstruct(videos[:1], TWO)
    monkeypatch.setattr(served, "recipe", ModelRecipe(served.recipe.version + 1, served.preset))
    with pytest.raises(ReconstructionError, match="weights changed"):
        state.add_tracks(result.key, POINTS)
    with pytest.raises(ReconstructionError, match="no longer cached"):
        state.add_tracks("0123456789abcdef", POINTS)


def test_replacing_the_served_model_forgets_every_run_and_every_sessions_tracks(tmp_path, videos):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    state = AppState(served, tmp_path / "sessions")
    result = state.reconstruct(videos[:1], TWO)
    state.session_tracks.put("session", result.key, tracks_of(state.add_tracks(result.key, POINTS[:1])))
    tag = served.tag
    served.replace_model(served.model, None, 1.0)
    assert served.tag != tag
    assert state.runs.get(result.key) is None and state.session_tracks.sessions() == []
    with pytest.raises(ReconstructionError, match="no longer cached"):
        state.add_tracks(result.key, POINTS)
    assert state.reconstruct(videos[:1], TWO).key != result.key, "the new weights' runs have their own keys"




def test_hostile_query_points_are_refused_and_the_server_keeps_serving(served, state, videos, aggregator_calls):
    result = state.reconstruct(videos[:1], TWO)
    for points, message in HOSTILE_POINTS:
        with pytest.raises(ReconstructionError, match=message):
            state.add_tracks(result.key, points)
        assert not served.lock.locked() and not state.gpu_lock.locked()
        assert not set(TRACK_KEYS) & set(result.predictions)
    assert state.add_tracks(result.key, POINTS).predictions["track"].shape[2] == 3
    assert aggregator_calls == [1]


def test_a_query_point_on_padding_is_refused(state, videos):
    short_and_tall = state.reconstruct([videos[2], videos[0]], TWO)
    valid = short_and_tall.predictions["valid_mask"][0, 0]
    assert not valid[0].any(), "the reference camera is the short one, padded above and below"
    with pytest.raises(ReconstructionError, match="padding"):
        state.add_tracks(short_and_tall.key, [[100, 0]])


def test_tracks_land_in_the_prediction_arrays_the_npz_writer_reads(state, videos, tmp_path):
    result = state.add_tracks(state.reconstruct(videos[:1], TWO).key, POINTS)
    assert all(isinstance(result.predictions[key], np.ndarray) for key in TRACK_KEYS)
    assert set(TRACK_KEYS) <= set(NPZ_KEYS)
    saved = np.load(write_npz(tmp_path / "p.npz", result.predictions))
    for key in TRACK_KEYS:
        finite = saved[f"{key}_finite"] if f"{key}_finite" in saved.files else True
        np.testing.assert_array_equal(np.where(finite, saved[key], np.nan), result.predictions[key])


def test_a_run_with_points_writes_its_tracks_to_its_npz_and_a_plain_run_of_the_same_videos_none(state, videos,
                                                                                               tmp_path):
    tracked = state.reconstruct(videos[:1], with_points(POINTS))
    tracked_npz = write_npz(tmp_path / "a.npz", tracked.predictions)
    assert np.load(tracked_npz)["track"].shape[2] == 3
    plain = state.reconstruct(videos[:1], TWO)
    plain_npz = write_npz(tmp_path / "b.npz", plain.predictions)
    assert plain.key == tracked.key
    assert not set(TRACK_KEYS) & set(np.load(plain_npz).files)
    assert not set(TRACK_KEYS) & set(state.runs.get(plain.key).predictions)
