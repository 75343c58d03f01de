"""`vggt-mv` (or `python -m vggt_mv`): `inspect` reports where every weight comes from (or, with --compare, how two
checkpoints differ); `reconstruct` runs videos."""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

EXIT_BELOW_THRESHOLD = 1
EXIT_USER_ERROR = 2
# Inside the staging folder: a windowed run's stored predictions, removed before the folder is published.
STORE_FOLDER = ".predictions"


def add_inspect_parser(subparsers) -> None:
    """Flags of `inspect` (rule set names spelled out: importing vggt_mv.weights here would load torch for --help;
    inspect_argument_problem checks them against the package's)."""
    parser = subparsers.add_parser("inspect", help="report which tensors come from which source, or nowhere; or "
                                                   "compare two checkpoints (--compare A B)")
    parser.add_argument("--checkpoint", help="VGGT checkpoint: .safetensors, index.json, .pt/.pth/.bin, dir or Hub id")
    parser.add_argument("--pi3", help="Pi3 or Pi3X checkpoint (same forms; for Pi3X, --pi3-rules pi3x-decoder)")
    parser.add_argument("--pi3-rules", default="decoder", metavar="RULES",
                        help="Pi3: decoder (default) or decoder+encoder; Pi3X: pi3x-decoder or pi3x-decoder+encoder")
    parser.add_argument("--source", action="append", default=[], metavar="NAME=PATH[@RULES]",
                        help="a further source, loaded after --checkpoint/--pi3 and earlier --source (later ones "
                             "override); RULES: identity (default), pi3-decoder, pi3-decoder+encoder, "
                             "pi3x-decoder, pi3x-decoder+encoder, or a .toml/.json rules file; NAME becomes the "
                             "status of what it loads")
    parser.add_argument("--model", metavar="MODULE:FACTORY",
                        help="inspect any model: `pkg.module:factory` or `path/file.py:factory`, a function "
                             "returning an nn.Module (built on the meta device); default: VGGT_MV of --preset")
    parser.add_argument("--preset", default=None, choices=["vggt-1b", "tiny"], help="VGGT_MV size (default vggt-1b)")
    parser.add_argument("--dry-run", action="store_true", help="read headers only (fast, no tensor data)")
    parser.add_argument("--json", type=Path, metavar="OUT", help="also write the JSON report here")
    parser.add_argument("--fail-under", type=float, metavar="FRACTION",
                        help="exit 1 when the loaded share of parameters is below this")
    parser.add_argument("--expect-random", nargs="+", default=[], metavar="REGEX",
                        help="tensor keys expected to stay random (not counted by --fail-under)")
    parser.add_argument("--fail-on-suspect", action="store_true",
                        help="exit 1 when a loaded tensor looks untrained (its values match its module's init)")
    parser.add_argument("--compare", nargs=2, metavar=("A", "B"),
                        help="compare two checkpoints instead: per module ||A - B|| / ||B||, unchanged modules, keys "
                             "only one side has (reads every byte of both; --json writes the comparison)")
    parser.add_argument("--depth", type=int, default=3, help="module tree depth to print")
    parser.set_defaults(handler=run_inspect)


LOAD_FLAGS = ("checkpoint", "pi3", "source", "model", "preset", "dry_run", "fail_under", "expect_random",
              "fail_on_suspect")


def compare_argument_problem(args: argparse.Namespace) -> str | None:
    """--compare takes two checkpoints and nothing that shapes a load."""
    given = [name for name in LOAD_FLAGS if getattr(args, name) not in (None, False, [])]
    if args.pi3_rules != "decoder":
        given.append("pi3_rules")
    if given:
        flags = ", ".join("--" + name.replace("_", "-") for name in given)
        return f"--compare compares two checkpoints as they are; it takes none of {flags}"
    return json_folder_problem(args)


def json_folder_problem(args: argparse.Namespace) -> str | None:
    json_folder = args.json.parent if args.json else None
    if json_folder is not None and not json_folder.is_dir():
        return f"cannot write the JSON report to {args.json}: no folder {json_folder}"
    return None


def inspect_argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with `inspect`'s flags, found before anything is read (None when nothing)."""
    from vggt_mv.weights.rules import PI3_RULE_SETS

    if args.checkpoint is None and args.pi3 is None and not args.source:
        return "give --checkpoint and/or --pi3, or --source NAME=PATH[@RULES] (or --compare A B)"
    if args.pi3_rules not in PI3_RULE_SETS:
        return f"--pi3-rules {args.pi3_rules!r}: choose one of {', '.join(PI3_RULE_SETS)}"
    if args.fail_on_suspect and args.dry_run:
        return "--fail-on-suspect needs the data: a dry run reads headers only"
    if args.model and args.preset:
        return "--preset sizes VGGT_MV; with --model the factory decides the model"
    if args.fail_under is not None and not 0.0 <= args.fail_under <= 1.0:
        return f"--fail-under is a fraction between 0 and 1, got {args.fail_under}"
    for pattern in args.expect_random:
        try:
            re.compile(pattern)
        except re.error as error:
            return f"bad --expect-random pattern: {error}"
    return json_folder_problem(args)


def write_json_report(text: str, target: Path) -> str | None:
    """Write beside the target, then rename: a failure never leaves half a report under that name (None: done)."""
    import os

    from vggt_mv.weights.errors import first_line

    part = None
    try:
        with tempfile.NamedTemporaryFile("w", dir=target.parent, suffix=".part", delete=False) as part:
            part.write(text)
        os.replace(part.name, target)
    except (OSError, ValueError) as error:
        if part is not None:
            Path(part.name).unlink(missing_ok=True)
        reason = getattr(error, "strerror", None) or first_line(error)
        return f"cannot write the JSON report to {target}: {reason}"
    return None


def run_compare(args: argparse.Namespace) -> int:
    """Print how checkpoint A differs from B (and write the JSON); exit 2 on a bad source."""
    import json

    import torch

    from vggt_mv.weights import WeightsSourceError
    from vggt_mv.weights.compare import compare_checkpoints
    from vggt_mv.weights.render_compare import render_comparison

    problem = compare_argument_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        comparison = compare_checkpoints(*args.compare)
    except WeightsSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, torch.OutOfMemoryError):
        print("error: not enough memory to compare these checkpoints", file=sys.stderr)
        return EXIT_USER_ERROR
    print(render_comparison(comparison, max_depth=args.depth))
    if args.json:
        failure = write_json_report(json.dumps(comparison.to_dict(), indent=1, allow_nan=False), args.json)
        if failure:
            print(f"error: {failure}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"\nJSON comparison written to {args.json}")
    return 0


def run_inspect(args: argparse.Namespace) -> int:
    """Print the report; exit 1 below --fail-under (or on a suspect with --fail-on-suspect), 2 on a bad source,
    rules file or model."""
    import torch

    if args.compare:
        return run_compare(args)

    from vggt_mv.config import VGGTMVConfig
    from vggt_mv.weights import WeightsSourceError, build_and_load
    from vggt_mv.weights.model_factory import import_factory
    from vggt_mv.weights.render_text import render_report

    problem = inspect_argument_problem(args)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    try:
        factory = import_factory(args.model) if args.model else None
        _, report = build_and_load(VGGTMVConfig.from_preset(args.preset or "vggt-1b"), checkpoint=args.checkpoint,
                                   pi3=args.pi3, pi3_rules=args.pi3_rules, sources=args.source,
                                   dry_run=args.dry_run, factory=factory)
    except WeightsSourceError as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USER_ERROR
    except (MemoryError, torch.OutOfMemoryError):
        print("error: not enough memory to load these weights; --dry-run reads headers only", file=sys.stderr)
        return EXIT_USER_ERROR
    print(render_report(report, max_depth=args.depth))
    if args.json:
        failure = write_json_report(report.to_json(), args.json)
        if failure:
            print(f"error: {failure}", file=sys.stderr)
            return EXIT_USER_ERROR
        print(f"\nJSON report written to {args.json}")
    if args.fail_under is not None:
        share = report.loaded_fraction(args.expect_random)
        if share < args.fail_under:
            print(f"\nFAIL: {share:.1%} of parameters loaded (excluding {args.expect_random or 'nothing'}), "
                  f"under --fail-under {args.fail_under:.0%}", file=sys.stderr)
            return EXIT_BELOW_THRESHOLD
    suspects = report.summary()["suspect_untrained"]
    if args.fail_on_suspect and suspects:
        print(f"\nFAIL: {suspects} loaded tensors look untrained (--fail-on-suspect)", file=sys.stderr)
        return EXIT_BELOW_THRESHOLD
    return 0


def add_reconstruct_parser(subparsers) -> None:
    """Flags of `reconstruct`."""
    from vggt_mv.pipeline import MAX_TIME_STEPS
    from vggt_mv.serving.settings import DEFAULT_CHECKPOINT

    from vggt_mv.exports.formats import DEFAULT_CLI_FORMATS, FORMATS

    parser = subparsers.add_parser("reconstruct", help="videos (one per camera) -> GLB, NPZ, cameras.json, PLY and "
                                                       "COLMAP per time step, Rerun recording, scene.html")
    parser.add_argument("videos", nargs="+", type=Path, help="one synchronized video per camera (1..8)")
    parser.add_argument("--out", type=Path, required=True, help="output folder")
    parser.add_argument("--frames", type=int, default=8,
                        help=f"time steps sampled per camera (at most {MAX_TIME_STEPS}); capped at the distinct "
                             "frames the slowest camera shows")
    parser.add_argument("--span", type=float, nargs=2, default=(0.0, 1.0), metavar=("START", "END"),
                        help="part of the common time range to use, as fractions")
    parser.add_argument("--window", nargs="+", default=None, metavar="N",
                        help="time steps per window: a run longer than one pass (--max-total-frames, memory) is split "
                             "into overlapping windows aligned by Sim(3); default: as many as one pass holds")
    parser.add_argument("--resize", default="fit", choices=["fit", "crop"],
                        help="fit (default): longer side 518, every pixel kept; crop: VGGT's crop mode (width 518, "
                             "centre-cropped to 518 rows)")
    parser.add_argument("--offsets", type=float, nargs="+", default=None, help="per-camera clock offsets (s)")
    parser.add_argument("--mode", default="auto", choices=["auto", "multi", "global", "single"])
    parser.add_argument("--checkpoint", default=DEFAULT_CHECKPOINT, help="weights ('none' for random weights)")
    parser.add_argument("--pi3", default=None)
    parser.add_argument("--preset", default="vggt-1b", choices=["vggt-1b", "tiny"])
    parser.add_argument("--device", default="auto")
    parser.add_argument("--max-total-frames", type=int, default=64,
                        help="most frames (time steps x cameras) in one pass; longer runs go in windows")
    parser.add_argument("--query-points", default=None, metavar="X,Y;X,Y",
                        help="points to track, in pixels of camera 0's first processed frame (518 wide)")
    parser.add_argument("--track-grid", type=int, default=0, metavar="K",
                        help="track a grid of about K points over camera 0's first frame")
    parser.add_argument("--formats", default=",".join(DEFAULT_CLI_FORMATS), metavar="LIST",
                        help=f"downloads to write, comma-separated, from {', '.join(FORMATS)} (default: all but zip; "
                             "rerun is skipped with a note when rerun-sdk is not installed); scene.html always")
    parser.add_argument("--ba", action="store_true",
                        help="bundle-adjust each step's COLMAP model with pycolmap (prints the error before and after)")
    parser.add_argument("--float16", action="store_true",
                        help="depth, points and confidences as float16 in the NPZ (half the bytes, ~3 digits)")
    parser.set_defaults(handler=run_reconstruct)


def parse_formats(text: str) -> tuple[list[str], list[str]]:
    """'glb,npz' -> (formats to write, notes about skipped ones); ValueError naming an unknown format."""
    from vggt_mv.exports.formats import DEFAULT_CLI_FORMATS, FORMATS, unavailable

    names = [part.strip() for part in str(text).split(",") if part.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ValueError(f"--formats: unknown format {unknown[0][:40]!r}; choose from {', '.join(FORMATS)}")
    asked_by_default = str(text) == ",".join(DEFAULT_CLI_FORMATS)
    notes = [f"{name} not written: {unavailable(name)}" for name in names if unavailable(name) is not None]
    if notes and not asked_by_default:
        raise ValueError(notes[0])
    return [name for name in dict.fromkeys(names) if unavailable(name) is None], notes


def parse_query_points(text: str | None) -> tuple[tuple[float, float], ...]:
    """'x,y;x,y' -> ((x, y), (x, y)); ValueError with the part that is not a pair of numbers."""
    if text is None:
        return ()
    points = []
    for part in text.split(";"):
        values = part.split(",")
        try:
            if len(values) != 2:
                raise ValueError
            points.append((float(values[0]), float(values[1])))
        except ValueError:
            raise ValueError(f"--query-points: {part.strip()[:40]!r} is not 'x,y' (points are 'x,y;x,y')") from None
    return tuple(points)


def run_reconstruct(args: argparse.Namespace) -> int:
    """Run the pipeline headless; every download plus scene.html appear in --out only when all of them exist."""
    from vggt_mv.io.video import VideoError
    from vggt_mv.exports.formats import ExportOptions, build_format
    from vggt_mv.pipeline import (FILES_PROGRESS, SCENE_PROGRESS, ReconstructionError, ReconstructionSettings,
                                  StageTimes, check_request, reconstruct)
    from vggt_mv.serving.gpu import memory_budget
    from vggt_mv.serving.model_store import load_served_model
    from vggt_mv.serving.settings import ServeSettings
    from vggt_mv.viz.export import write_scene_html
    from vggt_mv.viz.scene import SceneOptions, build_scene

    problem = reconstruct_argument_problem(args)
    try:
        query_points = parse_query_points(args.query_points)
    except ValueError as error:
        query_points, problem = (), problem or str(error)
    try:
        formats, format_notes = parse_formats(args.formats)
    except ValueError as error:
        formats, format_notes, problem = [], [], problem or str(error)
    try:
        window_steps = parse_window(args.window)
    except ValueError as error:
        window_steps, problem = 0, problem or str(error)
    settings = ReconstructionSettings(frames_per_camera=args.frames, window=tuple(args.span),
                                      offsets=tuple(args.offsets or ()), mode=args.mode,
                                      max_total_frames=args.max_total_frames, query_points=query_points,
                                      track_grid=args.track_grid, resize=args.resize, window_steps=window_steps)
    if problem is None:
        try:
            check_request(args.videos, settings)
        except ReconstructionError as error:
            problem = str(error)
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USER_ERROR
    checkpoint = None if args.checkpoint in ("none", "") else args.checkpoint
    served = load_served_model(ServeSettings(checkpoint=checkpoint, pi3=args.pi3, preset=args.preset,
                                             device=args.device))
    if served.fallback_error is not None:
        print(f"error: weights could not be loaded ({served.fallback_error}). Pass --checkpoint none to run with "
              "random weights.", file=sys.stderr)
        return EXIT_USER_ERROR
    if served.banner:
        print(f"note: {served.banner}", file=sys.stderr)
    staging = Path(tempfile.mkdtemp(prefix=f".{args.out.name}.partial-", dir=nearest_existing_folder(args.out)))
    bar = ProgressBar(sys.stderr)
    stages = StageTimes()
    try:
        result = reconstruct(served.model, args.videos, settings, memory_budget(served.device.type), served.trained,
                             progress=bar, stages=stages, store_folder=staging / STORE_FOLDER)
        bar(SCENE_PROGRESS, "building the scene")
        with stages.stage("scene"):
            figure = build_scene(result.predictions, SceneOptions())
        bar(FILES_PROGRESS, "writing the downloads")
        with stages.stage("files"):
            write_scene_html(staging / "scene.html", figure)
            options = ExportOptions(float16=args.float16, bundle_adjust=args.ba)
            written = [build_format(name, result.predictions, staging, options) for name in formats]
        bar.close()
        if result.store is not None:
            result.store.delete()
        publish_folder(staging, args.out)
    except (VideoError, ReconstructionError, OSError) as error:
        bar.close()
        shutil.rmtree(staging, ignore_errors=True)
        message = f"cannot write {args.out}: {error.strerror or error}" if isinstance(error, OSError) else error
        print(f"error: {message}", file=sys.stderr)
        return EXIT_USER_ERROR
    print(f"attention: {result.mode.reason}", file=sys.stderr)
    for note in result.notes + format_notes + [note for item in written for note in item.notes]:
        print(f"note: {note}", file=sys.stderr)
    if "track" in result.predictions:
        steps, cameras, count = result.predictions["track"].shape[:3]
        print(f"tracks: {count} points through {steps} x {cameras} frames", file=sys.stderr)
    print(f"frames: {describe_frames(result)}", file=sys.stderr)
    print(f"stages: {stages.describe()}", file=sys.stderr)
    for item in written:
        paths = [args.out / path.relative_to(staging) for path in item.paths]
        print(f"{item.name}: {', '.join(map(str, paths))}")
    print(f"html: {args.out / 'scene.html'}")
    return 0


def parse_window(values: list[str] | None) -> int:
    """`--window N` -> N time steps per window (0 when not given); the old `--window START END` is named."""
    if not values:
        return 0
    if len(values) == 2:
        raise ValueError("--window N takes the time steps per window; the part of the time range is now "
                         "--span START END")
    try:
        steps = float(values[0])
    except ValueError:
        steps = float("nan")
    if len(values) != 1 or not steps == steps or steps != int(steps) or not 2 <= steps <= 100_000:
        raise ValueError(f"--window must be a whole number of time steps, at least 2, got {' '.join(values)[:40]}")
    return int(steps)


def describe_frames(result) -> str:
    """'128 time steps x 2 cameras at 518x294 (fit), 6 windows': what reached the model."""
    from vggt_mv.pipeline import counted

    steps, cameras = result.predictions["images"].shape[:2]
    height, width = result.predictions["images"].shape[-2:]
    windows = f", {result.windows.count} windows" if result.windows is not None and result.windows.count > 1 else ""
    return (f"{counted(steps, 'time step')} x {counted(cameras, 'camera')} at {width}x{height} "
            f"({result.settings.resize}){windows}")


def reconstruct_argument_problem(args: argparse.Namespace) -> str | None:
    """What is wrong with the paths given to `reconstruct`, found before any model loads (None when nothing)."""
    for video in args.videos:
        if not video.exists():
            return f"{video}: no such file"
        if video.is_dir():
            return f"{video}: is a folder; give one video file per camera"
    if args.out.exists() and not args.out.is_dir():
        return f"--out {args.out} is a file; give a folder (created when missing)"
    if args.frames < 1:
        return f"--frames must be at least 1, got {args.frames}"
    return None


def nearest_existing_folder(path: Path) -> Path:
    """The closest existing ancestor of `path`, where a staging folder can be renamed into place."""
    folder = path.absolute().parent
    while not folder.is_dir():
        folder = folder.parent
    return folder


def publish_folder(staging: Path, out: Path) -> None:
    """Move a finished staging folder to `out` (renamed whole, or its entries replacing those in an existing folder)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    if not out.exists():
        staging.rename(out)
        return
    for entry in staging.iterdir():
        target = out / entry.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        entry.replace(target)
    staging.rmdir()


class ProgressBar:
    """tqdm's one-line bar on stderr, driven by the pipeline's (fraction, message) updates."""

    def __init__(self, stream) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=100, file=stream, bar_format="[{bar:30}] {percentage:3.0f}% {postfix}")

    def __call__(self, fraction: float, message: str) -> None:
        self.bar.n = round(max(0.0, min(1.0, fraction)) * 100)
        self.bar.set_postfix_str(message[:70])

    def close(self) -> None:
        """End the bar's line so later messages start on their own."""
        self.bar.close()


def build_parser() -> argparse.ArgumentParser:
    """All subcommands."""
    parser = argparse.ArgumentParser(prog="vggt-mv", description=__doc__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    add_inspect_parser(subparsers)
    add_reconstruct_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point; returns the exit code."""
    args = build_parser().parse_args(argv)
    return args.handler(args)
