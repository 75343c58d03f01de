"""Which predicted points to show (padding, depth edges, dynamic score and confidence filters, the point budget)
and their colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from vggt_mv.io.prediction_store import StoredArray
from vggt_mv.viz.depth_edges import DEFAULT_EDGE_THRESHOLD, camera_depth, depth_edge_mask

COLOR_MODES = ("rgb", "camera", "time", "confidence", "dynamic")
RGB_LEVELS = 16
# Static (blue) -> unsure (grey) -> moving (red): the spatial mask head's score in [0, 1].
DYNAMIC_COLORSCALE = [[0.0, "#3b4cc0"], [0.5, "#dddddd"], [1.0, "#b40426"]]
CAMERA_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass(frozen=True)
class PointFilters:
    """Which predicted pixels count as points: one set of rules for the scene, GLB, PLY and COLMAP alike."""

    conf_percentile: float = 25.0
    conf_threshold: float = 0.0
    depth_edges: bool = True
    edge_threshold: float = DEFAULT_EDGE_THRESHOLD
    max_dynamic: float = 1.0  # hide points whose dynamic score is above this (1 keeps them all)


NO_FILTERS = PointFilters(conf_percentile=0.0, depth_edges=False)
# Stepwise selection: the confidence percentile is taken over at most this many kept points per step (seeded).
PERCENTILE_SAMPLE_PER_STEP = 50_000


@dataclass
class PointSelection:
    """Points kept for display, with what each point is, and how many each filter removed."""

    xyz: np.ndarray
    rgb: np.ndarray
    confidence: np.ndarray
    time_index: np.ndarray
    camera_index: np.ndarray
    total_before_budget: int
    pixel_index: np.ndarray | None = None
    dynamic: np.ndarray | None = None
    removed_as_edges: int = 0
    removed_as_dynamic: int = 0

    def at_step(self, time_step: int) -> "PointSelection":
        """The points of one time step (counts stay those of the whole selection)."""
        members = self.time_index == time_step
        pick = (lambda values: None if values is None else values[members])
        return PointSelection(self.xyz[members], self.rgb[members], self.confidence[members],
                              self.time_index[members], self.camera_index[members], self.total_before_budget,
                              pick(self.pixel_index), pick(self.dynamic), self.removed_as_edges,
                              self.removed_as_dynamic)


def weighted_sample_without_replacement(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `count` items drawn with probability proportional to weight (Efraimidis-Spirakis, O(n))."""
    if count >= len(weights):
        return np.arange(len(weights))
    keys = np.log(rng.random(len(weights))) / np.maximum(weights, 1e-12)
    return np.argpartition(keys, -count)[-count:]


def patch_of_pixels(height: int, width: int, grid_hw: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """For each pixel row and column, the patch row and column holding it (nearest: a patch covers its pixels)."""
    return np.arange(height) * grid_hw[0] // height, np.arange(width) * grid_hw[1] // width


def pixel_dynamic_scores(predictions: dict[str, np.ndarray], time_steps: list[int]) -> np.ndarray:
    """The per-patch dynamic mask [S, N, h, w] spread to pixels [S, N, H, W]; zeros when there is no mask."""
    height, width = predictions["images"].shape[-2:]
    if "dynamic_mask" not in predictions:
        return np.zeros(predictions["images"][time_steps].shape[:2] + (height, width), dtype=np.float32)
    mask = np.asarray(predictions["dynamic_mask"][time_steps], dtype=np.float32)
    rows, cols = patch_of_pixels(height, width, mask.shape[-2:])
    return mask[..., rows[:, None], cols[None, :]]


def point_dynamic_scores(predictions: dict[str, np.ndarray], time_index: np.ndarray, camera_index: np.ndarray,
                         pixel_index: np.ndarray) -> np.ndarray:
    """The dynamic score of individual points (by time step, camera and flat pixel index), as pixel_dynamic_scores
    gives it, without spreading the whole mask."""
    height, width = predictions["images"].shape[-2:]
    if "dynamic_mask" not in predictions:
        return np.zeros(len(time_index), dtype=np.float32)
    mask = np.asarray(predictions["dynamic_mask"])
    rows, cols = patch_of_pixels(height, width, mask.shape[-2:])
    return mask[time_index, camera_index, rows[pixel_index // width], cols[pixel_index % width]].astype(np.float32)


def _of_steps(array: np.ndarray, time_steps: list[int]) -> np.ndarray:
    """array[time_steps], as a view (no copy) when the steps are consecutive, as they are for the whole scene."""
    if len(time_steps) and list(time_steps) == list(range(time_steps[0], time_steps[0] + len(time_steps))):
        return array[time_steps[0]:time_steps[0] + len(time_steps)]
    return array[list(time_steps)]


def _sample_within_budget(kept: np.ndarray, weights: np.ndarray, pixels_per_step: int, num_steps: int,
                          point_budget: int, split_budget: bool, rng: np.random.Generator) -> np.ndarray:
    """Indices (into the sorted flat indices `kept`) meeting the budget: over everything, or `budget // steps`
    within each time step (a step's pixels are one contiguous block of flat indices)."""
    if not split_budget:
        return weighted_sample_without_replacement(weights, point_budget, rng)
    quota = max(1, point_budget // max(num_steps, 1))
    bounds = np.searchsorted(kept, np.arange(num_steps + 1) * pixels_per_step)
    chosen = [start + weighted_sample_without_replacement(weights[start:stop], quota, rng)
              for start, stop in zip(bounds[:-1], bounds[1:])]
    return np.concatenate(chosen) if chosen else np.zeros(0, dtype=np.int64)


def select_points(predictions: dict[str, np.ndarray], time_steps: list[int], filters: PointFilters = NO_FILTERS,
                  point_budget: int = 200_000, seed: int = 0, split_budget: bool = False) -> PointSelection:
    """Drop padding and non-finite points, depth-edge (flying) and too-dynamic points, filter by confidence
    (percentile over what is left, then absolute), then meet the budget by confidence-weighted sampling (with
    `split_budget`, an equal share per time step, so every step of the player is equally dense).

    A long run's stored predictions (vggt_mv.io.prediction_store) are read one time step at a time
    (select_points_by_step), so the selection never holds more than a step's pixels."""
    if len(time_steps) > 1 and isinstance(predictions["world_points"], StoredArray):
        return select_points_by_step(predictions, time_steps, filters, point_budget, seed, split_budget)
    points = _of_steps(predictions["world_points"], time_steps)
    confidence = _of_steps(predictions["world_points_conf"], time_steps)
    steps, cameras, height, width = confidence.shape
    xyz = points.reshape(-1, 3)
    conf = confidence.reshape(-1)
    valid = _of_steps(predictions["valid_mask"], time_steps) if "valid_mask" in predictions else None
    keep = np.isfinite(conf)
    keep &= np.isfinite(points).all(axis=-1).reshape(-1)
    if valid is not None:
        keep &= valid.reshape(-1)
    removed_as_edges = removed_as_dynamic = 0
    if filters.depth_edges:
        edges = depth_edge_mask(camera_depth(points, _of_steps(predictions["extrinsic"], time_steps)),
                                filters.edge_threshold, valid).reshape(-1)
        removed_as_edges = int(np.count_nonzero(keep & edges))
        keep &= ~edges
    if filters.max_dynamic < 1.0:
        too_dynamic = ~(pixel_dynamic_scores(predictions, time_steps).reshape(-1) <= filters.max_dynamic)
        removed_as_dynamic = int(np.count_nonzero(keep & too_dynamic))
        keep &= ~too_dynamic
    if filters.conf_percentile > 0 and keep.any():
        keep &= conf >= np.percentile(conf[keep], filters.conf_percentile)
    if filters.conf_threshold > 0:
        keep &= conf >= filters.conf_threshold
    kept = np.flatnonzero(keep)
    chosen = kept[_sample_within_budget(kept, conf[kept], cameras * height * width, steps, point_budget,
                                        split_budget, np.random.default_rng(seed))]
    chosen.sort()
    block, pixel_index = np.divmod(chosen, height * width)
    step_position, camera_index = np.divmod(block, cameras)
    time_index = np.asarray(time_steps, dtype=np.int64)[step_position]
    rows, cols = np.divmod(pixel_index, width)
    rgb = predictions["images"][time_index, camera_index, :, rows, cols]
    return PointSelection(xyz[chosen].astype(np.float32), rgb.astype(np.float32), conf[chosen], time_index,
                          camera_index, len(kept), pixel_index,
                          point_dynamic_scores(predictions, time_index, camera_index, pixel_index),
                          removed_as_edges, removed_as_dynamic)


@dataclass
class StepCandidates:
    """One time step's points that pass the mask filters (padding, finite, depth edges, dynamic score)."""

    xyz: np.ndarray
    confidence: np.ndarray
    pixel: np.ndarray  # flat index over [N, H, W] of each point
    removed_as_edges: int
    removed_as_dynamic: int


def step_candidates(predictions: dict[str, np.ndarray], time_step: int, filters: PointFilters) -> StepCandidates:
    """What select_points keeps of one time step before the confidence filters, read on its own."""
    points = np.asarray(predictions["world_points"][time_step])
    confidence = np.asarray(predictions["world_points_conf"][time_step])
    keep = np.isfinite(confidence) & np.isfinite(points).all(axis=-1)
    valid = np.asarray(predictions["valid_mask"][time_step]) if "valid_mask" in predictions else None
    if valid is not None:
        keep &= valid
    removed_as_edges = removed_as_dynamic = 0
    if filters.depth_edges:
        edges = depth_edge_mask(camera_depth(points, np.asarray(predictions["extrinsic"][time_step])),
                                filters.edge_threshold, valid)
        removed_as_edges = int(np.count_nonzero(keep & edges))
        keep &= ~edges
    if filters.max_dynamic < 1.0:
        too_dynamic = ~(pixel_dynamic_scores(predictions, [time_step])[0] <= filters.max_dynamic)
        removed_as_dynamic = int(np.count_nonzero(keep & too_dynamic))
        keep &= ~too_dynamic
    pixel = np.flatnonzero(keep)
    return StepCandidates(points.reshape(-1, 3)[pixel], confidence.reshape(-1)[pixel], pixel, removed_as_edges,
                          removed_as_dynamic)


def stepwise_percentile(predictions: dict[str, np.ndarray], time_steps: list[int], filters: PointFilters,
                        rng: np.random.Generator) -> float | None:
    """The confidence percentile over every step's candidates, from a seeded sample of each step (None: no filter)."""
    if filters.conf_percentile <= 0:
        return None
    samples = []
    for time_step in time_steps:
        confidence = step_candidates(predictions, time_step, filters).confidence
        if len(confidence) > PERCENTILE_SAMPLE_PER_STEP:
            confidence = rng.choice(confidence, PERCENTILE_SAMPLE_PER_STEP, replace=False)
        samples.append(confidence)
    values = np.concatenate(samples) if samples else np.zeros(0, dtype=np.float32)
    return float(np.percentile(values, filters.conf_percentile)) if len(values) else None


def best_keys(chosen: list[tuple], point_budget: int) -> list[tuple]:
    """Of per-step candidates (step, xyz, confidence, pixel, key), the `point_budget` with the largest keys."""
    all_keys = np.concatenate([keys for *_, keys in chosen]) if chosen else np.zeros(0)
    if len(all_keys) <= point_budget:
        return chosen
    cut = np.partition(all_keys, len(all_keys) - point_budget)[len(all_keys) - point_budget]
    return [(step, xyz[keys >= cut], conf[keys >= cut], pixel[keys >= cut], keys[keys >= cut])
            for step, xyz, conf, pixel, keys in chosen]


def select_points_by_step(predictions: dict[str, np.ndarray], time_steps: list[int], filters: PointFilters,
                          point_budget: int, seed: int, split_budget: bool) -> PointSelection:
    """select_points one time step at a time: an equal quota per step with `split_budget`, else the weighted
    sample's keys (log u / weight, the largest win) merged across steps, so the result is the same kind of sample."""
    rng = np.random.default_rng(seed)
    percentile = stepwise_percentile(predictions, time_steps, filters, rng)
    height, width = predictions["images"].shape[-2:]
    quota = max(1, point_budget // max(len(time_steps), 1)) if split_budget else point_budget
    chosen, kept_total, edges, dynamic = [], 0, 0, 0
    for time_step in time_steps:
        step = step_candidates(predictions, time_step, filters)
        edges, dynamic = edges + step.removed_as_edges, dynamic + step.removed_as_dynamic
        passes = np.ones(len(step.confidence), dtype=bool)
        if percentile is not None:
            passes &= step.confidence >= percentile
        if filters.conf_threshold > 0:
            passes &= step.confidence >= filters.conf_threshold
        kept_total += int(passes.sum())
        confidence = step.confidence[passes]
        keys = np.log(rng.random(len(confidence))) / np.maximum(confidence, 1e-12)
        best = np.argpartition(keys, -quota)[-quota:] if len(keys) > quota else np.arange(len(keys))
        chosen.append((time_step, step.xyz[passes][best], confidence[best], step.pixel[passes][best], keys[best]))
        if not split_budget and sum(len(keys) for *_, keys in chosen) > 2 * point_budget:
            chosen = best_keys(chosen, point_budget)  # what is held stays within twice the budget
    if not split_budget:
        chosen = best_keys(chosen, point_budget)
    time_index = np.concatenate([np.full(len(pixel), t, dtype=np.int64) for t, _, _, pixel, _ in chosen])
    flat_pixel = np.concatenate([pixel for *_, pixel, _ in chosen]).astype(np.int64)
    camera_index, pixel_index = np.divmod(flat_pixel, height * width)
    rows, cols = np.divmod(pixel_index, width)
    rgb = np.concatenate([np.asarray(predictions["images"][t])[camera_index[time_index == t], :,
                                                               rows[time_index == t], cols[time_index == t]]
                          for t, *_ in chosen]) if chosen else np.zeros((0, 3), dtype=np.float32)
    return PointSelection(np.concatenate([xyz for _, xyz, *_ in chosen]).astype(np.float32), rgb.astype(np.float32),
                          np.concatenate([conf for _, _, conf, *_ in chosen]), time_index, camera_index, kept_total,
                          pixel_index, point_dynamic_scores(predictions, time_index, camera_index, pixel_index),
                          edges, dynamic)


def hex_colors(rgb: np.ndarray) -> list[str]:
    """[K, 3] floats in [0, 1] -> '#rrggbb' strings (for short lists such as legends)."""
    values = np.clip(np.round(rgb * 255), 0, 255).astype(np.uint32)
    packed = (values[:, 0] << 16) | (values[:, 1] << 8) | values[:, 2]
    return [f"#{value:06x}" for value in packed.tolist()]


def quantized_rgb_colorscale(levels: int = RGB_LEVELS) -> list[list]:
    """A colour scale whose i-th stop is the i-th colour of a levels^3 RGB cube."""
    values = (np.arange(levels) * 255 // (levels - 1)).tolist()
    count = levels ** 3 - 1
    return [[index / count, f"rgb({values[index // (levels * levels)]},{values[(index // levels) % levels]},"
                            f"{values[index % levels]})"] for index in range(levels ** 3)]


def quantized_rgb_index(rgb: np.ndarray, levels: int = RGB_LEVELS) -> np.ndarray:
    """[K, 3] in [0, 1] -> float32 index into quantized_rgb_colorscale (numbers validate and serialise fast)."""
    quantized = np.clip(np.round(rgb * (levels - 1)), 0, levels - 1).astype(np.int32)
    return (quantized[:, 0] * levels * levels + quantized[:, 1] * levels + quantized[:, 2]).astype(np.float32)


def point_colors(selection: PointSelection, mode: str, num_time_steps: int) -> dict:
    """Marker settings for a colour mode; always a numeric colour array with a colour scale (compact, fast)."""
    if mode not in COLOR_MODES:
        raise ValueError(f"colour mode must be one of {COLOR_MODES}")
    if mode == "rgb":
        return {"color": quantized_rgb_index(selection.rgb), "colorscale": quantized_rgb_colorscale(),
                "cmin": 0, "cmax": RGB_LEVELS ** 3 - 1, "showscale": False}
    if mode == "camera":
        cameras = len(CAMERA_PALETTE)
        scale = [[i / (cameras - 1), color] for i, color in enumerate(CAMERA_PALETTE)]
        return {"color": (selection.camera_index % cameras).astype(np.float32), "colorscale": scale, "cmin": 0,
                "cmax": cameras - 1, "showscale": False}
    if mode == "time":
        return {"color": selection.time_index.astype(np.float32), "colorscale": "Viridis", "cmin": 0,
                "cmax": max(num_time_steps - 1, 1), "colorbar": {"title": {"text": "time step"}, "thickness": 12}}
    if mode == "dynamic":
        return {"color": selection.dynamic.astype(np.float32), "colorscale": DYNAMIC_COLORSCALE, "cmin": 0, "cmax": 1,
                "colorbar": {"title": {"text": "dynamic score"}, "thickness": 12}}
    log_confidence = np.log(np.maximum(selection.confidence, 1e-6)).astype(np.float32)
    low, high = (float(log_confidence.min()), float(log_confidence.max())) if len(log_confidence) else (0.0, 1.0)
    return {"color": log_confidence, "colorscale": "Inferno", "cmin": low, "cmax": max(high, low + 1e-6),
            "colorbar": {"title": {"text": "log confidence"}, "thickness": 12}}
