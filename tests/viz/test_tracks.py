"""Track drawing data: polylines per (track, camera) growing with time, and faded dots on strip images; and the
tracks as the app shows them: a scene layer, marks on the strip and on the reference frame."""

import numpy as np
import plotly.graph_objects as go
import pytest

from tests.support.predictions import fake_predictions
from vggt_mv.viz.cameras import to_display
from vggt_mv.viz.previews import camera_rows, reference_frame
from vggt_mv.viz.scene import SceneOptions, build_scene
from vggt_mv.viz.tracks import (MIN_MARK_ALPHA, TRACK_KEYS, TrackPolylines, draw_track_marks, mark_frame, track_colors,
                                track_polylines)

STEPS, CAMERAS, COUNT = 4, 2, 3


def world_points() -> np.ndarray:
    """[T, N, K, 3] with values that say where they are: t, n, k in the digits."""
    t, n, k = np.meshgrid(np.arange(STEPS), np.arange(CAMERAS), np.arange(COUNT), indexing="ij")
    return np.stack([t, n, k], axis=-1).astype(np.float32) + np.float32(0.5)


def polylines_as_lists(lines: TrackPolylines) -> list[np.ndarray]:
    """Split the NaN-separated vertex list back into its polylines."""
    breaks = np.flatnonzero(lines.track == -1)
    return [part[:-1] for part in np.split(lines.xyz, breaks + 1) if len(part)]


def test_one_polyline_per_track_and_camera_up_to_the_time_step():
    points = world_points()
    lines = track_polylines(points, up_to=2)
    assert len(lines.xyz) == COUNT * CAMERAS * (3 + 1), "three vertices and a separator per (track, camera)"
    assert np.isnan(lines.xyz[lines.track == -1]).all() and not np.isnan(lines.xyz[lines.track >= 0]).any()
    drawn = lines.track >= 0
    np.testing.assert_array_equal(lines.xyz[drawn], points[lines.time_step[drawn], lines.camera[drawn],
                                                           lines.track[drawn]])
    for (k, n) in [(0, 0), (2, 1)]:
        vertices = lines.xyz[(lines.track == k) & (lines.camera == n)]
        np.testing.assert_array_equal(vertices, points[:3, n, k])


def test_polylines_grow_with_time_and_stop_at_the_last_step():
    points = world_points()
    sizes = [len(track_polylines(points, up_to=t).xyz) for t in range(STEPS + 2)]
    assert sizes == [COUNT * CAMERAS * (min(t, STEPS - 1) + 2) for t in range(STEPS + 2)]
    earlier, later = polylines_as_lists(track_polylines(points, 1)), polylines_as_lists(track_polylines(points, 3))
    assert len(earlier) == len(later) == COUNT * CAMERAS
    for before, after in zip(earlier, later):
        assert (len(before), len(after)) == (2, 4)
        np.testing.assert_array_equal(after[:2], before)


def test_hidden_or_unknown_points_break_the_line_instead_of_jumping():
    points = world_points()
    visibility = np.ones((STEPS, CAMERAS, COUNT))
    visibility[1, 0, 0] = 0.2
    points[2, 1, 2] = np.nan
    lines = track_polylines(points, up_to=3, visibility=visibility)
    first = lines.xyz[(lines.track == 0) & (lines.camera == 0)]
    assert np.isnan(first[1]).all() and np.isfinite(first[[0, 2, 3]]).all()
    assert np.isnan(lines.xyz[(lines.track == 2) & (lines.camera == 1)][2]).all()


def test_the_reference_camera_alone_gives_one_polyline_per_track():
    lines = track_polylines(world_points(), up_to=3, cameras=[0])
    assert set(lines.camera[lines.camera >= 0]) == {0} and len(polylines_as_lists(lines)) == COUNT


def test_one_scatter3d_trace_holds_every_track():
    lines = track_polylines(world_points(), up_to=3)
    trace = go.Scatter3d(x=lines.xyz[:, 0], y=lines.xyz[:, 1], z=lines.xyz[:, 2], mode="lines",
                         line=dict(color=lines.vertex_colors(), width=4), connectgaps=False)
    figure = go.Figure([trace])
    assert len(figure.data) == 1 and len(figure.data[0].line.color) == len(lines.xyz)


def test_a_visible_track_is_a_solid_dot_and_a_hidden_one_is_faded():
    image = np.full((20, 30, 3), 100, dtype=np.uint8)
    colors = np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8)
    marked = draw_track_marks(image, np.array([[10.0, 5.0], [20.0, 12.0]]), np.array([1.0, 0.0]), colors)
    assert (image == 100).all(), "the input is not drawn on"
    np.testing.assert_array_equal(marked[5, 10], [255, 0, 0])
    faded = 100 * (1 - MIN_MARK_ALPHA) + np.array([0, 0, 255]) * MIN_MARK_ALPHA
    np.testing.assert_allclose(marked[12, 20], faded, atol=1)
    assert (marked[0, 0] == 100).all() and (marked[5, 16] == 100).all(), "dots stay small"


def test_unknown_or_outside_pixels_draw_nothing_and_float_images_are_accepted():
    image = np.full((10, 10, 3), 0.5, dtype=np.float32)
    marked = draw_track_marks(image, np.array([[np.nan, 2.0], [50.0, 50.0], [-20.0, 3.0]]))
    assert marked.dtype == np.uint8 and (marked == 128).all()
    edge = draw_track_marks(image, np.array([[0.0, 9.0]]))
    assert (edge[9, 0] == track_colors(1)[0]).all()


def test_mark_frame_uses_that_frames_pixels_and_visibility():
    predictions = {"track": np.zeros((2, 2, 1, 2), dtype=np.float32), "vis": np.ones((2, 2, 1), dtype=np.float32)}
    predictions["track"][1, 1, 0] = [7.0, 3.0]
    predictions["vis"][1, 1, 0] = 0.0
    image = np.zeros((8, 12, 3), dtype=np.uint8)
    marked = mark_frame(image, predictions, time_step=1, camera=1)
    assert marked[3, 7].max() == round(track_colors(1)[0].max() * MIN_MARK_ALPHA) and marked[0, 0].max() == 0
    assert (mark_frame(image, {}, 0, 0) == image).all()


# In the scene, the strip and the reference frame: what a user of the app sees of the tracks.

def tracked_predictions(steps: int = 3, cameras: int = 2, count: int = 2) -> dict:
    """fake_predictions with `count` tracks that drift right by 2 px a step; track k sits in row 5 + 10 k."""
    predictions = fake_predictions(steps=steps, cameras=cameras)
    t = np.arange(steps)[:, None, None]
    x = np.broadcast_to(8.0 + 2.0 * t, (steps, cameras, count))
    y = np.broadcast_to(5.0 + 10.0 * np.arange(count)[None, None, :], (steps, cameras, count))
    track = np.stack([x, y], axis=-1).astype(np.float32)
    world = np.stack([x, y, np.full_like(x, 3.0)], axis=-1).astype(np.float32)
    predictions.update(query_points=track[0, 0].copy(), track=track, vis=np.ones((steps, cameras, count), np.float32),
                       conf=np.ones((steps, cameras, count), np.float32), track_world_points=world)
    return predictions


def tracks_trace(figure):
    """The scene's one tracks trace and its index."""
    (index,) = [i for i, trace in enumerate(figure.data) if (trace.name or "").startswith("tracks")]
    return index, figure.data[index]


def vertices(update) -> np.ndarray:
    """[M, 3] of a trace or frame update (None gaps as NaN)."""
    return np.array([update.x, update.y, update.z], dtype=np.float64).T


@pytest.mark.parametrize("mode", ["step", "trail"])
def test_the_scene_draws_tracks_that_grow_with_the_player(mode):
    predictions = tracked_predictions(steps=3, cameras=2, count=2)
    figure = build_scene(predictions, SceneOptions(point_budget=100, player_mode=mode))
    index, trace = tracks_trace(figure)
    assert trace.name == "tracks (2)" and trace.showlegend is not False and "lines" in trace.mode
    for step, frame in enumerate(figure.frames):
        (update,) = [u for i, u in zip(frame.traces, frame.data) if i == index]
        drawn = vertices(update)
        drawn = drawn[np.isfinite(drawn).all(axis=1)]
        assert len(drawn) == 2 * 2 * (step + 1), "one vertex per track, camera and step so far"
        expected = to_display(predictions["track_world_points"][:step + 1].reshape(-1, 3))
        np.testing.assert_allclose(np.unique(drawn.round(4), axis=0), np.unique(expected.round(4), axis=0))
        assert isinstance(update.x, tuple) and isinstance(update.line.color, tuple), "plain lists, not typed arrays"
        assert len(update.line.color) == len(update.x)
    last = figure.frames[-1].data[-1]
    rows = vertices(last)[:, 2]  # display z is -y: the track's image row here
    by_track = {round(float(row), 3): {c for r, c in zip(rows, last.line.color) if r == row}
                for row in rows if np.isfinite(row)}
    assert len(by_track) == 2 and all(len(c) == 1 for c in by_track.values())
    assert len(set.union(*by_track.values())) == 2, "each track has its own colour"


def test_all_steps_mode_draws_whole_tracks_and_no_tracks_means_no_trace():
    figure = build_scene(tracked_predictions(steps=3), SceneOptions(point_budget=100, player_mode="all"))
    _, trace = tracks_trace(figure)
    assert np.isfinite(vertices(trace)).all(axis=1).sum() == 3 * 2 * 2
    plain = build_scene(fake_predictions(steps=3), SceneOptions(point_budget=100))
    assert not any((t.name or "").startswith("tracks") for t in plain.data)


def test_the_strip_marks_each_track_on_every_cameras_input_at_the_strips_step_faded_where_hidden():
    predictions = tracked_predictions(steps=3, cameras=2, count=2)
    predictions["vis"][2, 1, 1] = 0.0
    plain = camera_rows({k: v for k, v in predictions.items() if k not in TRACK_KEYS}, time_step=2)
    marked = camera_rows(predictions, time_step=2)
    colors = track_colors(2)
    width = predictions["images"].shape[-1]
    for camera in range(2):
        np.testing.assert_array_equal(marked[camera][5, 12], colors[0])  # track 0: x = 8 + 2 * 2 at step 2
        assert (marked[camera][:, width:] == plain[camera][:, width:]).all(), "only the input panel is marked"
    hidden = marked[1][15, 12].astype(float)
    assert np.abs(hidden - colors[1]).max() > 50, "a hidden track's dot is faded"
    np.testing.assert_array_equal(marked[0][15, 12], colors[1])


def test_the_reference_frame_is_camera_0s_first_frame_at_model_size_with_padding_and_tracks():
    predictions = fake_predictions(steps=2, cameras=2, padded_rows=3)
    image = reference_frame(predictions)
    height, width = predictions["images"].shape[-2:]
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert (image[0] != np.round(predictions["images"][0, 0, :, 0].T * 255)).any(), "padding is striped"
    np.testing.assert_array_equal(image[10, 10], (predictions["images"][0, 0, :, 10, 10] * 255).astype(np.uint8))
    predictions.update({key: value for key, value in tracked_predictions(2, 2, 1).items() if key in TRACK_KEYS})
    np.testing.assert_array_equal(reference_frame(predictions)[5, 8], track_colors(1)[0])


def test_a_halo_rings_each_dot_in_white_as_faded_as_the_dot():
    image = np.zeros((30, 30, 3), dtype=np.uint8)
    marked = draw_track_marks(image, np.array([[10.0, 10.0], [20.0, 20.0]]), np.array([1.0, 0.0]),
                              np.array([[255, 0, 0], [0, 0, 255]], dtype=np.uint8), radius=3, halo=2)
    np.testing.assert_array_equal(marked[10, 10], [255, 0, 0])
    np.testing.assert_array_equal(marked[10, 14], [255, 255, 255])  # a white ring just outside the dot
    assert marked[20, 24].max() == round(255 * MIN_MARK_ALPHA) and marked[10, 18].max() == 0
