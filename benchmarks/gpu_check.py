"""The prepared GPU check: bf16 error, forward time and peak memory per size and mode (VGGT_MV and the official VGGT),
the app's GPU function on the bundled example, and the memory estimate against the measured peak, in one CSV.

A device session runs it as one command (see benchmarks/gpu_check.sh, which also installs carried wheels):
    python benchmarks/gpu_check.py --out "$OUT"
Here, on the CPU, in seconds:
    python benchmarks/gpu_check.py --device cpu --quick --out /tmp/gpu_check

Every case is isolated (a failure or an out-of-memory is a row with a note) and every row is flushed as it is written,
so a run stopped at its time limit still leaves what it measured. Weights are random (fixed seed); nothing is
downloaded. The official VGGT is imported from `--official` (default .reference/vggt, ignored by git) when present.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import gc
import inspect
import math
import platform
import resource
import statistics
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402
import torch  # noqa: E402

COLUMNS = ("check", "metric", "preset", "implementation", "mode", "T", "N", "height", "width", "value", "unit", "note")
CSV_NAME = "gpu_check.csv"
OURS = "VGGT_MV"
OFFICIAL = "official VGGT"
PRECISION_OUTPUTS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
CHECKS = ("precision", "example", "forward")
FULL_SIZES = ((1, 1), (8, 4), (16, 8), (32, 8))
QUICK_SIZES = ((1, 1), (2, 2))


@dataclass(frozen=True)
class Settings:
    """What one run measures: sizes, frame size, repeats and where."""

    device: torch.device
    quick: bool
    preset: str
    sizes: tuple[tuple[int, int], ...]
    height: int
    width: int
    repeats: int
    precision_grid: tuple[int, int]
    example_steps: int
    example_width: int | None
    official_path: Path
    budget_seconds: float
    checks: tuple[str, ...] = CHECKS
    modes: tuple[str, ...] = ("multi", "global")


@dataclass
class Case:
    """The identifying columns of a row (everything but metric, value, unit and note)."""

    check: str
    preset: str = ""
    implementation: str = ""
    mode: str = ""
    T: int | str = ""
    N: int | str = ""
    height: int | str = ""
    width: int | str = ""


@dataclass
class Timing:
    """Seconds of the warm-up call and of each timed call, and the peak memory above the start (bytes)."""

    first_seconds: float
    seconds: list[float] = field(default_factory=list)
    peak_above_start: int | None = None
    note: str = ""


class CsvRows:
    """The one flat CSV, written and flushed row by row (and echoed to stdout)."""

    def __init__(self, path: Path) -> None:
        """Create the file and write its header."""
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.file = path.open("w", newline="")
        self.writer = csv.DictWriter(self.file, fieldnames=COLUMNS)
        self.writer.writeheader()
        self.file.flush()
        self.count = 0
        self.problems = 0

    def write(self, case: Case, metric: str, value: float | int | str = "", unit: str = "", note: str = "") -> None:
        """One row: the case's columns plus metric, value, unit and note."""
        if isinstance(value, float):
            value = repr(value) if math.isfinite(value) else str(value)
        row = {**vars(case), "metric": metric, "value": value, "unit": unit, "note": note}
        self.writer.writerow(row)
        self.file.flush()
        self.count += 1
        if note.startswith(("error", "out of memory")):
            self.problems += 1
        label = " ".join(str(row[c]) for c in ("check", "implementation", "mode", "T", "N") if row[c] != "")
        print(f"[{label}] {metric} = {value} {unit} {note}".rstrip(), flush=True)

    def close(self) -> None:
        """Close the file."""
        self.file.close()


class Budget:
    """The run's remaining seconds."""

    def __init__(self, seconds: float) -> None:
        """Start the clock."""
        self.started = time.perf_counter()
        self.deadline = self.started + seconds

    def left(self) -> float:
        """Seconds left before the deadline."""
        return self.deadline - time.perf_counter()

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.started


def synchronize(device: torch.device) -> None:
    """Wait for queued device work (CUDA); nothing on the CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _status_kib(key: str) -> int | None:
    """A /proc/self/status field in KiB (VmRSS, VmHWM), or None off Linux."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


class PeakMeter:
    """Peak memory of the code between start() and stop(), above what was held at start()."""

    def __init__(self, device: torch.device) -> None:
        """Pick the measure for the device (CUDA allocator, or the process's peak RSS on the CPU)."""
        self.device = device
        self.baseline = 0
        self.resettable = device.type == "cuda" or self._reset_rss_peak()
        if device.type == "cuda":
            self.unit = "bytes (torch.cuda.max_memory_allocated above the case's start + the model's weights)"
        elif self.resettable:
            self.unit = "bytes (CPU peak RSS above the case's start, VmHWM reset via /proc/self/clear_refs, + weights)"
        else:
            self.unit = "bytes (CPU ru_maxrss above the case's start + weights; not resettable: a lower bound)"

    @staticmethod
    def _reset_rss_peak() -> bool:
        """Reset the process's peak RSS (VmHWM) to its current RSS; False where the kernel does not allow it."""
        try:
            Path("/proc/self/clear_refs").write_text("5")
            return _status_kib("VmHWM") is not None
        except OSError:
            return False

    def start(self) -> None:
        """Take the baseline and reset the peak."""
        gc.collect()
        if self.device.type == "cuda":
            synchronize(self.device)
            self.baseline = torch.cuda.memory_allocated(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        elif self.resettable:
            trim_heap()
            self._reset_rss_peak()
            self.baseline = (_status_kib("VmRSS") or 0) * 1024
        else:
            self.baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024

    def stop(self) -> int:
        """Peak bytes above the baseline since start()."""
        if self.device.type == "cuda":
            synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) - self.baseline
        if self.resettable:
            return max(0, (_status_kib("VmHWM") or 0) * 1024 - self.baseline)
        return max(0, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - self.baseline)


def trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc malloc_trim), so the next case's allocations show in its RSS."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def is_out_of_memory(error: BaseException) -> bool:
    """A CUDA out-of-memory, or a CPU allocation failure."""
    if isinstance(error, torch.cuda.OutOfMemoryError):
        return True
    text = str(error).lower()
    return isinstance(error, (RuntimeError, MemoryError)) and ("out of memory" in text
                                                                or "can't allocate memory" in text
                                                                or isinstance(error, MemoryError))


def free_memory(device: torch.device) -> None:
    """Drop garbage and the allocator's cached blocks."""
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()


@contextlib.contextmanager
def isolated(rows: CsvRows, case: Case, metric: str, device: torch.device) -> Iterator[None]:
    """Run one case; an out-of-memory or any other failure becomes a row with a note instead of ending the run."""
    failure = ""
    try:
        yield
    except Exception as error:  # noqa: BLE001 - every case must leave a row, whatever broke it
        out_of_memory = is_out_of_memory(error)
        first_line = (str(error).splitlines() or [""])[0][:300]
        failure = f"{'out of memory' if out_of_memory else 'error: ' + type(error).__name__}: {first_line}"
        if not out_of_memory:
            traceback.print_exc()
    if failure:  # outside the except clause: the traceback (and the tensors its frames hold) is gone
        free_memory(device)
        rows.write(case, metric, note=failure)


def weight_bytes(model: torch.nn.Module) -> int:
    """Bytes of the model's parameters."""
    return sum(p.numel() * p.element_size() for p in model.parameters())


def time_calls(call: Callable[[], Any], device: torch.device, repeats: int, budget: Budget,
               meter: PeakMeter) -> Timing:
    """One warm-up call, then up to `repeats` timed calls that fit the budget; the peak is over the timed calls."""
    meter.start()
    started = time.perf_counter()
    result = call()
    synchronize(device)
    timing = Timing(time.perf_counter() - started)
    del result
    warm_peak = meter.stop()
    left = budget.left()
    fitting = repeats if timing.first_seconds * repeats < left else int(left // max(timing.first_seconds, 1e-9))
    if fitting <= 0:
        timing.peak_above_start = warm_peak
        timing.note = "budget: only the warm-up call ran (its time and peak are reported)"
        timing.seconds = [timing.first_seconds]
        return timing
    if fitting < repeats:
        timing.note = f"budget: {fitting} of {repeats} timed calls"
    meter.start()  # the allocator keeps its cached blocks: timed calls allocate as the app's warm calls do
    for _ in range(fitting):
        started = time.perf_counter()
        result = call()
        synchronize(device)
        timing.seconds.append(time.perf_counter() - started)
        del result
    timing.peak_above_start = meter.stop()
    return timing


def write_timing(rows: CsvRows, case: Case, timing: Timing, weights: int, meter: PeakMeter, note: str = "") -> int:
    """Rows for a timed case (first call, best, median, peak memory); returns the measured peak in bytes."""
    notes = "; ".join(n for n in (note, timing.note) if n)
    rows.write(case, "first_call_s", timing.first_seconds, "s", "warm-up call (includes one-off set-up)")
    count = f"{len(timing.seconds)} timed call(s), synchronized"
    rows.write(case, "best_s", min(timing.seconds), "s", "; ".join(n for n in (count, notes) if n))
    rows.write(case, "median_s", statistics.median(timing.seconds), "s", count)
    peak = weights + int(timing.peak_above_start or 0)
    rows.write(case, "peak_memory", peak, meter.unit, f"weights {weights} bytes")
    return peak


def seeded_images(shape: tuple[int, ...], seed: int = 0) -> torch.Tensor:
    """Uniform images in [0, 1] from a fixed CPU generator (the same on every machine)."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(seed))


def build_on(device: torch.device, factory: Callable[[], torch.nn.Module]) -> tuple[torch.nn.Module, str]:
    """Build directly on the device (fast random init; stragglers moved after); fall back to a CPU build moved there."""
    torch.manual_seed(0)
    if device.type != "cpu":
        try:
            with torch.device(device):
                model = factory()
            return model.eval().to(device), f"built on {device}"
        except Exception as error:  # noqa: BLE001 - some constructors refuse a default device; build on the CPU
            fallback = f"built on the CPU and moved ({type(error).__name__} building on {device})"
            free_memory(device)
            torch.manual_seed(0)
            return factory().eval().to(device), fallback
    return factory().eval(), "built on the CPU"


def build_ours(settings: Settings) -> tuple[torch.nn.Module, str]:
    """VGGT_MV at the run's preset with random weights (seed 0)."""
    from vggt_mv import VGGT_MV, VGGTMVConfig

    config = VGGTMVConfig.from_preset(settings.preset)
    return build_on(settings.device, lambda: VGGT_MV(config))


def ours_forward(model: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor, str], Any]:
    """The plain model forward as `predict` runs it: inference mode, bf16 autocast on CUDA (fp32 on the CPU)."""
    from vggt_mv.inference import autocast_context

    def forward(batch: torch.Tensor, mode: str) -> Any:
        with torch.inference_mode(), autocast_context(device):
            return model(batch, mode=mode)

    return forward


def load_official(path: Path) -> tuple[Any | None, str]:
    """The official `vggt` package imported from `path` (a folder holding vggt/), or None and why not."""
    if not (path / "vggt" / "models" / "vggt.py").is_file():
        return None, f"skipped: official VGGT code not found at {path} (no vggt/models/vggt.py)"
    sys.path.insert(0, str(path.resolve()))
    try:
        import vggt.models.vggt as official
    except Exception as error:  # noqa: BLE001 - a broken checkout is a skipped row, not a crash
        return None, f"skipped: importing the official VGGT from {path} failed: {type(error).__name__}: {error}"
    if path.resolve() not in Path(official.__file__).resolve().parents:
        return None, f"skipped: `vggt` was imported from {official.__file__}, not from {path}"
    return official, f"official VGGT imported from {path}"


def build_official(module: Any, settings: Settings) -> tuple[torch.nn.Module, str]:
    """`VGGT()` at its default size; with --quick its Aggregator and heads at the run's preset's sizes instead."""
    if not settings.quick:
        model, how = build_on(settings.device, lambda: module.VGGT())
        return model, f"VGGT() at its default size, random weights; {how}"
    from vggt.heads.camera_head import CameraHead
    from vggt.heads.dpt_head import DPTHead
    from vggt.models.aggregator import Aggregator

    from vggt_mv import VGGTMVConfig

    config = VGGTMVConfig.from_preset(settings.preset)

    def tiny() -> torch.nn.Module:
        """The tests/golden/README.md recipe: official modules at our sizes in a VGGT instance (no track head)."""
        model = module.VGGT.__new__(module.VGGT)
        torch.nn.Module.__init__(model)
        dim_in = 2 * config.embed_dim
        dpt = dict(features=config.dpt_features, out_channels=config.dpt_out_channels,
                   intermediate_layer_idx=config.dpt_intermediate_layer_idx)
        model.aggregator = Aggregator(img_size=config.img_size, patch_size=config.patch_size,
                                      embed_dim=config.embed_dim, depth=config.depth, num_heads=config.num_heads,
                                      patch_embed=config.patch_embed)
        model.camera_head = CameraHead(dim_in=dim_in, trunk_depth=config.camera_trunk_depth,
                                       num_heads=config.camera_num_heads)
        model.point_head = DPTHead(dim_in=dim_in, output_dim=4, activation="inv_log", conf_activation="expp1", **dpt)
        model.depth_head = DPTHead(dim_in=dim_in, output_dim=2, activation="exp", conf_activation="expp1", **dpt)
        model.track_head = None
        return model

    model, how = build_on(settings.device, tiny)
    return model, (f"official Aggregator and heads at the {settings.preset} preset's sizes (quick), "
                   f"random weights; {how}")


def official_forward(model: torch.nn.Module, device: torch.device) -> Callable[[torch.Tensor, str], Any]:
    """The official forward as its README runs it: no_grad, bf16 autocast on CUDA; T*N frames t-major."""

    def forward(batch: torch.Tensor, mode: str) -> Any:
        frames = batch.reshape(batch.shape[0], -1, *batch.shape[-3:])
        autocast = (torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda"
                    else contextlib.nullcontext())
        with torch.no_grad(), autocast:
            return model(frames)

    return forward


def environment_rows(rows: CsvRows, settings: Settings) -> None:
    """Versions, device and settings, one row each (text in the note column)."""
    case = Case("environment")
    device = settings.device
    rows.write(case, "torch", note=torch.__version__)
    rows.write(case, "torch_cuda", note=str(torch.version.cuda))
    rows.write(case, "cudnn", note=str(torch.backends.cudnn.version() if torch.backends.cudnn.is_available() else None))
    rows.write(case, "python", note=platform.python_version())
    rows.write(case, "numpy", note=np.__version__)
    rows.write(case, "platform", note=platform.platform())
    rows.write(case, "device", note=str(device))
    if device.type == "cuda":
        properties = torch.cuda.get_device_properties(device)
        rows.write(case, "device_name", note=properties.name)
        rows.write(case, "device_memory", properties.total_memory, "bytes")
        rows.write(case, "device_capability", note=f"{properties.major}.{properties.minor}")
        rows.write(case, "device_multiprocessors", properties.multi_processor_count, "count")
        rows.write(case, "driver", note=_nvidia_driver())
        rows.write(case, "tf32", note=f"matmul {torch.backends.cuda.matmul.allow_tf32}, "
                                      f"cudnn {torch.backends.cudnn.allow_tf32} (PyTorch defaults, as the app runs)")
        rows.write(case, "sdpa_backends", note=f"flash {torch.backends.cuda.flash_sdp_enabled()}, "
                                               f"mem_efficient {torch.backends.cuda.mem_efficient_sdp_enabled()}, "
                                               f"math {torch.backends.cuda.math_sdp_enabled()}")
    else:
        rows.write(case, "device_name", note=platform.processor() or platform.machine())
        rows.write(case, "cpu_threads", torch.get_num_threads(), "count")
    rows.write(case, "settings", note=f"preset {settings.preset}, sizes {settings.sizes}, frames "
                                      f"{settings.height}x{settings.width} (HxW), repeats {settings.repeats}, "
                                      f"budget {settings.budget_seconds:g} s, quick {settings.quick}, "
                                      f"checks {','.join(settings.checks)}")


def _nvidia_driver() -> str:
    """The driver version nvidia-smi reports, or why it is unknown."""
    import subprocess

    try:
        done = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                              capture_output=True, text=True, timeout=20)
        return done.stdout.strip() or done.stderr.strip()[:200]
    except (OSError, subprocess.SubprocessError) as error:
        return f"unknown ({type(error).__name__})"


@contextlib.contextmanager
def predict_precision(precision: str, device: torch.device) -> Iterator[None]:
    """Make `vggt_mv.inference.predict` run in fp32 (no autocast, no TF32) or bf16 (CUDA: the app's own autocast)."""
    import vggt_mv.inference as inference

    original = inference.autocast_context
    tf32 = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    if precision == "fp32":
        inference.autocast_context = lambda device: contextlib.nullcontext()
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    elif device.type != "cuda":
        inference.autocast_context = lambda device: torch.autocast("cpu", dtype=torch.bfloat16)
    try:
        yield
    finally:
        inference.autocast_context = original
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32


def relative_errors(reference: np.ndarray, other: np.ndarray) -> tuple[float, float, int]:
    """max|b-a| / max|a| and mean|b-a| / mean|a| over elements finite in both, and how many were not."""
    reference, other = reference.astype(np.float64), other.astype(np.float64)
    finite = np.isfinite(reference) & np.isfinite(other)
    difference = np.abs(other[finite] - reference[finite])
    magnitude = np.abs(reference[finite])
    if not difference.size:
        return float("nan"), float("nan"), int((~finite).sum())
    scale_max, scale_mean = max(float(magnitude.max()), 1e-30), max(float(magnitude.mean()), 1e-30)
    return float(difference.max()) / scale_max, float(difference.mean()) / scale_mean, int((~finite).sum())


def precision_rows(rows: CsvRows, model: torch.nn.Module, settings: Settings, budget: Budget) -> None:
    """fp32 vs bf16 autocast through `predict`: max and mean relative error per output, per mode."""
    from vggt_mv.inference import predict

    steps, cameras = settings.precision_grid
    images = seeded_images((steps, cameras, 3, settings.height, settings.width), seed=1)
    where = ("the app's CUDA bf16 autocast (aggregator bf16, heads fp32); fp32 without TF32"
             if settings.device.type == "cuda" else "CPU bf16 autocast (the app runs fp32 on the CPU)")
    for mode in settings.modes:
        case = Case("precision", settings.preset, f"{OURS} predict: bf16 vs fp32", mode, steps, cameras,
                    settings.height, settings.width)
        if budget.left() <= 0:
            rows.write(case, "max_rel_error", note="skipped: the time budget is spent")
            continue
        with isolated(rows, case, "max_rel_error", settings.device):
            with predict_precision("fp32", settings.device):
                reference = predict(model, images, mode=mode)
            with predict_precision("bf16", settings.device):
                low = predict(model, images, mode=mode)
            for name in PRECISION_OUTPUTS:
                if name not in reference:
                    rows.write(case, f"max_rel_error[{name}]", note="skipped: not predicted")
                    continue
                max_error, mean_error, nonfinite = relative_errors(reference[name], low[name])
                note = f"{nonfinite} non-finite element(s) left out" if nonfinite else ""
                rows.write(case, f"max_rel_error[{name}]", max_error, "ratio",
                           "; ".join(n for n in ("max|bf16-fp32| / max|fp32|", where, note) if n))
                rows.write(case, f"mean_rel_error[{name}]", mean_error, "ratio", "mean|bf16-fp32| / mean|fp32|")
            del reference, low
        free_memory(settings.device)


def estimate_keywords(function: Callable[..., Any], mode: str, device: torch.device) -> dict[str, Any]:
    """The optional keywords `estimate_run` takes in this checkout: mode, and a device or device kind if it has one."""
    parameters = inspect.signature(function).parameters
    extra: dict[str, Any] = {}
    for name in parameters:
        if name == "mode":
            extra[name] = mode
        elif name == "device":
            extra[name] = device
        elif "device" in name or name in ("kind", "backend"):
            extra[name] = device.type
    return extra


def estimate_rows(rows: CsvRows, case: Case, steps: int, cameras: int, measured: int, weights: int,
                  settings: Settings) -> None:
    """`vggt_mv.pipeline.estimate_run` for this size and mode next to the measured peak, and their ratio."""
    estimate_case = Case("memory_estimate", case.preset, case.implementation, case.mode, steps, cameras,
                         case.height, case.width)
    with isolated(rows, estimate_case, "estimate", settings.device):
        from vggt_mv.config import VGGTMVConfig
        from vggt_mv.pipeline import estimate_run

        keywords = estimate_keywords(estimate_run, case.mode, settings.device)
        estimate = estimate_run(VGGTMVConfig.from_preset(settings.preset), time_steps=steps, cameras=cameras,
                                height=int(case.height), width=int(case.width), weights_bytes=weights, **keywords)
        called = ", ".join(f"{k}={v}" for k, v in keywords.items()) or "no mode or device keyword"
        rows.write(estimate_case, "estimate", estimate.peak_bytes, "bytes", f"estimate_run({called})")
        rows.write(estimate_case, "measured", measured, "bytes", "peak_memory of the matching timed case")
        rows.write(estimate_case, "ratio", measured / estimate.peak_bytes, "ratio", "measured / estimate")
        pairs = getattr(estimate, "attention_pairs", None)
        if pairs is not None:
            rows.write(estimate_case, "attention_pairs", pairs, "count", "RunEstimate.attention_pairs (compute size)")


@dataclass
class Runner:
    """One implementation to time: its forward, weight bytes and the modes it runs."""

    name: str
    forward: Callable[[torch.Tensor, str], Any]
    weights: int
    modes: tuple[str, ...]
    note: str = ""
    history: dict[str, tuple[int, float]] = field(default_factory=dict)

    def predicted_seconds(self, mode: str, frames: int) -> float:
        """One forward's time guessed from the last measured size (linear in frames; quadratic for global)."""
        if mode not in self.history:
            return 0.0
        last_frames, last_seconds = self.history[mode]
        ratio = frames / last_frames
        return last_seconds * (ratio ** 2 if mode == "global" else ratio)


def forward_case(rows: CsvRows, runner: Runner, mode: str, steps: int, cameras: int, settings: Settings,
                 budget: Budget, meter: PeakMeter) -> None:
    """Time one implementation at one size and mode (warm-up, then best/median) with its peak memory."""
    case = Case("forward", settings.preset, runner.name, mode, steps, cameras, settings.height, settings.width)
    predicted = runner.predicted_seconds(mode, steps * cameras)
    left = budget.left()
    if left <= 0 or predicted > left:
        guess = f"one forward predicted at {predicted:.1f} s from the last size, " if predicted else ""
        rows.write(case, "best_s", note=f"skipped: {guess}{max(left, 0.0):.1f} s left in the time budget")
        return
    with isolated(rows, case, "best_s", settings.device):
        batch = seeded_images((1, steps, cameras, 3, settings.height, settings.width)).to(settings.device)
        timing = time_calls(lambda: runner.forward(batch, mode), settings.device, settings.repeats, budget, meter)
        runner.history[mode] = (steps * cameras, min(timing.seconds))
        peak = write_timing(rows, case, timing, runner.weights, meter, runner.note)
        del batch
        if runner.name == OURS:
            estimate_rows(rows, case, steps, cameras, peak, runner.weights, settings)
    free_memory(settings.device)


def example_rows(rows: CsvRows, model: torch.nn.Module, settings: Settings, budget: Budget, meter: PeakMeter) -> None:
    """The bundled example: CPU decode, then `predict_with_track_context` (the app's GPU function) vs the forward."""
    from vggt_mv.inference import predict_with_track_context
    from vggt_mv.io.examples import list_examples
    from vggt_mv.io.video import decode_clip, plan_multiview

    case = Case("example", settings.preset, "plan_multiview + decode_clip (CPU)", "", settings.example_steps)
    with isolated(rows, case, "decode_s", settings.device):
        example = list_examples()[0]
        started = time.perf_counter()
        clip = decode_clip(plan_multiview(example.video_paths, settings.example_steps,
                                          **({"width": settings.example_width} if settings.example_width else {})))
        decode_seconds = time.perf_counter() - started
        steps, cameras, _, height, width = clip.images.shape
        case = Case("example", settings.preset, "plan_multiview + decode_clip (CPU)", "", steps, cameras, height, width)
        width_note = f" at width {settings.example_width} (quick)" if settings.example_width else ""
        rows.write(case, "decode_s", decode_seconds, "s", f"{example.name}: {cameras} videos x {steps} frames"
                                                          f"{width_note}, probe + plan + decode (not in the GPU "
                                                          "function)")
        images = torch.from_numpy(clip.images)
        weights = weight_bytes(model)
        forward = ours_forward(model, settings.device)
        for mode in settings.modes:
            function_case = Case("example", settings.preset, "predict_with_track_context", mode, steps, cameras,
                                 height, width)
            forward_case_ = Case("example", settings.preset, f"{OURS} forward (images already on the device)", mode,
                                 steps, cameras, height, width)
            if budget.left() <= 0:
                rows.write(function_case, "best_s", note="skipped: the time budget is spent")
                continue
            timing = plain = None
            with isolated(rows, function_case, "best_s", settings.device):
                timing = time_calls(lambda: predict_with_track_context(model, images, mode=mode), settings.device,
                                    settings.repeats, budget, meter)
                function_peak = write_timing(rows, function_case, timing, weights, meter,
                                             "host images in, numpy predictions and the CPU track context out")
                estimate_rows(rows, function_case, steps, cameras, function_peak, weights, settings)
            free_memory(settings.device)
            with isolated(rows, forward_case_, "best_s", settings.device):
                batch = images.unsqueeze(0).to(settings.device)
                plain = time_calls(lambda: forward(batch, mode), settings.device, settings.repeats, budget, meter)
                write_timing(rows, forward_case_, plain, weights, meter)
                del batch
            free_memory(settings.device)
            if timing is not None and plain is not None:
                rows.write(function_case, "function_over_forward", min(timing.seconds) / min(plain.seconds), "ratio",
                           "best predict_with_track_context / best plain forward (transfers + numpy + track context)")


def settings_from(args: argparse.Namespace) -> Settings:
    """The run's settings from the command line (--quick: tiny preset, small grids, 140x154 frames)."""
    official = Path(args.official)
    if not official.is_absolute():
        official = REPO / official
    checks = tuple(c for c in args.checks.split(",") if c) if args.checks else CHECKS
    unknown = sorted(set(checks) - set(CHECKS))
    if unknown:
        raise SystemExit(f"unknown --checks {unknown}; choose from {', '.join(CHECKS)}")
    sizes = tuple(tuple(int(v) for v in size.lower().split("x")) for size in args.sizes.split(",")) if args.sizes \
        else (QUICK_SIZES if args.quick else FULL_SIZES)
    return Settings(device=torch.device(args.device), quick=args.quick, preset="tiny" if args.quick else "vggt-1b",
                    sizes=sizes, height=140 if args.quick else 294, width=154 if args.quick else 518,
                    repeats=args.repeats or (1 if args.quick else 3),
                    precision_grid=(2, 2), example_steps=2 if args.quick else 8,
                    example_width=154 if args.quick else None, official_path=official,
                    budget_seconds=args.budget_seconds, checks=checks)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda", choices=("cpu", "cuda"))
    parser.add_argument("--quick", action="store_true", help="tiny preset, 1x1 and 2x2 at 140x154: a CPU smoke run")
    parser.add_argument("--out", type=Path, required=True, help=f"folder for {CSV_NAME}")
    parser.add_argument("--official", default=".reference/vggt",
                        help="folder holding the official vggt/ package (relative paths: from the repository root)")
    parser.add_argument("--budget-seconds", type=float, default=480.0,
                        help="cases that would not fit in what is left are skipped with a note")
    parser.add_argument("--repeats", type=int, default=0, help="timed calls per case (default 3; 1 with --quick)")
    parser.add_argument("--sizes", default="", help="T x N grids, e.g. 1x1,8x4 (default per --quick)")
    parser.add_argument("--checks", default="", help=f"a subset of {','.join(CHECKS)} (default: all)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run every check in order, cheapest first, each isolated; one CSV under --out."""
    args = parse_args(argv)
    settings = settings_from(args)
    budget = Budget(settings.budget_seconds)
    rows = CsvRows(args.out / CSV_NAME)
    if settings.device.type == "cuda" and not torch.cuda.is_available():
        rows.write(Case("environment"), "device", note="error: --device cuda but torch.cuda.is_available() is False "
                                                       f"(torch {torch.__version__})")
        rows.close()
        return 1
    environment_rows(rows, settings)
    meter = PeakMeter(settings.device)
    try:
        ours, how = build_ours(settings)
    except Exception as error:  # noqa: BLE001 - nothing else can run, but the CSV says why
        traceback.print_exc()
        rows.write(Case("environment"), f"build_{OURS}", note=f"error: {type(error).__name__}: {error}")
        rows.close()
        return 1
    rows.write(Case("environment"), f"build_{OURS}", note=f"{settings.preset} preset, random weights (seed 0); {how}")
    official_module, official_note = load_official(settings.official_path)
    official = None
    if official_module is not None:
        try:
            official, official_note = build_official(official_module, settings)
        except Exception as error:  # noqa: BLE001 - a failed official build skips its rows only
            official_note = f"skipped: building the official VGGT failed: {type(error).__name__}: {error}"
            traceback.print_exc()
            free_memory(settings.device)
    rows.write(Case("environment"), "official", note=official_note)
    if "precision" in settings.checks:
        precision_rows(rows, ours, settings, budget)
    if "example" in settings.checks:
        example_rows(rows, ours, settings, budget, meter)
    runners = [Runner(OURS, ours_forward(ours, settings.device), weight_bytes(ours), settings.modes)]
    if official is not None:
        runners.append(Runner(OFFICIAL, official_forward(official, settings.device), weight_bytes(official),
                              ("global",), "official VGGT on T*N frames (t-major)"))
    for steps, cameras in settings.sizes if "forward" in settings.checks else ():
        for runner in runners:
            for mode in runner.modes:
                forward_case(rows, runner, mode, steps, cameras, settings, budget, meter)
        if official is None:
            rows.write(Case("forward", settings.preset, OFFICIAL, "global", steps, cameras, settings.height,
                            settings.width), "best_s", note=official_note)
    summary = Case("summary")
    rows.write(summary, "elapsed_s", budget.elapsed(), "s", f"budget {settings.budget_seconds:g} s")
    rows.write(summary, "problem_rows", rows.problems, "count", "rows noting an error or an out-of-memory")
    print(f"wrote {rows.count} rows to {rows.path}", flush=True)
    rows.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
