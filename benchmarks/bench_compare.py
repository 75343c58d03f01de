"""Full-size compare benchmark: two VGGT-1B safetensors with real data, raw read vs compare, side by side in one run.

A is the load benchmark's VGGT-1B file, written by its own helper (bench_weights_load.write_files, which also
writes its Pi3 and .pt files; give both benchmarks the same --dir with --keep to write them once). B is A with
some modules moved (frame and global blocks 0..5, the camera and depth heads: B = A + 1% of A's scale in noise),
one key dropped and one added, written tensor by tensor. Each measurement runs
in a fresh process, with both files' pages dropped from the page cache (cold) and with every page cached (warm):

  raw read    read every byte of A and B (the floor for "comparing those bytes")
  compare     vggt_mv.weights.compare.compare_checkpoints(A, B): every matching tensor streamed from the memory
              maps in float64 chunks, each unchanged one checked against its init (frozen or never trained)
  compare without the init check   the same with check_init=False: what telling frozen from never trained costs
              (A's N(0, 0.02) values match DINOv2's trunc_normal(0.02), so its unchanged patch embed is scanned
              whole: a worst case)
  untrained   vggt_mv.weights.untrained.find_untrained_in_source on A with a meta-built VGGT-1B (reads data like a
              real load); compared with a raw read of A alone

Peak memory is reported twice: peak RSS (VmHWM, which counts the memory-mapped file pages a process touched, i.e.
page cache) and peak anonymous RSS (sampled RssAnon: the memory the process allocated beyond the page cache).
Every measurement runs --rounds times, interleaved; the table shows each one's fastest run, the JSON all of them.

Usage: python benchmarks/bench_compare.py [--dir /tmp/vggt-mv-bench-compare] [--keep]
"""

from __future__ import annotations

import argparse
import json
import shutil
import struct
import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_weights_load import GIB, drop_from_page_cache, file_paths, peak_rss_gib, raw_read, write_files  # noqa: E402
from fresh_process import in_fresh_process  # noqa: E402

PERTURBED_PREFIXES = tuple(f"aggregator.{stack}.{i}." for stack in ("frame_blocks", "global_blocks")
                           for i in range(6)) + ("camera_head.", "depth_head.")
RELATIVE_NOISE = 0.01
DROPPED_KEY = "track_head.tracker.vis_predictor.0.bias"
ADDED_KEY = "extra_head.weight"
SAMPLE_SECONDS = 0.01


class AnonymousPeak:
    """Samples this process's RssAnon (allocated memory, not file pages) in a thread; `.peak_gib` when stopped."""

    def __init__(self) -> None:
        self.peak_kib = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    @staticmethod
    def current_kib() -> int:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("RssAnon:"):
                    return int(line.split()[1])
        return 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_kib = max(self.peak_kib, self.current_kib())
            time.sleep(SAMPLE_SECONDS)

    def __enter__(self) -> "AnonymousPeak":
        self.baseline_kib = self.current_kib()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak_kib = max(self.peak_kib, self.current_kib())

    @property
    def peak_gib(self) -> float:
        return self.peak_kib / 1024 ** 2

    @property
    def growth_gib(self) -> float:
        """Peak minus what the process held before the measured call (Python, torch, imports)."""
        return (self.peak_kib - self.baseline_kib) / 1024 ** 2


def write_perturbed_copy(source_path: Path, target_path: Path, queue) -> None:
    """B: A's tensors in A's order, the perturbed modules moved by noise, one key dropped, one added; written one
    tensor at a time (safetensors format: 8-byte header length, JSON header, data)."""
    import torch

    from vggt_mv.weights.sources import open_source, parse_safetensors_header

    if target_path.exists():
        queue.put({})
        return
    header, _ = parse_safetensors_header(source_path)
    source = open_source("a", source_path, with_data=True)
    keys = sorted((k for k in header if k != DROPPED_KEY), key=lambda k: header[k]["data_offsets"][0])
    entries, offset = {}, 0
    for key in keys:
        size = header[key]["data_offsets"][1] - header[key]["data_offsets"][0]
        entries[key] = {"dtype": header[key]["dtype"], "shape": header[key]["shape"],
                        "data_offsets": [offset, offset + size]}
        offset += size
    extra = torch.ones(16, 16)
    entries[ADDED_KEY] = {"dtype": "F32", "shape": [16, 16], "data_offsets": [offset, offset + extra.numel() * 4]}
    encoded = json.dumps(entries).encode()
    encoded += b" " * (-len(encoded) % 8)
    generator = torch.Generator().manual_seed(1)
    partial = target_path.with_suffix(".partial")
    with partial.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        for key in keys:
            tensor = source.tensor(key)
            if key.startswith(PERTURBED_PREFIXES):
                scale = float(tensor.abs().mean()) or 1.0
                tensor = tensor + RELATIVE_NOISE * scale * torch.randn(tensor.shape, generator=generator)
            handle.write(tensor.contiguous().view(torch.uint8).numpy().tobytes())
        handle.write(extra.view(torch.uint8).numpy().tobytes())
    partial.rename(target_path)
    queue.put({})


def compare(path_a: Path, path_b: Path, cold: bool, queue) -> None:
    """compare_checkpoints(A, B) as the CLI and the app run it."""
    timed_compare(path_a, path_b, cold, queue, check_init=True)


def compare_no_init(path_a: Path, path_b: Path, cold: bool, queue) -> None:
    """compare_checkpoints(A, B) without telling frozen from never trained."""
    timed_compare(path_a, path_b, cold, queue, check_init=False)


def timed_compare(path_a: Path, path_b: Path, cold: bool, queue, check_init: bool) -> None:
    """compare_checkpoints(A, B), timed, with both peaks."""
    if cold:
        drop_from_page_cache([path_a, path_b])
    from vggt_mv.weights.compare import compare_checkpoints

    with AnonymousPeak() as anonymous:
        start = time.perf_counter()
        result = compare_checkpoints(str(path_a), str(path_b), check_init=check_init)
        seconds = time.perf_counter() - start
    totals = result.totals
    queue.put({"seconds": seconds, "peak_rss_gib": peak_rss_gib(), "peak_anon_gib": anonymous.peak_gib,
               "anon_growth_gib": anonymous.growth_gib, "relative_change": totals.relative_change,
               "changed": totals.changed_tensors, "unchanged": totals.unchanged_tensors, "only_a": totals.only_a,
               "only_b": totals.only_b,
               "unchanged_modules": sum(1 for p, m in result.modules.items() if p and m.unchanged),
               "unchanged_kinds": {kind: sum(1 for p, m in result.modules.items() if p and m.unchanged_kind == kind)
                                   for kind in ("frozen", "never_trained", "unknown")}})


def untrained_scan(path: Path, cold: bool, queue) -> None:
    """find_untrained over A's data with a meta-built VGGT-1B (the build is timed apart)."""
    if cold:
        drop_from_page_cache([path])
    from vggt_mv import VGGT_MV, VGGTMVConfig
    from vggt_mv.weights.meta_build import build_on_meta
    from vggt_mv.weights.sources import open_source
    from vggt_mv.weights.untrained import find_untrained_in_source, suspects_per_module

    start = time.perf_counter()
    model = build_on_meta(lambda: VGGT_MV(VGGTMVConfig()))
    built = time.perf_counter()
    with AnonymousPeak() as anonymous:
        scan_start = time.perf_counter()
        suspicions = find_untrained_in_source(model, open_source("checkpoint", path, with_data=True))
        seconds = time.perf_counter() - scan_start
    counts = suspects_per_module(suspicions)
    queue.put({"seconds": seconds, "meta_build_seconds": built - start, "peak_rss_gib": peak_rss_gib(),
               "peak_anon_gib": anonymous.peak_gib, "anon_growth_gib": anonymous.growth_gib,
               "suspects": len(suspicions), "suspect_parameters": counts.get("", {}).get("parameters", 0),
               "top_modules": {path: node["tensors"] for path, node in counts.items() if path and "." not in path}})


def markdown_table(results: dict) -> str:
    """The README's table."""
    lines = ["| measurement | page cache | seconds | peak RSS (GiB) | peak anon RSS (GiB) | ratio |",
             "|---|---|---|---|---|---|"]
    for cache in ("cold", "warm"):
        both, one = results[f"raw_read_both_{cache}"], results[f"raw_read_a_{cache}"]
        comp, scan = results[f"compare_{cache}"], results[f"untrained_{cache}"]
        plain = results[f"compare_no_init_{cache}"]
        lines += [
            f"| raw read of A and B ({both['bytes'] / GIB:.2f} GiB) | {cache} | {both['seconds']:.2f} | "
            f"{both['peak_rss_gib']:.2f} | - | 1.00x |",
            f"| compare A with B | {cache} | {comp['seconds']:.2f} | {comp['peak_rss_gib']:.2f} | "
            f"{comp['peak_anon_gib']:.2f} (+{comp['anon_growth_gib'] * 1024:.0f} MiB during the call) | "
            f"{comp['seconds'] / both['seconds']:.2f}x raw read of both |",
            f"| compare A with B, init check skipped | {cache} | {plain['seconds']:.2f} | "
            f"{plain['peak_rss_gib']:.2f} | {plain['peak_anon_gib']:.2f} | "
            f"{plain['seconds'] / both['seconds']:.2f}x raw read of both |",
            f"| raw read of A ({one['bytes'] / GIB:.2f} GiB) | {cache} | {one['seconds']:.2f} | "
            f"{one['peak_rss_gib']:.2f} | - | 1.00x |",
            f"| untrained scan of A ({scan['suspects']} suspects) | {cache} | {scan['seconds']:.2f} | "
            f"{scan['peak_rss_gib']:.2f} | {scan['peak_anon_gib']:.2f} (+{scan['anon_growth_gib'] * 1024:.0f} MiB) | "
            f"{scan['seconds'] / one['seconds']:.2f}x raw read of A |",
        ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, default=Path("/tmp/vggt-mv-bench-compare"),
                        help="where the files go; the load benchmark's --dir (kept with --keep) reuses its A")
    parser.add_argument("--keep", action="store_true", help="keep the files (19 GB) for a rerun")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of every measurement; the table shows the best")
    args = parser.parse_args()
    free_gib = shutil.disk_usage(args.dir.parent).free / GIB
    if free_gib < 25 and not args.dir.exists():
        sys.exit(f"need about 19 GB free under {args.dir.parent}, have {free_gib:.1f} GiB")
    in_fresh_process(write_files, args.dir)
    path_a = file_paths(args.dir)["vggt"]
    path_b = args.dir / "vggt-1b-perturbed.safetensors"
    in_fresh_process(write_perturbed_copy, path_a, path_b)
    runs: dict[str, list[dict]] = {}
    for _ in range(args.rounds):  # interleaved, so a busy spell on the machine hits both sides of a ratio
        for cache in ("cold", "warm"):
            cold = cache == "cold"
            if not cold:
                in_fresh_process(raw_read, [path_a, path_b], False)  # make sure every page is cached
            for name, target, arguments in (("raw_read_both", raw_read, ([path_a, path_b], cold)),
                                            ("compare", compare, (path_a, path_b, cold)),
                                            ("compare_no_init", compare_no_init, (path_a, path_b, cold)),
                                            ("raw_read_a", raw_read, ([path_a], cold)),
                                            ("untrained", untrained_scan, (path_a, cold))):
                runs.setdefault(f"{name}_{cache}", []).append(in_fresh_process(target, *arguments))
    print(json.dumps(runs, indent=1))
    results = {name: min(values, key=lambda run: run["seconds"]) for name, values in runs.items()}
    print()
    print("every run's seconds:", {name: [round(run["seconds"], 2) for run in values] for name, values in runs.items()})
    print()
    print(markdown_table(results))
    if not args.keep:
        shutil.rmtree(args.dir, ignore_errors=True)


if __name__ == "__main__":
    main()
