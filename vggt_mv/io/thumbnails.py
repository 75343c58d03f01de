"""First frames of uploaded videos, small and upright, so a person sees which file is which camera before a run."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggt_mv.io.video import VideoError, VideoInfo, decode_frames, probe_video

THUMBNAIL_LONG_SIDE = 240
UNREADABLE_GREY = 128


@dataclass(frozen=True)
class Thumbnail:
    """One video's first frame (uint8 [H, W, 3], as displayed) and its probe, or why it could not be read."""

    image: np.ndarray
    info: VideoInfo | None
    error: str | None = None


def thumbnail_size(width: int, height: int, long_side: int = THUMBNAIL_LONG_SIDE) -> tuple[int, int]:
    """(width, height) with the longer side at most `long_side`, aspect ratio kept (never upscaled)."""
    scale = min(1.0, long_side / max(width, height, 1))
    return max(1, round(width * scale)), max(1, round(height * scale))


def first_frame(path: str | Path, long_side: int = THUMBNAIL_LONG_SIDE) -> Thumbnail:
    """The first frame shown, upright (rotation metadata applied); an unreadable file gets a grey tile and why."""
    try:
        info = probe_video(path)
        image = decode_frames(path, [info.start], thumbnail_size(*info.display_size, long_side))[0]
    except VideoError as error:
        return Thumbnail(np.full((long_side * 9 // 16, long_side, 3), UNREADABLE_GREY, np.uint8), None, str(error))
    return Thumbnail(image, info)
