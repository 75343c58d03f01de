"""Forward time and peak memory of VGGT_MV per attention mode, each case in a fresh process.

Usage: python benchmarks/bench_model.py [--device cpu|cuda] [--repeats 3] [--skip-1b]
Prints a Markdown table; the README quotes its figures.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from fresh_process import in_fresh_process, peak_rss_bytes  # noqa: E402

CASES = [
    # (label, preset, [B, T, N, 3, H, W], mode)
    ("tiny, multi-view (Time-SA / View-SA)", "tiny", (1, 8, 3, 3, 294, 518), "multi"),
    ("tiny, forced global (VGGT on 24 frames)", "tiny", (1, 8, 3, 3, 294, 518), "global"),
    ("tiny, single-view (24 frames as one camera)", "tiny", (1, 24, 1, 3, 294, 518), "single"),
    ("vggt-1b, 2 frames", "vggt-1b", (1, 2, 1, 3, 294, 518), "single"),
]


def measure(preset: str, shape: tuple[int, ...], mode: str, device: str, repeats: int, queue) -> None:
    """Build, warm up, then time `repeats` forwards; report wall time and peak memory above the weights."""
    import torch

    from vggt_mv import VGGT_MV, VGGTMVConfig
    from vggt_mv.inference import autocast_context

    torch.manual_seed(0)
    model = VGGT_MV(VGGTMVConfig.from_preset(preset)).eval().to(device)
    images = torch.rand(shape, device=device)
    with torch.inference_mode(), autocast_context(device):
        model(images, mode=mode)
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
        rss_before = peak_rss_bytes()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(images, mode=mode)
            if device == "cuda":
                torch.cuda.synchronize()
            times.append(time.perf_counter() - start)
    weights = sum(p.numel() * p.element_size() for p in model.parameters())
    peak = torch.cuda.max_memory_allocated() if device == "cuda" else peak_rss_bytes()
    queue.put({"seconds": min(times), "peak_bytes": peak, "weights_bytes": weights,
               "rss_grew_during_timed_runs": peak_rss_bytes() > rss_before})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--skip-1b", action="store_true", help="skip the full-size model (about 5 GB of weights)")
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    args = parser.parse_args()
    rows = []
    print(f"| case | input [B, T, N, 3, H, W] | forward (s) | peak memory (GB) | weights (GB) |")
    print("|---|---|---|---|---|")
    for label, preset, shape, mode in CASES:
        if args.skip_1b and preset == "vggt-1b":
            continue
        result = in_fresh_process(measure, preset, shape, mode, args.device, args.repeats)
        rows.append({"case": label, "shape": shape, "mode": mode, **result})
        print(f"| {label} | {list(shape)} | {result['seconds']:.3f} | {result['peak_bytes'] / 1e9:.2f} | "
              f"{result['weights_bytes'] / 1e9:.3f} |", flush=True)
    multi, global_ = rows[0]["seconds"], rows[1]["seconds"]
    print(f"\nmulti-view / global forward time ratio (tiny, 8x3): {multi / global_:.2f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
