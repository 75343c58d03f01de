"""Adding tracks to a cached run (track head only, from the kept context) vs. a forward with the query points.

Usage: python benchmarks/bench_tracks.py [--device cpu|cuda] [--repeats 3] [--steps 4] [--cameras 3] [--points 16]
                                         [--mode auto|multi|global|single]
Prints one Markdown row per case, side by side in one process: the ratio is the figure the README quotes. The
context comes from pipeline.infer and the click runs pipeline.track, the two calls the app's GPU worker makes;
`auto` is what the app runs for these (random) weights (pipeline.choose_mode).
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
    parser.add_argument("--mode", default="auto", choices=("auto", "multi", "global", "single"))
    args = parser.parse_args()

    import torch

    from vggt_mv import VGGT_MV, VGGTMVConfig
    from vggt_mv.inference import predict
    from vggt_mv.pipeline import attach_images, choose_mode, estimate_track_context_bytes, infer, track
    from vggt_mv.weights.trained_attention import RANDOM_REASON, TrainedAttention

    torch.manual_seed(0)
    config = VGGTMVConfig.from_preset(args.preset)
    model = VGGT_MV(config).eval().to(args.device)
    mode = choose_mode(args.mode, args.cameras, TrainedAttention(None, RANDOM_REASON)).mode
    height, width = 294, 518
    images = torch.rand(args.steps, args.cameras, 3, height, width)
    queries = torch.rand(args.points, 2) * torch.tensor([width - 1, height - 1])
    _, context = attach_images(infer(model, images.numpy(), mode), images.numpy())  # what a run keeps
    points = queries.numpy()
    rerun = best_of(args.repeats, lambda: predict(model, images, mode=mode, query_points=queries))
    click = best_of(args.repeats, lambda: track(model, context, points))
    print("| preset | T x N | attention | K | forward with query points | track head from the context | ratio "
          "| context |")
    print("|---|---|---|---|---|---|---|---|")
    print(f"| {args.preset} | {args.steps} x {args.cameras} | {mode} | {args.points} | {rerun:.2f} s | "
          f"{click:.2f} s | {click / rerun:.2f} | {context.layer_bytes / 1e6:.1f} MB |")
    for preset, steps, cameras in (("vggt-1b", 8, 4), ("vggt-1b", 16, 4)):
        full = VGGTMVConfig.from_preset(preset)
        print(f"context of {preset} at {steps} x {cameras} frames of {width}x{height}: "
              f"{estimate_track_context_bytes(full, steps, cameras, height, width) / 1e9:.2f} GB (fp32)")


if __name__ == "__main__":
    main()
