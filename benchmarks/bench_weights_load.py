"""Full-size load benchmark: VGGT-1B + Pi3 safetensors with real data, measured side by side in one run.

Each measurement runs in a fresh process (peak RSS is that process's own). Files are written once into
--dir (about 14 GB: VGGT-1B as .safetensors and as .pt for the naive recipe, plus Pi3), then:

  raw read      read every byte of both safetensors files (the floor for "loading those bytes")
  fast load     vggt_mv.weights.build_and_load (meta build, memory-mapped tensors assigned without
                copying, only random tensors initialised), then every parameter touched until resident
  naive         VGGT_MV(config) with random init, torch.load(.pt), filter, load_state_dict (VGGT-1B only)
  dry run       headers only, in-process, on an already built meta model (and including the meta build)

Usage: python benchmarks/bench_weights_load.py --dir /tmp/vggt-bench [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fresh_process import in_fresh_process, peak_rss_bytes  # noqa: E402

REFERENCE = Path(__file__).resolve().parents[2] / "shared" / "reference"


def peak_rss_gb() -> float:
    """Peak resident memory of this process in GiB."""
    return peak_rss_bytes() / 1024 ** 3


def file_paths(folder: Path) -> dict[str, Path]:
    """Where the benchmark's checkpoints live."""
    return {"vggt": folder / "vggt-1b.safetensors", "pi3": folder / "pi3.safetensors", "vggt_pt": folder / "vggt-1b.pt"}


def write_files(folder: Path, queue) -> None:
    """Random float32 tensors in the real layouts (run in its own process: Linux keeps a process's peak RSS
    across exec, so writing 5 GB here would inflate every later measurement's peak)."""
    import torch
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    paths = file_paths(folder)
    generator = torch.Generator().manual_seed(0)
    for name, source in (("vggt", "vggt-1b"), ("pi3", "pi3")):
        if paths[name].exists():
            continue
        layout = json.loads((REFERENCE / f"{source}.keys.json").read_text())["tensors"]
        tensors = {key: torch.randn(shape, generator=generator) * 0.02 for key, shape in layout.items()}
        save_file(tensors, str(paths[name]))
        if name == "vggt":
            torch.save(tensors, paths["vggt_pt"])
        del tensors
    queue.put({})


def raw_read(paths: list[Path], queue) -> None:
    """Read every byte once into a reused buffer."""
    buffer = bytearray(64 * 1024 * 1024)
    view = memoryview(buffer)
    start = time.perf_counter()
    total = 0
    for path in paths:
        with path.open("rb", buffering=0) as handle:
            while count := handle.readinto(view):
                total += count
    queue.put({"seconds": time.perf_counter() - start, "bytes": total, "peak_rss_gb": peak_rss_gb()})


def fast_load(checkpoint: Path, pi3: Path, queue) -> None:
    """Our loader, then make every tensor resident."""
    import torch

    from vggt_mv import VGGTMVConfig
    from vggt_mv.weights import build_and_load

    start = time.perf_counter()
    model, report = build_and_load(VGGTMVConfig(), checkpoint=checkpoint, pi3=pi3)
    loaded = time.perf_counter() - start
    checksum = 0.0
    with torch.no_grad():
        for parameter in model.parameters():
            checksum += float(parameter.view(-1)[:: max(1, 4096 // parameter.element_size())].sum())
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    queue.put({"seconds": time.perf_counter() - start, "seconds_until_assigned": loaded, "peak_rss_gb": peak_rss_gb(),
               "model_gb": model_bytes / 1024 ** 3, "summary": {k: v for k, v in report.summary().items()
                                                                if k != "parameters"}})


def naive_load(checkpoint_pt: Path, queue) -> None:
    """The recipe this project replaces: random init, torch.load, filter, load_state_dict."""
    import torch

    from vggt_mv import VGGT_MV, VGGTMVConfig

    start = time.perf_counter()
    model = VGGT_MV(VGGTMVConfig())
    state = torch.load(checkpoint_pt, map_location="cpu", weights_only=True)
    own = model.state_dict()
    state = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    model.load_state_dict(state, strict=False)
    queue.put({"seconds": time.perf_counter() - start, "peak_rss_gb": peak_rss_gb()})


def dry_run(checkpoint: Path, pi3: Path, queue) -> None:
    """Headers only: on a built meta model, and including a (warm) meta build; the first build in a process
    also pays torch's one-time initialisation, reported separately."""
    import torch

    from vggt_mv import VGGT_MV, VGGTMVConfig
    from vggt_mv.weights import load_weights

    start = time.perf_counter()
    with torch.device("meta"):
        VGGT_MV(VGGTMVConfig())
    first_build = time.perf_counter() - start
    start = time.perf_counter()
    with torch.device("meta"):
        model = VGGT_MV(VGGTMVConfig())
    built = time.perf_counter()
    load_weights(model, checkpoint=checkpoint, pi3=pi3, dry_run=True)
    done = time.perf_counter()
    queue.put({"seconds": done - built, "seconds_with_meta_build": done - start, "first_meta_build": first_build,
               "peak_rss_gb": peak_rss_gb()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/vggt-mv-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the 14 GB of files for a rerun")
    args = parser.parse_args()
    in_fresh_process(write_files, args.dir)
    paths = file_paths(args.dir)
    results = {
        "raw_read": in_fresh_process(raw_read, [paths["vggt"], paths["pi3"]]),
        "fast_load": in_fresh_process(fast_load, paths["vggt"], paths["pi3"]),
        "naive_load_vggt_only": in_fresh_process(naive_load, paths["vggt_pt"]),
        "dry_run": in_fresh_process(dry_run, paths["vggt"], paths["pi3"]),
    }
    model_gb = results["fast_load"]["model_gb"]
    print(json.dumps(results, indent=1))
    print("\n| measurement | seconds | peak RSS (GB) | ratio |")
    print("|---|---|---|---|")
    raw = results["raw_read"]["seconds"]
    print(f"| raw read of both files ({results['raw_read']['bytes'] / 1024 ** 3:.2f} GiB) | {raw:.2f} | "
          f"{results['raw_read']['peak_rss_gb']:.2f} | 1.00x time |")
    fast = results["fast_load"]
    print(f"| fast load, every tensor resident (model {model_gb:.2f} GiB) | {fast['seconds']:.2f} | "
          f"{fast['peak_rss_gb']:.2f} | {fast['seconds'] / raw:.2f}x raw time, {fast['peak_rss_gb'] / model_gb:.2f}x "
          "model bytes |")
    naive = results["naive_load_vggt_only"]
    print(f"| naive recipe, VGGT-1B only | {naive['seconds']:.2f} | {naive['peak_rss_gb']:.2f} | "
          f"{naive['seconds'] / fast['seconds']:.1f}x fast load time |")
    dry = results["dry_run"]
    print(f"| dry run (headers only) | {dry['seconds']:.3f} ({dry['seconds_with_meta_build']:.2f} with a warm meta build; "
          f"first build in a process {dry['first_meta_build']:.2f}) | {dry['peak_rss_gb']:.2f} | |")
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
