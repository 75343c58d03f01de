"""App-side costs, measured in one run: scene build and payload in each player mode (and without the depth-edge
filter), downloads, video decode per frame, end to end with its stage times (decode, inference, scene, files).

End to end is the app's run: AppState.reconstruct (plan, decode, the GPU call, finish), the scene, write_outputs.

Usage: python benchmarks/bench_scene.py
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

from vggt_mv.inference import predict  # noqa: E402
from vggt_mv.io.examples import list_examples  # noqa: E402
from vggt_mv.io.layout import scaled_size  # noqa: E402
from vggt_mv.io.video import decode_frames, probe_video  # noqa: E402
from vggt_mv.pipeline import ReconstructionSettings, StageTimes, write_outputs  # noqa: E402
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


def end_to_end(state: AppState, videos: list[Path], frames: int, folder: Path) -> tuple[float, StageTimes]:
    """One fresh run as the app makes it: wall seconds and its stage times (decode, inference, scene, files)."""
    stages = StageTimes()
    start = time.perf_counter()
    result = state.reconstruct(videos, ReconstructionSettings(frames_per_camera=frames), stages=stages)
    with stages.stage("scene"):
        build_scene(result.predictions)
    with stages.stage("files"):
        write_outputs(result, folder)
    return time.perf_counter() - start, stages


def main() -> None:
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
    files_seconds, outputs = timed(lambda: write_outputs(SimpleNamespace(predictions=predictions), folder))
    written = sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())
    example = list_examples()[0]
    info = probe_video(example.video_paths[0])
    times = [info.start + (k + 0.5) * info.duration / 8 for k in range(8)]
    decode_seconds, _ = timed(lambda: decode_frames(example.video_paths[0], times, scaled_size(*info.display_size)))
    state = AppState(served, folder / "sessions")
    runs = []
    for frames in (2, 4, 8):
        seconds, stages = end_to_end(state, example.video_paths, frames, folder / f"run{frames}")
        runs.append((frames, seconds, stages.describe()))
    print("| measurement | value | target |")
    print("|---|---|---|")
    base_seconds = next(seconds for mode, edges, seconds, *_ in scenes if mode == "step" and edges)
    for mode, edges, seconds, payload, frames, title in scenes:
        case = f"player '{PLAYER_MODE_LABELS[mode]}'" + ("" if edges else ", depth-edge filter off")
        print(f"| scene build, 8 x 4 at 518x294, 200k points, {case} | {seconds:.2f} s "
              f"({seconds / base_seconds:.2f}x) | <= 1 s |")
        print(f"| figure payload as gr.Plot sends it ({frames} frames included), {case} | {payload / 1e6:.2f} MB "
              f"| <= 6 MB |")
    print(f"| every download, 8 x 4 (zip, GLB, NPZ, cameras.json, PLY + COLMAP per step; "
          f"{written / 1024 ** 2:.0f} MiB) | {files_seconds:.2f} s | |")
    print(f"| decode + resize per frame (example video, 8 frames) | {1000 * decode_seconds / 8:.1f} ms | |")
    for frames, seconds, stages in runs:
        print(f"| end to end, 3 example videos x {frames} frames, tiny preset, CPU ({stages}) | {seconds:.2f} s | |")
    for mode, edges, _, _, _, title in scenes:
        print(f"points counter, '{mode}'{'' if edges else ', depth-edge filter off'}: {title.split(': ', 1)[1]}")


if __name__ == "__main__":
    main()
