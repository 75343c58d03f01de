"""Long captures in windows: peak memory and time against T, side by side in one run (2 cameras, tiny preset).

Each T runs in its own fresh process (so its peak RSS is its own): the windowed run (plan, decode into the store,
one pass per window, Sim(3) alignment, the store), then the scene with its player over every step, then the NPZ
and the GLB from the stored predictions. Every T uses the same window (`--window`, default 8 steps), so each is a
windowed run and memory should stay that of one window.

Peak RSS is the process's ru_maxrss; "anonymous" is the peak of RssAnon (sampled every 20 ms), the memory that
is not a file's page cache.

Usage: python benchmarks/bench_windows.py [--steps 16 64 256] [--window 8]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = """
import json, resource, sys, threading, time
from pathlib import Path
sys.path.insert(0, {root!r})
from vggt_mv.exports.formats import ExportOptions, build_format
from vggt_mv.pipeline import ReconstructionSettings, StageTimes, reconstruct
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.viz.scene import build_scene

peak_anonymous = 0
def sample():
    global peak_anonymous
    while True:
        for line in open("/proc/self/status"):
            if line.startswith("RssAnon:"):
                peak_anonymous = max(peak_anonymous, int(line.split()[1]))
        time.sleep(0.02)
threading.Thread(target=sample, daemon=True).start()

folder = Path({folder!r})
served = load_served_model(ServeSettings(checkpoint=None, preset="tiny", device="cpu"))
settings = ReconstructionSettings(frames_per_camera={steps}, window_steps={window}, max_time_steps=100_000)
stages = StageTimes()
started = time.perf_counter()
result = reconstruct(served.model, [folder / "camera0.mp4", folder / "camera1.mp4"], settings, stages=stages,
                     store_folder=folder / "store-{steps}")
run_seconds = time.perf_counter() - started
with stages.stage("scene"):
    build_scene(result.predictions)
with stages.stage("npz"):
    build_format("npz", result.predictions, folder, ExportOptions())
with stages.stage("glb"):
    build_format("glb", result.predictions, folder, ExportOptions())
steps, cameras = result.predictions["images"].shape[:2]
print(json.dumps({{"steps": int(steps), "cameras": int(cameras), "windows": result.windows.count,
                  "run_seconds": run_seconds, "stages": stages.seconds,
                  "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "peak_anonymous_mb": peak_anonymous / 1024,
                  "store_mb": result.store.bytes_on_disk() / 1e6,
                  "seams": [seam.relative_residual for seam in result.seams]}}))
result.store.delete()
"""


def write_videos(folder: Path, frames: int) -> None:
    """Two synthetic cameras with `frames` distinct frames each (16:9, so fit gives 518x294)."""
    sys.path.insert(0, str(ROOT))
    from tests.support.videos import write_video

    for camera in range(2):
        write_video(folder / f"camera{camera}.mp4", frames=frames, fps=10, width=128, height=72)


def measure(folder: Path, steps: int, window: int) -> dict:
    """One T in a fresh process."""
    script = CHILD.format(root=str(ROOT), folder=str(folder), steps=steps, window=window)
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[16, 64, 256])
    parser.add_argument("--window", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        write_videos(Path(folder), max(args.steps))
        rows = [measure(Path(folder), steps, args.window) for steps in args.steps]
    base = rows[0]
    print(f"2 cameras at 518x294, tiny preset, window {args.window} steps, one process per T\n")
    print("| T | windows | run (s) | s per step | scene (s) | NPZ (s) | GLB (s) | peak RSS (MB) | vs T="
          f"{base['steps']} | peak anonymous (MB) | store (MB) | worst seam |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for row in rows:
        worst = max(row["seams"]) if row["seams"] else float("nan")
        print(f"| {row['steps']} | {row['windows']} | {row['run_seconds']:.1f} | "
              f"{row['run_seconds'] / row['steps']:.3f} | {row['stages']['scene']:.1f} | {row['stages']['npz']:.1f} | "
              f"{row['stages']['glb']:.1f} | {row['peak_rss_mb']:.0f} | "
              f"{row['peak_rss_mb'] / base['peak_rss_mb']:.2f}x | {row['peak_anonymous_mb']:.0f} | "
              f"{row['store_mb']:.0f} | {worst:.1%} |")


if __name__ == "__main__":
    main()
