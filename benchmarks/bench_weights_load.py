"""Full-size load benchmark: VGGT-1B + Pi3 safetensors with real data, measured side by side in one run.

Each measurement runs in a fresh process (peak RSS is that process's own). Files are written once into
--dir (about 14 GB: VGGT-1B as .safetensors and as .pt for the naive recipe, plus Pi3), then, with the
page cache cold (the files' pages dropped with posix_fadvise) and warm (files just read):

  raw read      read every byte of both safetensors files (the floor for "loading those bytes")
  raw read kept read only the byte ranges of the tensors the load keeps (Pi3 replaces blocks 0..17)
  fast load     vggt_mv.weights.build_and_load (meta build, memory-mapped tensors assigned without
                copying, only random tensors initialised), then one value per 4 KiB page of every
                parameter read, so every tensor is resident in memory
  naive         VGGT_MV(config) with random init, torch.load(.pt), filter, load_state_dict (VGGT-1B only)
  dry run       headers only, in-process, on an already built meta model (and including the meta build)

Usage: python benchmarks/bench_weights_load.py --dir /tmp/vggt-bench [--keep]
       python benchmarks/bench_weights_load.py --dry-run-only   (sparse files: real headers, no data on disk)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fresh_process import in_fresh_process, peak_rss_bytes  # noqa: E402

from vggt_mv.weights.known_layouts import reference_layout  # noqa: E402

PAGE_BYTES = 4096
READ_CHUNK_BYTES = 64 * 1024 * 1024
GIB = 1024 ** 3


def peak_rss_gib() -> float:
    """Peak resident memory of this process in GiB."""
    return peak_rss_bytes() / GIB


def file_paths(folder: Path) -> dict[str, Path]:
    """Where the benchmark's checkpoints live."""
    return {"vggt": folder / "vggt-1b.safetensors", "pi3": folder / "pi3.safetensors", "vggt_pt": folder / "vggt-1b.pt"}


def drop_from_page_cache(paths: list[Path]) -> None:
    """Make the next read of these files come from the disk (clean pages of unmapped files are dropped)."""
    for path in paths:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
            os.posix_fadvise(descriptor, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(descriptor)


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
        layout = reference_layout(source)
        tensors = {key: torch.randn(shape, generator=generator) * 0.02 for key, shape in layout.items()}
        save_file(tensors, str(paths[name]))
        if name == "vggt":
            torch.save(tensors, paths["vggt_pt"])
        del tensors
    queue.put({})


def kept_ranges(checkpoint: Path, pi3: Path, queue) -> None:
    """(file, offset, length) of every tensor a VGGT-then-Pi3 load keeps, from a dry run and the headers."""
    from vggt_mv import VGGTMVConfig
    from vggt_mv.weights import build_and_load
    from vggt_mv.weights.sources import parse_safetensors_header

    _, report = build_and_load(VGGTMVConfig(), checkpoint=checkpoint, pi3=pi3, dry_run=True)
    headers = {role: (path, *parse_safetensors_header(path)) for role, path in (("checkpoint", checkpoint),
                                                                                  ("pi3", pi3))}
    ranges = []
    for record in report.tensors:
        if record["source"] is None:
            continue
        path, header, data_start = headers[record["source"]]
        begin, end = header[record["source_key"]]["data_offsets"]
        ranges.append((str(path), data_start + begin, end - begin))
    queue.put({"ranges": sorted(ranges)})


def raw_read(paths: list[Path], cold: bool, queue) -> None:
    """Read every byte once into a reused buffer."""
    if cold:
        drop_from_page_cache(paths)
    buffer = bytearray(READ_CHUNK_BYTES)
    view = memoryview(buffer)
    start = time.perf_counter()
    total = 0
    for path in paths:
        with path.open("rb", buffering=0) as handle:
            while count := handle.readinto(view):
                total += count
    queue.put({"seconds": time.perf_counter() - start, "bytes": total, "peak_rss_gib": peak_rss_gib()})


def raw_read_ranges(ranges: list[tuple[str, int, int]], cold: bool, queue) -> None:
    """Read only the given byte ranges (in file order) into a reused buffer."""
    if cold:
        drop_from_page_cache(sorted({Path(path) for path, _, _ in ranges}))
    buffer = bytearray(READ_CHUNK_BYTES)
    view = memoryview(buffer)
    descriptors = {path: os.open(path, os.O_RDONLY) for path, _, _ in ranges}
    start = time.perf_counter()
    total = 0
    for path, offset, length in ranges:
        end = offset + length
        while offset < end:
            count = os.preadv(descriptors[path], [view[: min(READ_CHUNK_BYTES, end - offset)]], offset)
            offset += count
            total += count
    seconds = time.perf_counter() - start
    for descriptor in descriptors.values():
        os.close(descriptor)
    queue.put({"seconds": seconds, "bytes": total, "peak_rss_gib": peak_rss_gib()})


def fast_load(checkpoint: Path, pi3: Path, cold: bool, queue) -> None:
    """Our loader, then read one value per page of every parameter so that all of them are resident."""
    if cold:
        drop_from_page_cache([checkpoint, pi3])
    import torch

    from vggt_mv import VGGTMVConfig
    from vggt_mv.weights import build_and_load

    start = time.perf_counter()
    model, report = build_and_load(VGGTMVConfig(), checkpoint=checkpoint, pi3=pi3)
    assigned = time.perf_counter() - start
    checksum = 0.0
    with torch.no_grad():
        for parameter in model.parameters():
            checksum += float(parameter.view(-1)[:: max(1, PAGE_BYTES // parameter.element_size())].sum())
    seconds = time.perf_counter() - start
    model_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
    summary = {k: v for k, v in report.summary().items() if k != "parameters"}
    queue.put({"seconds": seconds, "seconds_until_assigned": assigned, "peak_rss_gib": peak_rss_gib(),
               "model_gib": model_bytes / GIB, "checksum": checksum, "summary": summary})


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
    queue.put({"seconds": time.perf_counter() - start, "peak_rss_gib": peak_rss_gib()})


def dry_run(checkpoint: Path, pi3: Path, queue) -> None:
    """Headers only: on a built meta model, and including a (warm) meta build (the meta build of build_and_load);
    the first build in a process also pays one-time imports, reported separately."""
    from vggt_mv import VGGT_MV, VGGTMVConfig
    from vggt_mv.weights import load_weights
    from vggt_mv.weights.meta_build import build_on_meta

    start = time.perf_counter()
    build_on_meta(lambda: VGGT_MV(VGGTMVConfig()))
    first_build = time.perf_counter() - start
    start = time.perf_counter()
    model = build_on_meta(lambda: VGGT_MV(VGGTMVConfig()))
    built = time.perf_counter()
    load_weights(model, checkpoint=checkpoint, pi3=pi3, dry_run=True)
    done = time.perf_counter()
    repeats = []
    for _ in range(5):
        again = time.perf_counter()
        load_weights(model, checkpoint=checkpoint, pi3=pi3, dry_run=True)
        repeats.append(time.perf_counter() - again)
    queue.put({"seconds": done - built, "best_of_5": min(repeats), "seconds_with_meta_build": done - start,
               "first_meta_build": first_build, "peak_rss_gib": peak_rss_gib()})


def markdown_table(results: dict) -> str:
    """The README's table."""
    lines = ["| measurement | page cache | seconds | peak RSS (GiB) | ratio |", "|---|---|---|---|---|"]
    for cache in ("cold", "warm"):
        whole, kept, fast = (results[f"{name}_{cache}"] for name in ("raw_read", "raw_read_kept", "fast_load"))
        lines += [
            f"| raw read of both files ({whole['bytes'] / GIB:.2f} GiB) | {cache} | {whole['seconds']:.2f} | "
            f"{whole['peak_rss_gib']:.2f} | 1.00x |",
            f"| raw read of the kept tensors only ({kept['bytes'] / GIB:.2f} GiB) | {cache} | {kept['seconds']:.2f} | "
            f"{kept['peak_rss_gib']:.2f} | {kept['seconds'] / whole['seconds']:.2f}x |",
            f"| fast load, every tensor resident (model {fast['model_gib']:.2f} GiB) | {cache} | {fast['seconds']:.2f} "
            f"| {fast['peak_rss_gib']:.2f} | {fast['seconds'] / whole['seconds']:.2f}x raw read, "
            f"{fast['seconds'] / kept['seconds']:.2f}x kept read; RSS {fast['peak_rss_gib'] / fast['model_gib']:.2f}x "
            "model bytes |",
        ]
    naive, warm_fast = results["naive_load_vggt_only"], results["fast_load_warm"]
    dry = results["dry_run"]
    lines += [
        f"| naive recipe (random init, `torch.load`, filter, `load_state_dict`), VGGT-1B only | warm | "
        f"{naive['seconds']:.2f} | {naive['peak_rss_gib']:.2f} | {naive['seconds'] / warm_fast['seconds']:.1f}x "
        "warm fast load (which also loads Pi3) |",
        f"| dry run, headers only, on a built meta model | - | {dry['seconds']:.3f} (best of 5: {dry['best_of_5']:.3f}) "
        f"| {dry['peak_rss_gib']:.2f} | {dry['seconds_with_meta_build']:.2f} s with a warm meta build; "
        f"first meta build in a process {dry['first_meta_build']:.2f} s |",
    ]
    return "\n".join(lines)


def dry_run_only(folder: Path) -> None:
    """The dry-run row alone, on sparse files (a dry run reads headers only, so their data region may be a hole)."""
    from tests.support.sparse_checkpoints import write_sparse_safetensors

    folder.mkdir(parents=True, exist_ok=True)
    checkpoint = write_sparse_safetensors(folder / "vggt-1b.sparse.safetensors", reference_layout("vggt-1b"))
    pi3 = write_sparse_safetensors(folder / "pi3.sparse.safetensors", reference_layout("pi3"))
    dry = in_fresh_process(dry_run, checkpoint, pi3)
    print(json.dumps(dry, indent=1))
    print(f"| dry run, headers only, on a built meta model | - | {dry['seconds']:.3f} (best of 5: "
          f"{dry['best_of_5']:.3f}) | {dry['peak_rss_gib']:.2f} | {dry['seconds_with_meta_build']:.2f} s with a warm "
          f"meta build; first meta build in a process {dry['first_meta_build']:.2f} s |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/vggt-mv-bench"))
    parser.add_argument("--keep", action="store_true", help="keep the 14 GB of files for a rerun")
    parser.add_argument("--dry-run-only", action="store_true", help="only the dry-run row, on sparse files")
    args = parser.parse_args()
    if args.dry_run_only:
        dry_run_only(args.dir)
        return
    free_gib = shutil.disk_usage(args.dir.parent).free / GIB
    if free_gib < 20 and not args.dir.exists():
        sys.exit(f"need about 14 GB free under {args.dir.parent}, have {free_gib:.1f} GiB")
    in_fresh_process(write_files, args.dir)
    paths = file_paths(args.dir)
    safetensors = [paths["vggt"], paths["pi3"]]
    ranges = in_fresh_process(kept_ranges, paths["vggt"], paths["pi3"])["ranges"]
    results = {}
    for cache in ("cold", "warm"):
        cold = cache == "cold"
        if not cold:
            in_fresh_process(raw_read, safetensors, False)  # make sure every page is cached
        results[f"raw_read_{cache}"] = in_fresh_process(raw_read, safetensors, cold)
        results[f"raw_read_kept_{cache}"] = in_fresh_process(raw_read_ranges, ranges, cold)
        results[f"fast_load_{cache}"] = in_fresh_process(fast_load, paths["vggt"], paths["pi3"], cold)
    in_fresh_process(raw_read, [paths["vggt_pt"]], False)
    results["naive_load_vggt_only"] = in_fresh_process(naive_load, paths["vggt_pt"])
    results["dry_run"] = in_fresh_process(dry_run, paths["vggt"], paths["pi3"])
    print(json.dumps(results, indent=1))
    print()
    print(markdown_table(results))
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
