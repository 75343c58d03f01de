"""Per-camera strips at one time step: input, depth and confidence as images a person can compare."""

from __future__ import annotations

import numpy as np

# A perceptually ordered ramp (dark blue -> teal -> yellow), sampled at 5 stops.
RAMP = np.array([[0.18, 0.0, 0.33], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.37, 0.79, 0.38], [0.99, 0.91, 0.15]])


def colorize(values: np.ndarray, low: float | None = None, high: float | None = None) -> np.ndarray:
    """[H, W] scalars -> uint8 [H, W, 3] through the ramp, robustly normalised (2nd..98th percentile)."""
    finite = values[np.isfinite(values)]
    low = float(np.percentile(finite, 2)) if low is None and finite.size else (low or 0.0)
    high = float(np.percentile(finite, 98)) if high is None and finite.size else (high or 1.0)
    scaled = np.clip((values - low) / max(high - low, 1e-9), 0, 1) * (len(RAMP) - 1)
    scaled = np.nan_to_num(scaled)
    lower = np.floor(scaled).astype(int).clip(0, len(RAMP) - 2)
    fraction = (scaled - lower)[..., None]
    return ((RAMP[lower] * (1 - fraction) + RAMP[lower + 1] * fraction) * 255).astype(np.uint8)


def camera_strip(predictions: dict[str, np.ndarray], time_step: int) -> np.ndarray:
    """uint8 image: one row per camera of [input | depth | confidence] at `time_step`."""
    rows = []
    for camera in range(predictions["depth"].shape[1]):
        image = (np.moveaxis(predictions["images"][time_step, camera], 0, -1) * 255).clip(0, 255).astype(np.uint8)
        depth = colorize(predictions["depth"][time_step, camera, ..., 0])
        confidence = colorize(np.log(np.maximum(predictions["depth_conf"][time_step, camera], 1e-6)))
        rows.append(np.concatenate([image, depth, confidence], axis=1))
    return np.concatenate(rows, axis=0)
