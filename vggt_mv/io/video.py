"""Synchronized multi-view video in: probe with PyAV, sample T steps on a common clock, decode, resize.

Clock: camera n's frame for common time t is its frame shown at video time t + offset_n (the last
frame whose presentation time is <= that time). The common range is where every camera has video;
T time steps sit at the centres of T equal slices of the chosen window of that range, which works
for any frame rate, variable frame rates and videos that report no frame rate at all. T is lowered until
no camera would show the same frame at two time steps (the plan says why).

Planning (probes -> ClipPlan: times and per-camera sizes) is pure; decoding follows the plan. Sizes
and padding: vggt_mv.io.layout.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggt_mv.io.layout import MAX_HEIGHT, TARGET_WIDTH, CameraLayout, place_on_canvas, plan_layouts

# Frame times and requested times are compared with this slack (container time bases round).
TIME_TOLERANCE = 1e-6


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
    frame_times: tuple[float, ...] = ()

    @property
    def duration(self) -> float:
        """Seconds of video (from first frame shown to the end of the last)."""
        return self.end - self.start

    @property
    def display_size(self) -> tuple[int, int]:
        """(width, height) as shown, after rotation metadata."""
        return (self.height, self.width) if self.rotation % 180 else (self.width, self.height)


# Demuxers that read one still image: a photo renamed .mp4 is not a camera's video.
STILL_IMAGE_FORMATS = ("image2", "image2pipe")


def shown_name(path: Path) -> str:
    """A file's base name fit for a one-line message: control and direction characters become '?', long names cut."""
    name = "".join("?" if not character.isprintable() else character for character in path.name)
    return name if len(name) <= 60 else name[:57] + "..."


def _open(path: Path):
    """av.open with our error message (FFmpeg's reason, never the file's server path)."""
    try:
        return av.open(str(path))
    except (av.error.FFmpegError, OSError) as error:
        reason = getattr(error, "strerror", None) or error.__class__.__name__
        raise VideoError(f"{shown_name(path)}: not a readable video ({error.__class__.__name__}: {reason})") from None


def probe_video(path: str | Path) -> VideoInfo:
    """Frame times from the packets (no decoding), so VFR and fps-0 files get a true span."""
    path = Path(path)
    if not path.is_file():
        raise VideoError(f"{shown_name(path)}: file not found")
    if path.stat().st_size == 0:
        raise VideoError(f"{shown_name(path)}: is empty (0 bytes); upload the video again")
    with _open(path) as container:
        if not container.streams.video:
            raise VideoError(f"{shown_name(path)}: has no video stream")
        if container.format.name in STILL_IMAGE_FORMATS or container.format.name.endswith("_pipe"):
            raise VideoError(f"{shown_name(path)}: is a still image, not a video")
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
                raise VideoError(f"{shown_name(path)}: corrupt video ({error.__class__.__name__})") from None
        if not times:
            raise VideoError(f"{shown_name(path)}: contains no video frames")
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
                         stream.codec_context.width, stream.codec_context.height, rotation, tuple(times))


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
    raise VideoError(f"{shown_name(path)}: no frame could be decoded (truncated or corrupt file)")


def common_window(infos: list[VideoInfo], offsets: list[float] | None = None) -> tuple[float, float]:
    """The span of common time every camera covers, given per-camera offsets (seconds)."""
    offsets = offsets or [0.0] * len(infos)
    start = max(info.start - offset for info, offset in zip(infos, offsets))
    end = min(info.end - offset for info, offset in zip(infos, offsets))
    if end <= start:
        spans = ", ".join(f"{shown_name(i.path)} {i.start - o:.2f}-{i.end - o:.2f}s" for i, o in zip(infos, offsets))
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


def shown_frame_indices(frame_times: tuple[float, ...], times: list[float]) -> list[int]:
    """Index of the frame shown at each time: the last at or before it (the first, before the video starts)."""
    return [max(0, bisect_right(frame_times, time + TIME_TOLERANCE) - 1) for time in times]


def repeats_a_frame(info: VideoInfo, times: list[float], offset: float) -> bool:
    """True when two of the common times would show this camera's same frame (unknown frame times: never)."""
    if not info.frame_times:
        return False
    shown = shown_frame_indices(info.frame_times, [time + offset for time in times])
    return len(set(shown)) < len(shown)


def frames_in_window(info: VideoInfo, span: tuple[float, float], offset: float) -> int | None:
    """How many of this camera's frames can show in the common-clock span (None: its frame times are unknown)."""
    if not info.frame_times:
        return None
    first, last = span[0] + offset, span[1] + offset
    shown_first = max(0, bisect_right(info.frame_times, first + TIME_TOLERANCE) - 1)
    return bisect_right(info.frame_times, last + TIME_TOLERANCE) - shown_first


def window_span(infos: list[VideoInfo], window: tuple[float, float], offsets: list[float]) -> tuple[float, float]:
    """The chosen window (fractions 0..1) of the common range, in common-clock seconds."""
    plan_common_clock(infos, 1, window, offsets)  # refuses a bad window with its message
    start, end = common_window(infos, offsets)
    return start + window[0] * (end - start), start + window[1] * (end - start)


def distinct_time_steps(infos: list[VideoInfo], requested: int, window: tuple[float, float],
                        offsets: list[float]) -> tuple[int, list[VideoInfo]]:
    """The largest T <= requested at which no camera shows a frame twice, and the cameras that stop it growing.

    No camera can show more distinct frames than it has in the window, so the search starts there: asking for
    100,000 steps of a 10-frame video costs what asking for 10 does."""
    limiting: list[VideoInfo] = []
    span = window_span(infos, window, offsets)
    counts = [frames_in_window(info, span, offset) for info, offset in zip(infos, offsets)]
    known = [count for count in counts if count is not None]
    if known and min(known) < requested:
        limiting = [info for info, count in zip(infos, counts) if count == min(known)]
        requested = max(1, min(known))
    for steps in range(requested, 0, -1):
        times = plan_common_clock(infos, steps, window, offsets)
        repeating = [info for info, offset in zip(infos, offsets) if repeats_a_frame(info, times, offset)]
        if not repeating:
            return steps, limiting
        limiting = repeating
    return 1, limiting


@dataclass(frozen=True)
class ClipPlan:
    """What will be decoded, decided from the probes alone: T common times and each camera's layout."""

    infos: tuple[VideoInfo, ...]
    offsets: tuple[float, ...]
    times: tuple[float, ...]
    layouts: tuple[CameraLayout, ...]
    requested_steps: int
    notes: tuple[str, ...] = ()

    @property
    def steps(self) -> int:
        """Effective T (at most the requested one)."""
        return len(self.times)

    @property
    def canvas(self) -> tuple[int, int]:
        """(width, height) of every model input frame."""
        return self.layouts[0].canvas

    def camera_lines(self) -> list[str]:
        """'camera 0 (left.mp4): 640x360 -> 518x294' per camera: which file is which camera, and its sizes."""
        return [f"camera {index} ({shown_name(info.path)}): {layout.describe()}"
                for index, (info, layout) in enumerate(zip(self.infos, self.layouts))]


def _frame_count_note(requested: int, steps: int, limiting: list[VideoInfo]) -> list[str]:
    """Why T is lower than asked, naming the cameras with too few frames in the window."""
    if steps >= requested:
        return []
    names = ", ".join(shown_name(info.path) for info in limiting)
    verb = "shows" if len(limiting) == 1 else "show"
    return [f"T capped at {steps} (asked for {requested}): {names} {verb} only {steps} distinct frames in the "
            f"chosen window; more time steps would feed the model the same frame twice"]


def _layout_notes(infos: list[VideoInfo], layouts: list[CameraLayout]) -> list[str]:
    """Cropped cameras by name; one line when cameras of different shapes share a padded canvas."""
    notes = [f"{shown_name(info.path)} ({info.display_size[0]}x{info.display_size[1]}) is taller than "
             f"{layout.canvas[0]}x{layout.kept_height} at width {layout.scaled[0]}: centre-cropped like VGGT's crop "
             f"mode ({layout.scaled[1] - layout.kept_height} of {layout.scaled[1]} rows cut)"
             for info, layout in zip(infos, layouts) if layout.cropped]
    if any(layout.padded for layout in layouts):
        width, height = layouts[0].canvas
        notes.append(f"cameras of different shapes are padded (white, centred) to {width}x{height}, never "
                     "stretched; padded pixels never become points")
    return notes


def plan_clip(infos: list[VideoInfo], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
              offsets: list[float] | None = None, max_total_frames: int = 64, width: int = TARGET_WIDTH,
              max_height: int = MAX_HEIGHT) -> ClipPlan:
    """Effective T (never a repeated frame), the common times and each camera's size, from probes alone."""
    offsets = list(offsets or [0.0] * len(infos))
    if len(offsets) != len(infos):
        raise VideoError(f"{len(offsets)} offsets for {len(infos)} cameras")
    if num_steps < 1:
        raise VideoError("choose at least one time step")
    steps, limiting = distinct_time_steps(infos, num_steps, window, offsets)
    if steps * len(infos) > max_total_frames:
        raise VideoError(f"{steps} time steps x {len(infos)} cameras = {steps * len(infos)} frames, over "
                         f"the limit of {max_total_frames}; lower the frames per camera to "
                         f"{max(1, max_total_frames // len(infos))} or fewer")
    layouts = plan_layouts([info.display_size for info in infos], width, max_height)
    notes = _frame_count_note(num_steps, steps, limiting) + _layout_notes(infos, layouts)
    return ClipPlan(tuple(infos), tuple(offsets), tuple(plan_common_clock(infos, steps, window, offsets)),
                    tuple(layouts), num_steps, tuple(notes))


def plan_multiview(paths: list[str | Path], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                   offsets: list[float] | None = None, max_total_frames: int = 64, width: int = TARGET_WIDTH,
                   max_height: int = MAX_HEIGHT) -> ClipPlan:
    """Probe every video (packets only) and plan the clip."""
    if not paths:
        raise VideoError("upload at least one video (one per camera)")
    if offsets and len(offsets) != len(paths):
        raise VideoError(f"{len(offsets)} offsets for {len(paths)} cameras")
    infos = [probe_video(path) for path in paths]
    return plan_clip(infos, num_steps, window, offsets, max_total_frames, width, max_height)


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
                while position < len(order) and frame_time > times[order[position]] + TIME_TOLERANCE:
                    chosen[order[position]] = previous if previous is not None else frame
                    position += 1
                if position == len(order):
                    break
                previous = frame
        except av.error.FFmpegError:
            if previous is None:
                raise VideoError(f"{shown_name(path)}: no frame could be decoded (truncated or corrupt file)") from None
        for index in order[position:]:
            chosen[index] = previous
    if any(frame is None for frame in chosen):
        raise VideoError(f"{shown_name(path)}: contains no decodable frames")
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
    valid_mask: np.ndarray | None = None
    plan: ClipPlan | None = None

    @property
    def grid(self) -> tuple[int, int]:
        """(T, N)."""
        return self.images.shape[0], self.images.shape[1]

    def valid_mask_grid(self) -> np.ndarray:
        """bool [T, N, H, W]: True where a pixel is a camera's own (not padding)."""
        steps, cameras, _, height, width = self.images.shape
        mask = self.valid_mask if self.valid_mask is not None else np.ones((cameras, height, width), dtype=bool)
        return np.broadcast_to(mask[None], (steps, cameras, height, width)).copy()


def decode_clip(plan: ClipPlan) -> MultiViewClip:
    """Decode each camera at its planned times and place it, unstretched, on the common canvas."""
    width, height = plan.canvas
    images = np.empty((plan.steps, len(plan.infos), 3, height, width), dtype=np.float32)
    for camera, (info, offset, layout) in enumerate(zip(plan.infos, plan.offsets, plan.layouts)):
        frames = decode_frames(info.path, [time + offset for time in plan.times], layout.scaled)
        images[:, camera] = place_on_canvas(frames, layout)
    valid = np.stack([layout.valid_mask() for layout in plan.layouts])
    return MultiViewClip(images, list(plan.times), list(plan.infos), plan.canvas, list(plan.notes), valid, plan)


def load_multiview(paths: list[str | Path], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                   offsets: list[float] | None = None, max_total_frames: int = 64,
                   width: int = TARGET_WIDTH, max_height: int = MAX_HEIGHT) -> MultiViewClip:
    """Float32 images [T, N, 3, H, W] in [0, 1]: every camera at every common time step, never stretched."""
    return decode_clip(plan_multiview(paths, num_steps, window, offsets, max_total_frames, width, max_height))
