"""Run a Gradio script under the real `spaces` ZeroGPU machinery on a CPU-only machine.

Usage: SPACES_ZERO_GPU=true SPACES_ZERO_DEVICE_API_URL=http://127.0.0.1:PORT VGGT_MV_CUDA_GUARD_LOG=guard.jsonl \
       python tests/support/zerogpu_launch.py app.py ARGS...

spaces runs as on a Space: its main-process torch patching (fake CUDA device, `_cuda_init` raising), its forked
workers, queues, worker reuse and scheduler client. Only what needs a GPU is swapped: the worker's `init` (which
makes a CUDA tensor) and `move` (which copies the tensors the main process put on "cuda" to the GPU) now give those
tensors their CPU data back. A guard makes every CUDA call of the main process raise and appends it, with a short
stack, to the JSON-lines file VGGT_MV_CUDA_GUARD_LOG; forked GPU workers (another pid) pass through.
"""

from __future__ import annotations

import functools
import json
import os
import runpy
import sys
import threading
import traceback
from pathlib import Path
from typing import Callable

GUARD_LOG_VARIABLE = "VGGT_MV_CUDA_GUARD_LOG"
ZEROGPU_CUDA_VERSION = "12.8"  # any 12.x or 13.x: spaces picks its fake memory-stats table by it
# What main-process code could use to reach a GPU. spaces fakes some of them there (mem_get_info answers fixed
# numbers of an H200 slice, memory_allocated 0, synchronize nothing): the guard still refuses them, since a main
# process that reads them reads no real device. _lazy_init is where torch goes for any CUDA tensor made outside
# spaces' emulation, which only covers the main thread. is_available, device_count and get_device_name/
# properties/capability are left to spaces' fakes: ZeroGPU apps read them at start-up by design.
GUARDED_CUDA_CALLS = ("_lazy_init", "init", "mem_get_info", "memory_allocated", "max_memory_allocated",
                      "memory_reserved", "max_memory_reserved", "memory_stats", "memory_summary",
                      "reset_peak_memory_stats", "reset_max_memory_allocated", "empty_cache", "synchronize",
                      "set_device", "current_stream", "default_stream", "ipc_collect")
STACK_FRAMES = 8

_guard_lock = threading.Lock()


def cuda_init_without_cuda() -> None:
    """What torch._C._cuda_init amounts to on a build without CUDA (which lacks the function)."""
    raise RuntimeError("Torch not compiled with CUDA enabled")


def never_in_bad_fork() -> bool:
    """torch.cuda._is_in_bad_fork of a build without CUDA, as a function a process pool can pickle."""
    return False


def import_spaces() -> None:
    """Import spaces with ZeroGPU on. On import it keeps torch._C._cuda_init (to restore in workers), asks a forked
    process for torch.cuda._is_in_bad_fork and reads torch.version.cuda: a CPU build lacks the first, has a lambda
    (which cannot be pickled) for the second and None for the third."""
    import torch

    if not hasattr(torch._C, "_cuda_init"):
        torch._C._cuda_init = cuda_init_without_cuda
    if not hasattr(torch._C, "_cuda_isInBadFork"):
        torch.cuda._is_in_bad_fork = never_in_bad_fork
    cuda_version = torch.version.cuda
    torch.version.cuda = cuda_version or ZEROGPU_CUDA_VERSION
    try:
        import spaces  # noqa: F401  (patches torch and gradio on import, as on a Space)
    finally:
        torch.version.cuda = cuda_version


def init_on_cpu(nvidia_uuid: str) -> None:
    """spaces' worker init without its CUDA tensor: the worker sees the GPU it was given and nothing else."""
    os.environ["CUDA_VISIBLE_DEVICES"] = nvidia_uuid


def move_to_cpu(callback: Callable[[int], object] | None = None) -> None:
    """spaces' worker move with the CPU as the GPU: tensors the main process put on "cuda" get their data back."""
    from spaces.zero.torch import patching

    callback = callback or (lambda size: None)
    for fake, original in list(patching.cuda_aliases.items()):
        if original is not None:
            fake.data = original
            callback(fake.numel() * fake.element_size())
    for pack in patching.tensor_packs:
        load_pack(pack, callback)


def load_pack(pack, callback: Callable[[int], object]) -> None:
    """Read the tensors spaces packed to disk at launch (page-aligned, batches then big ones) onto the CPU."""
    import torch

    layout = [entry for batch in pack.batches for entry in batch] + list(pack.big_tensors)
    with open(pack.path(), "rb", buffering=0) as file:
        for meta, size, aligned_size in layout:
            buffer = torch.empty(aligned_size, dtype=torch.uint8)
            view = memoryview(buffer.numpy())
            read = 0
            while read < aligned_size:
                if (count := file.readinto(view[read:])) == 0:
                    raise EOFError(f"ZeroGPU tensor pack {pack.path()} ends early")
                read += count
            tensor = torch.tensor([], dtype=meta.dtype).set_(buffer.untyped_storage(), 0, meta.shape, meta.stride())
            for fake in pack.fakes[meta]:
                fake.data = tensor
            callback(size)


def use_cpu_as_the_gpu() -> None:
    """Swap the two worker steps that need a real GPU; patch, unpatch, pack and the rest stay spaces' own."""
    from spaces.zero import torch as zero_torch

    zero_torch.init = init_on_cpu
    zero_torch.move = move_to_cpu


def record_violation(log_path: Path, name: str) -> None:
    """Append one main-process CUDA call with where it came from."""
    stack = traceback.format_stack(limit=STACK_FRAMES + 2)[:-2]
    entry = {"call": name, "pid": os.getpid(), "thread": threading.current_thread().name,
             "stack": [line.strip() for frame in stack for line in frame.splitlines()[:1]]}
    with _guard_lock, open(log_path, "a") as log:
        log.write(json.dumps(entry) + "\n")


def guarded(function: Callable, name: str, log_path: Path, main_pid: int) -> Callable:
    """`function` for forked workers; for the main process, a recorded RuntimeError."""
    @functools.wraps(function)
    def guard(*args, **kwargs):
        if os.getpid() != main_pid:
            return function(*args, **kwargs)
        record_violation(log_path, name)
        raise RuntimeError(f"CUDA guard: {name} called in the ZeroGPU main process; "
                           "CUDA belongs inside @spaces.GPU functions")
    return guard


def install_cuda_guard(log_path: Path) -> None:
    """Guard torch._C._cuda_init and the torch.cuda calls that reach a device, in this process only."""
    import torch
    import torch.cuda.memory

    main_pid = os.getpid()
    cuda_init = getattr(torch._C, "_cuda_init", cuda_init_without_cuda)
    torch._C._cuda_init = guarded(cuda_init, "torch._C._cuda_init", log_path, main_pid)
    for attribute in GUARDED_CUDA_CALLS:
        if (original := getattr(torch.cuda, attribute, None)) is None:
            continue
        guard = guarded(original, f"torch.cuda.{attribute}", log_path, main_pid)
        setattr(torch.cuda, attribute, guard)
        if getattr(torch.cuda.memory, attribute, None) is original:
            setattr(torch.cuda.memory, attribute, guard)


def main(argv: list[str]) -> None:
    """Set ZeroGPU up, then run the script as __main__ with the remaining arguments."""
    if not argv:
        raise SystemExit("usage: zerogpu_launch.py SCRIPT [ARGS...]")
    if os.environ.get("SPACES_ZERO_GPU", "").lower() not in ("1", "t", "true"):
        raise SystemExit("SPACES_ZERO_GPU=true must be set: without it spaces leaves every function alone")
    if not (log_variable := os.environ.get(GUARD_LOG_VARIABLE)):
        raise SystemExit(f"{GUARD_LOG_VARIABLE} must name the file the CUDA guard writes to")
    import_spaces()
    use_cpu_as_the_gpu()
    install_cuda_guard(Path(log_variable))
    script = Path(argv[0]).resolve()
    sys.argv = [str(script), *argv[1:]]
    sys.path[0] = str(script.parent)
    runpy.run_path(str(script), run_name="__main__")


if __name__ == "__main__":
    main(sys.argv[1:])
