"""Tracks in the Reconstruct tab without a browser: a click tracks a pixel from the cached run (no aggregator run),
a grid, clearing, the API's query points, and every hostile click or field refused in one line."""

import math
from pathlib import Path

import numpy as np
import pytest

from tests.support.models import forward_calls
from tests.support.videos import write_video
from vggt_mv.io.examples import list_examples
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.downloads import prepare_download
from vggt_mv.serving.reconstruct_tab import DisplayChoices, UserFacingError, run
from vggt_mv.serving.runs import RunCache
from vggt_mv.viz.player import FRAMES_META_KEY
from vggt_mv.viz.tracks import TRACK_KEYS, track_colors

SESSION = "tracking-session"


@pytest.fixture
def aggregator_calls(served):
    with forward_calls(served.model.aggregator) as calls:
        yield calls


def example_run(state, query_points=None, steps: int = 2):
    """The bundled example at T=steps: (figure, strip, downloads, status, key)."""
    return run(state, None, list_examples()[0].name, steps, 0.0, 1.0, "", "auto", DisplayChoices(point_budget=3000),
               SESSION, query_points=query_points)


def tracks_trace_names(figure) -> list[str]:
    """Names of the scene's tracks traces."""
    return [trace.name for trace in figure.data if (trace.name or "").startswith("tracks")]


def test_clicks_track_points_from_the_cached_run_and_redraw_scene_strip_and_reference(state, aggregator_calls):
    _, strip_before, downloads_before, _, key = example_run(state)
    reference, status, points = reconstruct_tab.track_controls_after_run(state, key, SESSION)
    assert reference.shape == (294, 518, 3) and points == [] and "Click the reference frame" in status
    figure, strip, reference, status, downloads, points = reconstruct_tab.track_point(
        state, key, points, [100, 150], DisplayChoices(point_budget=3000), 1, SESSION)
    figure, strip, reference, status, downloads, points = reconstruct_tab.track_point(
        state, key, points, [400, 60], DisplayChoices(point_budget=3000), 1, SESSION)
    assert aggregator_calls == [1], "a click runs the track head only"
    assert points == [[100.0, 150.0], [400.0, 60.0]]
    assert tracks_trace_names(figure) == ["tracks (2)"] and len(figure.layout.meta[FRAMES_META_KEY]) == 2
    assert "**2 tracks** through 2 x 3 frames: track head only" in status and "tracks " in status
    assert "inference" not in status
    np.testing.assert_array_equal(reference[150, 100], track_colors(2)[0])
    assert any(not np.array_equal(a, b) for (a, _), (b, _) in zip(strip, strip_before)), "the strip is marked"
    assert [caption for _, caption in strip] == [caption for _, caption in strip_before]
    downloads, _ = prepare_download(state, key, "npz", DisplayChoices(point_budget=3000), False, SESSION)
    saved = np.load(next(path for path in downloads if path.endswith("predictions.npz")))
    assert set(TRACK_KEYS) <= set(saved.files) and saved["track"].shape == (2, 3, 2, 2)
    np.testing.assert_array_equal(saved["query_points"], np.float32([[100, 150], [400, 60]]))


def test_new_tracks_remove_the_downloads_built_before_them_so_none_is_stale(state):
    *_, key = example_run(state)
    built, status = prepare_download(state, key, "npz", DisplayChoices(point_budget=3000), False, SESSION)
    assert [path.rsplit("/", 1)[-1] for path in built] == ["predictions.npz"] and "NPZ predictions** ready" in status
    assert "track" not in np.load(built[0]).files
    *_, downloads, _ = reconstruct_tab.track_point(state, key, [], [100, 150], DisplayChoices(point_budget=3000), 0,
                                                   SESSION)
    assert downloads == [] and not any(Path(path).exists() for path in built)


def test_a_grid_then_a_click_adds_to_it_and_clear_removes_every_track(state, aggregator_calls):
    *_, key = example_run(state)
    figure, _, _, status, _, points = reconstruct_tab.track_grid(state, key, 9, DisplayChoices(point_budget=3000), 0,
                                                                 SESSION)
    assert 1 < len(points) <= 9 and tracks_trace_names(figure) == [f"tracks ({len(points)})"]
    *_, more = reconstruct_tab.track_point(state, key, points, [5, 5], DisplayChoices(point_budget=3000), 0, SESSION)
    assert more[:-1] == points and more[-1] == [5.0, 5.0]
    figure, _, reference, status, downloads, points = reconstruct_tab.clear_tracks(state, key, DisplayChoices(), 0,
                                                                                   SESSION)
    shown = reconstruct_tab.session_result(state, key, SESSION)
    assert points == [] and tracks_trace_names(figure) == [] and not set(TRACK_KEYS) & set(shown.predictions)
    assert tracks_trace_names(reconstruct_tab.redraw(state, key, DisplayChoices(point_budget=3000), SESSION)) == []
    assert "Click the reference frame" in status
    assert aggregator_calls == [1]


@pytest.mark.parametrize("index, phrase", [
    (None, "click on the reference frame's image itself"),
    ([1, 2, 3], "click on the reference frame's image itself"),
    ("12", "click on the reference frame's image itself"),
    (["a", 3], "must be a pair of numbers"),
    ([[1, 2], 3], "must be a pair of numbers"),
    ([math.nan, 3], "not finite"),
    ([10 ** 400, 3], "not finite"),
    ([518, 10], "outside the 518x294 reference frame"),
    ([-3, 10], "outside the 518x294 reference frame"),
])
def test_a_hostile_click_is_refused_in_one_line_and_the_tracks_stay(served, state, index, phrase):
    *_, key = example_run(state, steps=1)
    *_, points = reconstruct_tab.track_point(state, key, [], [20, 20], DisplayChoices(), 0, SESSION)
    with pytest.raises(UserFacingError, match=phrase) as refused:
        reconstruct_tab.track_point(state, key, points, index, DisplayChoices(), 0, SESSION)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    assert reconstruct_tab.session_result(state, key, SESSION).predictions["track"].shape[2] == 1
    assert not served.lock.locked() and not state.gpu_lock.locked()


@pytest.mark.parametrize("count, phrase", [(0, "track grid must be a whole number from 1 to 256"),
                                           (10 ** 6, "from 1 to 256"), (2.5, "whole number"),
                                           ("many", "whole number"), (math.nan, "whole number")])
def test_a_hostile_grid_size_is_refused_in_one_line(state, count, phrase):
    *_, key = example_run(state, steps=1)
    with pytest.raises(UserFacingError, match=phrase):
        reconstruct_tab.track_grid(state, key, count, DisplayChoices(), 0, SESSION)


def test_before_any_run_or_with_a_hostile_display_field_a_click_is_refused(state):
    with pytest.raises(UserFacingError, match="run a reconstruction first"):
        reconstruct_tab.track_point(state, None, [], [1, 1], DisplayChoices(), 0, SESSION)
    *_, key = example_run(state, steps=1)
    with pytest.raises(UserFacingError, match="player mode"):
        reconstruct_tab.track_point(state, key, [], [1, 1], DisplayChoices(player_mode="x"), 0, SESSION)
    with pytest.raises(UserFacingError, match="strip time step"):
        reconstruct_tab.track_point(state, key, [], [1, 1], DisplayChoices(), 7, SESSION)
    assert reconstruct_tab.clear_tracks(state, None, DisplayChoices(), 0, SESSION)[-1] == []


def test_a_run_whose_track_context_was_dropped_says_why_instead_of_running_again(state, tmp_path, aggregator_calls):
    state.runs = RunCache(context_runs=1)
    *_, key = example_run(state, steps=1)
    video = write_video(tmp_path / "other.mp4", frames=3, width=64, height=48)
    run(state, [str(video)], None, 1, 0.0, 1.0, "", "auto", DisplayChoices(), "other-session")
    status = reconstruct_tab.track_controls_after_run(state, key, SESSION)[1]
    assert "cannot be added without running the model again" in status
    with pytest.raises(UserFacingError, match="without running it again: its track features were dropped"):
        reconstruct_tab.track_point(state, key, [], [30, 30], DisplayChoices(), 0, SESSION)
    assert len(aggregator_calls) == 2, "no silent re-run"


def test_query_points_in_a_run_give_tracks_in_the_status_and_the_npz_and_a_plain_run_drops_them(state,
                                                                                                aggregator_calls):
    figure, _, downloads, status, key = example_run(state, query_points=[[50, 100], [300, 200]])
    assert tracks_trace_names(figure) == ["tracks (2)"]
    assert "Tracks: 2 query points followed through 2 x 3 frames (with this run)" in status
    downloads, _ = prepare_download(state, key, "npz", DisplayChoices(point_budget=3000), False, SESSION)
    archive = np.load(next(path for path in downloads if path.endswith("predictions.npz")))
    assert archive["track"].shape == (2, 3, 2, 2) and archive["track_world_points"].shape == (2, 3, 2, 3)
    _, _, points = reconstruct_tab.track_controls_after_run(state, key, SESSION)
    assert points == [[50.0, 100.0], [300.0, 200.0]]
    figure, _, _, status, _ = example_run(state, query_points=[[10, 100]])
    assert tracks_trace_names(figure) == ["tracks (1)"] and "track head only, from the kept context" in status
    figure, _, downloads, status, _ = example_run(state)
    assert tracks_trace_names(figure) == [] and "Tracks:" not in status
    downloads, _ = prepare_download(state, key, "npz", DisplayChoices(point_budget=3000), False, SESSION)
    assert "track" not in np.load(next(path for path in downloads if path.endswith("predictions.npz"))).files
    assert aggregator_calls == [1]


@pytest.mark.parametrize("query_points, phrase", [
    ("1,2", "must be a list of \\[x, y\\] pairs"),
    ({"x": 1}, "must be a list of \\[x, y\\] pairs"),
    ([[1, 2, 3]], "must be a pair of numbers"),
    ([[[1, 2]], {"a": 1}], "must be a pair of numbers"),
    ([["1", "2"]], "must be a pair of numbers"),
    ([[math.nan, 1]], "not finite"),
    ([[1, 1]] * 10_000, "10000 query points: at most 256"),
])
def test_hostile_query_points_are_refused_before_anything_runs(query_points, phrase):
    with pytest.raises(UserFacingError, match=phrase) as refused:
        reconstruct_tab.checked_query_points(query_points)
    assert "\n" not in str(refused.value) and len(str(refused.value)) < 200
    assert reconstruct_tab.checked_query_points(None) == reconstruct_tab.checked_query_points([]) == []


def test_query_points_outside_the_frame_are_refused_once_it_is_decoded(state):
    with pytest.raises(UserFacingError, match="query point 0 .* outside the 518x294 reference frame"):
        example_run(state, query_points=[[600, 10]], steps=1)
