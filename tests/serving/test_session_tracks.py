"""Two browser sessions on the same cached run: one session's tracks never show up in the other's scene, strip,
reference frame or downloads, and nothing one session does to its tracks changes the other's."""

import numpy as np

from vggt_mv.io.examples import list_examples
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.downloads import prepare_download
from vggt_mv.serving.reconstruct_tab import DisplayChoices, run
from vggt_mv.serving.session_tracks import SessionTracks
from vggt_mv.viz.tracks import TRACK_KEYS

A, B = "session-a", "session-b"
DISPLAY = DisplayChoices(point_budget=3000)


def example_run(state, session: str, query_points=None):
    """The bundled example at T=2 for one session: (figure, strip, downloads, status, key)."""
    return run(state, None, list_examples()[0].name, 2, 0.0, 1.0, "", "auto", DISPLAY, session,
               query_points=query_points)


def track_names(figure) -> list[str]:
    """The scene's tracks traces."""
    return [trace.name for trace in figure.data if (trace.name or "").startswith("tracks")]


def assert_untracked(state, key: str, session: str, plain_reference: np.ndarray, plain_strip) -> None:
    """What `session` sees of run `key` has no tracks anywhere."""
    assert track_names(reconstruct_tab.redraw(state, key, DISPLAY, session)) == []
    strip = reconstruct_tab.redraw_strip(state, key, 1, session)
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(strip, plain_strip)), "no marks on the strip"
    reference, status, points = reconstruct_tab.track_controls_after_run(state, key, session)
    assert points == [] and "Click the reference frame" in status
    np.testing.assert_array_equal(reference, plain_reference)


def test_one_sessions_clicks_never_show_in_another_sessions_redraw_strip_reference_or_npz(state):
    *_, key = example_run(state, B)
    plain_reference = reconstruct_tab.track_controls_after_run(state, key, B)[0]
    plain_strip = reconstruct_tab.redraw_strip(state, key, 1, B)
    _, _, _, key_a = example_run(state, A)[1:]
    assert key_a == key, "same videos and settings: both sessions share one cached run"
    figure, _, reference, _, downloads, points = reconstruct_tab.track_point(state, key, [], [100, 150], DISPLAY, 1, A)
    assert track_names(figure) == ["tracks (1)"] and points == [[100.0, 150.0]]
    assert not np.array_equal(reference, plain_reference)
    assert_untracked(state, key, B, plain_reference, plain_strip)
    assert not set(TRACK_KEYS) & set(state.runs.get(key).predictions)
    _, _, b_downloads, b_status, _ = example_run(state, B)
    assert "Tracks:" not in b_status and b_downloads == []
    b_downloads, _ = prepare_download(state, key, "npz", DISPLAY, False, B)
    npz = next(path for path in b_downloads if path.endswith("predictions.npz"))
    assert not set(TRACK_KEYS) & set(np.load(npz).files)
    assert track_names(reconstruct_tab.redraw(state, key, DISPLAY, A)) == ["tracks (1)"], "A still sees its own"


def test_another_session_clearing_or_running_without_points_leaves_the_first_sessions_tracks(state):
    *_, key = example_run(state, A)
    example_run(state, B)
    *_, points_a = reconstruct_tab.track_grid(state, key, 6, DISPLAY, 0, A)
    reconstruct_tab.track_point(state, key, [], [30, 40], DISPLAY, 0, B)
    reconstruct_tab.clear_tracks(state, key, DISPLAY, 0, B)
    example_run(state, B)
    assert track_names(reconstruct_tab.redraw(state, key, DISPLAY, B)) == []
    assert track_names(reconstruct_tab.redraw(state, key, DISPLAY, A)) == [f"tracks ({len(points_a)})"]
    assert reconstruct_tab.track_controls_after_run(state, key, A)[2] == points_a
    _, _, _, status, _ = example_run(state, B, query_points=[[10, 100]])
    assert "Tracks: 1 query point" in status
    assert reconstruct_tab.track_controls_after_run(state, key, B)[2] == [[10.0, 100.0]]
    assert reconstruct_tab.track_controls_after_run(state, key, A)[2] == points_a, "B's points did not replace A's"


def test_a_sessions_own_run_without_points_or_clear_drops_only_its_tracks(state):
    *_, key = example_run(state, A, query_points=[[50, 100]])
    assert reconstruct_tab.track_controls_after_run(state, key, A)[2] == [[50.0, 100.0]]
    example_run(state, A)
    assert reconstruct_tab.track_controls_after_run(state, key, A)[2] == []
    reconstruct_tab.track_point(state, key, [], [60, 60], DISPLAY, 0, A)
    reconstruct_tab.clear_tracks(state, key, DISPLAY, 0, A)
    assert reconstruct_tab.track_controls_after_run(state, key, A)[2] == []


def test_a_session_ending_forgets_its_tracks_and_a_hostile_session_id_is_only_used_as_a_digest(state):
    *_, key = example_run(state, A)
    hostile = "../x"
    reconstruct_tab.track_point(state, key, [], [20, 20], DISPLAY, 0, A)
    reconstruct_tab.track_point(state, key, [], [40, 40], DISPLAY, 0, hostile)
    kept = state.session_tracks.sessions()
    assert kept == [reconstruct_tab.session_folder_name(A), reconstruct_tab.session_folder_name(hostile)]
    assert all(len(name) == 32 and set(name) <= set("0123456789abcdef") for name in kept)
    reconstruct_tab.remove_session_folder(state, A)
    assert state.session_tracks.sessions() == [reconstruct_tab.session_folder_name(hostile)]
    assert reconstruct_tab.track_controls_after_run(state, key, A)[2] == []
    assert reconstruct_tab.track_controls_after_run(state, key, hostile)[2] == [[40.0, 40.0]]
    reconstruct_tab.remove_session_folder(state, hostile)
    assert state.session_tracks.sessions() == []


def test_sessions_tracks_are_bounded_oldest_first_and_only_shown_on_their_run():
    tracks = SessionTracks(limit=3)
    arrays = {"track": np.zeros((1, 1, 1, 2), np.float32)}
    for n in range(5):
        tracks.put(f"s{n}", "run-1", arrays)
    assert tracks.sessions() == ["s2", "s3", "s4"]
    assert tracks.get("s2", "run-1") is not arrays and "track" in tracks.get("s2", "run-1")
    tracks.put("s5", "run-1", arrays)
    assert tracks.sessions() == ["s4", "s2", "s5"], "reading s2 made it recent, so s3 went"
    assert tracks.get("s5", "run-2") == {} and tracks.get("nobody", "run-1") == {}
    tracks.put("s5", "run-1", {})
    assert tracks.sessions() == ["s4", "s2"]


def test_the_tabs_overlay_keeps_at_most_its_limit_of_sessions(state):
    state.session_tracks = SessionTracks(limit=2)
    *_, key = example_run(state, A)
    for n in range(4):
        reconstruct_tab.track_point(state, key, [], [10 + n, 10], DISPLAY, 0, f"visitor-{n}")
    assert len(state.session_tracks.sessions()) == 2
    assert reconstruct_tab.track_controls_after_run(state, key, "visitor-0")[2] == []
    assert reconstruct_tab.track_controls_after_run(state, key, "visitor-3")[2] == [[13.0, 10.0]]
