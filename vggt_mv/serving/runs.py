"""The runs a server keeps: recent reconstructions (redraws, tracks and reruns come from here) and the track
contexts of the most recent ones, bounded in count and bytes.

It lives in the main process: on ZeroGPU the GPU worker returns a run's predictions and context, and this cache
holds them; a track click sends the kept context back into a GPU call (vggt_mv.serving.gpu).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

from vggt_mv.heads.track import TrackContext
from vggt_mv.pipeline import Reconstruction
from vggt_mv.windows.plan import TimeWindows

CACHE_SIZE = 4
# Track contexts (the aggregator layers the track head reads, on the CPU) are kept for the most recent runs only,
# within a byte budget: vggt-1b at 8 x 4 frames of 518x294 keeps 0.82 GB (see estimate_track_context_bytes).
TRACK_CONTEXT_RUNS = 2
TRACK_CONTEXT_BUDGET_BYTES = 2 * 1024 ** 3


@dataclass(frozen=True)
class WindowContexts:
    """A windowed run's track contexts, one per window (tracks are chained through them, vggt_mv.windows.run)."""

    windows: TimeWindows
    contexts: list[TrackContext]

    @property
    def layer_bytes(self) -> int:
        """Bytes held by every window's kept layers."""
        return sum(context.layer_bytes for context in self.contexts)


def release(result: Reconstruction) -> None:
    """A run leaves the cache: its stored predictions (a windowed run's folder) go with it."""
    if result.store is not None:
        result.store.delete()


class RunCache:
    """key -> Reconstruction (least recently used first), and key -> (model tag, track context) for fewer runs."""

    def __init__(self, size: int = CACHE_SIZE, context_runs: int = TRACK_CONTEXT_RUNS,
                 context_budget_bytes: int = TRACK_CONTEXT_BUDGET_BYTES) -> None:
        self.size = size
        self.context_runs = context_runs
        self.context_budget_bytes = context_budget_bytes
        self._runs: OrderedDict[str, Reconstruction] = OrderedDict()
        self._contexts: OrderedDict[str, tuple[str, TrackContext]] = OrderedDict()
        # Why a cached run's context is gone (or was never kept), by key.
        self._no_context: dict[str, str] = {}
        self._lock = threading.Lock()  # Gradio runs different sessions' handlers in different threads

    def get(self, key: str | None) -> Reconstruction | None:
        """A recent run by its key (display controls redraw from it), or None once it left the cache."""
        if not key:
            return None
        with self._lock:
            result = self._runs.get(key)
            if result is not None:
                self._runs.move_to_end(key)
            return result

    def put(self, result: Reconstruction, model_tag: str, context: TrackContext | None,
            no_context_reason: str | None = None) -> None:
        """Keep a finished run and (within the bounds) its track context; the oldest runs go first."""
        with self._lock:
            replaced = self._runs.get(result.key)
            if replaced is not None and replaced is not result:
                release(replaced)
            self._runs[result.key] = result
            self._runs.move_to_end(result.key)
            while len(self._runs) > self.size:
                evicted, evicted_run = self._runs.popitem(last=False)
                release(evicted_run)
                self._contexts.pop(evicted, None)
                self._no_context.pop(evicted, None)
            self._keep_context(result.key, model_tag, context, no_context_reason)

    def _keep_context(self, key: str, model_tag: str, context: TrackContext | None, reason: str | None) -> None:
        """Keep `context` for `key`, dropping the oldest contexts beyond the count or the byte budget."""
        self._contexts.pop(key, None)
        if context is None:
            self._no_context[key] = reason or "the served model has no track head"
            return
        if context.layer_bytes > self.context_budget_bytes:
            self._no_context[key] = (f"its track features ({context.layer_bytes / 1024 ** 3:.1f} GiB) exceed the "
                                     f"{self.context_budget_bytes / 1024 ** 3:.1f} GiB kept for tracks; run again "
                                     "with the query points (or a track grid) to get tracks, or use fewer frames")
            return
        self._no_context.pop(key, None)
        self._contexts[key] = (model_tag, context)
        while (len(self._contexts) > self.context_runs
               or sum(c.layer_bytes for _, c in self._contexts.values()) > self.context_budget_bytes):
            dropped, _ = self._contexts.popitem(last=False)
            self._no_context[dropped] = (f"its track features were dropped to bound memory (only the "
                                         f"{self.context_runs} most recent runs keep them); run it again with the "
                                         "query points (or a track grid) to add tracks")

    def context(self, key: str) -> tuple[str, TrackContext] | None:
        """(model tag, track context) of a cached run, None when it is not kept."""
        with self._lock:
            return self._contexts.get(key)

    def tracks_unavailable(self, key: str | None) -> str | None:
        """Why tracks cannot be added to a cached run from its kept context right now (None: they can)."""
        with self._lock:
            if not key or key not in self._runs:
                return "that run is no longer cached; run it again to add tracks"
            if key in self._contexts:
                return None
            return self._no_context.get(key, "its track context was not kept")

    def kept_track_context_bytes(self) -> int:
        """Bytes held by every kept track context (bounded by the byte budget)."""
        with self._lock:
            return sum(context.layer_bytes for _, context in self._contexts.values())

    def clear(self) -> None:
        """Forget every run: the served model was replaced, so they no longer describe it."""
        with self._lock:
            for result in self._runs.values():
                release(result)
            self._runs.clear()
            self._contexts.clear()
            self._no_context.clear()
