"""App-side costs, measured in one run: scene build and payload in each player mode (and without the depth-edge
filter), the downloads before and after they moved off the hot path, video decode per frame, end to end with its
stage times.

End to end is the app's run: AppState.reconstruct (plan, decode, the GPU call, finish) and the scene; it writes
no file (checked). Downloads: "before" is the package as it was at BEFORE_REVISION (taken from git into a temporary
folder and run in a subprocess: it wrote every format plus a zip of them all on every run); "after" builds each
format on request as the app's buttons do, on the same predictions.

Usage: python benchmarks/bench_scene.py [--before REVISION]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from vggt_mv.exports.formats import FORMATS, ExportOptions, build_format, unavailable  # noqa: E402
from vggt_mv.inference import predict  # noqa: E402
from vggt_mv.io.examples import list_examples  # noqa: E402
from vggt_mv.io.layout import scaled_size  # noqa: E402
from vggt_mv.io.video import decode_frames, probe_video  # noqa: E402
from vggt_mv.pipeline import ReconstructionSettings, StageTimes  # noqa: E402
from vggt_mv.serving.app_state import AppState  # noqa: E402
from vggt_mv.serving.model_store import load_served_model  # noqa: E402
from vggt_mv.serving.settings import ServeSettings  # noqa: E402
from vggt_mv.viz.player import PLAYER_MODE_LABELS, PLAYER_MODES, move_frames_into_layout  # noqa: E402
from vggt_mv.viz.scene import SceneOptions, build_scene  # noqa: E402


def timed(function, repeats: int = 3):
    """Median seconds of `repeats` calls, and the last result."""
    seconds, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds), result


ROOT = Path(__file__).resolve().parents[1]
# The last commit whose app wrote every download on every run (zip included, float32 images in the NPZ).
BEFORE_REVISION = "3189035"
BEFORE_SCRIPT = """
import sys, time
from pathlib import Path
from types import SimpleNamespace
import numpy as np
import vggt_mv
from vggt_mv.pipeline import write_outputs
assert Path(vggt_mv.__file__).resolve().is_relative_to(Path.cwd().resolve()), vggt_mv.__file__
arrays = np.load(sys.argv[1])
predictions = {key: arrays[key] for key in arrays.files}
start = time.perf_counter()
write_outputs(SimpleNamespace(predictions=predictions), Path(sys.argv[2]))
print(time.perf_counter() - start)
"""


def end_to_end(state: AppState, videos: list[Path], frames: int) -> tuple[float, StageTimes]:
    """One fresh run as the app makes it: wall seconds and its stage times (decode, inference, scene)."""
    stages = StageTimes()
    start = time.perf_counter()
    result = state.reconstruct(videos, ReconstructionSettings(frames_per_camera=frames), stages=stages)
    with stages.stage("scene"):
        build_scene(result.predictions)
    return time.perf_counter() - start, stages


def folder_bytes(folder: Path) -> int:
    """Bytes of every file under a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file())


def downloads_before(predictions: dict, revision: str, work: Path) -> tuple[float, int, dict[str, int]]:
    """The old app's downloads of these predictions: seconds, total bytes, bytes per top-level entry."""
    package = work / "before"
    package.mkdir()
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "vggt_mv"], check=True,
                             capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(package)], input=archive, check=True)
    np.savez(work / "predictions-in.npz", **predictions)
    out = work / "before-out"
    seconds = float(subprocess.run([sys.executable, "-c", BEFORE_SCRIPT, str(work / "predictions-in.npz"), str(out)],
                                   cwd=package, check=True, capture_output=True, text=True).stdout.split()[-1])
    by_entry = {path.name: folder_bytes(path) if path.is_dir() else path.stat().st_size for path in out.iterdir()}
    return seconds, folder_bytes(out), by_entry


def downloads_after(predictions: dict, work: Path) -> dict[str, tuple[float, int]]:
    """Each format built on request, as the app's buttons build it: name -> (seconds, bytes)."""
    built = {}
    for name in FORMATS:
        if unavailable(name) is None:
            written = build_format(name, predictions, work / "after" / name, ExportOptions())
            built[name] = (written.seconds, written.bytes())
    written = build_format("npz", predictions, work / "after" / "npz16", ExportOptions(float16=True))
    built["npz --float16"] = (written.seconds, written.bytes())
    return built


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default=BEFORE_REVISION, help="git revision of the 'before' downloads")
    args = parser.parse_args()
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    torch.manual_seed(0)
    images = torch.rand(8, 4, 3, 294, 518)
    predictions = predict(served.model, images)
    scenes = []
    for mode, edges in [(mode, True) for mode in PLAYER_MODES] + [("step", False)]:
        options = SceneOptions(player_mode=mode, depth_edges=edges)
        seconds, figure = timed(lambda options=options: build_scene(predictions, options))
        frames, title = len(figure.frames), figure.layout.title.text
        payload = len(move_frames_into_layout(figure).to_json().encode())  # what gr.Plot sends, frames included
        scenes.append((mode, edges, seconds, payload, frames, title))
    folder = Path(tempfile.mkdtemp(prefix="bench-scene-"))
    torch.manual_seed(1)
    download_predictions = predict(served.model, torch.rand(8, 3, 3, 518, 518))
    download_predictions["valid_mask"] = np.ones(download_predictions["depth_conf"].shape, dtype=bool)
    download_predictions["times"] = np.arange(8) / 10.0
    before_seconds, before_bytes, before_entries = downloads_before(download_predictions, args.before, folder)
    after = downloads_after(download_predictions, folder)
    example = list_examples()[0]
    info = probe_video(example.video_paths[0])
    times = [info.start + (k + 0.5) * info.duration / 8 for k in range(8)]
    decode_seconds, _ = timed(lambda: decode_frames(example.video_paths[0], times, scaled_size(*info.display_size)))
    state = AppState(served, folder / "sessions")
    runs = []
    for frames in (2, 4, 8):
        seconds, stages = end_to_end(state, example.video_paths, frames)
        runs.append((frames, seconds, stages.describe()))
    assert not state.sessions_root.exists() or folder_bytes(state.sessions_root) == 0, "a run wrote a file"
    print("| measurement | value | target |")
    print("|---|---|---|")
    base_seconds = next(seconds for mode, edges, seconds, *_ in scenes if mode == "step" and edges)
    for mode, edges, seconds, payload, frames, title in scenes:
        case = f"player '{PLAYER_MODE_LABELS[mode]}'" + ("" if edges else ", depth-edge filter off")
        print(f"| scene build, 8 x 4 at 518x294, 200k points, {case} | {seconds:.2f} s "
              f"({seconds / base_seconds:.2f}x) | <= 1 s |")
        print(f"| figure payload as gr.Plot sends it ({frames} frames included), {case} | {payload / 1e6:.2f} MB "
              f"| <= 6 MB |")
    entries = ", ".join(f"{name} {size / 1e6:.1f}" for name, size in sorted(before_entries.items()))
    print(f"| before: every run wrote every download, 8 x 3 at 518x518 ({entries} MB) | {before_seconds:.2f} s, "
          f"{before_bytes / 1e6:.1f} MB (1.00x) | |")
    print("| after: a run writes no file (files stage of the end-to-end rows) | 0 s, 0 MB (0.00x) | 0 s |")
    for name, (seconds, size) in after.items():
        print(f"| after, on request: {name} | {seconds:.2f} s, {size / 1e6:.1f} MB ({size / before_bytes:.3f}x) | |")
    each_once = sum(size for name, (_, size) in after.items() if name in FORMATS and name != "zip")
    print(f"| after: every format built once, no zip | {each_once / 1e6:.1f} MB ({each_once / before_bytes:.3f}x) "
          f"| <= 0.10x |")
    print(f"| decode + resize per frame (example video, 8 frames) | {1000 * decode_seconds / 8:.1f} ms | |")
    for frames, seconds, stages in runs:
        print(f"| end to end, 3 example videos x {frames} frames, tiny preset, CPU ({stages}) | {seconds:.2f} s | |")
    for mode, edges, _, _, _, title in scenes:
        print(f"points counter, '{mode}'{'' if edges else ', depth-edge filter off'}: {title.split(': ', 1)[1]}")


if __name__ == "__main__":
    main()
