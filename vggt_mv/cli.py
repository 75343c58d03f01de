"""`python -m vggt_mv`: `inspect` prints where every weight comes from; `reconstruct` runs videos headless."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

EXIT_BELOW_THRESHOLD = 1
EXIT_USER_ERROR = 2


def add_inspect_parser(subparsers) -> None:
    """Flags of `inspect`."""
    parser = subparsers.add_parser("inspect", help="report which tensors come from the checkpoint, Pi3, or nowhere")
    parser.add_argument("--checkpoint", help="VGGT checkpoint: .safetensors, index.json, .pt/.pth/.bin, dir or Hub id")
    parser.add_argument("--pi3", help="Pi3 checkpoint (same forms)")
    parser.add_argument("--pi3-rules", default="decoder", choices=["decoder", "decoder+encoder"])
    parser.add_argument("--preset", default="vggt-1b", choices=["vggt-1b", "tiny"])
    parser.add_argument("--dry-run", action="store_true", help="read headers only (fast, no tensor data)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the JSON report here")
    parser.add_argument("--fail-under", type=float, metavar="FRACTION",
                        help="exit 1 when the loaded share of parameters is below this")
    parser.add_argument("--expect-random", nargs="+", default=[], metavar="REGEX",
                        help="tensor keys expected to stay random (not counted by --fail-under)")
    parser.add_argument("--depth", type=int, default=3, help="module tree depth to print")
    parser.set_defaults(handler=run_inspect)


def run_inspect(args: argparse.Namespace) -> int:
    """Print the report; exit 1 below --fail-under, 2 on a bad source."""
    from vggt_mv.config import VGGTMVConfig
    from vggt_mv.weights import WeightsSourceError, build_and_load
    from vggt_mv.weights.render_text import render_report

    if args.checkpoint is None and args.pi3 is None:
        print("error: give --checkpoint and/or --pi3", file=sys.stderr)
        return EXIT_USER_ERROR
    if args.fail_under is not None and not 0.0 <= args.fail_under <= 1.0:
        print(f"error: --fail-under is a fraction between 0 and 1, got {args.fail_under}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        patterns = [re.compile(p) for p in args.expect_random]
    except re.error as error:
        print(f"error: bad --expect-random pattern: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        _, report = build_and_load(VGGTMVConfig.from_preset(args.preset), checkpoint=args.checkpoint, pi3=args.pi3,
                                   pi3_rules=args.pi3_rules, dry_run=args.dry_run)
    except WeightsSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(render_report(report, max_depth=args.depth))
    if args.json:
        try:
            args.json.write_text(report.to_json())
        except OSError as error:
            print(f"error: cannot write the JSON report to {args.json}: {error.strerror}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"\nJSON report written to {args.json}")
    if args.fail_under is not None:
        share = report.loaded_fraction([p.pattern for p in patterns])
        if share < args.fail_under:
            print(f"\nFAIL: {share:.1%} of parameters loaded (excluding {args.expect_random or 'nothing'}), "
                  f"under --fail-under {args.fail_under:.0%}", file=sys.stderr)
            return EXIT_BELOW_THRESHOLD
    return 0


def add_reconstruct_parser(subparsers) -> None:
    """Flags of `reconstruct`."""
    from vggt_mv.serving.settings import DEFAULT_CHECKPOINT

    parser = subparsers.add_parser("reconstruct", help="videos (one per camera) -> GLB, PLY, NPZ, cameras.json, "
                                                       "scene.html")
    parser.add_argument("videos", nargs="+", type=Path, help="one synchronized video per camera (1..8)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--frames", type=int, default=8, help="time steps sampled per camera")
    parser.add_argument("--window", type=float, nargs=2, default=(0.0, 1.0), metavar=("START", "END"),
                        help="part of the common time range to use, as fractions")
    parser.add_argument("--offsets", type=float, nargs="+", default=None, help="per-camera clock offsets (s)")
    parser.add_argument("--mode", default="auto", choices=["auto", "multi", "global", "single"])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="weights ('none' for random weights)")
    parser.add_argument("--pi3", default=None)
    parser.add_argument("--preset", default="vggt-1b", choices=["vggt-1b", "tiny"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-total-frames", type=int, default=64)
    parser.set_defaults(handler=run_reconstruct)


def run_reconstruct(args: argparse.Namespace) -> int:
    """Run the pipeline headless and write every download plus scene.html."""
    from vggt_mv.io.video import VideoError
    from vggt_mv.pipeline import ReconstructionError, ReconstructionSettings, reconstruct, write_outputs
    from vggt_mv.serving.model_store import load_served_model
    from vggt_mv.serving.settings import ServeSettings

    checkpoint = None if args.checkpoint in ("none", "") else args.checkpoint
    served = load_served_model(ServeSettings(checkpoint=checkpoint, pi3=args.pi3, preset=args.preset,
                                             device=args.device))
    if served.banner:
        print(f"note: {served.banner}", file=sys.stderr)
    settings = ReconstructionSettings(frames_per_camera=args.frames, window=tuple(args.window),
                                      offsets=tuple(args.offsets or ()), mode=args.mode,
                                      max_total_frames=args.max_total_frames)
    try:
        result = reconstruct(served, args.videos, settings,
                             progress=lambda fraction, message: print(f"[{fraction:4.0%}] {message}", file=sys.stderr))
        outputs = write_outputs(result, args.out, with_html=True)
    except (VideoError, ReconstructionError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    for name, value in outputs.items():
        print(f"{name}: {', '.join(map(str, value)) if isinstance(value, list) else value}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """All subcommands."""
    parser = argparse.ArgumentParser(prog="python -m vggt_mv", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_inspect_parser(subparsers)
    add_reconstruct_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)
