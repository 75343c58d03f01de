"""Everything a running app keeps, in one object owned by the main process: the served model, its GPU calls, the
recent runs with their track contexts, each session's tracks and where session folders live.

The computation (vggt_mv.pipeline) keeps nothing; on ZeroGPU the GPU calls run in a forked worker and change
nothing here. Two AppStates in one process share nothing, so two apps (or tests) with different models can serve
side by side.
"""

from __future__ import annotations

import contextlib
import tempfile
import threading
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import ContextManager

import numpy as np

from vggt_mv.heads.track import TrackContext
from vggt_mv.io.examples import Example
from vggt_mv.io.prediction_store import PredictionStore
from vggt_mv.pipeline import (INFERENCE_PROGRESS, MemoryBudget, ModelOutputs, Progress, Reconstruction,
                              ReconstructionError, ReconstructionSettings, RunPlan, StageTimes, camera_valid_masks,
                              check_request, content_key, decode, decode_into_store, estimate_track_context_bytes,
                              finish, finish_windowed, model_progress, model_weight_bytes, plan_run,
                              reference_valid_mask, resolve_query_points, track_arrays, window_forward,
                              windows_progress, with_tracks)
from vggt_mv.serving.gpu import (GpuCalls, GpuFailure, GpuProgress, memory_budget, on_zerogpu,
                                 zerogpu_errors_as_messages)
from vggt_mv.serving.model_store import ModelRecipe, ServedModel
from vggt_mv.serving.runs import RunCache, WindowContexts
from vggt_mv.serving.session_tracks import SessionTracks
from vggt_mv.serving.settings import DEFAULT_SESSIONS_DIR
from vggt_mv.windows.run import run_windows, track_windows

# Where windowed runs keep their stored predictions, under the sessions root (never a session's own folder).
RUNS_FOLDER = ".runs"


@dataclass
class AppState:
    """The served model and what the app keeps between requests, with the operations that read or fill the cache
    (see the module docstring)."""

    served: ServedModel
    sessions_root: Path = DEFAULT_SESSIONS_DIR
    max_total_frames: int = 64
    max_time_steps: int = 128
    gpu_memory_bytes: int | None = None
    runs: RunCache = field(default_factory=RunCache)
    session_tracks: SessionTracks = field(default_factory=SessionTracks)
    gpu: GpuCalls | None = None
    gpu_lock: threading.Lock = field(default_factory=threading.Lock)

    def __post_init__(self) -> None:
        self.sessions_root = Path(self.sessions_root)
        if self.gpu is None:
            self.gpu = GpuCalls(self.served)
        self.served.replaced.append(self.forget_runs)

    def forget_runs(self) -> None:
        """The served model was replaced: its runs and every session's tracks no longer describe it."""
        self.runs.clear()
        self.session_tracks.clear()

    def gpu_section(self) -> ContextManager:
        """Around each GPU call: one at a time on a plain server (one device, one model); none on ZeroGPU, which
        gives each call its own GPU and queues the rest itself."""
        return contextlib.nullcontext() if on_zerogpu() else self.gpu_lock

    def memory(self) -> MemoryBudget:
        """What one run may use where the model runs (never asking CUDA in the main process)."""
        return memory_budget(self.served.device.type, self.gpu_memory_bytes)

    def reconstruct(self, videos: list[Path], settings: ReconstructionSettings, example: Example | None = None,
                    progress: Progress | None = None, stages: StageTimes | None = None) -> Reconstruction:
        """A run from the cache, or plan -> decode -> the GPU call -> finish, kept in the cache.

        With query points (or a track grid) in the settings the answer is a view of the run with those tracks (the
        cache keeps the run without them); a cached run gets them from its kept track context (track head only), and
        is run again only when that context is gone."""
        progress = progress or (lambda fraction, message: None)
        stages = stages if stages is not None else StageTimes()
        served = self.served
        videos = [Path(video) for video in videos]
        with stages.stage("decode"):
            check_request(videos, settings)
            if settings.wants_tracks() and getattr(served.model, "track_head", None) is None:
                raise ReconstructionError("the served model has no track head (enable_track=False): it cannot track "
                                          "points")
            with served.lock:  # the recipe, tag and training of one model version, never a mix
                recipe, tag, trained = served.recipe, served.tag, served.trained
            key = content_key(videos, settings, tag)
            cached = self.runs.get(key)
            rerun_reason = (self.runs.tracks_unavailable(key) if cached is not None and settings.wants_tracks()
                            else None)
            if cached is not None and rerun_reason is None:
                if not settings.wants_tracks():
                    return cached
                with stages.stage("tracks"):
                    return self.add_tracks(key, settings.query_points, settings.track_grid)
            progress(0.02, "checking the videos")
            plan = plan_run(videos, settings, served.config, model_weight_bytes(served.model), self.memory(), trained)
            progress(0.05, f"decoding {plan.clip.steps} frames from each of {len(videos)} videos")
            if not plan.windowed:
                clip = decode(plan)
        if plan.windowed:
            store = PredictionStore(self.run_folder(key))
            try:
                with stages.stage("decode"):
                    clip = decode_into_store(plan, store)
                    points = (resolve_query_points(settings.query_points, settings.track_grid,
                                                   reference_valid_mask(clip)) if settings.wants_tracks() else None)
                result = self.reconstruct_windowed(plan, clip, settings, key, recipe, tag, store, points, example,
                                                   progress, stages)
            except BaseException:
                store.delete()  # a run that failed leaves no folder behind
                raise
            if rerun_reason is not None:
                result.notes.append(f"Ran the model again to add tracks: {rerun_reason}.")
            return result
        with stages.stage("decode"):
            points = (resolve_query_points(settings.query_points, settings.track_grid, reference_valid_mask(clip))
                      if settings.wants_tracks() else None)
        with stages.stage("inference"):
            progress(INFERENCE_PROGRESS[0],
                     f"running VGGT_MV on {clip.grid[0]} x {clip.grid[1]} frames ({served.device})")
            outputs = self.forward_on_gpu(recipe, clip.images, plan.mode.mode, progress)
            result, context = finish(outputs, clip, settings, plan.mode, key, stages, example)
        if rerun_reason is not None:
            result.notes.append(f"Ran the model again to add tracks: {rerun_reason}.")
        result = replace(result, seconds=dict(stages.seconds))  # inference included
        self.runs.put(result, tag, context)
        if not settings.wants_tracks():
            return result
        with stages.stage("tracks"):
            tracks = self.track_on_gpu(recipe, context, points)  # this run's own context, kept or not
        return replace(with_tracks(result, track_arrays(result.predictions, points, tracks)),
                       seconds=dict(stages.seconds))

    def run_folder(self, key: str) -> Path:
        """A new folder for one windowed run's store (a run made again gets its own: the cached one may be read)."""
        root = self.sessions_root / RUNS_FOLDER
        root.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix=f"{key}-", dir=root))

    def reconstruct_windowed(self, plan: RunPlan, clip, settings: ReconstructionSettings, key: str,
                             recipe: ModelRecipe, tag: str, store: PredictionStore, points: np.ndarray | None,
                             example: Example | None, progress: Progress, stages: StageTimes) -> Reconstruction:
        """A run of several windows: one GPU call per window (each within ZeroGPU's per-call limit), aligned and
        stored here; the windows' track contexts are kept when they fit the cache's budget, tracks run per window."""
        has_track_head = getattr(self.served.model, "track_head", None) is not None
        width, height = clip.size
        context_bytes = plan.windows.count * estimate_track_context_bytes(
            self.served.config, plan.windows.size, clip.grid[1], height, width)
        keep = has_track_head and context_bytes <= self.runs.context_budget_bytes

        def track(context, queries):
            return self.track_on_gpu(recipe, context, queries)

        with stages.stage("inference"):
            progress(INFERENCE_PROGRESS[0], f"running VGGT_MV on {clip.grid[0]} x {clip.grid[1]} frames in "
                                            f"{plan.windows.count} windows ({self.served.device})")
            overall = windows_progress(progress)
            forward = window_forward(lambda images, relay: self.forward_on_gpu(recipe, images, plan.mode.mode,
                                                                               progress, relay))
            windowed = run_windows(plan.windows, clip.images, camera_valid_masks(clip), forward, store, overall,
                                   points, track if points is not None else None, keep_contexts=keep)
            result = finish_windowed(windowed, plan, clip, settings, key, stages, store, example)
        result = replace(result, seconds=dict(stages.seconds))
        kept = WindowContexts(plan.windows, windowed.contexts) if keep else None
        reason = None if has_track_head else "the served model has no track head"
        if has_track_head and not keep:
            reason = (f"the track features of its {plan.windows.count} windows (about {context_bytes / 1024 ** 3:.1f} "
                      f"GiB) exceed the {self.runs.context_budget_bytes / 1024 ** 3:.1f} GiB kept for tracks; run "
                      "again with the query points (or a track grid) to get tracks")
        answer = result if points is None else replace(
            with_tracks(result, track_arrays(result.predictions, points, windowed.tracks)), seconds=dict(stages.seconds))
        self.runs.put(result, tag, kept, reason)  # last: from here on the cache owns the store
        return answer

    def forward_on_gpu(self, recipe: ModelRecipe, images: np.ndarray, mode: str, progress: Progress,
                       relay=None) -> ModelOutputs:
        """One GPU call (a run's, or a window's): its progress events move the bar (through `relay` when given),
        its refusal is one message."""
        relay = relay or model_progress(progress)
        outputs = None
        with self.gpu_section(), zerogpu_errors_as_messages():
            for event in self.gpu.reconstruct(recipe, images, mode):
                if isinstance(event, GpuProgress):
                    relay(event.done, event.total, event.stage)
                elif isinstance(event, GpuFailure):
                    raise ReconstructionError(event.message)
                else:
                    outputs = event
        if outputs is None:
            raise ReconstructionError("the GPU call ended without predictions; run again")
        return outputs

    def track_on_gpu(self, recipe: ModelRecipe, context: TrackContext, points: np.ndarray) -> dict[str, np.ndarray]:
        """The track head's GPU call on a kept context (sent to the worker as an argument)."""
        with self.gpu_section(), zerogpu_errors_as_messages():
            answer = self.gpu.track(recipe, context, points)
        if isinstance(answer, GpuFailure):
            raise ReconstructionError(answer.message)
        return answer

    def add_tracks(self, key: str, query_points=(), track_grid: int = 0) -> Reconstruction:
        """Follow query points (or a grid) of a cached run through all T x N frames with the track head only.

        Never re-runs the aggregator: when the run's track context is gone the message says why and to run again.
        Returns a new view of the cached run (see with_tracks) whose predictions also hold query_points [K, 2], track
        [T, N, K, 2], vis and conf [T, N, K] and track_world_points [T, N, K, 3]; the cached run itself is never
        changed, as every session shares it.
        """
        result = self.runs.get(key)
        if result is None:
            raise ReconstructionError("that run is no longer cached; run it again to add tracks")
        points = resolve_query_points(query_points, track_grid, result.predictions["valid_mask"][0, 0])
        kept = self.runs.context(key)
        if kept is None:
            raise ReconstructionError(f"cannot add tracks to this run: {self.runs.tracks_unavailable(key)}")
        tag, context = kept
        with self.served.lock:
            recipe, current_tag = self.served.recipe, self.served.tag
        if tag != current_tag:
            raise ReconstructionError("the served weights changed since this run; run it again to add tracks")
        if isinstance(context, WindowContexts):
            tracks = track_windows(context.windows, context.contexts, result.predictions["images"], points,
                                   lambda window_context, queries: self.track_on_gpu(recipe, window_context, queries))
        else:
            tracks = self.track_on_gpu(recipe, context, points)
        return with_tracks(result, track_arrays(result.predictions, points, tracks))
