"""Where predictions hold NaN or infinities, found once so every format can say what it did about them.

Random or broken weights predict them (an untrained camera head gives an infinite focal length). No download may
contain one: each format masks them, writes null, or leaves the camera out, and says so.
"""

from __future__ import annotations

import numpy as np


def camera_problem(extrinsic: np.ndarray, intrinsic: np.ndarray) -> str | None:
    """Why one camera (one time step) cannot be drawn or exported, or None when it can."""
    if not np.isfinite(intrinsic).all():
        return "its intrinsics are not finite"
    if not np.isfinite(extrinsic).all():
        return "its pose is not finite"
    if intrinsic[0, 0] <= 0 or intrinsic[1, 1] <= 0:
        return "its focal length is not positive"
    return None


def camera_problems(predictions: dict[str, np.ndarray]) -> dict[tuple[int, int], str]:
    """(time step, camera) -> why that camera is left out of the formats that need a camera."""
    extrinsics, intrinsics = predictions["extrinsic"], predictions["intrinsic"]
    problems = {}
    for time_step in range(extrinsics.shape[0]):
        for camera in range(extrinsics.shape[1]):
            problem = camera_problem(extrinsics[time_step, camera], intrinsics[time_step, camera])
            if problem is not None:
                problems[(time_step, camera)] = problem
    return problems


def non_finite_counts(arrays: dict[str, np.ndarray]) -> dict[str, int]:
    """Array name -> how many of its values are NaN or infinite (only arrays that have some)."""
    counts = {}
    for name, array in arrays.items():
        if np.issubdtype(array.dtype, np.floating):
            # a time step at a time: a long run's maps are on disk (vggt_mv.io.prediction_store)
            parts = range(array.shape[0]) if array.ndim >= 4 else [slice(None)]
            count = sum(int(np.size(array[part]) - np.count_nonzero(np.isfinite(array[part]))) for part in parts)
            if count:
                counts[name] = count
    return counts


def camera_notes(problems: dict[tuple[int, int], str], what: str) -> list[str]:
    """One line per left-out camera, naming the format that left it out."""
    return [f"time step {time_step}, camera {camera} left out of {what}: {reason}"
            for (time_step, camera), reason in sorted(problems.items())]
