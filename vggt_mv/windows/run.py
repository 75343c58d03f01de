"""A run longer than one pass: one model pass per window, each aligned into the first window's world frame, the
per-pixel predictions written to the run's store as each window finishes.

Memory is one window's, whatever T is: a window's images are read from the store, its predictions are aligned, the
steps it is the first to predict are written out, and only the shared steps the next window aligns to stay in RAM.
The forward is a callable (the model in-process for the CLI, the GPU call on a server), so this module needs no
device and keeps nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np
import torch

from vggt_mv.geometry import extri_intri_to_pose_encoding, unproject_depth_map_to_point_map
from vggt_mv.heads.track import TrackContext
from vggt_mv.io.prediction_store import PredictionStore, StoredArray
from vggt_mv.windows.plan import TimeWindows
from vggt_mv.windows.sim3 import AlignmentError, Sim3, robust_sim3, transform_depth, transform_extrinsics

# The forward of one window: images [W, N, 3, H, W] and a (done, total, stage) progress callback in; the window's
# predictions (numpy, [W, N, ...], in its own world frame) and its track context (or None) out.
Forward = Callable[[np.ndarray, Callable[[int, int, str], None]], tuple[dict[str, np.ndarray], TrackContext | None]]
# The track head on one window's context: query points [K, 2] on the window's first frame in; track/vis/conf out.
Track = Callable[[TrackContext, np.ndarray], dict[str, np.ndarray]]
# Points per overlapping frame the alignment uses (a deterministic subsample; plenty for 7 parameters).
ALIGNMENT_POINTS_PER_FRAME = 4_000
# A tracked point chains into the next window only while the track head still sees it in the shared frame.
CHAIN_VISIBILITY = 0.5


@dataclass(frozen=True)
class Seam:
    """How well window `window` fits the one before it on their shared steps, after alignment."""

    window: int
    shared_steps: tuple[int, int]
    residual: float
    relative_residual: float
    inlier_fraction: float
    scale: float
    aligned: bool = True
    reason: str = ""

    def describe(self) -> str:
        """'steps 6-7: 0.8% of the scene's size (scale 1.03, 97% inliers)', or why the window was not aligned."""
        steps = f"steps {self.shared_steps[0]}-{self.shared_steps[1] - 1}"
        if not self.aligned:
            return f"{steps}: not aligned ({self.reason}); window {self.window} kept in its own frame"
        return (f"{steps}: {self.relative_residual:.1%} of the scene's size ({self.residual:.3g} in its units; "
                f"scale {self.scale:.3g}, {self.inlier_fraction:.0%} inliers)")


@dataclass
class WindowedPredictions:
    """A windowed run's predictions ([T, N] arrays: per-pixel ones stored, the rest in RAM), its seams and the
    windows' track contexts (kept only when asked)."""

    predictions: dict[str, np.ndarray | StoredArray]
    seams: list[Seam]
    contexts: list[TrackContext] = field(default_factory=list)
    tracks: dict[str, np.ndarray] = field(default_factory=dict)


def is_per_pixel(array: np.ndarray, image_size: tuple[int, int]) -> bool:
    """Whether a [W, N, ...] prediction has a value per pixel (it goes to the store; the rest stays in RAM)."""
    return array.ndim >= 4 and tuple(array.shape[2:4]) == tuple(image_size)


def point_maps(predictions: dict[str, np.ndarray]) -> np.ndarray:
    """World points [W, N, H, W, 3] of a window: the point head's, or its depth seen through its cameras."""
    if "world_points" in predictions:
        return predictions["world_points"]
    points = unproject_depth_map_to_point_map(torch.from_numpy(predictions["depth"]),
                                              torch.from_numpy(predictions["extrinsic"]),
                                              torch.from_numpy(predictions["intrinsic"]))
    return points.numpy()


def point_confidence(predictions: dict[str, np.ndarray]) -> np.ndarray:
    """Confidence [W, N, H, W] of the point maps point_maps returns."""
    return predictions["world_points_conf"] if "world_points" in predictions else predictions["depth_conf"]


def alignment_sample(frames: int, pixels: int, per_frame: int = ALIGNMENT_POINTS_PER_FRAME) -> np.ndarray:
    """The same pixel indices in every shared frame (seeded), so both windows are compared point for point."""
    chosen = np.random.default_rng(0).choice(pixels, size=min(per_frame, pixels), replace=False)
    return (np.arange(frames)[:, None] * pixels + np.sort(chosen)[None, :]).reshape(-1)


def align_window(earlier: dict[str, np.ndarray], later: dict[str, np.ndarray],
                 valid: np.ndarray | None) -> tuple[Sim3, float, float, float]:
    """The Sim(3) taking the later window's shared steps onto the earlier's (aligned) ones, with its residuals.

    `earlier` and `later` hold "points" [S, N, H, W, 3] and "confidence" [S, N, H, W] of the same S steps; each
    point counts by the geometric mean of both windows' confidences; padding (valid False) never counts."""
    frames = int(np.prod(earlier["confidence"].shape[:2]))
    pixels = int(np.prod(earlier["confidence"].shape[2:]))
    chosen = alignment_sample(frames, pixels)
    target = earlier["points"].reshape(-1, 3)[chosen].astype(np.float64)
    source = later["points"].reshape(-1, 3)[chosen].astype(np.float64)
    with np.errstate(invalid="ignore"):
        weights = np.sqrt(np.clip(earlier["confidence"].reshape(-1)[chosen], 0, None)
                          * np.clip(later["confidence"].reshape(-1)[chosen], 0, None))
    if valid is not None:
        weights = weights * valid.reshape(-1)[chosen]
    weights = np.where(np.isfinite(weights), weights, 0.0)
    result = robust_sim3(source, target, weights)
    return result.transform, result.residual, result.relative_residual, result.inlier_fraction


def apply_sim3(predictions: dict[str, np.ndarray], transform: Sim3, image_size: tuple[int, int]) -> dict:
    """A window's predictions moved into the first window's world frame: points, cameras, depth (scaled) and the
    pose encoding re-made from the moved cameras (intrinsics never change)."""
    moved = dict(predictions)
    if "world_points" in moved:
        moved["world_points"] = transform.apply(moved["world_points"])
    if "depth" in moved:
        moved["depth"] = transform_depth(moved["depth"], transform)
    if "extrinsic" in moved:
        moved["extrinsic"] = transform_extrinsics(moved["extrinsic"], transform)
        if "pose_enc" in moved and "intrinsic" in moved:
            moved["pose_enc"] = extri_intri_to_pose_encoding(torch.from_numpy(moved["extrinsic"]),
                                                             torch.from_numpy(moved["intrinsic"]),
                                                             image_size).numpy()
    return moved


def shared_part(predictions: dict[str, np.ndarray], offsets: range) -> dict[str, np.ndarray]:
    """Points and confidence of the steps at `offsets` within a window (kept for aligning the next one)."""
    steps = slice(offsets.start, offsets.stop)
    return {"points": np.array(point_maps(predictions)[steps]),
            "confidence": np.array(point_confidence(predictions)[steps])}


def aligned_to_earlier(windows: TimeWindows, index: int, predictions: dict[str, np.ndarray],
                       shared: dict[str, np.ndarray], valid_mask: np.ndarray,
                       image_size: tuple[int, int]) -> tuple[dict[str, np.ndarray], Seam]:
    """Window `index` moved onto the (aligned) window before it, from the steps they share, and how well it fits;
    a window that cannot be aligned (too few usable points) stays in its own frame, and its seam says why."""
    overlap = windows.overlap_steps(index)
    later = shared_part(predictions, range(0, len(overlap)))
    valid = np.broadcast_to(valid_mask[None], later["confidence"].shape)
    try:
        transform, residual, relative, inliers = align_window(shared, later, valid)
    except AlignmentError as error:
        return predictions, Seam(index, (overlap.start, overlap.stop), float("nan"), float("nan"), 0.0, 1.0,
                                 aligned=False, reason=str(error))
    return (apply_sim3(predictions, transform, image_size),
            Seam(index, (overlap.start, overlap.stop), residual, relative, inliers, transform.scale))


class TrackChain:
    """Points of frame (t=0, n=0) followed window by window: each window re-queries where the one before saw them on
    camera 0 at its first step, and a point no longer seen there stays invisible from then on."""

    def __init__(self, windows: TimeWindows, query_points: np.ndarray, track: Track) -> None:
        self.windows, self.track = windows, track
        self.queries = np.asarray(query_points, dtype=np.float32)
        self.alive = np.ones(len(self.queries), dtype=bool)
        self.previous: dict[str, np.ndarray] | None = None
        self.parts: dict[str, list[np.ndarray]] = {}

    def add(self, index: int, context: TrackContext) -> None:
        """Track window `index` on its context and keep the steps it is the first to predict."""
        start = self.windows.ranges[index][0]
        if index > 0:
            offset = start - self.windows.ranges[index - 1][0]
            self.alive = self.alive & (self.previous["vis"][offset, 0] >= CHAIN_VISIBILITY)
            self.queries = self.previous["track"][offset, 0].astype(np.float32)
        window_tracks = self.track(context, self.queries)
        window_tracks["vis"] = window_tracks["vis"] * self.alive[None, None, :]
        new = self.windows.new_steps(index)
        for name, array in window_tracks.items():
            self.parts.setdefault(name, []).append(array[new.start - start:new.stop - start])
        self.previous = window_tracks

    def arrays(self) -> dict[str, np.ndarray]:
        """track [T, N, K, 2], vis and conf [T, N, K] over every window."""
        return {name: np.concatenate(chunks) for name, chunks in self.parts.items()}


def with_frames(context: TrackContext, images: np.ndarray) -> TrackContext:
    """A window's context with its frames [W, N, 3, H, W] put back (the forward hands it back without them)."""
    return replace(context, frames=torch.from_numpy(np.ascontiguousarray(images)).reshape(1, -1, *images.shape[-3:]))


def run_windows(windows: TimeWindows, images: np.ndarray | StoredArray, valid_mask: np.ndarray, forward: Forward,
                store: PredictionStore, progress: Callable[[float, str], None] | None = None,
                query_points: np.ndarray | None = None, track: Track | None = None,
                keep_contexts: bool = False) -> WindowedPredictions:
    """Every window through `forward`, aligned window by window into the first one's frame and written to `store`.

    valid_mask [N, H, W] marks real pixels (padding never aligns). With `query_points` and `track`, points of frame
    (t=0, n=0) are tracked window by window (TrackChain). `keep_contexts` keeps every window's track context (to
    add tracks later); otherwise each is dropped after its window."""
    progress = progress or (lambda fraction, message: None)
    image_size = tuple(images.shape[-2:])
    writers: dict[str, object] = {}
    small: dict[str, list[np.ndarray]] = {}
    seams: list[Seam] = []
    contexts: list[TrackContext] = []
    shared: dict[str, np.ndarray] | None = None
    chain = TrackChain(windows, query_points, track) if track is not None and query_points is not None else None
    for index, (start, stop) in enumerate(windows.ranges):
        def window_progress(done: int, total: int, stage: str, index=index) -> None:
            progress((index + done / max(total, 1)) / windows.count,
                     f"window {index + 1} of {windows.count}: {stage}")

        window_images = np.ascontiguousarray(images[start:stop], dtype=np.float32)
        predictions, context = forward(window_images, window_progress)
        predictions = {name: array for name, array in predictions.items() if name != "images"}
        if index > 0:
            predictions, seam = aligned_to_earlier(windows, index, predictions, shared, valid_mask, image_size)
            seams.append(seam)
        new = windows.new_steps(index)
        fresh = slice(new.start - start, new.stop - start)
        for name, array in predictions.items():
            if is_per_pixel(array, image_size):
                if name not in writers:
                    writers[name] = store.create(name, (windows.steps,) + array.shape[1:], array.dtype)
                writers[name][new.start:new.stop] = array[fresh]
            else:
                small.setdefault(name, []).append(np.array(array[fresh]))
        if index + 1 < windows.count:
            next_start = windows.ranges[index + 1][0]
            shared = shared_part(predictions, range(next_start - start, stop - start))
        if chain is not None and context is not None:
            chain.add(index, with_frames(context, window_images))
        if keep_contexts and context is not None:
            contexts.append(context)
        del predictions, context, window_images
    stored = {name: store.array(name) for name in writers}
    in_memory = {name: np.concatenate(parts) for name, parts in small.items()}
    return WindowedPredictions({**stored, **in_memory}, seams, contexts, chain.arrays() if chain else {})


def track_windows(windows: TimeWindows, contexts: list[TrackContext], images: np.ndarray | StoredArray,
                  query_points: np.ndarray, track: Track) -> dict[str, np.ndarray]:
    """Tracks of a finished windowed run from its kept contexts (frames read back from `images`), chained as
    run_windows chains them."""
    chain = TrackChain(windows, query_points, track)
    for index, ((start, stop), context) in enumerate(zip(windows.ranges, contexts)):
        chain.add(index, with_frames(context, np.asarray(images[start:stop], dtype=np.float32)))
    return chain.arrays()


def seam_arrays(windows: TimeWindows, seams: list[Seam]) -> dict[str, np.ndarray]:
    """What the NPZ keeps of the windows: their step ranges and each seam's residuals (NaN where not aligned)."""
    return {"window_ranges": np.array(windows.ranges, dtype=np.int64).reshape(-1, 2),
            "seam_residual": np.array([seam.residual for seam in seams], dtype=np.float64),
            "seam_relative_residual": np.array([seam.relative_residual for seam in seams], dtype=np.float64)}
