"""Videos in, predictions and downloads out: the computation behind the Reconstruct tab and `reconstruct` CLI."""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from vggt_mv.config import VGGTMVConfig
from vggt_mv.inference import predict
from vggt_mv.io.examples import Example, load_ground_truth
from vggt_mv.io.video import MultiViewClip, load_multiview, probe_video, target_size
from vggt_mv.viz.export import write_cameras_json, write_glb, write_npz, write_ply_per_time
from vggt_mv.viz.scene import SceneOptions, build_scene

Progress = Callable[[float, str], None]
CACHE_SIZE = 4
BYTES_PER_FLOAT = 4
# Rough activation multipliers, calibrated on CPU runs of the tiny and vggt-1b presets (see the README).
BLOCK_ACTIVATION_FACTOR = 12
HEAD_ACTIVATION_FACTOR = 10
HEAD_CHUNK_FRAMES = 8


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
        return (f"{self.time_steps} time steps x {self.cameras} cameras at {self.width}x{self.height}: "
                f"{self.tokens:,} tokens, about {self.peak_bytes / 1024 ** 3:.1f} GiB peak memory")


@dataclass
class Reconstruction:
    """Predictions of one run ([T, N] numpy arrays) and how they were made."""

    predictions: dict[str, np.ndarray]
    clip: MultiViewClip
    settings: ReconstructionSettings
    seconds: dict[str, float]
    key: str
    notes: list[str] = field(default_factory=list)


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


def plan_run(served, videos: list[Path], settings: ReconstructionSettings) -> RunEstimate:
    """Probe the videos and size the run, refusing one that cannot fit before anything is decoded."""
    if settings.frames_per_camera * len(videos) > settings.max_total_frames:
        raise ReconstructionError(
            f"{settings.frames_per_camera} frames x {len(videos)} cameras = {settings.frames_per_camera * len(videos)} "
            f"frames, over the limit of {settings.max_total_frames}; lower the frames per camera")
    info = probe_video(videos[0])
    width, height = target_size(*info.display_size)
    weights = sum(p.numel() * p.element_size() for p in served.model.parameters())
    estimate = estimate_run(served.config, settings.frames_per_camera, len(videos), height, width, weights)
    free = available_memory(served.device)
    if estimate.peak_bytes > free:
        raise ReconstructionError(f"this run needs about {estimate.peak_bytes / 1024 ** 3:.1f} GiB but "
                                  f"{free / 1024 ** 3:.1f} GiB is free on {served.device}; use fewer frames or cameras")
    return estimate


def content_key(videos: list[Path], settings: ReconstructionSettings, model_tag: str) -> str:
    """Same files + same settings + same model -> same key, whatever the upload names."""
    digest = hashlib.sha256(model_tag.encode())
    for path in videos:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    digest.update(json.dumps(asdict(settings), sort_keys=True).encode())
    return digest.hexdigest()[:16]


_cache: "OrderedDict[str, Reconstruction]" = OrderedDict()


def cached_reconstruction(key: str | None) -> Reconstruction | None:
    """A recent run by its key (display controls redraw from it), or None once it left the cache."""
    return _cache.get(key) if key else None


def _run_model(served, clip: MultiViewClip, settings: ReconstructionSettings) -> dict[str, np.ndarray]:
    """Inference under the model lock, turning out-of-memory into a message."""
    images = torch.from_numpy(clip.images)
    try:
        with served.lock:
            return predict(served.model, images, mode=settings.mode)
    except torch.cuda.OutOfMemoryError:
        torch.cuda.empty_cache()
        raise ReconstructionError("the device ran out of memory; try fewer frames per camera or fewer cameras") from None
    except RuntimeError as error:
        if "out of memory" in str(error).lower() or "can't allocate memory" in str(error).lower():
            raise ReconstructionError("ran out of memory; try fewer frames per camera or fewer cameras") from None
        raise


def reconstruct(served, videos: list[str | Path], settings: ReconstructionSettings | None = None,
                example: Example | None = None, progress: Progress | None = None) -> Reconstruction:
    """Decode T steps from each video, run VGGT_MV, return [T, N] predictions (cached by content)."""
    settings = settings or ReconstructionSettings()
    progress = progress or (lambda fraction, message: None)
    videos = [Path(v) for v in videos]
    if not videos:
        raise ReconstructionError("upload at least one video (one per camera) or pick an example")
    if len(videos) > 8:
        raise ReconstructionError(f"{len(videos)} videos: at most 8 cameras are supported")
    # The report's identity changes whenever new weights are loaded into the served model.
    key = content_key(videos, settings, f"{served.preset}:{id(served.model)}:{id(served.report)}")
    if key in _cache:
        _cache.move_to_end(key)
        return _cache[key]
    progress(0.05, "checking the videos")
    plan_run(served, videos, settings)
    started = time.perf_counter()
    progress(0.1, f"decoding {settings.frames_per_camera} frames from each of {len(videos)} videos")
    clip = load_multiview(videos, settings.frames_per_camera, settings.window, list(settings.offsets) or None,
                          settings.max_total_frames)
    decoded = time.perf_counter()
    progress(0.4, f"running VGGT_MV on {clip.grid[0]} x {clip.grid[1]} frames ({served.device})")
    predictions = _run_model(served, clip, settings)
    predictions["times"] = np.array(clip.times, dtype=np.float64)
    if example is not None:
        height, width = clip.images.shape[-2:]
        predictions["gt_extrinsic"], predictions["gt_intrinsic"] = load_ground_truth(example, clip.times, (height, width))
    finished = time.perf_counter()
    result = Reconstruction(predictions, clip, settings, {"decode": decoded - started, "inference": finished - decoded},
                            key, list(clip.notes))
    _cache[key] = result
    while len(_cache) > CACHE_SIZE:
        _cache.popitem(last=False)
    progress(0.9, "building the scene")
    return result


def write_outputs(reconstruction: Reconstruction, folder: Path, options: SceneOptions | None = None,
                  with_html: bool = False) -> dict[str, object]:
    """GLB, one PLY per time step, NPZ, cameras.json (and scene.html) into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    options = options or SceneOptions()
    predictions = reconstruction.predictions
    outputs: dict[str, object] = {
        "glb": write_glb(folder / "scene.glb", predictions, options.conf_percentile),
        "ply": write_ply_per_time(folder / "ply", predictions, options.conf_percentile),
        "npz": write_npz(folder / "predictions.npz", predictions),
        "cameras": write_cameras_json(folder / "cameras.json", predictions),
    }
    if with_html:
        html = folder / "scene.html"
        build_scene(predictions, options).write_html(str(html), include_plotlyjs=True)
        outputs["html"] = html
    return outputs
