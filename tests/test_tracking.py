"""Query points are checked, grids stay off padding, and tracked pixels unproject to the right world points."""

import numpy as np
import pytest
import torch

from vggt_mv.geometry import unproject_depth_map_to_point_map
from vggt_mv.tracking import (MAX_QUERY_POINTS, QueryPointError, check_query_points, grid_query_points, sample_depth,
                              unproject_tracks)

WIDTH, HEIGHT = 40, 30


def look_at(center: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera [3, 4] (OpenCV: x right, y down, z forward) of a camera at `center` looking at `target`."""
    forward = (target - center) / np.linalg.norm(target - center)
    right = np.cross(forward, [0.0, -1.0, 0.0])
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return np.hstack([rotation, -(rotation @ center)[:, None]])


def project(points: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [K, 3] -> pixels [K, 2] and depths [K]."""
    camera = points @ extrinsic[:, :3].T + extrinsic[:, 3]
    pixels = camera @ intrinsic.T
    return pixels[:, :2] / pixels[:, 2:], camera[:, 2]


def billboard_scene(steps: int = 3, cameras: int = 2):
    """K world points moving over time, seen by N moving cameras; each point sits on a small patch facing the camera,
    so the depth at and around its (sub-pixel) projection is exactly its depth; the background is far away."""
    points = np.array([[0.0, 0.0, 0.0], [0.6, -0.3, 0.4], [-0.5, 0.4, -0.3]])
    world = np.stack([points + t * np.array([0.1, 0.05, -0.05]) for t in range(steps)])      # [T, K, 3]
    extrinsic = np.zeros((steps, cameras, 3, 4))
    intrinsic = np.zeros((steps, cameras, 3, 3))
    depth = np.full((steps, cameras, HEIGHT, WIDTH), 50.0)
    track = np.zeros((steps, cameras, len(points), 2))
    for t in range(steps):
        for n in range(cameras):
            angle = 0.5 * n + 0.1 * t
            center = np.array([4 * np.sin(angle), -0.5 + 0.2 * n, -4 * np.cos(angle)])
            extrinsic[t, n] = look_at(center, np.array([0.0, 0.0, 0.0]))
            focal = 30.0 + 3 * n
            intrinsic[t, n] = [[focal, 0, WIDTH / 2], [0, focal * 1.05, HEIGHT / 2], [0, 0, 1]]
            pixels, depths = project(world[t], extrinsic[t, n], intrinsic[t, n])
            track[t, n] = pixels
            for (x, y), z in zip(pixels, depths):
                depth[t, n, int(np.floor(y)):int(np.floor(y)) + 2, int(np.floor(x)):int(np.floor(x)) + 2] = z
    return world, track, depth, extrinsic, intrinsic


def test_tracked_pixels_unproject_to_the_known_world_points():
    world, track, depth, extrinsic, intrinsic = billboard_scene()
    assert not np.allclose(track % 1, 0), "sub-pixel positions, not just pixel centres"
    unprojected = unproject_tracks(track, depth[..., None], extrinsic, intrinsic)
    expected = np.broadcast_to(world[:, None], unprojected.shape)
    np.testing.assert_allclose(unprojected, expected, atol=1e-4)


def test_at_pixel_centres_tracks_agree_with_the_dense_point_map():
    rng = np.random.default_rng(0)
    _, _, _, extrinsic, intrinsic = billboard_scene(steps=1, cameras=2)
    depth = rng.uniform(2.0, 2.05, size=(1, 2, HEIGHT, WIDTH))   # smooth enough for bilinear everywhere
    pixels = np.stack(np.meshgrid(np.arange(WIDTH), np.arange(HEIGHT), indexing="xy"), -1).reshape(-1, 2)
    track = np.broadcast_to(pixels, (1, 2, len(pixels), 2)).astype(np.float64)
    dense = unproject_depth_map_to_point_map(torch.from_numpy(depth), torch.from_numpy(extrinsic),
                                             torch.from_numpy(intrinsic)).numpy().reshape(1, 2, -1, 3)
    np.testing.assert_allclose(unproject_tracks(track, depth, extrinsic, intrinsic), dense, atol=1e-5)


def test_depth_is_bilinear_on_a_smooth_surface_and_nearest_across_an_edge():
    ramp = np.tile(2.0 + 0.01 * np.arange(WIDTH), (HEIGHT, 1))
    assert sample_depth(ramp, np.array([9.5, 4.25])) == pytest.approx(2.095)
    step = np.where(np.arange(WIDTH) < 10, 1.0, 5.0) * np.ones((HEIGHT, 1))
    near_foreground, near_background = sample_depth(step, np.array([[9.4, 3.0], [9.6, 3.0]]))
    assert (near_foreground, near_background) == (1.0, 5.0), "never a point in mid-air between the two surfaces"


def test_pixels_without_usable_depth_become_nan_gaps():
    depth = np.ones((HEIGHT, WIDTH))
    depth[:, :5] = np.nan
    valid = np.ones((HEIGHT, WIDTH), dtype=bool)
    valid[:3] = False
    pixels = np.array([[-3.0, 4.0], [WIDTH - 0.4, 4.0], [1.0, 10.0], [20.0, 1.0], [np.nan, 2.0], [20.0, 10.0]])
    sampled = sample_depth(depth, pixels, valid)
    assert np.isnan(sampled[:5]).all() and sampled[5] == 1.0


def test_query_points_are_read_from_lists_tuples_and_arrays():
    expected = np.array([[0.0, 0.0], [39.25, 29.0]], dtype=np.float32)
    for points in ([[0, 0], [39.25, 29]], ((0.0, 0.0), (39.25, 29.0)), expected.astype(np.float64)):
        np.testing.assert_array_equal(check_query_points(points, WIDTH, HEIGHT), expected)


@pytest.mark.parametrize("points, message", [
    ([], "no query points"),
    ("10,20", "must be a list"),
    ({"x": 1, "y": 2}, "must be a list"),
    (None, "must be a list"),
    ([[1, 2, 3]], "query point 0 must be a pair"),
    ([[1, 2], [3]], "query point 1 must be a pair"),
    ([["1", "2"]], "query point 0 must be a pair"),
    ([[True, 2]], "query point 0 must be a pair"),
    ([[None, 2]], "query point 0 must be a pair"),
    ([5, 6], "query point 0 must be a pair"),
    ([[float("nan"), 2]], "query point 0 is not finite"),
    ([[1, 2], [float("inf"), 2]], "query point 1 is not finite"),
    ([[10 ** 400, 2]], "query point 0 is not finite"),
    ([[10 ** 5000, 2]], "query point 0 is not finite"),
    ([[10 ** 5000, 2, 3]], "query point 0 must be a pair"),
    ([["x" * 10 ** 6, 2]], "query point 0 must be a pair"),
    ([[40, 2]], "outside the 40x30 reference frame"),
    ([[-1, 2]], "outside the 40x30 reference frame"),
    ([[3, 29.6]], "outside the 40x30 reference frame"),
    ([[1.0, 1.0]] * (MAX_QUERY_POINTS + 1), f"at most {MAX_QUERY_POINTS}"),
])
def test_hostile_query_points_get_one_clear_message(points, message):
    with pytest.raises(QueryPointError, match=message):
        check_query_points(points, WIDTH, HEIGHT)


def test_a_query_point_on_padding_is_refused():
    valid = np.zeros((HEIGHT, WIDTH), dtype=bool)
    valid[5:25] = True
    check_query_points([[3, 5]], WIDTH, HEIGHT, valid)
    with pytest.raises(QueryPointError, match="padding"):
        check_query_points([[3, 4.4]], WIDTH, HEIGHT, valid)


def test_a_grid_covers_only_the_valid_region_with_at_most_k_points():
    valid = np.zeros((HEIGHT, WIDTH), dtype=bool)
    valid[6:24] = True    # padded top and bottom, as a short camera among tall ones
    for count in (1, 4, 16, 17, 100):
        grid = grid_query_points(valid, count)
        assert 0 < len(grid) <= count
        check_query_points(grid, WIDTH, HEIGHT, valid)
    grid = grid_query_points(valid, 16)
    assert grid[:, 1].min() > 6 and grid[:, 1].max() < 23
    assert grid[:, 0].min() < 8 and grid[:, 0].max() > 31, "spread over the whole width"
    assert len(grid_query_points(valid, 10 ** 6)) <= MAX_QUERY_POINTS
    with pytest.raises(QueryPointError):
        grid_query_points(valid, 0)
    with pytest.raises(QueryPointError, match="no valid pixels"):
        grid_query_points(np.zeros_like(valid), 4)
