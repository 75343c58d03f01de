"""What the Reconstruct tab does, as plain functions (app.py only wires them to widgets)."""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vggt_mv.io.examples import find_example, list_examples
from vggt_mv.io.video import VideoError
from vggt_mv.pipeline import (Reconstruction, ReconstructionError, ReconstructionSettings, cached_reconstruction,
                              plan_run, reconstruct, write_outputs)
from vggt_mv.viz.previews import camera_strip
from vggt_mv.viz.scene import SceneOptions, build_scene

SESSIONS_ROOT = Path(tempfile.gettempdir()) / "vggt-mv-sessions"
ALL_TIME_STEPS = -1


class UserFacingError(ValueError):
    """A message for the person at the browser; the server carries on."""


@dataclass
class DisplayChoices:
    """The display controls, as the widgets deliver them."""

    color_by: str = "rgb"
    conf_percentile: float = 25.0
    conf_threshold: float = 0.0
    point_budget: int = 200_000
    time_step: int = ALL_TIME_STEPS
    show_ground_truth: bool = True

    def scene_options(self, num_steps: int) -> SceneOptions:
        """SceneOptions, clamping the time slider to the run's time steps."""
        step = None if self.time_step is None or int(self.time_step) < 0 else min(int(self.time_step), num_steps - 1)
        return SceneOptions(color_by=self.color_by, conf_percentile=float(self.conf_percentile),
                            conf_threshold=float(self.conf_threshold), point_budget=int(self.point_budget),
                            time_step=step, show_ground_truth=bool(self.show_ground_truth))


def example_names() -> list[str]:
    """Names for the example picker."""
    return [example.name for example in list_examples()]


def parse_offsets(text: str | None, cameras: int) -> tuple[float, ...]:
    """'0, 0.1, -0.05' -> per-camera offsets; empty means all zero."""
    if not text or not text.strip():
        return ()
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        raise UserFacingError(f"offsets must be numbers separated by commas, got {text!r}") from None
    if len(values) != cameras:
        raise UserFacingError(f"{len(values)} offsets given for {cameras} cameras")
    return values


def resolve_videos(files: list | None, example_name: str | None):
    """Uploaded files win; otherwise the chosen example's videos (and its ground truth)."""
    paths = [Path(getattr(f, "name", f)) for f in files or []]
    if paths:
        return paths, None
    if example_name:
        example = find_example(example_name)
        return list(example.video_paths), example
    raise UserFacingError("upload one video per camera (1 to 8), or pick an example")


def session_folder(session_hash: str | None) -> Path:
    """A folder for one browser session's downloads (removed when the session ends)."""
    folder = SESSIONS_ROOT / (session_hash or "anonymous")
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def remove_session_folder(session_hash: str | None) -> None:
    """Forget a session's files."""
    shutil.rmtree(SESSIONS_ROOT / (session_hash or "anonymous"), ignore_errors=True)


def describe_plan(served, files, example_name, frames_per_camera, max_total_frames) -> str:
    """T x N, tokens and estimated memory, shown before running (or why it cannot run)."""
    try:
        videos, _ = resolve_videos(files, example_name)
        estimate = plan_run(served, videos, ReconstructionSettings(frames_per_camera=int(frames_per_camera),
                                                                   max_total_frames=max_total_frames))
    except (UserFacingError, VideoError, ReconstructionError) as error:
        return f"⚠️ {error}"
    return f"Planned: {estimate.describe()} on {served.device}."


def run(served, files, example_name, frames_per_camera, window_start, window_end, offsets_text, mode,
        display: DisplayChoices, session_hash: str | None, max_total_frames: int, progress=None):
    """Reconstruct and prepare everything the tab shows: figure, strip, downloads, status, cache key."""
    try:
        videos, example = resolve_videos(files, example_name)
        settings = ReconstructionSettings(frames_per_camera=int(frames_per_camera),
                                          window=(float(window_start), float(window_end)),
                                          offsets=parse_offsets(offsets_text, len(videos)), mode=mode,
                                          max_total_frames=max_total_frames)
        result = reconstruct(served, videos, settings, example=example, progress=progress)
    except (VideoError, ReconstructionError) as error:
        raise UserFacingError(str(error)) from None
    figure, strip = render(result, display)
    folder = session_folder(session_hash) / result.key
    outputs = write_outputs(result, folder, display.scene_options(result.clip.grid[0]))
    downloads = [str(outputs["glb"]), str(outputs["npz"]), str(outputs["cameras"])] + [str(p) for p in outputs["ply"]]
    return figure, strip, downloads, status_text(served, result), result.key


def render(result: Reconstruction, display: DisplayChoices):
    """Figure and per-camera strip for the current display choices (no model run)."""
    steps = result.clip.grid[0]
    options = display.scene_options(steps)
    figure = build_scene(result.predictions, options)
    strip = camera_strip(result.predictions, options.time_step or 0)
    return figure, strip


def redraw(key: str | None, display: DisplayChoices):
    """Display controls changed: rebuild from the session's cached predictions."""
    result = cached_reconstruction(key)
    if result is None:
        raise UserFacingError("run a reconstruction first (or again: its results left the cache)")
    return render(result, display)


def status_text(served, result: Reconstruction) -> str:
    """One Markdown paragraph: grid, timings, notes."""
    steps, cameras = result.clip.grid
    height, width = result.clip.images.shape[-2:]
    lines = [f"**{steps} time steps x {cameras} cameras** at {width}x{height} on {served.device} "
             f"(preset {served.preset}): decode {result.seconds['decode']:.1f} s, "
             f"inference {result.seconds['inference']:.1f} s."]
    lines += [f"- {note}" for note in result.notes]
    if "gt_extrinsic" in result.predictions:
        lines.append("- Ground-truth cameras (dashed grey) are aligned to camera 0 at the first time step.")
    return "\n".join(lines)


def empty_strip() -> np.ndarray:
    """Placeholder image before the first run."""
    return np.zeros((8, 8, 3), dtype=np.uint8)
