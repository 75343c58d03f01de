"""Drawing tracks, as data (numpy): 3D polylines that grow with time for the player, dots on the strip images.

A track passes through all T x N frames, so at each time step it has one world point per camera (its pixel in
that camera unprojected with that frame's depth and camera, vggt_mv.tracking.unproject_tracks). The player draws one
polyline per (track, camera) over time: the cameras' polylines of one track coincide when the model is consistent,
and where they part the model disagrees with itself, which is what a researcher needs to see (averaging the cameras
would hide it). `cameras=[0]` gives one polyline per track (the reference camera's view).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
from plotly.colors import qualitative

TRACK_PALETTE = tuple(qualitative.Dark24)
# What a run's predictions hold once points are tracked (vggt_mv.pipeline.track_arrays), all or none of them.
TRACK_KEYS = ("query_points", "track", "vis", "conf", "track_world_points")
# Below this visibility the tracked pixel shows an occluder, not the tracked point, so its depth is not the point's.
MIN_VISIBILITY = 0.5
MARK_RADIUS = 3.0
# In the app's strip (four 518-wide panels shown a third that size) and reference frame a dot needs to be larger,
# and a white ring keeps a dark track visible on a dark surface.
STRIP_MARK_RADIUS = 6.0
HALO_WIDTH = 1.5
MIN_MARK_ALPHA = 0.2


def track_colors(count: int) -> np.ndarray:
    """uint8 [K, 3]: one distinct colour per track (cycling through TRACK_PALETTE)."""
    hexes = [TRACK_PALETTE[k % len(TRACK_PALETTE)] for k in range(count)]
    return np.array([[int(h[i:i + 2], 16) for i in (1, 3, 5)] for h in hexes], dtype=np.uint8).reshape(count, 3)


@dataclass(frozen=True)
class TrackPolylines:
    """Every polyline in one vertex list, NaN rows between them, so one Plotly Scatter3d trace draws them all.

    xyz [M, 3]; track, camera and time_step [M] say which track / camera / step each vertex is (-1 on separators).
    """

    xyz: np.ndarray
    track: np.ndarray
    camera: np.ndarray
    time_step: np.ndarray

    def vertex_colors(self, palette: Sequence[str] = TRACK_PALETTE) -> list[str]:
        """A colour per vertex by track (separators get the first colour; they are not drawn)."""
        return [palette[max(k, 0) % len(palette)] for k in self.track.tolist()]


def track_polylines(world_points: np.ndarray, up_to: int, visibility: np.ndarray | None = None,
                    min_visibility: float = MIN_VISIBILITY, cameras: Sequence[int] | None = None) -> TrackPolylines:
    """world_points [T, N, K, 3] -> one polyline per (track, camera) over time steps 0..up_to.

    A vertex whose point is not finite, or whose visibility is below `min_visibility`, becomes a gap, so a track
    that is hidden for a while shows as a broken line rather than a jump through the occluder.
    """
    steps, all_cameras, count = world_points.shape[:3]
    up_to = min(max(int(up_to), 0), steps - 1)
    chosen = list(range(all_cameras)) if cameras is None else [int(c) for c in cameras]
    points = world_points[:up_to + 1][:, chosen].astype(np.float32)                 # [t, n, K, 3]
    hidden = ~np.isfinite(points).all(axis=-1)
    if visibility is not None:
        hidden |= visibility[:up_to + 1][:, chosen] < min_visibility
    points = np.where(hidden[..., None], np.nan, points).transpose(2, 1, 0, 3)      # [K, n, t, 3]
    shape = points.shape[:3]
    separator = np.full(shape[:2] + (1, 3), np.nan, dtype=np.float32)
    xyz = np.concatenate([points, separator], axis=2).reshape(-1, 3)

    def label(values: np.ndarray) -> np.ndarray:
        """Per-vertex ids laid out like xyz, -1 on the separators."""
        grid = np.broadcast_to(values, shape)
        return np.concatenate([grid, np.full(shape[:2] + (1,), -1)], axis=2).reshape(-1)

    return TrackPolylines(xyz, label(np.arange(count)[:, None, None]), label(np.array(chosen)[None, :, None]),
                          label(np.arange(up_to + 1)[None, None, :]))


def draw_track_marks(image: np.ndarray, pixels: np.ndarray, visibility: np.ndarray | None = None,
                     colors: np.ndarray | None = None, radius: float = MARK_RADIUS,
                     min_alpha: float = MIN_MARK_ALPHA, halo: float = 0.0) -> np.ndarray:
    """A copy of image [H, W, 3] (uint8, or float in [0, 1]) as uint8 with a dot per track at pixels [K, 2].

    Each dot is anti-aliased, in its track's colour, and as opaque as the track's visibility there (never below
    `min_alpha`, so a hidden track stays findable); pixels that are not finite or fall outside are skipped. With
    `halo` each dot sits on a white ring that much wider, as faded as the dot.
    """
    if halo > 0:
        white = np.full((len(pixels), 3), 255, dtype=np.uint8)
        image = draw_track_marks(image, pixels, visibility, white, radius + halo, min_alpha)
    canvas = np.asarray(image)
    if canvas.dtype != np.uint8:
        canvas = np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)
    canvas = canvas.astype(np.float32)
    height, width = canvas.shape[:2]
    count = len(pixels)
    colors = track_colors(count) if colors is None else np.asarray(colors)
    alphas = np.ones(count) if visibility is None else np.clip(np.nan_to_num(visibility, nan=0.0), min_alpha, 1.0)
    reach = int(np.ceil(radius + 1))
    for (x, y), color, alpha in zip(np.asarray(pixels, dtype=np.float64), colors, alphas):
        if not (np.isfinite(x) and np.isfinite(y)) or not (-radius <= x < width + radius and -radius <= y < height + radius):
            continue
        top, left = max(int(y) - reach, 0), max(int(x) - reach, 0)
        bottom, right = min(int(y) + reach + 1, height), min(int(x) + reach + 1, width)
        if top >= bottom or left >= right:
            continue
        rows, cols = np.mgrid[top:bottom, left:right]
        coverage = np.clip(radius + 0.5 - np.hypot(cols - x, rows - y), 0.0, 1.0)[..., None] * alpha
        patch = canvas[top:bottom, left:right]
        canvas[top:bottom, left:right] = patch * (1 - coverage) + color.astype(np.float32) * coverage
    return np.round(canvas).astype(np.uint8)


def mark_frame(image: np.ndarray, predictions: dict[str, np.ndarray], time_step: int, camera: int,
               radius: float = MARK_RADIUS, halo: float = 0.0) -> np.ndarray:
    """The strip image of (time_step, camera) with every track's dot there, faded where vis is low."""
    if "track" not in predictions:
        return np.asarray(image) if np.asarray(image).dtype == np.uint8 else draw_track_marks(image, np.zeros((0, 2)))
    return draw_track_marks(image, predictions["track"][time_step, camera], predictions["vis"][time_step, camera],
                            track_colors(predictions["track"].shape[2]), radius, halo=halo)
