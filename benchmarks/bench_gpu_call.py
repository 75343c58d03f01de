"""What a ZeroGPU call contains: the model's own work vs. the time inside the GPU call, before and after the split.

Before, the whole Reconstruct handler ran inside `spaces.GPU`: probing, decoding, the model, the scene and every
download. Now only the forward (heads included) and the track head run there. One run measures, on the bundled
example at T x 3 cameras, side by side:
- the model's own work: `pipeline.infer` (forward and heads) plus `pipeline.track` for a grid of points;
- after: the time inside the two GPU calls (`GpuCalls.reconstruct` and `.track`, as the app calls them), and what
  ZeroGPU adds to carry them (pickling the arguments in and the results back, measured here on the same data);
- before: the whole handler (decode, inference, scene, files, tracks), which is what the old GPU call held;
- the whole run's wall time as a visitor waits for it (the same work, now mostly outside the GPU call).

Usage: python benchmarks/bench_gpu_call.py [--steps 8] [--points 16] [--repeats 3] [--device cpu|cuda]
Prints a Markdown table; the README quotes it.
"""

from __future__ import annotations

import argparse
import pickle
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def best_of(repeats: int, function) -> tuple[float, object]:
    """The fastest of `repeats` calls after one warm-up, and the last call's result."""
    result = function()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - started)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--points", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    from vggt_mv import pipeline
    from vggt_mv.io.examples import list_examples
    from vggt_mv.pipeline import ReconstructionSettings
    from vggt_mv.serving import reconstruct_tab
    from vggt_mv.serving.app_state import AppState
    from vggt_mv.serving.model_store import load_served_model
    from vggt_mv.serving.reconstruct_tab import DisplayChoices
    from vggt_mv.serving.settings import ServeSettings

    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny", device=args.device))
    example = list_examples()[0]
    settings = ReconstructionSettings(frames_per_camera=args.steps)
    with tempfile.TemporaryDirectory() as sessions:
        state = AppState(served, Path(sessions))
        plan = pipeline.plan_run(list(example.video_paths), settings, served.config,
                                 pipeline.model_weight_bytes(served.model), state.memory(), served.trained)
        clip = pipeline.decode(plan)
        mode = plan.mode.mode

        def model_work():
            outputs = pipeline.infer(served.model, clip.images, mode)
            _, context = pipeline.attach_images(outputs, clip.images)
            points = pipeline.resolve_query_points((), args.points, clip.valid_mask_grid()[0, 0])
            return outputs, context, points, pipeline.track(served.model, context, points)

        def gpu_calls():
            *_, outputs = state.gpu.reconstruct(served.recipe, clip.images, mode)
            _, context = pipeline.attach_images(outputs, clip.images)
            points = pipeline.resolve_query_points((), args.points, clip.valid_mask_grid()[0, 0])
            return outputs, context, points, state.gpu.track(served.recipe, context, points)

        def carried():
            """What ZeroGPU's queues do to one run's calls: arguments in, results out."""
            outputs, context, points, tracks = carried_data
            for value in ((served.recipe, clip.images, mode), outputs, (served.recipe, context, points), tracks):
                pickle.loads(pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL))

        def whole_handler():
            stages = pipeline.StageTimes()
            state.runs.clear()
            result = state.reconstruct(list(example.video_paths), settings, example, stages=stages)
            with stages.stage("scene"):
                reconstruct_tab.render(result, DisplayChoices())
            with stages.stage("files"):
                pipeline.write_outputs(result, Path(sessions) / "run")
            with stages.stage("tracks"):
                state.add_tracks(result.key, track_grid=args.points)
            return stages

        own, _ = best_of(args.repeats, model_work)
        inside, carried_data = best_of(args.repeats, gpu_calls)
        pickling, _ = best_of(args.repeats, carried)
        handler, stages = best_of(args.repeats, whole_handler)
    frames = f"{clip.grid[0]} x {clip.grid[1]}"
    print(f"Example at {frames} frames of {clip.images.shape[-1]}x{clip.images.shape[-2]}, tiny preset on "
          f"{served.device}, attention {mode}, {args.points} tracked points; best of {args.repeats}.\n")
    print("| measurement | seconds | vs the model's own work |")
    print("|---|---|---|")
    print(f"| the model's own work (forward with heads, then the track head) | {own:.2f} | 1.00x |")
    print(f"| after: inside the GPU calls | {inside:.2f} | {inside / own:.2f}x |")
    print(f"| after: what ZeroGPU adds to carry them (pickling in and out) | {pickling:.2f} | {pickling / own:.2f}x |")
    print(f"| before: inside the GPU calls = the whole run ({stages.describe()}) | {handler:.2f} | "
          f"{handler / own:.2f}x |")
    print(f"| the whole run's wall time, before and after (the same work; now only the model's part is GPU time) | "
          f"{handler:.2f} | {handler / own:.2f}x |")


if __name__ == "__main__":
    main()
