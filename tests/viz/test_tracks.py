"""Track drawing data: polylines per (track, camera) growing with time, and faded dots on strip images."""

import numpy as np
import plotly.graph_objects as go

from vggt_mv.viz.tracks import (MIN_MARK_ALPHA, TrackPolylines, draw_track_marks, mark_frame, track_colors,
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
