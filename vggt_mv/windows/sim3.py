"""Similarity transforms between the world frames of overlapping windows, estimated robustly from point maps.

Each window's predictions live in its own world frame (its first camera at identity, its own scale). The time
steps two windows share predict the same pixels twice, so their point maps are correspondences: a similarity
x -> s R x + t fitted to them (confidence-weighted, robust to the pixels where the windows disagree) carries one
window into the other's frame. Cameras follow vggt_mv.geometry: OpenCV extrinsics [R | t] map world to camera.
All estimation is numpy float64.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# Covariance singular values below this fraction of the largest mean the points span a line (or a point) at most.
DEGENERATE_RATIO = 1e-9
# Points whose spread is this small next to their distance from the origin are all the same point.
COINCIDENT_RATIO = 1e-12
# Robust residual scale never drops below this fraction of the target's spread, so exact data stays finite.
RESIDUAL_SCALE_FLOOR = 1e-9
# Cauchy kernel width, in robust residual scales (median distances): 1 / (1 + (r / (c * scale))^2).
CAUCHY_WIDTH = 2.0
# A point is an inlier when its distance is within this many robust residual scales (median distances).
INLIER_THRESHOLD = 3.0
# The refit stops once rotation (radians), log scale and translation (in spreads) change less than this.
CONVERGENCE_TOLERANCE = 1e-9
# Rotations handed to Sim3 must be orthonormal with det +1 to this tolerance (float32 matrices included).
ROTATION_TOLERANCE = 1e-4
SUBSAMPLE_SEED = 0
# Least-median start: how many 4-point samples are tried, and on how many pairs each is scored.
LMEDS_SAMPLES = 200
LMEDS_SCORED_POINTS = 2_000


class AlignmentError(ValueError):
    """Correspondences no similarity can be fitted to; the message says why, in one line."""


@dataclass(frozen=True, eq=False)  # eq=False: generated == and hash would compare numpy arrays, which raises
class Sim3:
    """x -> scale * rotation @ x + translation: one window's world frame expressed in another's."""

    scale: float
    rotation: np.ndarray
    translation: np.ndarray

    def __post_init__(self) -> None:
        """Store float64 read-only copies so a frozen transform really cannot change; refuse non-similarities."""
        scale = float(self.scale)
        rotation = np.array(self.rotation, dtype=np.float64)
        translation = np.array(self.translation, dtype=np.float64)
        if not np.isfinite(scale) or scale <= 0:
            raise ValueError(f"Sim3 scale must be finite and positive, got {scale}")
        if rotation.shape != (3, 3) or not np.isfinite(rotation).all():
            raise ValueError(f"Sim3 rotation must be a finite 3x3 matrix, got shape {rotation.shape}")
        if not _is_rotation(rotation):
            raise ValueError("Sim3 rotation must be orthonormal with determinant +1")
        if translation.shape != (3,) or not np.isfinite(translation).all():
            raise ValueError(f"Sim3 translation must be a finite 3-vector, got shape {translation.shape}")
        rotation.setflags(write=False)
        translation.setflags(write=False)
        object.__setattr__(self, "scale", scale)
        object.__setattr__(self, "rotation", rotation)
        object.__setattr__(self, "translation", translation)

    @classmethod
    def identity(cls) -> Sim3:
        """The transform of the first window, whose frame is the world frame."""
        return cls(1.0, np.eye(3), np.zeros(3))

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Points [..., 3] -> transformed [..., 3] (float32 stays float32); non-finite points come out NaN."""
        points = np.asarray(points)
        _require_last_axis(points, 3, "points")
        finite = np.isfinite(points).all(axis=-1, keepdims=True)
        values = np.where(finite, points, 0.0).astype(np.float64)
        moved = self.scale * values @ self.rotation.T + self.translation
        moved = np.where(finite, moved, np.nan)
        return moved.astype(np.float32 if points.dtype == np.float32 else np.float64)

    def compose(self, other: Sim3) -> Sim3:
        """self after other: chaining window-to-window transforms into window-to-world."""
        return Sim3(self.scale * other.scale, self.rotation @ other.rotation,
                    self.scale * self.rotation @ other.translation + self.translation)

    def inverse(self) -> Sim3:
        """The transform back: target frame into source frame."""
        rotation = self.rotation.T
        return Sim3(1.0 / self.scale, rotation, -(rotation @ self.translation) / self.scale)

    def matrix(self) -> np.ndarray:
        """Homogeneous float64 4x4 [[s R, t], [0, 1]], for exporters and viewers that take matrices."""
        matrix = np.eye(4)
        matrix[:3, :3] = self.scale * self.rotation
        matrix[:3, 3] = self.translation
        return matrix


@dataclass(frozen=True, eq=False)
class AlignmentResult:
    """A fitted seam between two windows and how well the overlap agrees under it."""

    transform: Sim3
    residual: float  # confidence-weighted RMS distance over inliers after alignment, in target units
    relative_residual: float  # residual / the inliers' weighted RMS spread in the target: a fraction of scene size
    inlier_fraction: float  # share of the fitted points within the inlier threshold
    points: int  # usable correspondences (finite, weight > 0) before any subsampling


def weighted_umeyama(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> Sim3:
    """Least-squares similarity taking source [M, 3] onto target [M, 3] (Umeyama 1991), each point weighted."""
    source, target, weights = _usable_correspondences(source, target, weights)
    return _fit_similarity(source, target, weights)


def robust_sim3(source: np.ndarray, target: np.ndarray, weights: np.ndarray, iterations: int = 10,
                max_points: int = 50_000) -> AlignmentResult:
    """Similarity source -> target that ignores gross disagreements: Umeyama refitted with Cauchy-reweighted points.

    Non-finite points and weights <= 0 are dropped; above `max_points` usable points a fixed-seed subset is fitted.
    """
    if iterations < 0:
        raise ValueError(f"iterations must be >= 0, got {iterations}")
    if max_points < 3:
        raise ValueError(f"max_points must be >= 3, got {max_points}")
    source, target, weights = _usable_correspondences(source, target, weights)
    usable = len(weights)
    source, target, weights = _subsample(source, target, weights, max_points)
    spread = _weighted_spread(target, weights)
    transform = _least_median_start(source, target, weights)
    for _ in range(iterations):
        distances = _distances(transform, source, target)
        kernel = _cauchy(distances, CAUCHY_WIDTH * _robust_scale(distances, weights, spread))
        refit = _fit_similarity(source, target, weights * kernel)
        converged = _change(transform, refit, spread) < CONVERGENCE_TOLERANCE
        transform = refit
        if converged:
            break
    distances = _distances(transform, source, target)
    inliers = distances <= INLIER_THRESHOLD * _robust_scale(distances, weights, spread)
    transform = _refit_on_inliers(transform, source[inliers], target[inliers], weights[inliers])
    return _result(transform, source[inliers], target[inliers], weights[inliers], inliers.mean(), usable)


def transform_extrinsics(extrinsic: np.ndarray, sim3: Sim3) -> np.ndarray:
    """Camera-from-world [..., 3, 4] after the world moves by sim3: same images, camera-space depths times scale."""
    extrinsic = np.asarray(extrinsic)
    if extrinsic.shape[-2:] != (3, 4):
        raise ValueError(f"expected extrinsics [..., 3, 4], got shape {extrinsic.shape}")
    values = extrinsic.astype(np.float64)
    with np.errstate(invalid="ignore", over="ignore"):
        rotation = values[..., :3] @ sim3.rotation.T
        translation = sim3.scale * values[..., 3] - rotation @ sim3.translation
    moved = np.concatenate([rotation, translation[..., None]], axis=-1)
    return moved.astype(_float_dtype(extrinsic))


def transform_depth(depth: np.ndarray, sim3: Sim3) -> np.ndarray:
    """Depth maps follow the world's scale (rotation and translation do not change a camera's depths)."""
    depth = np.asarray(depth)
    with np.errstate(invalid="ignore", over="ignore"):
        return (depth.astype(np.float64) * sim3.scale).astype(_float_dtype(depth))


def _usable_correspondences(source, target, weights) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Flattened float64 (source [K, 3], target [K, 3], weights [K]) of the finite, positively weighted pairs."""
    source = np.asarray(source, dtype=np.float64)
    target = np.asarray(target, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    _require_last_axis(source, 3, "source points")
    if target.shape != source.shape:
        raise ValueError(f"source and target points differ in shape: {source.shape} vs {target.shape}")
    if weights.shape != source.shape[:-1]:
        raise ValueError(f"weights must have shape {source.shape[:-1]}, got {weights.shape}")
    source, target, weights = source.reshape(-1, 3), target.reshape(-1, 3), weights.reshape(-1)
    with np.errstate(invalid="ignore"):
        usable = np.isfinite(source).all(-1) & np.isfinite(target).all(-1) & np.isfinite(weights) & (weights > 0)
    count = int(usable.sum())
    if count < 3:
        raise AlignmentError(f"cannot align: {count} usable point pairs (finite, weight > 0) of {len(weights)}, "
                             "need at least 3")
    return source[usable], target[usable], weights[usable]


def _fit_similarity(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> Sim3:
    """Weighted Umeyama on clean float64 input, refusing points that span less than a plane."""
    weights = weights / weights.sum()
    source_mean = weights @ source
    target_mean = weights @ target
    source_centred = source - source_mean
    target_centred = target - target_mean
    _require_spread(source_centred, weights, source_mean, "source")
    _require_spread(target_centred, weights, target_mean, "target")
    covariance = (target_centred * weights[:, None]).T @ source_centred
    left, singular, right = np.linalg.svd(covariance)
    signs = np.ones(3)
    if np.linalg.det(left) * np.linalg.det(right) < 0:
        signs[2] = -1.0  # the best orthogonal matrix would be a reflection: flip the weakest axis instead
    rotation = (left * signs) @ right
    source_variance = float(weights @ (source_centred ** 2).sum(-1))
    scale = float(singular @ signs) / source_variance
    if not np.isfinite(scale) or scale <= 0:
        raise AlignmentError("cannot align: source and target points do not correspond (no positive scale fits)")
    return Sim3(scale, rotation, target_mean - scale * rotation @ source_mean)


def _require_spread(centred: np.ndarray, weights: np.ndarray, mean: np.ndarray, name: str) -> None:
    """Raise AlignmentError when the weighted points are all one point or all on one line."""
    singular = np.linalg.svd((centred * weights[:, None]).T @ centred, compute_uv=False)
    if singular[0] <= COINCIDENT_RATIO * float(mean @ mean) or singular[0] <= np.finfo(np.float64).tiny:
        raise AlignmentError(f"cannot align: the {name} points are all at the same place")
    if singular[1] <= DEGENERATE_RATIO * singular[0]:
        raise AlignmentError(f"cannot align: the {name} points lie on a line, rotation about it is undetermined")


def _subsample(source: np.ndarray, target: np.ndarray, weights: np.ndarray,
               max_points: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """At most max_points pairs, the same ones on every call, so a rerun gives the same seam."""
    if len(weights) <= max_points:
        return source, target, weights
    chosen = np.sort(np.random.default_rng(SUBSAMPLE_SEED).choice(len(weights), max_points, replace=False))
    return source[chosen], target[chosen], weights[chosen]


def _least_median_start(source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> Sim3:
    """Where the reweighting starts: of the plain fit and fits to random 4-point samples, the one with the least
    median distance (LMedS). With outliers on both sides the plain fit alone can shrink towards a point, and the
    reweighting then cannot tell inliers from outliers; the least median survives up to half the pairs wrong."""
    rng = np.random.default_rng(SUBSAMPLE_SEED)
    scored = rng.choice(len(weights), size=min(len(weights), LMEDS_SCORED_POINTS), replace=False)
    candidates = [_fit_similarity(source, target, weights)]
    probabilities = weights / weights.sum()
    for _ in range(LMEDS_SAMPLES):
        sample = rng.choice(len(weights), size=4, replace=False, p=probabilities)
        try:
            candidates.append(_fit_similarity(source[sample], target[sample], np.ones(4)))
        except AlignmentError:
            continue
    medians = [np.median(_distances(candidate, source[scored], target[scored])) for candidate in candidates]
    return candidates[int(np.argmin(medians))]


def _refit_on_inliers(transform: Sim3, source: np.ndarray, target: np.ndarray, weights: np.ndarray) -> Sim3:
    """Plain confidence-weighted least squares on the inliers; keep the robust fit if they are too few or flat."""
    try:
        return _fit_similarity(source, target, weights)
    except AlignmentError:
        return transform


def _result(transform: Sim3, source: np.ndarray, target: np.ndarray, weights: np.ndarray,
            inlier_fraction: float, usable: int) -> AlignmentResult:
    """Report the seam error over the inliers in target units and as a fraction of the scene's size."""
    if len(weights) == 0:
        return AlignmentResult(transform, float("nan"), float("nan"), 0.0, usable)
    distances = _distances(transform, source, target)
    residual = float(np.sqrt(weights @ distances ** 2 / weights.sum()))
    spread = _weighted_spread(target, weights)
    relative = residual / spread if spread > 0 else float("inf")
    return AlignmentResult(transform, residual, relative, float(inlier_fraction), usable)


def _distances(transform: Sim3, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Euclidean distance of each aligned source point from its target, in target units."""
    return np.linalg.norm(transform.apply(source) - target, axis=-1)


def _weighted_spread(points: np.ndarray, weights: np.ndarray) -> float:
    """Weighted RMS distance of points from their weighted centroid: the scene's size, for relative errors."""
    weights = weights / weights.sum()
    centred = points - weights @ points
    return float(np.sqrt(weights @ (centred ** 2).sum(-1)))


def _robust_scale(distances: np.ndarray, weights: np.ndarray, spread: float) -> float:
    """Weighted median distance, floored so exact data does not divide by zero."""
    order = np.argsort(distances)
    cumulative = np.cumsum(weights[order])
    median = distances[order][np.searchsorted(cumulative, 0.5 * cumulative[-1])]
    return max(float(median), RESIDUAL_SCALE_FLOOR * spread, np.finfo(np.float64).tiny)


def _cauchy(distances: np.ndarray, width: float) -> np.ndarray:
    """Cauchy weights: near 1 for small residuals, falling as 1/r^2 so gross outliers hardly pull."""
    return 1.0 / (1.0 + (distances / width) ** 2)


def _change(before: Sim3, after: Sim3, spread: float) -> float:
    """How far one refit moved the transform: rotation angle, log scale ratio, translation in scene spreads."""
    angle = _rotation_angle(after.rotation @ before.rotation.T)
    scale = abs(float(np.log(after.scale / before.scale)))
    shift = float(np.linalg.norm(after.translation - before.translation)) / max(spread, np.finfo(np.float64).tiny)
    return max(angle, scale, shift)


def _rotation_angle(rotation: np.ndarray) -> float:
    """Angle of a rotation in radians, accurate near zero too (arccos of the trace alone is not)."""
    sine = 0.5 * np.linalg.norm([rotation[2, 1] - rotation[1, 2], rotation[0, 2] - rotation[2, 0],
                                 rotation[1, 0] - rotation[0, 1]])
    return float(np.arctan2(sine, (np.trace(rotation) - 1.0) / 2.0))


def _is_rotation(matrix: np.ndarray) -> bool:
    """Orthonormal with determinant +1, to a tolerance float32 matrices meet."""
    orthonormal = np.allclose(matrix @ matrix.T, np.eye(3), atol=ROTATION_TOLERANCE)
    return orthonormal and abs(np.linalg.det(matrix) - 1.0) <= ROTATION_TOLERANCE


def _require_last_axis(array: np.ndarray, size: int, name: str) -> None:
    """Refuse arrays whose last axis is not the coordinate axis."""
    if array.ndim == 0 or array.shape[-1] != size:
        raise ValueError(f"{name} must have shape [..., {size}], got {array.shape}")


def _float_dtype(array: np.ndarray) -> np.dtype:
    """The input's float dtype, or float64 for integer input."""
    return array.dtype if np.issubdtype(array.dtype, np.floating) else np.dtype(np.float64)
