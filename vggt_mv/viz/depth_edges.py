"""Depth-edge ("flying pixel") detection: a point whose depth jumps relative to a neighbour sits on an object border,
where a dense predictor smears foreground into background, so it is dropped from the scene and every export."""

from __future__ import annotations

import numpy as np

DEFAULT_EDGE_THRESHOLD = 0.03  # a 3% depth jump to any of the 8 neighbours marks a border pixel
# Each neighbour pair once: right, down, down-right, down-left (as slices of the [H, W] grid: first, second).
NEIGHBOUR_PAIRS = (
    ((slice(None), slice(None, -1)), (slice(None), slice(1, None))),
    ((slice(None, -1), slice(None)), (slice(1, None), slice(None))),
    ((slice(None, -1), slice(None, -1)), (slice(1, None), slice(1, None))),
    ((slice(None, -1), slice(1, None)), (slice(1, None), slice(None, -1))),
)


def camera_depth(points: np.ndarray, extrinsics: np.ndarray) -> np.ndarray:
    """Each point's depth (z) in the camera that saw it: points [..., H, W, 3] world, extrinsics [..., 3, 4]."""
    row = extrinsics[..., 2, :3]
    return np.einsum("...j,...hwj->...hw", row, points) + extrinsics[..., 2, 3][..., None, None]


def depth_edge_mask(depth: np.ndarray, threshold: float = DEFAULT_EDGE_THRESHOLD,
                    valid: np.ndarray | None = None) -> np.ndarray:
    """True where |depth - a neighbour's depth| / |depth| > threshold for any of the 8 neighbours ([..., H, W]).

    Invalid (padding) and non-finite neighbours are ignored, so the border of the padding is no edge; a pixel
    that is itself invalid or non-finite is never an edge (other filters drop it).
    """
    values = np.asarray(depth, dtype=np.float32)
    if valid is not None:
        values = np.where(valid, values, np.float32(np.nan))
    tolerance = np.float32(threshold) * np.abs(values)
    edges = np.zeros(values.shape, dtype=bool)
    with np.errstate(invalid="ignore"):
        for first, second in NEIGHBOUR_PAIRS:
            first, second = (Ellipsis, *first), (Ellipsis, *second)
            jump = np.abs(values[first] - values[second])  # NaN (never an edge) where either side is unusable
            edges[first] |= jump > tolerance[first]
            edges[second] |= jump > tolerance[second]
    return edges
