"""Synthetic predictions with a [T, N] prefix, shaped like vggt_mv.inference.predict's output."""

from __future__ import annotations

import numpy as np


def fake_predictions(steps: int = 2, cameras: int = 3, height: int = 28, width: int = 42, seed: int = 0,
                     padded_rows: int = 0) -> dict:
    """Points on a plane in front of cameras sliding along x; confidence rising left to right.

    With `padded_rows`, camera 0 has that many rows of padding at top and bottom (valid_mask False there),
    given the highest confidence of all, as a model may well predict for flat white.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    plane = np.stack([cols / width - 0.5, rows / height - 0.5, np.full_like(rows, 3.0)], axis=-1)
    world_points = np.broadcast_to(plane, (steps, cameras, height, width, 3)).copy()
    world_points += rng.normal(scale=0.01, size=world_points.shape).astype(np.float32)
    confidence = np.broadcast_to(1 + cols / width * 4, (steps, cameras, height, width)).astype(np.float32).copy()
    extrinsic = np.tile(np.eye(3, 4, dtype=np.float32), (steps, cameras, 1, 1))
    extrinsic[..., 0, 3] = -0.2 * (np.arange(cameras)[None, :] + np.arange(steps)[:, None])
    intrinsic = np.tile(np.array([[40.0, 0, width / 2], [0, 40.0, height / 2], [0, 0, 1]], np.float32),
                        (steps, cameras, 1, 1))
    valid_mask = np.ones((steps, cameras, height, width), dtype=bool)
    if padded_rows:
        valid_mask[:, 0, :padded_rows] = valid_mask[:, 0, height - padded_rows:] = False
        confidence[~valid_mask] = 100.0
    return {
        "valid_mask": valid_mask,
        "images": rng.random((steps, cameras, 3, height, width)).astype(np.float32),
        "world_points": world_points.astype(np.float32), "world_points_conf": confidence,
        "depth": np.full((steps, cameras, height, width, 1), 3.0, np.float32), "depth_conf": confidence.copy(),
        "extrinsic": extrinsic, "intrinsic": intrinsic, "pose_enc": np.zeros((steps, cameras, 9), np.float32),
        "dynamic_mask": np.zeros((steps, cameras, height // 14, width // 14), np.float32),
        "times": np.arange(steps, dtype=np.float64) * 0.5,
    }
