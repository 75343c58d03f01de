"""Videos in, predictions and downloads out: the computation behind the Reconstruct tab and `reconstruct` CLI.

A run is four timed stages: decode (probe, plan, decode), inference, scene (the caller's view, shown as soon
as it exists) and files (every download). `run_stages` yields after the scene and again after the files.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from vggt_mv.attention_layout import resolve_mode
from vggt_mv.config import VGGTMVConfig
from vggt_mv.heads.track import TrackContext
from vggt_mv.inference import predict_tracks, predict_with_track_context
from vggt_mv.io.examples import Example, load_ground_truth
from vggt_mv.io.video import ClipPlan, MultiViewClip, decode_clip, plan_multiview
from vggt_mv.tracking import (MAX_QUERY_POINTS, QueryPointError, check_query_points, grid_query_points,
                              unproject_tracks)
from vggt_mv.viz.colmap import write_colmap_models
from vggt_mv.viz.export import write_cameras_json, write_glb, write_npz, write_ply_per_time, write_zip
from vggt_mv.viz.scene import SceneOptions
from vggt_mv.viz.tracks import TRACK_KEYS

Progress = Callable[[float, str], None]
CACHE_SIZE = 4
BYTES_PER_FLOAT = 4
# Rough activation multipliers, calibrated on CPU runs of the tiny and vggt-1b presets (see the README).
BLOCK_ACTIVATION_FACTOR = 12
HEAD_ACTIVATION_FACTOR = 10
HEAD_CHUNK_FRAMES = 8
MAX_CAMERAS = 8
# Track contexts (the aggregator layers the track head reads, on the CPU) are kept for the most recent runs only,
# within a byte budget: vggt-1b at 8 x 4 frames of 518x294 keeps 0.82 GB (see estimate_track_context_bytes).
TRACK_CONTEXT_RUNS = 2
TRACK_CONTEXT_BUDGET_BYTES = 2 * 1024 ** 3
# Settings that only add tracks to a run: they never enter its cache key, so asking for tracks never re-runs it.
TRACK_SETTINGS = ("query_points", "track_grid")
# Where each stage sits on the 0..1 progress bar.
INFERENCE_PROGRESS = (0.1, 0.85)
SCENE_PROGRESS = 0.87
FILES_PROGRESS = 0.93


def counted(number: int, noun: str) -> str:
    """'1 camera', '3 cameras': a count with its noun in the right number."""
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


class ReconstructionError(RuntimeError):
    """A run that cannot go ahead or failed for a reason the user can act on."""


@dataclass(frozen=True)
class ReconstructionSettings:
    """What the user chose; part of the cache key."""

    frames_per_camera: int = 8
    window: tuple[float, float] = (0.0, 1.0)
    offsets: tuple[float, ...] = ()
    mode: str = "auto"
    max_total_frames: int = 64
    # Tracks (not part of the cache key): [[x, y], ...] in pixels of the processed reference frame (t=0, n=0),
    # or a grid of about `track_grid` points over its real pixels.
    query_points: tuple[tuple[float, float], ...] = ()
    track_grid: int = 0

    def wants_tracks(self) -> bool:
        """Whether the run should follow points through every frame."""
        return bool(self.query_points) or bool(self.track_grid)


@dataclass(frozen=True)
class RunEstimate:
    """Size of a run before it starts."""

    time_steps: int
    cameras: int
    height: int
    width: int
    tokens: int
    peak_bytes: int

    def describe(self) -> str:
        """One line for the UI."""
        return (f"{counted(self.time_steps, 'time step')} x {counted(self.cameras, 'camera')} at "
                f"{self.width}x{self.height}: {self.tokens:,} tokens, about {self.peak_bytes / 1024 ** 3:.1f} GiB "
                "peak memory")


class StageTimes:
    """Seconds per stage of one run, in the order they ran (time.perf_counter)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Time the enclosed code as `name` (a stage run twice adds up)."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - started

    @property
    def total(self) -> float:
        """Sum of every stage."""
        return sum(self.seconds.values())

    def describe(self) -> str:
        """'decode 0.21 s · inference 1.30 s · scene 0.20 s · files 0.15 s (total 1.86 s)'."""
        parts = " · ".join(f"{name} {seconds:.2f} s" for name, seconds in self.seconds.items())
        return f"{parts} (total {self.total:.2f} s)"


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before anything is decoded: the clip plan and the size estimate."""

    clip: ClipPlan
    estimate: RunEstimate

    def describe(self) -> str:
        """Markdown: effective T and why, each camera's source -> processed size, tokens and memory."""
        lines = [self.estimate.describe()]
        lines += [f"- {line}" for line in self.clip.camera_lines()]
        lines += [f"- {note}" for note in self.clip.notes]
        return "\n".join(lines)


@dataclass
class Reconstruction:
    """Predictions of one run ([T, N] numpy arrays) and how they were made.

    A cached Reconstruction never holds tracks (every session shares it); one with tracks is a view of it made by
    `with_tracks`, owned by the request or session that asked for them.
    """

    predictions: dict[str, np.ndarray]
    clip: MultiViewClip
    settings: ReconstructionSettings
    seconds: dict[str, float]
    key: str
    notes: list[str] = field(default_factory=list)
    # Why tracks can no longer be added from the cache (None while the run's track context is kept).
    tracks_unavailable: str | None = None


def estimate_run(config: VGGTMVConfig, time_steps: int, cameras: int, height: int, width: int,
                 weights_bytes: int) -> RunEstimate:
    """Tokens and an approximate peak: weights + the largest attention layer's activations + the kept layers + heads."""
    per_frame = 1 + config.num_register_tokens + (height // config.patch_size) * (width // config.patch_size)
    tokens = time_steps * cameras * per_frame
    kept_layers = len(set(config.dpt_intermediate_layer_idx) | {config.depth - 1})
    aggregator = tokens * config.embed_dim * BYTES_PER_FLOAT * (BLOCK_ACTIVATION_FACTOR + 2 * kept_layers)
    chunk = min(HEAD_CHUNK_FRAMES, time_steps * cameras)
    heads = chunk * height * width * config.dpt_features * BYTES_PER_FLOAT * HEAD_ACTIVATION_FACTOR
    outputs = time_steps * cameras * height * width * 10 * BYTES_PER_FLOAT
    return RunEstimate(time_steps, cameras, height, width, tokens, weights_bytes + aggregator + heads + outputs)


def available_memory(device: torch.device) -> int:
    """Free bytes where the run will happen (GPU memory, or the OS's MemAvailable)."""
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_allocated(device)
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return 1 << 62


def check_request(videos: list[Path], settings: ReconstructionSettings) -> None:
    """Refuse what can be refused without opening a video: camera count, attention mode."""
    if not videos:
        raise ReconstructionError("upload at least one video (one per camera) or pick an example")
    if len(videos) > MAX_CAMERAS:
        raise ReconstructionError(f"{len(videos)} videos: at most {MAX_CAMERAS} cameras are supported")
    try:
        resolve_mode(settings.mode, len(videos))
    except ValueError as error:
        raise ReconstructionError(str(error)) from None
    if settings.wants_tracks():
        resolve_query_points(settings.query_points, settings.track_grid, None)


def plan_run(served, videos: list[Path], settings: ReconstructionSettings) -> RunPlan:
    """Probe the videos and size the run (effective T, per-camera sizes), refusing one that cannot fit."""
    videos = [Path(v) for v in videos]
    check_request(videos, settings)
    clip = plan_multiview(videos, settings.frames_per_camera, settings.window, list(settings.offsets) or None,
                          settings.max_total_frames)
    width, height = clip.canvas
    weights = sum(p.numel() * p.element_size() for p in served.model.parameters())
    estimate = estimate_run(served.config, clip.steps, len(videos), height, width, weights)
    free = available_memory(served.device)
    if estimate.peak_bytes > free:
        raise ReconstructionError(f"this run needs about {estimate.peak_bytes / 1024 ** 3:.1f} GiB but "
                                  f"{free / 1024 ** 3:.1f} GiB is free on {served.device}; use fewer frames or cameras")
    return RunPlan(clip, estimate)


def estimate_track_context_bytes(config: VGGTMVConfig, time_steps: int, cameras: int, height: int, width: int,
                                 bytes_per_value: int = BYTES_PER_FLOAT) -> int:
    """Bytes a run's track context keeps: the distinct layers the track head reads, [T*N, tokens, 2C] each."""
    per_frame = 1 + config.num_register_tokens + (height // config.patch_size) * (width // config.patch_size)
    layers = len(set(config.dpt_intermediate_layer_idx))
    return layers * time_steps * cameras * per_frame * 2 * config.embed_dim * bytes_per_value


def content_key(videos: list[Path], settings: ReconstructionSettings, model_tag: str) -> str:
    """Same files + same settings + same model -> same key, whatever the upload names and the tracks asked for."""
    digest = hashlib.sha256(model_tag.encode())
    for path in videos:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    chosen = {name: value for name, value in asdict(settings).items() if name not in TRACK_SETTINGS}
    digest.update(json.dumps(chosen, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def served_model_tag(served) -> str:
    """Changes whenever the served model or its weights change (the report is replaced on every load)."""
    return f"{served.preset}:{id(served.model)}:{id(served.report)}"


_cache: "OrderedDict[str, Reconstruction]" = OrderedDict()
# key -> (model tag, context) for the most recent runs; a run that loses its context says why in tracks_unavailable.
_track_contexts: "OrderedDict[str, tuple[str, TrackContext]]" = OrderedDict()


def cached_reconstruction(key: str | None) -> Reconstruction | None:
    """A recent run by its key (display controls redraw from it), or None once it left the cache."""
    return _cache.get(key) if key else None


def tracks_unavailable(key: str | None) -> str | None:
    """Why tracks cannot be added to a cached run from its kept context right now (None: they can)."""
    result = cached_reconstruction(key)
    if result is None:
        return "that run is no longer cached; run it again to add tracks"
    if key not in _track_contexts:
        return result.tracks_unavailable or "its track context was not kept"
    return None


def kept_track_context_bytes() -> int:
    """Bytes held by every kept track context (bounded by TRACK_CONTEXT_BUDGET_BYTES)."""
    return sum(context.layer_bytes for _, context in _track_contexts.values())


def model_progress(progress: Progress, start: float, end: float) -> Callable[[int, int, str], None]:
    """The model's (done, total, stage) calls as a fraction between `start` and `end` of the whole run."""
    return lambda done, total, stage: progress(start + (end - start) * done / total, f"VGGT_MV: {stage}")


@contextlib.contextmanager
def out_of_memory_as_message(advice: str) -> Iterator[None]:
    """An out-of-memory error inside becomes a ReconstructionError ending with `advice`."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise ReconstructionError(f"the device ran out of memory; {advice}") from None
    except RuntimeError as error:
        if "out of memory" in str(error).lower() or "can't allocate memory" in str(error).lower():
            raise ReconstructionError(f"ran out of memory; {advice}") from None
        raise


def _run_model(served, clip: MultiViewClip, settings: ReconstructionSettings,
               progress: Progress) -> tuple[dict[str, np.ndarray], TrackContext | None]:
    """Inference under the model lock (keeping the track context), turning out-of-memory into a message."""
    images = torch.from_numpy(clip.images)
    with out_of_memory_as_message("try fewer frames per camera or fewer cameras"), served.lock:
        return predict_with_track_context(served.model, images, mode=settings.mode,
                                          progress=model_progress(progress, INFERENCE_PROGRESS[0],
                                                                  INFERENCE_PROGRESS[1]))


def check_finite(predictions: dict[str, np.ndarray]) -> None:
    """Refuse what broken weights produce: NaN cameras, or not one finite point on a real pixel.

    An infinite focal length alone is not refused: an untrained camera head predicts a zero field of view.
    """
    broken = [name for name in ("pose_enc", "extrinsic") if name in predictions and np.isnan(predictions[name]).any()]
    points = predictions.get("world_points")
    if points is not None:
        finite = np.isfinite(points).all(axis=-1) & predictions.get("valid_mask", True)
        if not finite.any():
            broken.append("world_points")
    if broken:
        raise ReconstructionError(f"the model predicted NaN or no finite values ({', '.join(broken)}): the weights are "
                                  "probably broken; check them with `python -m vggt_mv inspect`")


def reconstruct(served, videos: list[str | Path], settings: ReconstructionSettings | None = None,
                example: Example | None = None, progress: Progress | None = None,
                stages: StageTimes | None = None) -> Reconstruction:
    """Decode T steps from each video, run VGGT_MV, return [T, N] predictions (cached by content).

    With query points (or a track grid) in the settings the answer is a view of the run with those tracks (the
    cache keeps the run without them); a cached run gets them from its kept track context (track head only), and
    is run again only when that context was dropped.
    """
    settings = settings or ReconstructionSettings()
    progress = progress or (lambda fraction, message: None)
    stages = stages if stages is not None else StageTimes()
    videos = [Path(v) for v in videos]
    with stages.stage("decode"):
        check_request(videos, settings)
        if settings.wants_tracks() and getattr(served.model, "track_head", None) is None:
            raise ReconstructionError("the served model has no track head (enable_track=False): it cannot track points")
        key = content_key(videos, settings, served_model_tag(served))
        cached = _cache.get(key)
        if cached is not None:
            _cache.move_to_end(key)
        run_model = cached is None or needs_model_for_tracks(cached, settings)
        if run_model:
            progress(0.02, "checking the videos")
            plan = plan_run(served, videos, settings)
            progress(0.05, f"decoding {plan.clip.steps} frames from each of {len(videos)} videos")
            clip = decode_clip(plan.clip)
            if settings.wants_tracks():
                points = resolve_query_points(settings.query_points, settings.track_grid,
                                              clip.valid_mask_grid()[0, 0])
    if not run_model:
        if settings.wants_tracks():
            with stages.stage("tracks"):
                return add_tracks(served, key, settings.query_points, settings.track_grid)
        return cached
    with stages.stage("inference"):
        progress(INFERENCE_PROGRESS[0], f"running VGGT_MV on {clip.grid[0]} x {clip.grid[1]} frames ({served.device})")
        predictions, context = _run_model(served, clip, settings, progress)
        predictions["times"] = np.array(clip.times, dtype=np.float64)
        predictions["valid_mask"] = clip.valid_mask_grid()
        check_finite(predictions)
        if example is not None:
            height, width = clip.images.shape[-2:]
            predictions["gt_extrinsic"], predictions["gt_intrinsic"] = load_ground_truth(example, clip.times,
                                                                                         (height, width))
    notes = list(clip.notes)
    if cached is not None:
        notes.append(f"Ran the model again to add tracks: {cached.tracks_unavailable or 'its track context was gone'}.")
    result = Reconstruction(predictions, clip, settings, dict(stages.seconds), key, notes)
    with served.lock:
        _cache[key] = result
        while len(_cache) > CACHE_SIZE:
            evicted, _ = _cache.popitem(last=False)
            _track_contexts.pop(evicted, None)
        keep_track_context(served, result, context)
    if not settings.wants_tracks():
        return result
    with stages.stage("tracks"), out_of_memory_as_message("try fewer query points"), served.lock:
        tracks = predict_tracks(served.model, context, points)  # this run's own context, kept or not
    return replace(with_tracks(result, track_arrays(result.predictions, points, tracks)),
                   seconds=dict(stages.seconds))


def needs_model_for_tracks(cached: Reconstruction, settings: ReconstructionSettings) -> bool:
    """A cached run must run again only to get tracks its kept context can no longer give (the cache holds none)."""
    return settings.wants_tracks() and cached.key not in _track_contexts


def keep_track_context(served, result: Reconstruction, context: TrackContext | None) -> None:
    """Keep this run's track context, dropping the oldest runs' beyond TRACK_CONTEXT_RUNS or the byte budget.

    Called under served.lock (as add_tracks reads the contexts under it).
    """
    if context is None:
        result.tracks_unavailable = "the served model has no track head"
        return
    if context.layer_bytes > TRACK_CONTEXT_BUDGET_BYTES:
        result.tracks_unavailable = (f"its track features ({context.layer_bytes / 1024 ** 3:.1f} GiB) exceed the "
                                     f"{TRACK_CONTEXT_BUDGET_BYTES / 1024 ** 3:.1f} GiB kept for tracks; run again with "
                                     "the query points (or a track grid) to get tracks, or use fewer frames")
        return
    _track_contexts[result.key] = (served_model_tag(served), context)
    _track_contexts.move_to_end(result.key)
    while (len(_track_contexts) > TRACK_CONTEXT_RUNS
           or sum(c.layer_bytes for _, c in _track_contexts.values()) > TRACK_CONTEXT_BUDGET_BYTES):
        dropped, _ = _track_contexts.popitem(last=False)
        if dropped in _cache:
            _cache[dropped].tracks_unavailable = (
                f"its track features were dropped to bound memory (only the {TRACK_CONTEXT_RUNS} most recent runs "
                "keep them); run it again with the query points (or a track grid) to add tracks")


def resolve_query_points(query_points, track_grid, valid_mask: np.ndarray | None) -> np.ndarray | None:
    """Explicit points or a grid (never both) -> checked float32 [K, 2] on the reference frame's real pixels.

    Without `valid_mask` (before anything is decoded) only what needs no frame is checked, and None is returned.
    """
    try:
        explicit = query_points if isinstance(query_points, np.ndarray) else (query_points or ())
        if len(explicit) and track_grid:
            raise QueryPointError("give query points or a track grid, not both")
        if track_grid:
            if isinstance(track_grid, bool) or not isinstance(track_grid, (int, float)) \
                    or not 1 <= track_grid <= MAX_QUERY_POINTS or not float(track_grid).is_integer():
                raise QueryPointError(f"track grid must be a whole number of points from 1 to {MAX_QUERY_POINTS}")
            return None if valid_mask is None else grid_query_points(valid_mask, int(track_grid))
        if valid_mask is None:
            check_query_points(query_points, math.inf, math.inf)
            return None
        height, width = valid_mask.shape
        return check_query_points(query_points, width, height, valid_mask)
    except (QueryPointError, TypeError) as error:
        raise ReconstructionError(str(error) if isinstance(error, QueryPointError)
                                  else "query points must be a list of [x, y] pairs") from None


def add_tracks(served, key: str, query_points=(), track_grid: int = 0) -> Reconstruction:
    """Follow query points (or a grid) of a cached run through all T x N frames with the track head only.

    Never re-runs the aggregator: when the run's track context is gone the message says why and to run again.
    Returns a new view of the cached run (see with_tracks) whose predictions also hold query_points [K, 2], track
    [T, N, K, 2], vis and conf [T, N, K] and track_world_points [T, N, K, 3] (tracked pixels unprojected with each
    frame's predicted depth and camera); the cached run itself is never changed, as every session shares it.
    """
    result = cached_reconstruction(key)
    if result is None:
        raise ReconstructionError("that run is no longer cached; run it again to add tracks")
    points = resolve_query_points(query_points, track_grid, result.predictions["valid_mask"][0, 0])
    with out_of_memory_as_message("try fewer query points"), served.lock:
        tag, context = _track_contexts.get(key, (None, None))
        if context is None:
            raise ReconstructionError(f"cannot add tracks to this run: "
                                      f"{result.tracks_unavailable or 'its track context was not kept'}")
        if tag != served_model_tag(served):
            raise ReconstructionError("the served weights changed since this run; run it again to add tracks")
        tracks = predict_tracks(served.model, context, points)
    return with_tracks(result, track_arrays(result.predictions, points, tracks))


def track_arrays(predictions: dict[str, np.ndarray], points: np.ndarray,
                 tracks: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The TRACK_KEYS arrays of one set of tracks: the head's outputs, the query points and (when depth and cameras
    were predicted) the tracked pixels' world points."""
    arrays = {"query_points": points, **tracks}
    if {"depth", "extrinsic", "intrinsic"} <= set(predictions):
        arrays["track_world_points"] = unproject_tracks(tracks["track"], predictions["depth"],
                                                        predictions["extrinsic"], predictions["intrinsic"],
                                                        predictions.get("valid_mask"))
    return arrays


def with_tracks(result: Reconstruction, tracks: dict[str, np.ndarray]) -> Reconstruction:
    """A view of a run carrying exactly these tracks (none for {}): its own predictions dict, sharing the run's
    arrays, so the run (cached, shared by every session) is left as it was."""
    untracked = {name: array for name, array in result.predictions.items() if name not in TRACK_KEYS}
    return replace(result, predictions={**untracked, **{name: tracks[name] for name in TRACK_KEYS if name in tracks}})


def tracks_of(result: Reconstruction) -> dict[str, np.ndarray]:
    """The track arrays a run's view carries ({} without tracks)."""
    return {name: result.predictions[name] for name in TRACK_KEYS if name in result.predictions}


def write_outputs(reconstruction: Reconstruction, folder: Path, options: SceneOptions | None = None,
                  figure=None) -> dict[str, Any]:
    """downloads.zip (everything), GLB, NPZ, cameras.json, PLY and a COLMAP model per time step (+ scene.html)."""
    folder.mkdir(parents=True, exist_ok=True)
    options = options or SceneOptions()
    predictions = reconstruction.predictions
    filters = options.point_filters()  # the scene's points are the downloads' points
    outputs: dict[str, Any] = {
        "glb": write_glb(folder / "scene.glb", predictions, filters),
        "npz": write_npz(folder / "predictions.npz", predictions),
        "cameras": write_cameras_json(folder / "cameras.json", predictions),
        "ply": write_ply_per_time(folder / "ply", predictions, filters),
        "colmap": write_colmap_models(folder / "colmap", predictions, filters),
    }
    if figure is not None:
        outputs["html"] = folder / "scene.html"
        figure.write_html(str(outputs["html"]), include_plotlyjs=True, auto_play=False)  # the player waits for play
    outputs["zip"] = write_zip(folder / "downloads.zip", folder, exclude=("scene.html", "downloads.zip"))
    return {"zip": outputs.pop("zip"), **outputs}


@dataclass
class RunUpdate:
    """A run so far: its predictions, the caller's view of them, the downloads once written, and stage times."""

    result: Reconstruction
    view: Any
    outputs: dict[str, Any] | None
    stages: StageTimes


def run_stages(served, videos: list[str | Path], settings: ReconstructionSettings,
               folder: Path | Callable[[Reconstruction], Path], render: Callable[[Reconstruction], Any],
               example: Example | None = None, progress: Progress | None = None,
               options: SceneOptions | None = None,
               html_figure: Callable[[Any], Any] | None = None) -> Iterator[RunUpdate]:
    """Decode, infer, render (yielded at once so the scene shows), then write the downloads (yielded again).

    `render(result)` builds what the caller shows (timed as "scene"); `folder` may depend on the result (its key);
    `html_figure(view)`, when given, picks the figure saved as scene.html.
    """
    progress = progress or (lambda fraction, message: None)
    stages = StageTimes()
    result = reconstruct(served, videos, settings, example=example, progress=progress, stages=stages)
    progress(SCENE_PROGRESS, "building the scene")
    with stages.stage("scene"):
        view = render(result)
    yield RunUpdate(result, view, None, stages)
    progress(FILES_PROGRESS, "writing the downloads")
    with stages.stage("files"):
        target = folder(result) if callable(folder) else Path(folder)
        outputs = write_outputs(result, target, options, html_figure(view) if html_figure else None)
    yield RunUpdate(result, view, outputs, stages)


def clear_cache() -> None:
    """Forget every cached run: the served model was replaced, so they no longer describe it."""
    _cache.clear()
    _track_contexts.clear()
