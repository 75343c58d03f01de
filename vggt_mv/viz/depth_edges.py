"""Depth-edge ("flying pixel") detection: a point whose depth jumps relative to a neighbour sits on an object border,
where a dense predictor smears foreground into background, so it is dropped from the scene and every export."""

from __future__ import annotations

import numpy as np

DEFAULT_EDGE_THRESHOLD = 0.03  # a 3% depth jump to any of the 8 neighbours marks a border pixel
NEIGHBOUR_OFFSETS = tuple((dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0))


def camera_depth(points: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """Each point's depth (z) in the camera that saw it: points [..., H, W, 3] world, extrinsics [..., 3, 4]."""
    row = extrinsics[..., 2, :3]
    return np.einsum("...j,...hwj->...hw", row, points) + extrinsics[..., 2, 3][..., None, None]


def _shifted(values: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """values[..., y + dy, x + dx] at every pixel, NaN where that neighbour lies outside the image."""
    height, width = values.shape[-2:]
    out = np.full_like(values, np.nan)
    out[..., max(0, -dy):height - max(0, dy), max(0, -dx):width - max(0, dx)] = \
        values[..., max(0, dy):height - max(0, -dy), max(0, dx):width - max(0, -dx)]
    return out


def depth_edge_mask(depth: np.ndarray, threshold: float = DEFAULT_EDGE_THRESHOLD,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """True where |depth - a neighbour's depth| / |depth| > threshold for any of the 8 neighbours ([..., H, W]).

    Invalid (padding) and non-finite neighbours are ignored, so the border of the padding is no edge; a pixel
    that is itself invalid or non-finite is never an edge (other filters drop it).
    """
    depth = np.asarray(depth, dtype=np.float32)
    usable = np.isfinite(depth) if valid is None else np.isfinite(depth) & valid
    values = np.where(usable, depth, np.nan)
    highest = np.full_like(values, np.nan)
    lowest = np.full_like(values, np.nan)
    for dy, dx in NEIGHBOUR_OFFSETS:
        neighbour = _shifted(values, dy, dx)
        highest = np.fmax(highest, neighbour)
        lowest = np.fmin(lowest, neighbour)
    with np.errstate(invalid="ignore"):
        jump = np.fmax(highest - values, values - lowest)
        edges = jump > threshold * np.maximum(np.abs(values), 1e-6)
    return edges & usable
