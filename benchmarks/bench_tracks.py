"""Adding tracks to a cached run (track head only, from the kept context) vs. a forward with the query points.

Usage: python benchmarks/bench_tracks.py [--device cpu|cuda] [--repeats 3] [--steps 4] [--cameras 3] [--points 16]
Prints one Markdown row per case, side by side in one process: the ratio is the figure the README quotes.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(repeats: int, function) -> float:
    """The fastest of `repeats` calls, in seconds (after one warm-up)."""
    function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--preset", default="tiny")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--cameras", type=int, default=3)
    parser.add_argument("--points", type=int, default=16)
    args = parser.parse_args()

    import torch

    from vggt_mv import VGGT_MV, VGGTMVConfig
    from vggt_mv.inference import predict, predict_tracks, predict_with_track_context
    from vggt_mv.pipeline import estimate_track_context_bytes

    torch.manual_seed(0)
    config = VGGTMVConfig.from_preset(args.preset)
    model = VGGT_MV(config).eval().to(args.device)
    height, width = 294, 518
    images = torch.rand(args.steps, args.cameras, 3, height, width)
    queries = torch.rand(args.points, 2) * torch.tensor([width - 1, height - 1])
    _, context = predict_with_track_context(model, images)
    rerun = best_of(args.repeats, lambda: predict(model, images, query_points=queries))
    click = best_of(args.repeats, lambda: predict_tracks(model, context, queries))
    print("| preset | T x N | K | forward with query points | track head from the context | ratio | context |")
    print("|---|---|---|---|---|---|---|")
    print(f"| {args.preset} | {args.steps} x {args.cameras} | {args.points} | {rerun:.2f} s | {click:.2f} s | "
          f"{click / rerun:.2f} | {context.layer_bytes / 1e6:.1f} MB |")
    for preset, steps, cameras in (("vggt-1b", 8, 4), ("vggt-1b", 16, 4)):
        full = VGGTMVConfig.from_preset(preset)
        print(f"context of {preset} at {steps} x {cameras} frames of {width}x{height}: "
              f"{estimate_track_context_bytes(full, steps, cameras, height, width) / 1e9:.2f} GB (fp32)")


if __name__ == "__main__":
    main()
