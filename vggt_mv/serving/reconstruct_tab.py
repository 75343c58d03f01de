"""What the Reconstruct tab does, as plain functions (app.py only wires them to widgets)."""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
import numpy as np

from vggt_mv.io.examples import find_example, list_examples
from vggt_mv.io.layout import DEFAULT_RESIZE, RESIZE_MODES
from vggt_mv.io.thumbnails import first_frame
from vggt_mv.io.video import VideoError, shown_name
from vggt_mv.pipeline import (SCENE_PROGRESS, Reconstruction, ReconstructionError, ReconstructionSettings,
                              StageTimes, counted, model_weight_bytes, plan_run, resolve_query_points,
                              sizing_choices, tracks_of, with_tracks)
from vggt_mv.serving.app_state import AppState
from vggt_mv.tracking import MAX_QUERY_POINTS
from vggt_mv.viz.player import PLAYER_MODES, move_frames_into_layout
from vggt_mv.viz.points import COLOR_MODES
from vggt_mv.viz.previews import STRIP_PANELS, camera_rows, reference_frame
from vggt_mv.viz.scene import SceneOptions, build_scene

MASK_HEAD_PREFIX = "aggregator.spatial_mask_head."
RANDOM_MASK_NOTE = ("The spatial mask head's weights are random: the 'dynamic' colour, the dynamic filter and the "
                    "strip's dynamic panel show noise, not the model's motion segmentation.")
MAX_CAMERAS = 8
MAX_OFFSET_SECONDS = 86_400.0
MAX_POINT_BUDGET = 2_000_000
MODES = ("auto", "multi", "global")
COLOURS = COLOR_MODES
# Containers PyAV (FFmpeg) decodes that phones, cameras and editors write; the upload filter accepts exactly these.
VIDEO_FILE_TYPES = [".mp4", ".m4v", ".mov", ".qt", ".mkv", ".webm", ".avi", ".ts", ".mts", ".m2ts", ".mpg", ".mpeg",
                    ".3gp", ".ogv", ".wmv", ".flv", ".gif", ".y4m"]


class UserFacingError(ValueError):
    """A message for the person at the browser, always one line (a file name cannot break it); the server carries on."""

    def __init__(self, message: str) -> None:
        super().__init__(" ".join("".join(c if c.isprintable() else " " for c in str(message)).split()))


@dataclass
class DisplayChoices:
    """The display controls, as the widgets deliver them (any of them may be hostile: see scene_options)."""

    color_by: str = "rgb"
    conf_percentile: float = 25.0
    conf_threshold: float = 0.0
    point_budget: int = 200_000
    player_mode: str = "step"
    depth_edges: bool = True
    max_dynamic: float = 1.0
    show_ground_truth: bool = True

    def scene_options(self) -> SceneOptions:
        """Checked SceneOptions: each field out of range gets one message naming it."""
        if self.color_by not in COLOURS:
            raise UserFacingError(f"colour must be one of {', '.join(COLOURS)}, got {_shortened(self.color_by)}")
        if self.player_mode not in PLAYER_MODES:
            raise UserFacingError(f"player mode must be one of {', '.join(PLAYER_MODES)}, got "
                                  f"{_shortened(self.player_mode)}")
        if not isinstance(self.depth_edges, bool) or not isinstance(self.show_ground_truth, bool):
            raise UserFacingError("the depth-edge and ground-truth toggles must be true or false")
        return SceneOptions(color_by=self.color_by,
                            conf_percentile=number_in_range(self.conf_percentile, "confidence percentile", 0.0, 100.0),
                            conf_threshold=number_in_range(self.conf_threshold, "min confidence", 0.0, 1e12),
                            point_budget=whole_number(self.point_budget, "point budget", 1, MAX_POINT_BUDGET),
                            player_mode=self.player_mode, depth_edges=self.depth_edges,
                            max_dynamic=number_in_range(self.max_dynamic, "dynamic score limit", 0.0, 1.0),
                            show_ground_truth=self.show_ground_truth)


def example_names() -> list[str]:
    """Names for the example picker."""
    return [example.name for example in list_examples()]


def parse_offsets(text: str | None, cameras: int) -> tuple[float, ...]:
    """'0, 0.1, -0.05' -> per-camera offsets; empty means all zero; nan, inf and absurd values are refused."""
    if not text or not text.strip():
        return ()
    try:
        values = tuple(float(part) for part in text.replace(";", ",").split(",") if part.strip())
    except ValueError:
        raise UserFacingError(f"offsets must be numbers separated by commas, got {_shortened(text)!r}") from None
    if len(values) != cameras:
        raise UserFacingError(f"{len(values)} offsets given for {cameras} cameras")
    for value in values:
        if not math.isfinite(value) or abs(value) > MAX_OFFSET_SECONDS:
            raise UserFacingError(f"offsets must be seconds between -{MAX_OFFSET_SECONDS:g} and "
                                  f"{MAX_OFFSET_SECONDS:g}, got {value:g}")
    return values


def _shortened(text: str, limit: int = 40) -> str:
    """A user's text, cut to fit in one line of an error message."""
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "…"


def whole_number(value, name: str, low: int, high: int) -> int:
    """A request's count field as an int in [low, high], or one message saying what is allowed."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        raise UserFacingError(f"{name} must be a whole number from {low} to {high}, got {_shortened(value)}")
    return int(number)


def check_request(frames_per_camera, window_start, window_end, mode, color_by, conf_percentile, point_budget,
                  max_time_steps: int, resize: str = DEFAULT_RESIZE) -> int:
    """Refuse any field an API client can set out of range, before a video is opened; returns T."""
    frames = whole_number(frames_per_camera, "frames per camera", 1, max(1, max_time_steps))
    if resize not in RESIZE_MODES:
        raise UserFacingError(f"frame sizing must be one of {', '.join(RESIZE_MODES)}, got {_shortened(resize)}")
    whole_number(point_budget, "point budget", 1, MAX_POINT_BUDGET)
    number_in_range(conf_percentile, "confidence percentile", 0.0, 100.0)
    start = number_in_range(window_start, "window start", 0.0, 1.0)
    end = number_in_range(window_end, "window end", 0.0, 1.0)
    if not start < end:
        raise UserFacingError(f"window start must be below window end, got {start:g} and {end:g}")
    if mode not in MODES:
        raise UserFacingError(f"attention mode must be one of {', '.join(MODES)}, got {_shortened(mode)}")
    if color_by not in COLOURS:
        raise UserFacingError(f"colour must be one of {', '.join(COLOURS)}, got {_shortened(color_by)}")
    return frames


def number_in_range(value, name: str, low: float, high: float) -> float:
    """A finite number in [low, high], or one message naming the field."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number) or not low <= number <= high:
        raise UserFacingError(f"{name} must be a number from {low:g} to {high:g}, got {_shortened(value)}")
    return number


def resolve_videos(files: list | None, example_name: str | None):
    """Uploaded files win; otherwise the chosen example's videos (and its ground truth)."""
    if files is not None and not isinstance(files, (list, tuple)):
        raise UserFacingError("videos must be a list of uploaded files")
    if len(files or []) > MAX_CAMERAS:
        raise UserFacingError(f"{len(files)} videos uploaded: at most {MAX_CAMERAS} cameras (one video each)")
    paths = [upload_path(f) for f in files or []]
    for path in paths:
        if not path.is_file():
            raise UserFacingError(f"{shown_name(path)}: not a file (upload one video file per camera)")
    if paths:
        return paths, None
    if example_name:
        if example_name not in example_names():
            raise UserFacingError(f"no example called {_shortened(example_name)!r}")
        example = find_example(example_name)
        return list(example.video_paths), example
    raise UserFacingError("upload one video per camera (1 to 8), or pick an example")


def upload_path(upload) -> Path:
    """The server path of one uploaded file (a path string, a Path, or a tempfile-like object)."""
    if isinstance(upload, (str, Path)):
        return Path(upload)
    if isinstance(getattr(upload, "name", None), str):
        return Path(upload.name)
    raise UserFacingError("videos must be a list of uploaded files")


def session_folder_name(session_hash: str | None) -> str:
    """A digest of the client's session id: no string a client sends can name a path outside the sessions root."""
    return hashlib.sha256((session_hash or "anonymous").encode("utf-8", "surrogatepass")).hexdigest()[:32]


def is_session_folder(root: Path, folder: Path) -> bool:
    """True only for a real folder directly in `root` named like session_folder_name makes them."""
    name_is_digest = len(folder.name) == 32 and all(c in "0123456789abcdef" for c in folder.name)
    return (name_is_digest and not folder.is_symlink() and folder.is_dir()
            and folder.resolve().parent == root.resolve())


def session_folder(state: AppState, session_hash: str | None) -> Path:
    """A folder for one browser session's downloads (removed when the session ends)."""
    folder = state.sessions_root / session_folder_name(session_hash)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def forget_earlier_runs(state: AppState, session_hash: str | None) -> None:
    """Before a new run: drop the session's earlier runs' files, so one session keeps one run on disk."""
    folder = state.sessions_root / session_folder_name(session_hash)
    if is_session_folder(state.sessions_root, folder):
        for run_folder in folder.iterdir():
            if run_folder.is_dir() and not run_folder.is_symlink():
                shutil.rmtree(run_folder, ignore_errors=True)
            else:
                run_folder.unlink(missing_ok=True)


def remove_session_folder(state: AppState, session_hash: str | None) -> None:
    """Forget a session's files and tracks; anything that is not one of our session folders is left alone."""
    state.session_tracks.drop(session_folder_name(session_hash))
    folder = state.sessions_root / session_folder_name(session_hash)
    if is_session_folder(state.sessions_root, folder):
        shutil.rmtree(folder, ignore_errors=True)


def ignored_example(files, example_name: str | None) -> str | None:
    """The chosen example's name when uploads are present too (uploads win), else None."""
    return example_name if files and example_name else None


def uploads_win_note(example_name: str) -> str:
    """Said in the plan and the status whenever uploads and an example are both chosen."""
    return f"uploads are used; the example '{_shortened(example_name)}' is ignored"


def describe_plan(state: AppState, files, example_name, frames_per_camera, resize: str = DEFAULT_RESIZE) -> str:
    """Effective T (and why), the attention mode (and why), each camera's source -> processed size, tokens and
    memory; or why it cannot run. Runs in the main process and never touches CUDA."""
    served = state.served
    try:
        videos, _ = resolve_videos(files, example_name)
        settings = ReconstructionSettings(frames_per_camera=int(frames_per_camera), resize=resize,
                                          max_total_frames=state.max_total_frames,
                                          max_time_steps=state.max_time_steps)
        plan = plan_run(videos, settings, served.config, model_weight_bytes(served.model), state.memory(),
                        served.trained)
    except (UserFacingError, VideoError, ReconstructionError) as error:
        return f"⚠️ {error}"
    lines = [f"Planned on {served.device}: {plan.describe()}"]
    ignored = ignored_example(files, example_name)
    if ignored:
        lines.append(f"- ⚠️ {uploads_win_note(ignored)}")
    return "\n".join(lines)


def upload_previews(files) -> list[tuple[np.ndarray, str]]:
    """Each upload's first frame, captioned 'camera n: name (WxH, fps, frames)', before anything runs."""
    previews = []
    for index, upload in enumerate(list(files or [])[:MAX_CAMERAS]):
        try:
            path = upload_path(upload)
        except UserFacingError:
            continue
        thumbnail = first_frame(path)
        info = thumbnail.info
        if info is None:
            caption = f"camera {index}: {thumbnail.error}"
        else:
            width, height = info.display_size
            caption = (f"camera {index}: {shown_name(path)} ({width}x{height}, {info.fps:.3g} fps, "
                       f"{counted(info.frame_count, 'frame')})")
        previews.append((thumbnail.image, caption))
    return previews


def run(state: AppState, files, example_name, frames_per_camera, window_start, window_end, offsets_text, mode,
        display: DisplayChoices, session_hash: str | None, progress=None, query_points=None,
        resize: str = DEFAULT_RESIZE):
    """Reconstruct and prepare everything the tab shows: figure, strip, downloads (none yet), status, cache key."""
    *_, last = run_progressively(state, files, example_name, frames_per_camera, window_start, window_end,
                                 offsets_text, mode, display, session_hash, progress, query_points, resize)
    return last


def checked_query_points(query_points) -> list:
    """The request's query points as far as they can be checked before a frame exists (a list of at most
    MAX_QUERY_POINTS finite [x, y] pairs; none: no tracks); the frame's bounds are checked once it is decoded."""
    if query_points is None or (isinstance(query_points, (list, tuple)) and len(query_points) == 0):
        return []
    try:
        resolve_query_points(query_points, 0, None)
    except ReconstructionError as error:
        raise UserFacingError(str(error)) from None
    return list(query_points)


def run_progressively(state: AppState, files, example_name, frames_per_camera, window_start, window_end,
                      offsets_text, mode, display: DisplayChoices, session_hash: str | None, progress=None,
                      query_points=None, resize: str = DEFAULT_RESIZE):
    """Like `run`, as a generator (Gradio streams it): the scene, with no downloads yet: each format is built when
    the visitor asks for it (vggt_mv.serving.downloads), so nothing is written on the way to the scene.

    With query points ([[x, y], ...] in pixels of the processed reference frame) the run carries their tracks; a
    cached run gets them from its kept track context (track head only), and they become the session's tracks.
    Without, it shows no tracks, and the session's earlier tracks are forgotten (other sessions' stay theirs).
    Only the model's forward (and the track head) runs in a GPU call; the rest runs here, in the main process."""
    display.scene_options()
    points = checked_query_points(query_points)
    videos, example = resolve_videos(files, example_name)
    settings = ReconstructionSettings(frames_per_camera=int(frames_per_camera),
                                      window=(float(window_start), float(window_end)),
                                      offsets=parse_offsets(offsets_text, len(videos)), mode=mode,
                                      max_total_frames=state.max_total_frames, max_time_steps=state.max_time_steps,
                                      resize=resize, query_points=tuple(points))
    progress = progress or (lambda fraction, message: None)
    stages = StageTimes()
    ignored = ignored_example(files, example_name)
    try:
        result = state.reconstruct(videos, settings, example, progress, stages)
        progress(SCENE_PROGRESS, "building the scene")
        with stages.stage("scene"):
            figure, strip = render(result, display)
    except (VideoError, ReconstructionError) as error:
        raise UserFacingError(str(error)) from None
    state.session_tracks.put(session_folder_name(session_hash), result.key, tracks_of(result))
    yield figure, strip, [], status_text(state.served, result, stages, ignored=ignored, display=display), result.key


def upload_preview_update(files) -> dict:
    """The upload preview gallery: first frames when there are uploads, hidden otherwise."""
    previews = upload_previews(files)
    return gr.update(value=previews or None, visible=bool(previews))


def render(result: Reconstruction, display: DisplayChoices, strip_step: int = 0):
    """Figure (with its player) and the per-camera strip at `strip_step`, for the display choices (no model run)."""
    return scene_figure(result, display), camera_gallery(result, strip_step)


def scene_figure(result: Reconstruction, display: DisplayChoices):
    """The 3D scene as gr.Plot needs it: its player's frames carried in the layout (see vggt_mv.viz.player)."""
    return move_frames_into_layout(build_scene(result.predictions, display.scene_options()))


def camera_gallery(result: Reconstruction, time_step: int) -> list[tuple[np.ndarray, str]]:
    """[input | depth | confidence | dynamic] per camera at one time step, captioned 'camera n: file name' so no
    one guesses which is which."""
    rows = camera_rows(result.predictions, time_step)
    return [(row, f"camera {index}: {shown_name(info.path)}")
            for index, (row, info) in enumerate(zip(rows, result.clip.infos))]


def cached_result(state: AppState, key: str | None) -> Reconstruction | None:
    """The session's cached run (without tracks), None before any run; a key that left the cache gets one message."""
    if key is None:
        return None
    result = state.runs.get(key)
    if result is None:
        raise UserFacingError("run a reconstruction first (or again: its results left the cache)")
    return result


def session_result(state: AppState, key: str | None, session_hash: str | None) -> Reconstruction | None:
    """What this session sees of the cached run `key`: the run with this session's tracks (if it has any there)."""
    result = cached_result(state, key)
    if result is None:
        return None
    tracks = state.session_tracks.get(session_folder_name(session_hash), key)
    return with_tracks(result, tracks) if tracks else result


def redraw(state: AppState, key: str | None, display: DisplayChoices, session_hash: str | None):
    """Display controls changed: rebuild the scene from the cached predictions with the session's tracks; before
    any run, change nothing."""
    result = session_result(state, key, session_hash)
    return gr.skip() if result is None else scene_figure(result, display)


def redraw_strip(state: AppState, key: str | None, strip_step, session_hash: str | None) -> object:
    """The strip's time step changed: only the strip is drawn again (the 3D player needs no server call)."""
    result = session_result(state, key, session_hash)
    if result is None:
        return gr.skip()
    last = result.clip.grid[0] - 1
    return camera_gallery(result, whole_number(strip_step, "strip time step", 0, last))


def track_point(state: AppState, key: str | None, points: list, index, display: DisplayChoices, strip_step,
                session_hash: str | None):
    """A click on the reference frame (Gradio's select index [x, y], in its pixels): the session's points plus this
    one, tracked from the cached run (track head only); what track_view returns, and the new point list."""
    if not isinstance(index, (list, tuple)) or len(index) != 2:
        raise UserFacingError("click on the reference frame's image itself to track a point")
    wanted = list(points or []) + [list(index)]
    if len(wanted) > MAX_QUERY_POINTS:
        raise UserFacingError(f"at most {MAX_QUERY_POINTS} points can be tracked at once; clear the tracks first")
    return track_view(state, key, display, strip_step, session_hash, query_points=wanted)


def track_grid(state: AppState, key: str | None, count, display: DisplayChoices, strip_step, session_hash: str | None):
    """'Track a grid of K points' over the reference frame's real pixels; later clicks add to the grid."""
    whole_number(count, "track grid", 1, MAX_QUERY_POINTS)
    return track_view(state, key, display, strip_step, session_hash, track_grid=int(float(count)))


def track_view(state: AppState, key: str | None, display: DisplayChoices, strip_step, session_hash: str | None,
               query_points=(), track_grid: int = 0):
    """Track points on the cached run without re-running it (or say why it cannot) as this session's tracks (the
    shared run is unchanged), then redraw: (scene, strip, reference frame, tracks status, downloads, the points)."""
    result = cached_result(state, key)
    if result is None:
        raise UserFacingError("run a reconstruction first, then click its reference frame")
    options = display.scene_options()
    step = whole_number(strip_step, "strip time step", 0, result.clip.grid[0] - 1)
    reason = state.runs.tracks_unavailable(key)
    if reason is not None:
        raise UserFacingError(f"cannot add tracks to this run without running it again: {reason}")
    stages = StageTimes()
    try:
        with stages.stage("tracks"):
            result = state.add_tracks(key, query_points, track_grid)
    except ReconstructionError as error:
        raise UserFacingError(str(error)) from None
    state.session_tracks.put(session_folder_name(session_hash), key, tracks_of(result))
    with stages.stage("scene"):
        figure = move_frames_into_layout(build_scene(result.predictions, options))
        strip = camera_gallery(result, step)
    downloads = forget_run_downloads(state, result, session_hash)
    points = result.predictions["query_points"].tolist()
    return figure, strip, reference_frame(result.predictions), tracks_status(state, result, stages), downloads, points


def clear_tracks(state: AppState, key: str | None, display: DisplayChoices, strip_step, session_hash: str | None):
    """'Clear tracks': the session's tracks forgotten, the run drawn again without them (same outputs as
    track_view); other sessions' tracks on the same run stay."""
    result = cached_result(state, key)
    if result is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), []
    options = display.scene_options()
    step = whole_number(strip_step, "strip time step", 0, result.clip.grid[0] - 1)
    state.session_tracks.drop(session_folder_name(session_hash))
    downloads = forget_run_downloads(state, result, session_hash)
    return (move_frames_into_layout(build_scene(result.predictions, options)), camera_gallery(result, step),
            reference_frame(result.predictions), tracks_status(state, result), downloads, [])


def forget_run_downloads(state: AppState, result: Reconstruction, session_hash: str | None):
    """The session's downloads of this run no longer match it (its tracks changed): remove them, so the next
    download is built with what the scene shows; the new (empty) downloads list, or no change without any."""
    folder = state.sessions_root / session_folder_name(session_hash) / result.key
    if not (is_session_folder(state.sessions_root, folder.parent) and folder.is_dir() and not folder.is_symlink()):
        return gr.skip()
    shutil.rmtree(folder, ignore_errors=True)
    return []


def tracks_status(state: AppState, result: Reconstruction, stages: StageTimes | None = None) -> str:
    """The line under the reference frame: how to add tracks, what is tracked and how (never an aggregator run),
    or why tracks cannot be added from the cache."""
    reason = state.runs.tracks_unavailable(result.key)
    predictions = result.predictions
    if "track" not in predictions:
        if reason is not None:
            return f"⚠️ Tracks cannot be added without running the model again: {reason}."
        return ("Click the reference frame to track a point through every frame, or track a grid; the track head "
                "runs alone on what this run kept (the aggregator does not run again).")
    steps, cameras, count = predictions["track"].shape[:3]
    line = f"**{counted(count, 'track')}** through {steps} x {cameras} frames"
    if stages is not None:
        line += f": track head only, from the run's kept context (no aggregator run): {stages.describe()}"
    hidden = float((predictions["vis"] < 0.5).mean())
    return line + f". {hidden:.0%} of the tracked positions are hidden (vis < 0.5; faded in the strip)."


def track_controls_after_run(state: AppState, key: str | None, session_hash: str | None) -> tuple:
    """After a run: the reference frame to click (with the session's tracks), the tracks status, the tracked
    points."""
    if state.runs.get(key) is None:
        return gr.skip(), gr.skip(), []
    result = session_result(state, key, session_hash)
    points = result.predictions["query_points"].tolist() if "query_points" in result.predictions else []
    return reference_frame(result.predictions), tracks_status(state, result), points


def strip_heading() -> str:
    """The line above the strip: which panels it shows, left to right."""
    return f"**Per camera** at the strip's time step: {' | '.join(STRIP_PANELS)}"


def display_control_updates(state: AppState, key: str | None) -> tuple:
    """After a run: the strip's time step spans exactly 0..T-1 (reset to 0), the ground-truth toggle only with
    ground truth."""
    result = state.runs.get(key)
    if result is None:
        return gr.skip(), gr.skip()
    last = result.clip.grid[0] - 1
    strip_step = gr.update(minimum=0, maximum=max(last, 1), value=0, label=f"Strip time step (0..{last})",
                           interactive=last > 0)
    return strip_step, gr.update(visible="gt_extrinsic" in result.predictions)


def mask_head_is_random(served) -> bool:
    """Whether the spatial mask head (the dynamic score) kept its random init: then its score is noise."""
    report = getattr(served, "report", None)
    if report is None:
        return True
    return any(record["status"] == "random" for record in report.tensors
               if record["key"].startswith(MASK_HEAD_PREFIX))


def status_text(served, result: Reconstruction, stages: StageTimes | None = None, ignored: str | None = None,
                display: DisplayChoices | None = None) -> str:
    """Markdown: grid, sizes and attention mode, every stage's time (adding up to the wall time), notes."""
    steps, cameras = result.clip.grid
    height, width = result.clip.images.shape[-2:]
    requested = result.settings.frames_per_camera
    capped = f" (asked for {requested})" if steps < requested else ""
    seconds = stages.seconds if stages is not None else result.seconds
    timing = stages.describe() if stages is not None else ", ".join(f"{k} {v:.2f} s" for k, v in seconds.items())
    lines = [f"**{counted(steps, 'time step')}{capped} x {counted(cameras, 'camera')}** at {width}x{height} on "
             f"{served.device} (preset {served.preset}, attention {result.mode.mode}): {timing}.",
             f"- Attention: {result.mode.reason}"]
    if ignored:
        lines.append(f"- ⚠️ {uploads_win_note(ignored)}.")
    if "inference" not in seconds:
        lines.append("- Same videos, settings and weights as an earlier run: its predictions were reused.")
    lines.append("- Downloads are built when you ask for one (the buttons under the scene), from what it shows.")
    if result.clip.plan is not None:
        lines += [f"- {line}" for line in result.clip.plan.camera_lines()]
        lines.append(f"- {sizing_choices(result.clip.plan, served.config)}")
    lines += [f"- {note}" for note in result.notes]
    if "gt_extrinsic" in result.predictions:
        lines.append("- Ground-truth cameras (dashed grey) are aligned to camera 0 at the first time step.")
    if mask_head_is_random(served):
        lines.append(f"- {RANDOM_MASK_NOTE}")
    if display is not None and not display.depth_edges:
        lines.append("- Depth-edge points are kept (the filter is off) in the scene and the downloads built from it.")
    if "track" in result.predictions:
        track_steps, track_cameras, count = result.predictions["track"].shape[:3]
        how = "track head only, from the kept context" if "inference" not in seconds else "with this run"
        lines.append(f"- Tracks: {counted(count, 'query point')} followed through {track_steps} x {track_cameras} "
                     f"frames ({how}); `track`, `vis`, `conf` and `track_world_points` are in the NPZ.")
    return "\n".join(lines)
