"""Videos in, predictions out: the stages behind the Reconstruct tab and the `reconstruct` CLI.

plan -> decode -> infer -> finish -> (scene, by the caller) -> downloads (vggt_mv.exports.formats, on request).
Every stage takes what it needs as arguments (a model, a device's memory, a clip) and keeps nothing: caches, kept
track contexts, sessions and the served model live in vggt_mv.serving. `infer` is the only stage that needs the
model's device; on ZeroGPU it is what runs in the GPU worker (vggt_mv.serving.gpu), everything else runs in the
main process.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tempfile
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import torch

from vggt_mv.attention_layout import STACK_GROUPING, resolve_mode
from vggt_mv.config import VGGTMVConfig
from vggt_mv.heads.track import TrackContext
from vggt_mv.inference import predict_tracks, predict_with_track_context
from vggt_mv.io.examples import Example, load_ground_truth
from vggt_mv.io.layout import DEFAULT_RESIZE, RESIZE_MODES, plan_layouts
from vggt_mv.io.prediction_store import PredictionStore
from vggt_mv.io.video import ClipPlan, MultiViewClip, decode_clip, plan_multiview
from vggt_mv.tracking import (MAX_QUERY_POINTS, QueryPointError, check_query_points, grid_query_points,
                              unproject_tracks)
from vggt_mv.viz.tracks import TRACK_KEYS
from vggt_mv.weights.trained_attention import ModeChoice, TrainedAttention, choose_auto_mode
from vggt_mv.windows.plan import TimeWindows, plan_windows
from vggt_mv.windows.run import Seam, WindowedPredictions, run_windows, seam_arrays

Progress = Callable[[float, str], None]
BYTES_PER_FLOAT = 4
# Rough activation multipliers, calibrated on CPU runs of the tiny and vggt-1b presets (see the README).
BLOCK_ACTIVATION_FACTOR = 12
HEAD_ACTIVATION_FACTOR = 10
HEAD_CHUNK_FRAMES = 8
MAX_CAMERAS = 8
# Time steps per camera a run may have at most (the CLI's cap; a server sets its own): a 1-minute capture at 10
# steps a second fits. Longer runs than one pass go in windows.
MAX_TIME_STEPS = 1024
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
    # Most frames (T x N) in one pass; a run with more is split into overlapping time windows.
    max_total_frames: int = 64
    max_time_steps: int = MAX_TIME_STEPS
    resize: str = DEFAULT_RESIZE
    # Time steps per window (0: as many as one pass holds, by max_total_frames and the memory estimate).
    window_steps: int = 0
    # Tracks (not part of the cache key): [[x, y], ...] in pixels of the processed reference frame (t=0, n=0),
    # or a grid of about `track_grid` points over its real pixels.
    query_points: tuple[tuple[float, float], ...] = ()
    track_grid: int = 0

    def wants_tracks(self) -> bool:
        """Whether the run should follow points through every frame."""
        return bool(self.query_points) or bool(self.track_grid)


@dataclass(frozen=True)
class MemoryBudget:
    """Bytes a run may use where the model runs, and where that figure comes from (said when a run is refused)."""

    bytes: int
    where: str


@dataclass(frozen=True)
class RunEstimate:
    """Size of a run before it starts, for the attention mode it will run in."""

    time_steps: int
    cameras: int
    height: int
    width: int
    tokens: int
    peak_bytes: int
    mode: str = "multi"
    # Sum over every attention sequence of its length squared, per layer pair: what attention's compute grows with.
    attention_pairs: int = 0

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


def sizing_choices(clip: ClipPlan, config: VGGTMVConfig) -> str:
    """'Sizing: fit (chosen) 518x294, 783 tokens per frame, nothing cut; crop 518x294, ...': what each choice would
    feed the model, so the visitor sees what fit costs against crop."""
    parts = []
    for resize in RESIZE_MODES:
        layouts = plan_layouts([info.display_size for info in clip.infos], resize=resize)
        width, height = layouts[0].canvas
        cut = sum(layout.scaled[1] - layout.kept_height for layout in layouts)
        chosen = " (chosen)" if resize == clip.resize else ""
        parts.append(f"{resize}{chosen} {width}x{height}, {tokens_per_frame(config, height, width):,} tokens per "
                     f"frame, " + (f"{cut} rows cut" if cut else "nothing cut"))
    return "Sizing: " + "; ".join(parts)


@dataclass(frozen=True)
class RunPlan:
    """What a run will do, known before anything is decoded: the clip plan, the attention mode and the size."""

    clip: ClipPlan
    estimate: RunEstimate
    mode: ModeChoice
    windows: TimeWindows | None = None
    sizing: str = ""

    @property
    def windowed(self) -> bool:
        """Whether the run takes more than one pass."""
        return self.windows is not None and self.windows.count > 1

    def describe(self) -> str:
        """Markdown: effective T and why, the attention mode and why, each camera's sizes, tokens and memory."""
        lines = [self.estimate.describe() if not self.windowed else
                 f"{counted(self.clip.steps, 'time step')} x {counted(self.estimate.cameras, 'camera')} in "
                 f"{self.windows.count} windows; each pass: {self.estimate.describe()}",
                 f"- Attention: {self.mode.reason}"]
        if self.windowed:
            lines.append(f"- Windows: {self.windows.describe()}")
        lines += [f"- {line}" for line in self.clip.camera_lines()]
        lines += [f"- {note}" for note in self.clip.notes]
        if self.sizing:
            lines.append(f"- {self.sizing}")
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
    mode: ModeChoice
    notes: list[str] = field(default_factory=list)
    windows: TimeWindows | None = None
    seams: list[Seam] = field(default_factory=list)
    store: PredictionStore | None = None


def tokens_per_frame(config: VGGTMVConfig, height: int, width: int) -> int:
    """Camera token + register tokens + patch tokens of one frame."""
    return 1 + config.num_register_tokens + (height // config.patch_size) * (width // config.patch_size)


def attention_pairs(mode: str, time_steps: int, cameras: int, per_frame: int) -> int:
    """Sum of squared sequence lengths over one frame block and one global block in `mode` (attention's cost)."""
    sizes = {"image": 1, "time": time_steps, "view": cameras, "all": time_steps * cameras}
    frames = time_steps * cameras
    return sum((frames // sizes[grouping]) * (sizes[grouping] * per_frame) ** 2
               for grouping in STACK_GROUPING[mode])


def estimate_run(config: VGGTMVConfig, time_steps: int, cameras: int, height: int, width: int,
                 weights_bytes: int, mode: str = "multi") -> RunEstimate:
    """Tokens and an approximate peak: weights + the largest attention layer's activations + the kept layers + heads.

    Attention runs through scaled_dot_product_attention's memory-efficient kernels on CPU and CUDA, so its memory
    grows with the tokens in every mode; the mode changes the compute (attention_pairs), which sizes GPU time.
    """
    per_frame = tokens_per_frame(config, height, width)
    tokens = time_steps * cameras * per_frame
    kept_layers = len(set(config.dpt_intermediate_layer_idx) | {config.depth - 1})
    aggregator = tokens * config.embed_dim * BYTES_PER_FLOAT * (BLOCK_ACTIVATION_FACTOR + 2 * kept_layers)
    chunk = min(HEAD_CHUNK_FRAMES, time_steps * cameras)
    heads = chunk * height * width * config.dpt_features * BYTES_PER_FLOAT * HEAD_ACTIVATION_FACTOR
    outputs = time_steps * cameras * height * width * 10 * BYTES_PER_FLOAT
    pairs = attention_pairs(resolve_mode(mode, cameras), time_steps, cameras, per_frame)
    return RunEstimate(time_steps, cameras, height, width, tokens, weights_bytes + aggregator + heads + outputs,
                       mode, pairs)


def model_weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's parameters (meta or fake tensors count by shape: nothing is read)."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def choose_mode(requested: str, cameras: int, trained: TrainedAttention) -> ModeChoice:
    """The attention mode a run uses and why: `auto` follows what the weights were trained for, others are taken."""
    if requested == "auto":
        return choose_auto_mode(trained, cameras)
    try:
        mode = resolve_mode(requested, cameras)
    except ValueError as error:
        raise ReconstructionError(str(error)) from None
    return ModeChoice(mode, f"{mode}, as chosen (the weights were trained for {trained.mode or 'nothing'})")


def check_request(videos: list[Path], settings: ReconstructionSettings) -> None:
    """Refuse what can be refused without opening a video: camera count, attention mode, query points."""
    if not videos:
        raise ReconstructionError("upload at least one video (one per camera) or pick an example")
    if len(videos) > MAX_CAMERAS:
        raise ReconstructionError(f"{len(videos)} videos: at most {MAX_CAMERAS} cameras are supported")
    if settings.resize not in RESIZE_MODES:
        raise ReconstructionError(f"resize must be one of {', '.join(RESIZE_MODES)}, got {str(settings.resize)[:40]!r}")
    try:
        resolve_mode(settings.mode, len(videos))
    except ValueError as error:
        raise ReconstructionError(str(error)) from None
    if settings.wants_tracks():
        resolve_query_points(settings.query_points, settings.track_grid, None)


def plan_run(videos: list[Path], settings: ReconstructionSettings, config: VGGTMVConfig, weights_bytes: int,
             memory: MemoryBudget, trained: TrainedAttention) -> RunPlan:
    """Probe the videos and size the run (effective T, per-camera sizes, mode, windows), refusing one that cannot
    fit even one window."""
    videos = [Path(v) for v in videos]
    check_request(videos, settings)
    clip = plan_multiview(videos, settings.frames_per_camera, settings.window, list(settings.offsets) or None,
                          settings.max_time_steps * len(videos), resize=settings.resize)
    mode = choose_mode(settings.mode, len(videos), trained)
    width, height = clip.canvas
    cameras = len(videos)

    def estimate(steps: int) -> RunEstimate:
        return estimate_run(config, steps, cameras, height, width, weights_bytes, mode.mode)

    size = window_size(clip.steps, cameras, settings, lambda steps: estimate(steps).peak_bytes <= memory.bytes)
    pass_estimate = estimate(size)
    if pass_estimate.peak_bytes > memory.bytes:
        what = "this run needs" if size == clip.steps else f"even one pass of {counted(size, 'time step')} needs"
        raise ReconstructionError(f"{what} about {pass_estimate.peak_bytes / 1024 ** 3:.1f} GiB but "
                                  f"{memory.bytes / 1024 ** 3:.1f} GiB is available ({memory.where}); use fewer "
                                  "frames or cameras")
    try:
        windows = plan_windows(clip.steps, size)
    except ValueError as error:
        raise ReconstructionError(str(error)) from None
    return RunPlan(clip, pass_estimate, mode, windows, sizing_choices(clip, config))


def window_size(steps: int, cameras: int, settings: ReconstructionSettings, fits: Callable[[int], bool]) -> int:
    """Time steps per pass: the settings' own, else all of them when one pass holds them (frame cap and memory),
    else the most that do (at least 2, so windows can overlap)."""
    if settings.window_steps:
        if settings.window_steps < 2 and steps > 1:
            raise ReconstructionError("a window needs at least 2 time steps (so that windows can overlap)")
        if settings.window_steps * cameras > settings.max_total_frames:
            raise ReconstructionError(f"a window of {settings.window_steps} steps x {counted(cameras, 'camera')} is "
                                      f"over the limit of {settings.max_total_frames} frames per pass")
        return min(settings.window_steps, steps)
    largest = max(1, min(steps, settings.max_total_frames // cameras))
    while largest > 2 and not fits(largest):
        largest -= 1
    if largest < steps and largest < 2:
        raise ReconstructionError(f"{counted(cameras, 'camera')} leave room for {counted(largest, 'time step')} per "
                                  f"pass (limit {settings.max_total_frames} frames): too few to split "
                                  f"{steps} steps into overlapping windows; use fewer cameras or fewer steps")
    return largest


def estimate_track_context_bytes(config: VGGTMVConfig, time_steps: int, cameras: int, height: int, width: int,
                                 bytes_per_value: int = BYTES_PER_FLOAT) -> int:
    """Bytes a run's track context keeps: the distinct layers the track head reads, [T*N, tokens, 2C] each."""
    layers = len(set(config.dpt_intermediate_layer_idx))
    return layers * time_steps * cameras * tokens_per_frame(config, height, width) * 2 * config.embed_dim \
        * bytes_per_value


def content_key(videos: list[Path], settings: ReconstructionSettings, model_tag: str) -> str:
    """Same files + same settings + same model -> same key, whatever the upload names and the tracks asked for."""
    digest = hashlib.sha256(model_tag.encode())
    for path in videos:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    chosen = {name: value for name, value in asdict(settings).items() if name not in TRACK_SETTINGS}
    digest.update(json.dumps(chosen, sort_keys=True).encode())
    return digest.hexdigest()[:16]


def decode(plan: RunPlan) -> MultiViewClip:
    """Decode every camera at the planned times (PyAV), never stretched: the model's input [T, N, 3, H, W]."""
    return decode_clip(plan.clip)


def model_progress(progress: Progress, start: float = INFERENCE_PROGRESS[0],
                   end: float = INFERENCE_PROGRESS[1]) -> Callable[[int, int, str], None]:
    """The model's (done, total, stage) calls as a fraction between `start` and `end` of the whole run."""
    return lambda done, total, stage: progress(start + (end - start) * done / total, f"VGGT_MV: {stage}")


@contextlib.contextmanager
def out_of_memory_as_message(advice: str) -> Iterator[None]:
    """An out-of-memory error inside becomes a ReconstructionError ending with `advice`."""
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()  # only reached where CUDA is in use (the GPU worker or a plain GPU server)
        raise ReconstructionError(f"the device ran out of memory; {advice}") from None
    except RuntimeError as error:
        if "out of memory" in str(error).lower() or "can't allocate memory" in str(error).lower():
            raise ReconstructionError(f"ran out of memory; {advice}") from None
        raise


@dataclass
class ModelOutputs:
    """What one forward hands back to the main process: CPU numpy predictions and the kept track context.

    Picklable and free of device tensors, so a ZeroGPU worker can return it; neither field repeats the input
    images (the caller has them: see `attach_images`)."""

    predictions: dict[str, np.ndarray]
    track_context: TrackContext | None


def infer(model: torch.nn.Module, images: np.ndarray, mode: str,
          progress: Callable[[int, int, str], None] | None = None) -> ModelOutputs:
    """The model's own work for one run: images [T, N, 3, H, W] in, predictions and the track context out."""
    with out_of_memory_as_message("try fewer frames per camera or fewer cameras"):
        predictions, context = predict_with_track_context(model, torch.from_numpy(images), mode=mode,
                                                          progress=progress)
    predictions.pop("images", None)
    if context is not None:
        context = replace(context, frames=torch.empty(0))
    return ModelOutputs(predictions, context)


def attach_images(outputs: ModelOutputs, images: np.ndarray) -> tuple[dict[str, np.ndarray], TrackContext | None]:
    """The predictions with their input images, and a track context that can run again (it reads the frames)."""
    predictions = {**outputs.predictions, "images": images}
    context = outputs.track_context
    if context is not None:
        context = replace(context, frames=torch.from_numpy(images).reshape(1, -1, *images.shape[-3:]))
    return predictions, context


def check_finite(predictions: dict[str, np.ndarray]) -> None:
    """Refuse what broken weights produce: NaN cameras, or not one finite point on a real pixel.

    An infinite focal length alone is not refused: an untrained camera head predicts a zero field of view. Points
    are checked a time step at a time (a long run's are on disk) and the check stops at the first finite one.
    """
    broken = [name for name in ("pose_enc", "extrinsic") if name in predictions and np.isnan(predictions[name]).any()]
    points = predictions.get("world_points")
    if points is not None and not any(finite_point_at(predictions, step) for step in range(points.shape[0])):
        broken.append("world_points")
    if broken:
        raise ReconstructionError(f"the model predicted NaN or no finite values ({', '.join(broken)}): the weights are "
                                  "probably broken; check them with `python -m vggt_mv inspect`")


def finite_point_at(predictions: dict[str, np.ndarray], step: int) -> bool:
    """Whether time step `step` has a finite point on a real pixel."""
    finite = np.isfinite(predictions["world_points"][step]).all(axis=-1)
    if "valid_mask" in predictions:
        finite &= predictions["valid_mask"][step]
    return bool(finite.any())


def finish(outputs: ModelOutputs, clip: MultiViewClip, settings: ReconstructionSettings, mode: ModeChoice, key: str,
           stages: StageTimes, example: Example | None = None) -> tuple[Reconstruction, TrackContext | None]:
    """The model's outputs as a Reconstruction: images, times, the valid mask, ground truth; broken ones refused."""
    predictions, context = attach_images(outputs, clip.images)
    predictions["times"] = np.array(clip.times, dtype=np.float64)
    predictions["valid_mask"] = clip.valid_mask_grid()
    check_finite(predictions)
    if example is not None:
        height, width = clip.images.shape[-2:]
        predictions["gt_extrinsic"], predictions["gt_intrinsic"] = load_ground_truth(example, clip.times,
                                                                                     (height, width))
    return Reconstruction(predictions, clip, settings, dict(stages.seconds), key, mode, list(clip.notes)), context


def decode_into_store(plan: RunPlan, store: PredictionStore) -> MultiViewClip:
    """A windowed run's clip decoded straight into its store: its images are never all in RAM."""
    width, height = plan.clip.canvas
    writer = store.create("images", (plan.clip.steps, len(plan.clip.infos), 3, height, width), np.float32)
    clip = decode_clip(plan.clip, out=writer)
    return replace(clip, images=store.array("images"))


def reference_valid_mask(clip: MultiViewClip) -> np.ndarray:
    """Real pixels [H, W] of the reference frame (t=0, n=0), where query points may lie."""
    if clip.valid_mask is None:
        return np.ones(clip.images.shape[-2:], dtype=bool)
    return clip.valid_mask[0]


def camera_valid_masks(clip: MultiViewClip) -> np.ndarray:
    """Real pixels [N, H, W] of every camera (the same at every time step)."""
    if clip.valid_mask is None:
        return np.ones((clip.images.shape[1],) + tuple(clip.images.shape[-2:]), dtype=bool)
    return clip.valid_mask


def window_forward(forward: Callable[[np.ndarray, Callable[[int, int, str], None]], ModelOutputs]):
    """A ModelOutputs forward as vggt_mv.windows.run calls it."""
    def run(images: np.ndarray, progress: Callable[[int, int, str], None]):
        outputs = forward(images, progress)
        return outputs.predictions, outputs.track_context
    return run


def windows_progress(progress: Progress) -> Progress:
    """A windowed run's (fraction of all windows, message) on the inference part of the bar."""
    start, end = INFERENCE_PROGRESS
    return lambda fraction, message: progress(start + (end - start) * fraction, f"VGGT_MV: {message}")


def finish_windowed(windowed: WindowedPredictions, plan: RunPlan, clip: MultiViewClip,
                    settings: ReconstructionSettings, key: str, stages: StageTimes, store: PredictionStore,
                    example: Example | None = None) -> Reconstruction:
    """A windowed run's predictions as a Reconstruction: stored arrays, the images, times, the valid mask (one per
    camera, broadcast over T without a copy), the windows and their seams; broken ones refused."""
    steps = plan.clip.steps
    predictions = dict(windowed.predictions)
    predictions["images"] = clip.images
    predictions["times"] = np.array(clip.times, dtype=np.float64)
    masks = camera_valid_masks(clip)
    predictions["valid_mask"] = np.broadcast_to(masks[None], (steps,) + masks.shape)
    predictions.update(seam_arrays(plan.windows, windowed.seams))
    check_finite(predictions)
    if example is not None:
        height, width = clip.images.shape[-2:]
        predictions["gt_extrinsic"], predictions["gt_intrinsic"] = load_ground_truth(example, clip.times,
                                                                                     (height, width))
    notes = list(clip.notes) + [f"Windows: {plan.windows.describe()}."]
    notes += [f"Seam {seam.window} ({seam.describe()})." for seam in windowed.seams]
    if settings.wants_tracks() or windowed.contexts:
        notes.append("Tracks run per window: each window re-finds the points where the one before saw them on "
                     "camera 0 at its first step; a point lost there stays hidden from then on.")
    return Reconstruction(predictions, clip, settings, dict(stages.seconds), key, plan.mode, notes, plan.windows,
                          list(windowed.seams), store)


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


def query_points_of(result: Reconstruction, settings: ReconstructionSettings) -> np.ndarray:
    """The settings' query points (or grid), checked against the run's reference frame."""
    return resolve_query_points(settings.query_points, settings.track_grid, result.predictions["valid_mask"][0, 0])


def track(model: torch.nn.Module, context: TrackContext, points: np.ndarray) -> dict[str, np.ndarray]:
    """Only the track head on a kept context: track [T, N, K, 2], vis and conf [T, N, K] as CPU numpy."""
    with out_of_memory_as_message("try fewer query points"):
        return predict_tracks(model, context, points)


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


def reconstruct(model: torch.nn.Module, videos: list[str | Path], settings: ReconstructionSettings | None = None,
                memory: MemoryBudget | None = None, trained: TrainedAttention | None = None,
                example: Example | None = None, progress: Progress | None = None,
                stages: StageTimes | None = None, store_folder: Path | None = None) -> Reconstruction:
    """Every stage up to the predictions in one process, nothing kept: plan, decode, infer, finish (and tracks when
    the settings ask for them). The CLI's run and the reference the serving layer's cached runs are tested against.

    A run longer than one pass goes window by window (vggt_mv.windows) into a store in `store_folder` (a new temporary
    folder when None; the caller removes it with `result.store.delete()` once done with the predictions)."""
    settings = settings or ReconstructionSettings()
    progress = progress or (lambda fraction, message: None)
    stages = stages if stages is not None else StageTimes()
    trained = trained or TrainedAttention(None, "weights of unknown training")
    memory = memory or MemoryBudget(1 << 62, "no limit given")
    videos = [Path(v) for v in videos]
    with stages.stage("decode"):
        check_request(videos, settings)
        if settings.wants_tracks() and getattr(model, "track_head", None) is None:
            raise ReconstructionError("the model has no track head (enable_track=False): it cannot track points")
        progress(0.02, "checking the videos")
        plan = plan_run(videos, settings, model.config, model_weight_bytes(model), memory, trained)
        progress(0.05, f"decoding {plan.clip.steps} frames from each of {len(videos)} videos")
        if not plan.windowed:
            clip = decode(plan)
    if plan.windowed:
        store = PredictionStore(store_folder or Path(tempfile.mkdtemp(prefix="vggt-mv-run-")))
        try:
            with stages.stage("decode"):
                clip = decode_into_store(plan, store)
            return reconstruct_windowed(model, plan, clip, settings, store, example, progress, stages)
        except BaseException:
            store.delete()  # a run that failed leaves no folder behind
            raise
    with stages.stage("inference"):
        progress(INFERENCE_PROGRESS[0], f"running VGGT_MV on {clip.grid[0]} x {clip.grid[1]} frames")
        outputs = infer(model, clip.images, plan.mode.mode, model_progress(progress))
        result, context = finish(outputs, clip, settings, plan.mode, key="", stages=stages, example=example)
    if settings.wants_tracks():
        with stages.stage("tracks"):
            points = query_points_of(result, settings)
            result = with_tracks(result, track_arrays(result.predictions, points, track(model, context, points)))
    return replace(result, seconds=dict(stages.seconds))


def reconstruct_windowed(model: torch.nn.Module, plan: RunPlan, clip: MultiViewClip, settings: ReconstructionSettings,
                         store: PredictionStore, example: Example | None, progress: Progress,
                         stages: StageTimes) -> Reconstruction:
    """The in-process windowed run: each window through the model, aligned and stored; tracks per window."""
    points = (resolve_query_points(settings.query_points, settings.track_grid, reference_valid_mask(clip))
              if settings.wants_tracks() else None)
    with stages.stage("inference"):
        progress(INFERENCE_PROGRESS[0], f"running VGGT_MV on {clip.grid[0]} x {clip.grid[1]} frames in "
                                        f"{plan.windows.count} windows")
        forward = window_forward(lambda images, report: infer(model, images, plan.mode.mode, report))
        windowed = run_windows(plan.windows, clip.images, camera_valid_masks(clip), forward, store,
                               windows_progress(progress), points,
                               (lambda context, queries: track(model, context, queries)) if points is not None
                               else None)
        result = finish_windowed(windowed, plan, clip, settings, "", stages, store, example)
    if points is not None:
        result = with_tracks(result, track_arrays(result.predictions, points, windowed.tracks))
    return replace(result, seconds=dict(stages.seconds))
