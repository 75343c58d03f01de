"""Synchronized multi-view video in: probe with PyAV, sample T steps on a common clock, decode, resize.

Clock: camera n's frame for common time t is its frame shown at video time t + offset_n (the last
frame whose presentation time is <= that time). The common range is where every camera has video;
T time steps sit at the centres of T equal slices of the chosen window of that range, which works
for any frame rate, variable frame rates and videos that report no frame rate at all. T is lowered until
no camera would show the same frame at two time steps (the plan says why).

Planning (probes -> ClipPlan: times and per-camera sizes) is pure; decoding follows the plan, one frame at a
time (each is resized as soon as it is chosen, and decode_clip can write into a caller's array, e.g. a memmap).
Sizes ("fit" keeps every pixel, "crop" is VGGT's crop) and padding: vggt_mv.io.layout.
"""

from __future__ import annotations

from bisect import bisect_right
from contextlib import closing
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from vggt_mv.io.layout import RESIZE_MODES  # noqa: F401 - re-exported beside DEFAULT_RESIZE for callers
from vggt_mv.io.layout import (DEFAULT_RESIZE, MAX_HEIGHT, TARGET_WIDTH, CameraLayout, place_frame, plan_layouts,
                               resize_problem)

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


def _clock_start_and_step(infos: list[VideoInfo], num_steps: int, window: tuple[float, float],
                          offsets: list[float] | None) -> tuple[float, float]:
    """Where the chosen window starts on the common clock and the length of each of its T slices (checked)."""
    if num_steps < 1:
        raise VideoError("choose at least one time step")
    low, high = window
    if not 0.0 <= low < high <= 1.0:
        raise VideoError(f"time window must satisfy 0 <= start < end <= 1, got {low}..{high}")
    start, end = common_window(infos, offsets)
    start, end = start + low * (end - start), start + high * (end - start)
    return start, (end - start) / num_steps


def plan_common_clock(infos: list[VideoInfo], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                      offsets: list[float] | None = None) -> list[float]:
    """T common times: centres of T equal slices of `window` (fractions 0..1) of the common range."""
    start, step = _clock_start_and_step(infos, num_steps, window, offsets)
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


def most_distinct_frames(info: VideoInfo, span: tuple[float, float], offset: float) -> int:
    """The most distinct frames this camera can give in the span: an upper bound on T."""
    count = frames_in_window(info, span, offset)
    # Frame times unknown: the camera never repeats a frame as far as we can tell, so nothing but its whole frame
    # count bounds T; without this cap, `--frames 10**9` would plan (and check) a billion time steps.
    return max(1, count if count is not None else info.frame_count)


def window_span(infos: list[VideoInfo], window: tuple[float, float], offsets: list[float]) -> tuple[float, float]:
    """The chosen window (fractions 0..1) of the common range, in common-clock seconds."""
    plan_common_clock(infos, 1, window, offsets)  # refuses a bad window with its message
    start, end = common_window(infos, offsets)
    return start + window[0] * (end - start), start + window[1] * (end - start)


@dataclass(frozen=True)
class ShownFrames:
    """One camera's frames shown in the span, the longest shown first: only a long one can be shown twice."""

    frame_times: np.ndarray
    offset: float
    lengths: np.ndarray
    begins: np.ndarray
    negated_lengths: np.ndarray  # ascending, for searchsorted

    def count_longer_than(self, seconds: float) -> int:
        """How many frames are shown longer than `seconds` (they come first)."""
        return int(np.searchsorted(self.negated_lengths, -seconds, side="left"))

    def shown(self, times: np.ndarray) -> np.ndarray:
        """shown_frame_indices for an array of common times, in the same floating-point steps."""
        found = np.searchsorted(self.frame_times, (times + self.offset) + TIME_TOLERANCE, side="right")
        return np.maximum(0, found - 1)


def shown_frames(info: VideoInfo, span: tuple[float, float], offset: float) -> ShownFrames | None:
    """For each frame shown in the span: how long it is shown there and from when (None: frame times unknown)."""
    if not info.frame_times:
        return None
    frame_times = np.asarray(info.frame_times, dtype=np.float64)
    first = max(0, bisect_right(info.frame_times, span[0] + offset + TIME_TOLERANCE) - 1)
    last = max(0, bisect_right(info.frame_times, span[1] + offset + TIME_TOLERANCE) - 1)
    begins = frame_times[first:last + 1] - TIME_TOLERANCE - offset
    begins[0] = span[0]
    lengths = np.append(begins[1:], span[1]) - begins
    order = np.argsort(-lengths, kind="stable")
    return ShownFrames(frame_times, offset, lengths[order], begins[order], -lengths[order])


def doubling_chunks(count: int, first: int = 16) -> Iterator[tuple[int, int]]:
    """(start, end) slices of range(count), each twice the last: a check that fails early stops early."""
    start, size = 0, first
    while start < count:
        yield start, min(count, start + size)
        start, size = start + size, size * 2


def shows_a_frame_twice(frames: ShownFrames, start: float, step: float, steps: int) -> bool:
    """True when two of the T common times (start + (k + 0.5) * step) show one frame of this camera.

    Shown indices never decrease with time, so a repeat is two consecutive steps on one frame, and only a frame
    shown for about a step or longer can hold two. For each such frame, the first step inside it is within one
    of where arithmetic puts it; those few pairs are then compared exactly, as shown_frame_indices would."""
    threshold = step - max(step * 1e-6, TIME_TOLERANCE)
    for chunk_start, chunk_end in doubling_chunks(frames.count_longer_than(threshold)):
        begins = frames.begins[chunk_start:chunk_end]
        first = np.ceil((begins - start) / step - 0.5).astype(np.int64)
        earlier = (first[:, None] + np.arange(-1, 2)).ravel()
        earlier = earlier[(earlier >= 0) & (earlier < steps - 1)]
        if not len(earlier):
            continue
        earlier_shown = frames.shown(start + (earlier + 0.5) * step)
        later_shown = frames.shown(start + (earlier + 1.5) * step)
        if np.any(earlier_shown == later_shown):
            return True
    return False


def highest_possible_steps(cameras: list[ShownFrames], span: tuple[float, float], cap: int) -> int:
    """Where the search can start: above it some frame is surely shown twice."""
    longest = max((float(frames.lengths[0]) for frames in cameras if len(frames.lengths)), default=0.0)
    if longest <= 0:
        return cap
    # A frame shown for `longest` seconds holds two of any T steps whose slices are at most half as long, so
    # T > 2 * span / longest repeats it (one more absorbs rounding); T <= span / longest never repeats, so
    # at most that many T are tried.
    return max(1, min(cap, int(2 * (span[1] - span[0]) / longest) + 2))


def distinct_time_steps(infos: list[VideoInfo], requested: int, window: tuple[float, float],
                        offsets: list[float]) -> tuple[int, list[VideoInfo]]:
    """The largest T <= requested at which no camera shows a frame twice, and the cameras that stop it growing.

    No camera can show more distinct frames than it has in the window, so the search starts there (or lower,
    where a frame shown long would surely repeat): asking for 10**9 steps of a 10-frame video costs what asking
    for 10 does, and each T tried costs about the frames shown for a step or longer."""
    span = window_span(infos, window, offsets)
    counts = [most_distinct_frames(info, span, offset) for info, offset in zip(infos, offsets)]
    cap = min(requested, min(counts))
    limiting = [info for info, count in zip(infos, counts) if count == cap] if cap < requested else []
    cameras = [shown_frames(info, span, offset) for info, offset in zip(infos, offsets)]
    known = [frames for frames in cameras if frames is not None]
    steps = highest_possible_steps(known, span, cap)
    while steps > 1 and repeating_cameras(infos, cameras, steps, window, offsets, first_only=True):
        steps -= 1
    if steps < cap:
        limiting = repeating_cameras(infos, cameras, steps + 1, window, offsets)
    return steps, limiting


def repeating_cameras(infos: list[VideoInfo], cameras: list[ShownFrames | None], steps: int,
                      window: tuple[float, float], offsets: list[float], first_only: bool = False) -> list[VideoInfo]:
    """The cameras that would show a frame twice at T = steps (with `first_only`, stop at the first one)."""
    start, step = _clock_start_and_step(infos, steps, window, offsets)
    found = []
    for info, frames in zip(infos, cameras):
        if frames is not None and shows_a_frame_twice(frames, start, step, steps):
            found.append(info)
            if first_only:
                break
    return found


@dataclass(frozen=True)
class ClipPlan:
    """What will be decoded, decided from the probes alone: T common times and each camera's layout."""

    infos: tuple[VideoInfo, ...]
    offsets: tuple[float, ...]
    times: tuple[float, ...]
    layouts: tuple[CameraLayout, ...]
    requested_steps: int
    notes: tuple[str, ...] = ()
    resize: str = DEFAULT_RESIZE

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


def _resize_note(resize: str, layouts: list[CameraLayout], width: int, max_height: int) -> str:
    """One line: the sizing mode, what it keeps, and the model input size."""
    canvas = f"model input {layouts[0].canvas[0]}x{layouts[0].canvas[1]}"
    if resize == "crop":
        return (f"crop: width {width}, cameras taller than {max_height} rows centre-cropped (VGGT's crop mode); "
                f"{canvas}")
    box = f"longer side {width}" if width == max_height else f"inside {width}x{max_height}"
    return f"fit: every pixel kept, {box}; {canvas}"


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


def check_resize(resize: str) -> None:
    """Refuse an unknown sizing mode with one line naming the known ones."""
    problem = resize_problem(resize)
    if problem is not None:
        raise VideoError(problem)


def plan_clip(infos: list[VideoInfo], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
              offsets: list[float] | None = None, max_total_frames: int = 64, width: int = TARGET_WIDTH,
              max_height: int = MAX_HEIGHT, resize: str = DEFAULT_RESIZE) -> ClipPlan:
    """Effective T (never a repeated frame), the common times and each camera's size, from probes alone."""
    check_resize(resize)
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
    layouts = plan_layouts([info.display_size for info in infos], width, max_height, resize=resize)
    notes = (_frame_count_note(num_steps, steps, limiting) + [_resize_note(resize, layouts, width, max_height)]
             + _layout_notes(infos, layouts))
    return ClipPlan(tuple(infos), tuple(offsets), tuple(plan_common_clock(infos, steps, window, offsets)),
                    tuple(layouts), num_steps, tuple(notes), resize)


def plan_multiview(paths: list[str | Path], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                   offsets: list[float] | None = None, max_total_frames: int = 64, width: int = TARGET_WIDTH,
                   max_height: int = MAX_HEIGHT, resize: str = DEFAULT_RESIZE) -> ClipPlan:
    """Probe every video (packets only) and plan the clip."""
    check_resize(resize)
    if not paths:
        raise VideoError("upload at least one video (one per camera)")
    if offsets and len(offsets) != len(paths):
        raise VideoError(f"{len(offsets)} offsets for {len(paths)} cameras")
    infos = [probe_video(path) for path in paths]
    return plan_clip(infos, num_steps, window, offsets, max_total_frames, width, max_height, resize)


def _decodable_frames(container, path: Path) -> Iterator:
    """The first video stream's frames in order; a corrupt tail ends them, a file with none is refused."""
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"
    decoded_any = False
    try:
        for frame in container.decode(stream):
            decoded_any = True
            yield frame
    except av.error.FFmpegError:
        if not decoded_any:
            raise VideoError(f"{shown_name(path)}: no frame could be decoded (truncated or corrupt file)") from None


def _converter(size: tuple[int, int] | None) -> Callable[[object], np.ndarray]:
    """frame -> RGB at `size`, remembering the last one: a frame chosen for several (sorted) times converts once."""
    last: list = [None, None]

    def convert(frame) -> np.ndarray:
        if frame is not last[0]:
            last[0], last[1] = frame, _to_rgb(frame, size)
        return last[1]
    return convert


def iter_decoded_frames(path: str | Path, times: list[float], size: tuple[int, int] | None = None
                        ) -> Iterator[tuple[int, np.ndarray]]:
    """(time index, uint8 [h, w, 3]) in time order, each converted as soon as it is chosen: memory holds the last
    decoded frame or two, never the chosen ones.

    The frame for a time is the last one shown at or before it (the first, before the video starts), upright
    and resized to `size`. Times that show the same frame get the same array: copy it before changing it."""
    path = Path(path)
    order = sorted(range(len(times)), key=lambda i: times[i])
    convert = _converter(size)
    position, previous = 0, None
    with _open(path) as container, closing(_decodable_frames(container, path)) as frames:
        for frame in frames:
            frame_time = frame.time if frame.time is not None else 0.0
            while position < len(order) and frame_time > times[order[position]] + TIME_TOLERANCE:
                yield order[position], convert(previous if previous is not None else frame)
                position += 1
            if position == len(order):
                return
            previous = frame
        if previous is None:
            raise VideoError(f"{shown_name(path)}: contains no decodable frames")
        for index in order[position:]:
            yield index, convert(previous)


def decode_frames(path: str | Path, times: list[float], size: tuple[int, int] | None = None) -> np.ndarray:
    """uint8 [T, H, W, 3]: for each time, the last frame shown at or before it, upright, resized to `size`."""
    frames = None
    for index, image in iter_decoded_frames(path, times, size):
        if frames is None:
            frames = np.empty((len(times),) + image.shape, dtype=np.uint8)
        frames[index] = image
    if frames is None:
        raise VideoError(f"{shown_name(Path(path))}: no time to decode")
    return frames


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


def clip_shape(plan: ClipPlan) -> tuple[int, int, int, int, int]:
    """(T, N, 3, H, W): the shape of the plan's model input, for a caller that provides the array."""
    width, height = plan.canvas
    return plan.steps, len(plan.infos), 3, height, width


def placed_frames(info: VideoInfo, times: list[float], layout: CameraLayout) -> Iterator[tuple[int, np.ndarray]]:
    """(time index, float32 [3, H, W] on the canvas) one at a time; a frame shown at several times is placed once."""
    last_image, last_placed = None, None
    for index, image in iter_decoded_frames(info.path, times, layout.scaled):
        if image is not last_image:
            last_image, last_placed = image, place_frame(image, layout)
        yield index, last_placed


def decode_clip(plan: ClipPlan, out=None) -> MultiViewClip:
    """Decode each camera at its planned times and place it, unstretched, on the common canvas.

    `out`, float32 of shape [T, N, 3, H, W], receives the frames one at a time by `out[t, n] = frame` (a numpy
    array or memmap, or any writer that takes that assignment), so memory holds a frame, never a camera's stack;
    without it the array is allocated here."""
    shape = clip_shape(plan)
    if out is None:
        out = np.empty(shape, dtype=np.float32)
    elif tuple(out.shape) != shape or np.dtype(out.dtype) != np.float32:
        raise ValueError(f"decode_clip needs a float32 array of shape {shape}, got {out.dtype} {tuple(out.shape)}")
    for camera, (info, offset, layout) in enumerate(zip(plan.infos, plan.offsets, plan.layouts)):
        for step, frame in placed_frames(info, [time + offset for time in plan.times], layout):
            out[step, camera] = frame
    valid = np.stack([layout.valid_mask() for layout in plan.layouts])
    return MultiViewClip(out, list(plan.times), list(plan.infos), plan.canvas, list(plan.notes), valid, plan)


def load_multiview(paths: list[str | Path], num_steps: int, window: tuple[float, float] = (0.0, 1.0),
                   offsets: list[float] | None = None, max_total_frames: int = 64,
                   width: int = TARGET_WIDTH, max_height: int = MAX_HEIGHT,
                   resize: str = DEFAULT_RESIZE) -> MultiViewClip:
    """Float32 images [T, N, 3, H, W] in [0, 1]: every camera at every common time step, never stretched."""
    return decode_clip(plan_multiview(paths, num_steps, window, offsets, max_total_frames, width, max_height,
                                      resize))
