"""Synchronized multi-view video in: probe with PyAV, sample T steps on a common clock, decode, resize.

Clock: camera n's frame for common time t is its frame shown at video time t + offset_n (the last
frame whose presentation time is <= that time). The common range is where every camera has video;
T time steps sit at the centres of T equal slices of the chosen window of that range, which works
for any frame rate, variable frame rates and videos that report no frame rate at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

TARGET_WIDTH = 518
PATCH_SIZE = 14


class VideoError(ValueError):
    """A video cannot be used; the message names the file and the reason, once."""


@dataclass(frozen=True)
class VideoInfo:
    """What a camera's file offers: its span on its own clock, size and orientation."""

    path: Path
    start: float
    end: float
    frame_count: int
    fps: float
    width: int
    height: int
    rotation: int

    @property
    def duration(self) -> float:
        """Seconds of video (from first frame shown to the end of the last)."""
        return self.end - self.start

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after rotation metadata."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


def _open(path: Path):
    """av.open with our error message."""
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        raise VideoError(f"{path.name}: not a readable video ({error.__class__.__name__}: "
                         f"{getattr(error, 'strerror', None) or error})") from None


def probe_video(path: str | Path) -> VideoInfo:
    """Frame times from the packets (no decoding), so VFR and fps-0 files get a true span."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{path.name}: file not found")
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{path.name}: has no video stream")
        stream = container.streams.video[0]
        time_base = stream.time_base or Fraction(1, 1_000_000)
        times, last_duration = [], 0.0
        try:
            for packet in container.demux(stream):
                if packet.size == 0 or packet.pts is None:
                    continue
                times.append(float(packet.pts * time_base))
                last_duration = float((packet.duration or 0) * time_base)
        except av.error.FFmpegError as error:
            if not times:
                raise VideoError(f"{path.name}: corrupt video ({error.__class__.__name__})") from None
        if not times:
            raise VideoError(f"{path.name}: contains no video frames")
        rotation = _first_frame_rotation(path)
        times.sort()
        reported_fps = reported_frame_rate(stream)
        if len(times) > 1:
            step = (times[-1] - times[0]) / (len(times) - 1)
            fps = reported_fps if reported_fps > 0 else (1.0 / step if step > 0 else 0.0)
        else:
            fps = reported_fps
        frame_time = last_duration or (1.0 / fps if fps > 0 else 0.0)
        return VideoInfo(path, times[0], times[-1] + frame_time, len(times), fps,
                         stream.codec_context.width, stream.codec_context.height, rotation)


def reported_frame_rate(stream) -> float:
    """The container's average frame rate; 0 when it reports none (then the packet times decide)."""
    return float(stream.average_rate or 0)


def _first_frame_rotation(path: Path) -> int:
    """Display rotation (degrees counter-clockwise) from the first decodable frame."""
    with _open(path) as container:
        try:
            for frame in container.decode(video=0):
                return int(round(frame.rotation or 0)) % 360
        except av.error.FFmpegError:
            pass
    raise VideoError(f"{path.name}: no frame could be decoded (truncated or corrupt file)")


def common_window(infos: list[VideoInfo], offsets: list[float] | None = None) -> tuple[float, float]:
    """The span of common time every camera covers, given per-camera offsets (seconds)."""
    offsets = offsets or [0.0] * len(infos)
    start = max(info.start - offset for info, offset in zip(infos, offsets))
    end = min(info.end - offset for info, offset in zip(infos, offsets))
    if end <= start:
        spans = ", ".join(f"{i.path.name} {i.start - o:.2f}-{i.end - o:.2f}s" for i, o in zip(infos, offsets))
        raise VideoError(f"the videos share no common time range ({spans}); adjust the camera offsets")
    return start, end


def plan_common_clock(infos: list[VideoInfo], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                      offsets: list[float] | None = None) -> list[float]:
    """T common times: centres of T equal slices of `window` (fractions 0..1) of the common range."""
    if num_steps < 1:
        raise VideoError("choose at least one time step")
    low, high = window
    if not 0.0 <= low < high <= 1.0:
        raise VideoError(f"time window must satisfy 0 <= start < end <= 1, got {low}..{high}")
    start, end = common_window(infos, offsets)
    start, end = start + low * (end - start), start + high * (end - start)
    step = (end - start) / num_steps
    return [start + (k + 0.5) * step for k in range(num_steps)]


def target_size(display_width: int, display_height: int, width: int = TARGET_WIDTH,
                patch: int = PATCH_SIZE) -> tuple[int, int]:
    """(width, height): width 518, height keeping the aspect, rounded to a multiple of the patch."""
    height = max(patch, int(round(display_height * width / display_width / patch)) * patch)
    return width, height


def decode_frames(path: str | Path, times: list[float], size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 [T, H, W, 3]: for each time, the last frame shown at or before it, upright, resized to `size`."""
    path = Path(path)
    order = sorted(range(len(times)), key=lambda i: times[i])
    chosen: list = [None] * len(times)
    previous = None
    position = 0
    with _open(path) as container:
        stream = container.streams.video[0]
        stream.thread_type = "AUTO"
        try:
            for frame in container.decode(stream):
                frame_time = frame.time if frame.time is not None else 0.0
                while position < len(order) and frame_time > times[order[position]] + 1e-6:
                    chosen[order[position]] = previous if previous is not None else frame
                    position += 1
                if position == len(order):
                    break
                previous = frame
        except av.error.FFmpegError:
            if previous is None:
                raise VideoError(f"{path.name}: no frame could be decoded (truncated or corrupt file)") from None
        for index in order[position:]:
            chosen[index] = previous
    if any(frame is None for frame in chosen):
        raise VideoError(f"{path.name}: contains no decodable frames")
    return np.stack([_to_rgb(frame, size) for frame in chosen])


def _to_rgb(frame, size: tuple[int, int] | None) -> np.ndarray:
    """Rotate to display orientation, then resize (PyAV's swscale) to `size` = (width, height)."""
    rotation = int(round(frame.rotation or 0)) % 360
    if size is not None and rotation % 180:
        width, height = size[1], size[0]
    elif size is not None:
        width, height = size
    else:
        width, height = frame.width, frame.height
    image = frame.to_ndarray(format="rgb24", width=width, height=height, interpolation="AREA")
    return np.ascontiguousarray(np.rot90(image, k=rotation // 90)) if rotation else image


@dataclass
class MultiViewClip:
    """The model's input for N cameras and T time steps, and how it was made."""

    images: np.ndarray
    times: list[float]
    infos: list[VideoInfo]
    size: tuple[int, int]
    notes: list[str] = field(default_factory=list)

    @property
    def grid(self) -> tuple[int, int]:
        """(T, N)."""
        return self.images.shape[0], self.images.shape[1]


def load_multiview(paths: list[str | Path], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                   offsets: list[float] | None = None, max_total_frames: int = 64,
                   width: int = TARGET_WIDTH) -> MultiViewClip:
    """Float32 images [T, N, 3, H, W] in [0, 1]: every camera at every common time step, one shared size."""
    if not paths:
        raise VideoError("upload at least one video (one per camera)")
    if num_steps * len(paths) > max_total_frames:
        raise VideoError(f"{num_steps} time steps x {len(paths)} cameras = {num_steps * len(paths)} frames, over "
                         f"the limit of {max_total_frames}; lower the frames per camera to "
                         f"{max(1, max_total_frames // len(paths))} or fewer")
    offsets = list(offsets or [0.0] * len(paths))
    if len(offsets) != len(paths):
        raise VideoError(f"{len(offsets)} offsets for {len(paths)} cameras")
    infos = [probe_video(path) for path in paths]
    times = plan_common_clock(infos, num_steps, window, offsets)
    size = target_size(*infos[0].display_size, width=width)
    notes = []
    for info in infos[1:]:
        own = target_size(*info.display_size, width=width)
        if own != size:
            notes.append(f"{info.path.name} is {info.display_size[0]}x{info.display_size[1]}; resized to "
                         f"{size[0]}x{size[1]} like the first camera (aspect not kept)")
    frames = [decode_frames(info.path, [t + offset for t in times], size) for info, offset in zip(infos, offsets)]
    images = np.stack(frames, axis=1).astype(np.float32).transpose(0, 1, 4, 2, 3) / 255.0
    return MultiViewClip(images, times, infos, size, notes)
