"""ZeroGPU on Hugging Face Spaces: request a GPU per run, for a duration sized to the run."""

from __future__ import annotations

import functools
from typing import Callable

BASE_SECONDS = 20
SECONDS_PER_FRAME = 3
MAX_SECONDS = 300
TRACK_SECONDS = 30  # the track head alone on a kept context: a few seconds even for 256 points on 8 x 8 frames


def run_duration(videos=None, example=None, frames_per_camera: int = 8, *args, **kwargs) -> int:
    """GPU seconds to ask for: a base plus a share per frame (T x N), capped."""
    cameras = len(videos) if videos else 3
    return min(MAX_SECONDS, BASE_SECONDS + SECONDS_PER_FRAME * int(frames_per_camera) * cameras)


def track_duration(*args, **kwargs) -> int:
    """GPU seconds for adding tracks to a cached run (its handler's arguments do not size it)."""
    return TRACK_SECONDS


def on_gpu(served, duration: Callable[..., int] = run_duration) -> Callable:
    """Wrap with `spaces.GPU(duration=...)` when the `spaces` package is present; otherwise change nothing.

    `duration` is called with the handler's own arguments (run_duration reads a reconstruct call's)."""
    try:
        import spaces
    except ImportError:
        return lambda function: function

    def decorate(function: Callable) -> Callable:
        wrapped = spaces.GPU(duration=duration)(function)
        return functools.wraps(function)(wrapped)

    return decorate
