"""What runs on the GPU, and nothing else: two pure calls, sized from the run, wrapped in `spaces.GPU` on ZeroGPU.

ZeroGPU runs each decorated call in a forked worker (one warm worker reused while it is idle and alive), pickles
its arguments in and what it returns or yields back, and never lets the main process initialise CUDA. So each
call here takes the model's recipe and arrays, returns CPU arrays, and leaves every cache and session to the main
process (vggt_mv.serving.app_state). Errors travel as data: the worker would turn an exception of ours into
"ZeroGPU worker error: <class name>" and lose its message.
"""

from __future__ import annotations

import contextlib
import os
import queue
import threading
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import numpy as np

from vggt_mv.config import VGGTMVConfig
from vggt_mv.heads.track import TrackContext
from vggt_mv.pipeline import (MemoryBudget, ModelOutputs, ReconstructionError, attention_pairs, infer,
                              tokens_per_frame, track)

# ZeroGPU's slice as the `spaces` package describes it to the main process (ZEROGPU_CUDA_TOTAL_MEMORY, default
# 74,625,056,768 bytes: "NVIDIA H200 MIG 3g.71gb"); the main process cannot ask CUDA.
ZEROGPU_MEMORY_BYTES = 74_625_056_768
# GPU seconds per call: a base (worker start, weights onto the device), a share per frame (patch embed, blocks'
# MLPs, heads: it grows with the parameters) and attention's share (4 multiply-adds per pair of tokens per channel,
# so it grows with attention_pairs and the width). Not yet measured on a GPU: set from the official VGGT's figure
# (100 frames in 3.12 s on an H100) with room for a ZeroGPU slice (3/7 of an H200). ZeroGPU counts only the
# seconds used against a visitor's quota; the duration asked is a guard (a longer one waits longer in the queue).
BASE_SECONDS = 10.0
SECONDS_PER_FRAME_PER_GPARAM = 0.08
SECONDS_PER_PAIR_CHANNEL = 1e-14
TRACK_BASE_SECONDS = 5.0
TRACK_SECONDS_PER_FRAME = 0.05
# The longest call ZeroGPU grants (about 5 minutes, from its maintainers; the scheduler refuses longer ones).
MAX_SECONDS = 300


# libgomp (torch's OpenMP) keeps its thread pool across a fork without its threads: a forked worker whose thread
# had run a parallel op in the parent hangs on its first one. On ZeroGPU the main process therefore runs torch on one
# thread (no pool is ever made), and each GPU worker takes the machine's cores back.
WORKER_THREADS = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def keep_forks_safe() -> None:
    """Before any torch work in a ZeroGPU main process: one thread, so no OpenMP pool exists when spaces forks."""
    import torch

    torch.set_num_threads(1)


def use_the_workers_cores(owner_pid: int) -> None:
    """In a forked GPU worker (not the process that owns the served model): torch on every core again."""
    import torch

    if os.getpid() != owner_pid and torch.get_num_threads() != WORKER_THREADS:
        torch.set_num_threads(WORKER_THREADS)


def on_zerogpu() -> bool:
    """Whether this process serves on ZeroGPU (the variable the `spaces` package reads)."""
    return os.environ.get("SPACES_ZERO_GPU", "").lower() in ("1", "t", "true")


def memory_budget(device_type: str, setting_bytes: int | None = None) -> MemoryBudget:
    """What a run may use, known without touching CUDA in the main process: the operator's setting, ZeroGPU's
    slice, a plain GPU server's device total, or the host's available memory."""
    if setting_bytes:
        return MemoryBudget(setting_bytes, "the --gpu-memory setting")
    if on_zerogpu():
        total = int(os.environ.get("ZEROGPU_CUDA_TOTAL_MEMORY", ZEROGPU_MEMORY_BYTES))
        return MemoryBudget(total, "a ZeroGPU slice")
    if device_type == "cuda":
        import torch  # a plain GPU server: the main process is the one that runs the model on CUDA

        return MemoryBudget(torch.cuda.get_device_properties(0).total_memory, "the GPU's memory")
    return MemoryBudget(host_available_memory(), "the host's available memory")


def host_available_memory() -> int:
    """The OS's MemAvailable in bytes (a huge number where /proc/meminfo has none)."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 1 << 62


def reconstruct_seconds(config: VGGTMVConfig, weight_count: int, images_shape: tuple[int, ...], mode: str) -> int:
    """GPU seconds to ask for one forward of [T, N, 3, H, W] frames in `mode`, capped at ZeroGPU's limit."""
    steps, cameras, _, height, width = images_shape
    pairs = attention_pairs(mode, steps, cameras, tokens_per_frame(config, height, width)) * config.depth
    seconds = (BASE_SECONDS + SECONDS_PER_FRAME_PER_GPARAM * weight_count / 1e9 * steps * cameras
               + SECONDS_PER_PAIR_CHANNEL * pairs * config.embed_dim)
    return int(min(MAX_SECONDS, round(seconds)))


def track_seconds(frames: int) -> int:
    """GPU seconds for the track head alone on a kept context of `frames` frames (copying it in included)."""
    return int(min(MAX_SECONDS, round(TRACK_BASE_SECONDS + TRACK_SECONDS_PER_FRAME * frames)))


@dataclass(frozen=True)
class GpuProgress:
    """A model progress call, yielded out of the GPU call so the visitor's bar moves."""

    done: int
    total: int
    stage: str


@dataclass(frozen=True)
class GpuFailure:
    """A refusal raised inside the GPU call, as data (its message reaches the visitor)."""

    message: str


# spaces' own errors (gr.Error with these titles), each said as one line with what the visitor can do.
ZEROGPU_ADVICE = {
    "ZeroGPU worker error": "the GPU worker stopped before it finished (it may have run past its time or out of "
                            "memory); run again, with fewer frames if it happens again",
    "ZeroGPU quota exceeded": "",
    "ZeroGPU illegal duration": "use fewer frames per camera or fewer cameras",
    "ZeroGPU client error": "try again in a minute",
    "ZeroGPU queue timeout": "try again in a minute",
}


@contextlib.contextmanager
def zerogpu_errors_as_messages() -> Iterator[None]:
    """ZeroGPU's refusals and aborts ("GPU task aborted", quota exceeded, no GPU available) become one
    ReconstructionError line each: spaces' title, its message and what to do."""
    import gradio as gr

    try:
        yield
    except gr.Error as error:
        title = getattr(error, "title", None) or "ZeroGPU"
        message = " ".join(str(getattr(error, "message", error)).split())
        advice = ZEROGPU_ADVICE.get(title, "")
        raise ReconstructionError(f"{title}: {message}" + (f"; {advice}" if advice else "")) from None


def wrap_for_gpu(duration: Callable[..., int]) -> Callable[[Callable], Callable]:
    """`spaces.GPU(duration=...)` when the `spaces` package is installed (it changes nothing off ZeroGPU); else
    nothing."""
    try:
        import spaces
    except ImportError:
        return lambda function: function
    return spaces.GPU(duration=duration)


def forward_events(model, images: np.ndarray, mode: str) -> Iterator[GpuProgress | GpuFailure | ModelOutputs]:
    """infer() on a thread, its progress calls yielded as they happen, then its outputs (or its refusal)."""
    updates: queue.Queue = queue.Queue()

    def work() -> None:
        try:
            updates.put(infer(model, images, mode, lambda done, total, stage: updates.put(GpuProgress(done, total,
                                                                                                       stage))))
        except ReconstructionError as error:
            updates.put(GpuFailure(str(error)))
        except BaseException as error:  # noqa: BLE001 - re-raised below, in the caller's thread
            updates.put(error)

    worker = threading.Thread(target=work, name="vggt-mv-forward", daemon=True)
    worker.start()
    while True:
        event = updates.get()
        if isinstance(event, BaseException):
            worker.join()
            raise event
        yield event
        if not isinstance(event, GpuProgress):
            worker.join()
            return


class GpuCalls:
    """The served model's two GPU calls, as plain functions (what `spaces.GPU` wraps). On ZeroGPU they run in the
    worker, whose copy of `served` only ever changes its model to the recipe a call brings
    (ServedModel.model_for); nothing else is read or written."""

    def __init__(self, served) -> None:
        def reconstruct(recipe, images: np.ndarray, mode: str) -> Iterator[Any]:
            """Images [T, N, 3, H, W] float32 in; GpuProgress events, then ModelOutputs or a GpuFailure."""
            use_the_workers_cores(served.owner_pid)
            try:
                model = served.model_for(recipe)
            except ReconstructionError as error:
                yield GpuFailure(str(error))
                return
            yield from forward_events(model, images, mode)

        def reconstruct_duration(recipe, images: np.ndarray, mode: str) -> int:
            return reconstruct_seconds(served.config, served.weight_count, images.shape, mode)

        def track_points(recipe, context: TrackContext, points: np.ndarray) -> dict[str, np.ndarray] | GpuFailure:
            """The track head alone on a kept context: query points [K, 2] in, track/vis/conf out."""
            use_the_workers_cores(served.owner_pid)
            try:
                return track(served.model_for(recipe), context, points)
            except ReconstructionError as error:
                return GpuFailure(str(error))

        def track_duration(recipe, context: TrackContext, points: np.ndarray) -> int:
            return track_seconds(int(np.prod(context.grid)))

        self.reconstruct = wrap_for_gpu(reconstruct_duration)(reconstruct)
        self.track = wrap_for_gpu(track_duration)(track_points)
