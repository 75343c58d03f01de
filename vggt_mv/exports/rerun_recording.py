"""The whole 4D run as a Rerun recording (recording.rrd): open it with `rerun recording.rrd` (rerun-sdk 0.41).

Timelines: `time_step` (a sequence, 0..T-1) on every time-varying entity, and `time` (a duration, seconds on the
common clock) beside it when the predictions have finite `times`. Nothing else (no `log_time`), so two runs of
the same predictions differ only in their recording id and start time.

Entity paths (the world is OpenCV's: x right, y down, z forward; every position is in the predictions' units):
    world                    ViewCoordinates RIGHT_HAND_Y_DOWN (static)
    world/points             Points3D: every camera's world points of the time step (the scene's filters; the
                             point budget split evenly over the time steps), coloured by the pixels' RGB
    world/camera{n}          Transform3D camera -> world (the inverse of extrinsic n) and Pinhole (intrinsic n,
                             W x H, camera_xyz RDF); Clear at a time step where camera n is left out
    world/camera{n}/image    Image: camera n's frame, uint8 RGB
    world/camera{n}/depth    DepthImage: its depth map in scene units (meter = 1), 0 on padding and non-finite depth
    world/camera{n}/tracks   Points2D (only with tracks): the tracked pixels, as opaque as visible (faded hidden)
    world/tracks/trails      LineStrips3D (only with tracks): one line per (track, camera) over time steps 0..t,
                             broken where the track is hidden (visibility below MIN_VISIBILITY) or not finite
    world/tracks/points      Points3D (only with tracks): the tracked points of time step t, visible ones only

No NaN or infinity is ever logged: a camera whose extrinsic or intrinsic is not finite (or not usable) at a time
step is left out there, and the summary's notes name it.

rerun-sdk is an optional extra (`pip install 'vggt-mv[rerun]'`): it is imported inside the functions that use it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from vggt_mv.exports.bad_values import camera_notes, camera_problems
from vggt_mv.viz.cameras import camera_centers, default_frustum_depth
from vggt_mv.viz.export import EXPORT_POINT_BUDGET, as_uint8_images
from vggt_mv.viz.points import PointFilters, PointSelection, select_points
from vggt_mv.viz.tracks import MARK_RADIUS, MIN_MARK_ALPHA, MIN_VISIBILITY, track_colors, track_polylines

INSTALL_HINT = "the Rerun recording needs rerun-sdk: pip install 'vggt-mv[rerun]'"
STEP_TIMELINE = "time_step"
SECONDS_TIMELINE = "time"
WORLD = "world"
POINTS = "world/points"
TRACK_TRAILS = "world/tracks/trails"
TRACK_POINTS = "world/tracks/points"
RECORDING_NAME = "the Rerun recording"
SCENE_FILTERS = PointFilters()


def camera_entity(camera: int) -> str:
    """Where camera n's pose and pinhole live (its image, depth and tracks are below it)."""
    return f"{WORLD}/camera{camera}"


@dataclass(frozen=True)
class RecordingSummary:
    """What a recording holds, for the status line and the tests, and what it left out (one note a line)."""

    path: Path
    time_steps: int
    cameras: int
    points: int
    tracks: int
    notes: list[str] = field(default_factory=list)


def rerun_missing() -> str | None:
    """Why a Rerun recording cannot be written on this install (None when rerun-sdk imports)."""
    try:
        import rerun  # noqa: F401
    except ImportError:
        return INSTALL_HINT
    return None


def import_rerun() -> ModuleType:
    """rerun, imported only when a recording is written (it is an optional extra of about 500 MB)."""
    try:
        import rerun
    except ImportError as error:
        raise ImportError(INSTALL_HINT) from error
    return rerun


def world_from_camera(extrinsic: np.ndarray) -> np.ndarray | None:
    """The camera-to-world 4x4 float32 (the inverse of a world-to-camera 3x4), or None when it is not finite."""
    camera_from_world = np.vstack([np.asarray(extrinsic, dtype=np.float64), [0.0, 0.0, 0.0, 1.0]])
    try:
        inverse = np.linalg.inv(camera_from_world).astype(np.float32)
    except np.linalg.LinAlgError:
        return None
    return inverse if np.isfinite(inverse).all() else None


def cameras_left_out(predictions: dict[str, np.ndarray]) -> dict[tuple[int, int], str]:
    """(time step, camera) -> why it is not in the recording: not finite, no positive focal, no inverse pose."""
    problems = camera_problems(predictions)
    steps, cameras = predictions["extrinsic"].shape[:2]
    for key in [(t, n) for t in range(steps) for n in range(cameras) if (t, n) not in problems]:
        if world_from_camera(predictions["extrinsic"][key]) is None:
            problems[key] = "its pose cannot be inverted"
        elif not np.isfinite(np.asarray(predictions["intrinsic"][key], dtype=np.float32)).all():
            problems[key] = "its intrinsics overflow float32"
    return problems


def step_seconds(predictions: dict[str, np.ndarray]) -> tuple[np.ndarray | None, list[str]]:
    """The times for the `time` timeline, or None (with a note when there were times but unusable ones)."""
    if "times" not in predictions:
        return None, []
    times = np.asarray(predictions["times"], dtype=np.float64).reshape(-1)
    if len(times) != predictions["extrinsic"].shape[0] or not np.isfinite(times).all():
        note = f"{RECORDING_NAME} has no `{SECONDS_TIMELINE}` timeline: the times are not finite, one per time step"
        return None, [note]
    return times, []


class Uint8Frames:
    """The images as uint8, converted a part at a time as they are logged (a long run's are on disk)."""

    def __init__(self, images) -> None:
        self.images, self.shape = images, tuple(images.shape)

    def __getitem__(self, index) -> np.ndarray:
        return as_uint8_images(np.asarray(self.images[index]))


def point_colors(images: np.ndarray, selection: PointSelection) -> np.ndarray:
    """uint8 [P, 3]: each kept point's pixel, from the uint8 frames (so float and uint8 images give the same)."""
    width = images.shape[-1]
    rows, cols = np.divmod(selection.pixel_index, width)
    return np.ascontiguousarray(images[selection.time_index, selection.camera_index, :, rows, cols])


def has_2d_tracks(predictions: dict[str, np.ndarray]) -> bool:
    """Whether the predictions hold tracked pixels (with the visibility that fades them)."""
    return "track" in predictions and "vis" in predictions


def has_3d_tracks(predictions: dict[str, np.ndarray]) -> bool:
    """Whether the predictions hold tracked world points (with the visibility that hides them)."""
    return "track_world_points" in predictions and "vis" in predictions


def track_count(predictions: dict[str, np.ndarray]) -> int:
    """How many points were tracked (0 when the predictions have no tracks)."""
    for key in ("track_world_points", "track"):
        if key in predictions and "vis" in predictions:
            return int(np.asarray(predictions[key]).shape[2])
    return 0


def visible_pixels(pixels: np.ndarray, image_hw: tuple[int, int]) -> np.ndarray:
    """Which tracked pixels [K] to draw on an image: finite and inside it (a hidden one is drawn faded)."""
    height, width = image_hw
    x, y = pixels[:, 0], pixels[:, 1]
    return np.isfinite(pixels).all(axis=1) & (x >= 0) & (x < width) & (y >= 0) & (y < height)


def faded_colors(colors: np.ndarray, visibility: np.ndarray) -> np.ndarray:
    """uint8 RGBA [K, 4]: each track's colour, as opaque as it is visible (never below MIN_MARK_ALPHA)."""
    alpha = np.clip(np.nan_to_num(np.asarray(visibility, dtype=np.float64), nan=0.0), MIN_MARK_ALPHA, 1.0)
    return np.hstack([colors, np.round(alpha * 255).astype(np.uint8)[:, None]])


def trail_strips(world_points: np.ndarray, visibility: np.ndarray, up_to: int) -> tuple[list[np.ndarray], np.ndarray]:
    """The 3D trails up to a time step: runs of at least two shown vertices, with the track of each run."""
    lines = track_polylines(world_points, up_to, visibility, MIN_VISIBILITY)
    shown = np.isfinite(lines.xyz).all(axis=1)
    edges = np.diff(np.concatenate([[0], shown.astype(np.int8), [0]]))
    starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_enough = stops - starts >= 2
    strips = [lines.xyz[start:stop] for start, stop in zip(starts[long_enough], stops[long_enough])]
    return strips, lines.track[starts[long_enough]]


def depth_image(depth: np.ndarray, valid: np.ndarray | None) -> np.ndarray:
    """float32 [H, W] depth for a DepthImage: 0 (Rerun's "no depth") on padding and where it is not finite."""
    values = np.asarray(depth, dtype=np.float32).reshape(depth.shape[0], depth.shape[1])
    keep = np.isfinite(values)
    if valid is not None:
        keep &= np.asarray(valid, dtype=bool)
    return np.where(keep, values, 0.0).astype(np.float32)


def open_stream(rr: ModuleType, path: Path, application_id: str) -> Any:
    """A recording of its own (never the global or thread-local one) streaming into `path`, no log_time."""
    stream = rr.RecordingStream(application_id, recording_id=str(uuid.uuid4()), make_default=False,
                                make_thread_default=False)
    stream.set_log_time_enabled(False)
    stream.save(path)
    return stream


def close_stream(stream: Any) -> None:
    """Flush everything and close the file sink, so the .rrd (with its footer) is complete on return."""
    stream.flush()
    stream.disconnect()


def set_step_time(stream: Any, time_step: int, seconds: np.ndarray | None) -> None:
    """Put what is logged next on time step `time_step` (and its time in seconds when known)."""
    stream.set_time(STEP_TIMELINE, sequence=time_step)
    if seconds is not None:
        stream.set_time(SECONDS_TIMELINE, duration=float(seconds[time_step]))


def log_camera(rr: ModuleType, stream: Any, predictions: dict[str, np.ndarray], images: np.ndarray,
               time_step: int, camera: int, frustum_depth: float) -> None:
    """One camera at one time step: its pose, pinhole, image and depth map."""
    entity = camera_entity(camera)
    height, width = images.shape[-2:]
    pose = world_from_camera(predictions["extrinsic"][time_step, camera])
    stream.log(entity, rr.Transform3D(translation=pose[:3, 3], mat3x3=pose[:3, :3],
                                      relation=rr.TransformRelation.ParentFromChild))
    stream.log(entity, rr.Pinhole(image_from_camera=np.asarray(predictions["intrinsic"][time_step, camera],
                                                               dtype=np.float32),
                                  resolution=[width, height], camera_xyz=rr.ViewCoordinates.RDF,
                                  image_plane_distance=frustum_depth))
    stream.log(f"{entity}/image", rr.Image(np.ascontiguousarray(images[time_step, camera].transpose(1, 2, 0)),
                                           color_model="RGB"))
    valid = predictions["valid_mask"][time_step, camera] if "valid_mask" in predictions else None
    stream.log(f"{entity}/depth", rr.DepthImage(depth_image(predictions["depth"][time_step, camera], valid),
                                                meter=1.0))


def log_camera_tracks(rr: ModuleType, stream: Any, predictions: dict[str, np.ndarray], time_step: int,
                      camera: int) -> None:
    """The tracked pixels on one camera's image at one time step (empty when none is drawable)."""
    pixels = np.asarray(predictions["track"][time_step, camera], dtype=np.float64)
    visibility = np.asarray(predictions["vis"][time_step, camera])
    shown = visible_pixels(pixels, predictions["images"].shape[-2:])
    colors = faded_colors(track_colors(len(pixels)), visibility)
    stream.log(f"{camera_entity(camera)}/tracks",
               rr.Points2D(pixels[shown].astype(np.float32), colors=colors[shown], radii=MARK_RADIUS,
                           class_ids=np.flatnonzero(shown)))


def log_world_tracks(rr: ModuleType, stream: Any, predictions: dict[str, np.ndarray], time_step: int) -> None:
    """The 3D trails up to a time step and the tracked points at it (visible and finite ones only)."""
    world_points = np.asarray(predictions["track_world_points"])
    visibility = np.asarray(predictions["vis"])
    colors = track_colors(world_points.shape[2])
    strips, strip_tracks = trail_strips(world_points, visibility, time_step)
    stream.log(TRACK_TRAILS, rr.LineStrips3D(strips, colors=colors[strip_tracks]))
    now = world_points[time_step].astype(np.float32)                                  # [N, K, 3]
    shown = np.isfinite(now).all(axis=-1) & (np.nan_to_num(visibility[time_step], nan=0.0) >= MIN_VISIBILITY)
    tracks = np.broadcast_to(np.arange(now.shape[1]), shown.shape)[shown]
    stream.log(TRACK_POINTS, rr.Points3D(now[shown], colors=colors[tracks], class_ids=tracks))


def steps_of_points(selection: PointSelection) -> np.ndarray:
    """Each kept point's time step, -1 where its float32 position is not finite (never logged)."""
    return np.where(np.isfinite(selection.xyz).all(axis=1), selection.time_index, -1)


def log_points(rr: ModuleType, stream: Any, selection: PointSelection, colors: np.ndarray, point_steps: np.ndarray,
               time_step: int) -> int:
    """The time step's point cloud (logged even when empty, so the last step's points do not linger)."""
    members = point_steps == time_step
    stream.log(POINTS, rr.Points3D(selection.xyz[members], colors=colors[members]))
    return int(np.count_nonzero(members))


def frustum_depth_of(predictions: dict[str, np.ndarray], left_out: dict[tuple[int, int], str],
                     selection: PointSelection) -> float:
    """How far in front of each camera Rerun draws its image plane: the GLB's frustum size."""
    steps, cameras = predictions["extrinsic"].shape[:2]
    drawn = [predictions["extrinsic"][t, n] for t in range(steps) for n in range(cameras) if (t, n) not in left_out]
    centers = camera_centers(np.asarray(drawn, dtype=np.float64).reshape(-1, 3, 4)).reshape(-1, 3)
    depth = float(default_frustum_depth(centers, selection.xyz))
    return depth if np.isfinite(depth) else 1.0


def log_time_step(rr: ModuleType, stream: Any, predictions: dict[str, np.ndarray], images: np.ndarray,
                  time_step: int, left_out: dict[tuple[int, int], str], frustum_depth: float) -> None:
    """Every camera of one time step (a left-out camera is cleared there, so no stale pose or image shows)."""
    for camera in range(predictions["extrinsic"].shape[1]):
        if (time_step, camera) in left_out:
            stream.log(camera_entity(camera), rr.Clear(recursive=True))
            continue
        log_camera(rr, stream, predictions, images, time_step, camera, frustum_depth)
        if has_2d_tracks(predictions):
            log_camera_tracks(rr, stream, predictions, time_step, camera)
    if has_3d_tracks(predictions):
        log_world_tracks(rr, stream, predictions, time_step)


def write_recording(path: Path, predictions: dict[str, np.ndarray], filters: PointFilters = SCENE_FILTERS,
                    point_budget: int = EXPORT_POINT_BUDGET, application_id: str = "vggt-mv") -> RecordingSummary:
    """recording.rrd: every time step's cameras, images, depth, points and tracks on Rerun's timeline (see the
    module docstring); complete and closed on return, removed again if writing it failed."""
    rr = import_rerun()
    path = Path(path)
    steps, cameras = predictions["extrinsic"].shape[:2]
    images = Uint8Frames(predictions["images"])
    left_out = cameras_left_out(predictions)
    seconds, notes = step_seconds(predictions)
    selection = select_points(predictions, list(range(steps)), filters, point_budget, split_budget=True)
    colors, point_steps = point_colors(images, selection), steps_of_points(selection)
    frustum_depth = frustum_depth_of(predictions, left_out, selection)
    stream = open_stream(rr, path, application_id)
    points, completed = 0, False
    try:
        stream.log(WORLD, rr.ViewCoordinates.RIGHT_HAND_Y_DOWN, static=True)
        for time_step in range(steps):
            set_step_time(stream, time_step, seconds)
            log_time_step(rr, stream, predictions, images, time_step, left_out, frustum_depth)
            points += log_points(rr, stream, selection, colors, point_steps, time_step)
        completed = True
    finally:
        close_stream(stream)
        if not completed:
            path.unlink(missing_ok=True)
    return RecordingSummary(path, int(steps), int(cameras), points, track_count(predictions),
                            camera_notes(left_out, RECORDING_NAME) + notes)
