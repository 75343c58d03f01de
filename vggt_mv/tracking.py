"""Tracks as data: checking query points, a grid of them, and tracked pixels unprojected to world points (numpy).

Pixels follow vggt_mv.geometry: (x, y) with pixel centres at integers, so a W x H frame spans [-0.5, W - 0.5) x
[-0.5, H - 0.5); the query points of a run are in pixels of the processed reference frame (t=0, n=0), as the model
sees it (after the pipeline's scaling, cropping and padding).
"""

from __future__ import annotations

import math
import numbers
import reprlib

import numpy as np

MAX_QUERY_POINTS = 256
# Neighbouring depths further apart than this (relative) straddle an occlusion edge: take the nearest pixel's depth.
DEPTH_EDGE_TOLERANCE = 0.05


class QueryPointError(ValueError):
    """Query points that cannot be tracked; the message says which one and why, in one line."""


def check_query_points(points, width: int, height: int, valid_mask: np.ndarray | None = None,
                       max_points: int = MAX_QUERY_POINTS) -> np.ndarray:
    """A hostile [[x, y], ...] (list, tuple or array) -> float32 [K, 2], refusing anything that cannot be tracked.

    Refused: not a list of pairs of plain numbers, none, more than `max_points`, NaN or infinity, outside the
    W x H frame, or (with `valid_mask` [H, W]) on the frame's padding.
    """
    if isinstance(points, np.ndarray):
        points = points.tolist()
    if not isinstance(points, (list, tuple)):
        raise QueryPointError(f"query points must be a list of [x, y] pairs, got {type(points).__name__}")
    if not points:
        raise QueryPointError("no query points: give at least one [x, y] pair or ask for a grid")
    if len(points) > max_points:
        raise QueryPointError(f"{len(points)} query points: at most {max_points} can be tracked at once")
    rows = []
    for index, point in enumerate(points):
        if (not isinstance(point, (list, tuple)) or len(point) != 2
                or not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in point)):
            raise QueryPointError(f"query point {index} must be a pair of numbers [x, y], got {shown(point)}")
        try:
            x, y = float(point[0]), float(point[1])
        except OverflowError:
            x = y = math.inf
        if not (math.isfinite(x) and math.isfinite(y)):
            raise QueryPointError(f"query point {index} is not finite: {shown(point)}")
        if not (-0.5 <= x < width - 0.5 and -0.5 <= y < height - 0.5):
            frame = f"the {width}x{height} reference frame" if math.isfinite(width) else "the reference frame"
            raise QueryPointError(f"query point {index} [{x:g}, {y:g}] lies outside {frame} (pixels of camera 0 at "
                                  "the first time step)")
        if valid_mask is not None and not valid_mask[nearest_index(y, height), nearest_index(x, width)]:
            raise QueryPointError(f"query point {index} [{x:g}, {y:g}] lies on the reference frame's padding")
        rows.append((x, y))
    return np.asarray(rows, dtype=np.float32)


def shown(value) -> str:
    """A short repr of a hostile value for a message (never fails, even on a 5000-digit integer)."""
    try:
        return reprlib.repr(value)
    except ValueError:
        return f"a {type(value).__name__} too large to show"


def nearest_index(coordinate: float, size: int) -> int:
    """The pixel whose centre is nearest to `coordinate` (clamped into the frame)."""
    return min(max(int(math.floor(coordinate + 0.5)), 0), size - 1)


def grid_query_points(valid_mask: np.ndarray, count: int) -> np.ndarray:
    """At most `count` query points [K, 2] on a regular grid over the valid (non-padding) pixels of [H, W].

    The grid has about square cells over the valid region's bounding box, points at cell centres, and keeps
    only points on valid pixels; its size is rows x cols <= count.
    """
    valid_mask = np.asarray(valid_mask, dtype=bool)
    if count < 1:
        raise QueryPointError(f"a grid needs at least one point, got {count}")
    count = min(int(count), MAX_QUERY_POINTS)
    rows_any, cols_any = np.flatnonzero(valid_mask.any(axis=1)), np.flatnonzero(valid_mask.any(axis=0))
    if rows_any.size == 0:
        raise QueryPointError("the reference frame has no valid pixels to put a grid on")
    top, bottom, left, right = rows_any[0], rows_any[-1] + 1, cols_any[0], cols_any[-1] + 1
    width, height = right - left, bottom - top
    cols = min(count, max(1, round(math.sqrt(count * width / height))))
    rows = max(1, count // cols)
    xs = left - 0.5 + (np.arange(cols) + 0.5) * width / cols
    ys = top - 0.5 + (np.arange(rows) + 0.5) * height / rows
    grid = np.stack(np.meshgrid(xs, ys, indexing="xy"), axis=-1).reshape(-1, 2)
    keep = valid_mask[np.floor(grid[:, 1] + 0.5).astype(int), np.floor(grid[:, 0] + 0.5).astype(int)]
    return grid[keep].astype(np.float32)


def sample_depth(depth: np.ndarray, pixels: np.ndarray, valid_mask: np.ndarray | None = None,
                 edge_tolerance: float = DEPTH_EDGE_TOLERANCE) -> np.ndarray:
    """depth [H, W] at pixels [..., 2] -> [...]: bilinear on smooth surfaces, nearest across an edge, else NaN.

    Bilinear follows a point smoothly between pixel centres (no half-pixel jumps in a polyline); where the four
    neighbours differ by more than `edge_tolerance` (relative) the pixel straddles an occlusion edge, and a
    bilinear mix would put the point in mid-air between foreground and background, so the nearest pixel's depth
    is used. NaN outside the frame, and where the depth used is not finite and positive or lies on padding.
    """
    height, width = depth.shape
    usable = np.isfinite(depth) & (depth > 0)
    if valid_mask is not None:
        usable &= valid_mask
    x, y = pixels[..., 0].astype(np.float64), pixels[..., 1].astype(np.float64)
    inside = np.isfinite(x) & np.isfinite(y) & (x >= -0.5) & (x < width - 0.5) & (y >= -0.5) & (y < height - 0.5)
    x, y = np.where(inside, np.clip(x, 0, width - 1), 0), np.where(inside, np.clip(y, 0, height - 1), 0)
    x0, y0 = np.floor(x).astype(int), np.floor(y).astype(int)
    x1, y1 = np.minimum(x0 + 1, width - 1), np.minimum(y0 + 1, height - 1)
    fx, fy = x - x0, y - y0
    corners = [(y0, x0, (1 - fx) * (1 - fy)), (y0, x1, fx * (1 - fy)), (y1, x0, (1 - fx) * fy), (y1, x1, fx * fy)]
    values = np.stack([depth[r, c] for r, c, _ in corners]).astype(np.float64)
    weights = np.stack([w for _, _, w in corners])
    all_usable = np.stack([usable[r, c] for r, c, _ in corners]).all(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        smooth = all_usable & (values.max(axis=0) <= values.min(axis=0) * (1 + edge_tolerance))
        bilinear = (values * weights).sum(axis=0)
    near_r, near_c = np.floor(y + 0.5).astype(int), np.floor(x + 0.5).astype(int)
    nearest = np.where(usable[near_r, near_c], depth[near_r, near_c], np.nan)
    return np.where(inside, np.where(smooth, bilinear, nearest), np.nan)


def unproject_pixels(pixels: np.ndarray, depth: np.ndarray, extrinsic: np.ndarray,
                     intrinsic: np.ndarray) -> np.ndarray:
    """pixels [..., K, 2] with depths [..., K], world-to-camera [..., 3, 4], intrinsic [..., 3, 3] -> world [..., K, 3]."""
    fx, fy = intrinsic[..., 0, 0, None], intrinsic[..., 1, 1, None]
    cx, cy = intrinsic[..., 0, 2, None], intrinsic[..., 1, 2, None]
    camera = np.stack([(pixels[..., 0] - cx) * depth / fx, (pixels[..., 1] - cy) * depth / fy, depth], axis=-1)
    rotation, translation = extrinsic[..., :3, :3], extrinsic[..., :3, 3]
    # world = R^T (camera - t), as row vectors: (camera - t) @ R
    return np.einsum("...kj,...ji->...ki", camera - translation[..., None, :], rotation)


def unproject_tracks(track: np.ndarray, depth: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray,
                     valid_mask: np.ndarray | None = None,
                     edge_tolerance: float = DEPTH_EDGE_TOLERANCE) -> np.ndarray:
    """Tracked pixels [T, N, K, 2] -> world points [T, N, K, 3], each with its own frame's depth and camera.

    depth [T, N, H, W] or [T, N, H, W, 1]; extrinsic [T, N, 3, 4] world-to-camera (OpenCV); intrinsic [T, N, 3, 3];
    valid_mask [T, N, H, W]. NaN where the pixel has no usable depth (outside the frame, on padding).
    """
    steps, cameras = track.shape[:2]

    def frame_depth(t: int, n: int) -> np.ndarray:
        # one frame at a time: a long run's depth is stored on disk (vggt_mv.io.prediction_store)
        return depth[t, n][..., 0] if depth.ndim == 5 else depth[t, n]

    sampled = np.stack([np.stack([
        sample_depth(frame_depth(t, n), track[t, n], None if valid_mask is None else valid_mask[t, n], edge_tolerance)
        for n in range(cameras)]) for t in range(steps)])
    return unproject_pixels(track.astype(np.float64), sampled, extrinsic.astype(np.float64),
                            intrinsic.astype(np.float64)).astype(np.float32)
