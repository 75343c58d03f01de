"""Which predicted points to show: confidence filters, the point budget, and their colours."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

COLOR_MODES = ("rgb", "camera", "time", "confidence")
RGB_LEVELS = 16
CAMERA_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#17becf")


@dataclass
class PointSelection:
    """Points kept for display, with what each point is."""

    xyz: np.ndarray
    rgb: np.ndarray
    confidence: np.ndarray
    time_index: np.ndarray
    camera_index: np.ndarray
    total_before_budget: int
    pixel_index: np.ndarray | None = None


def weighted_sample_without_replacement(weights: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Indices of `count` items drawn with probability proportional to weight (Efraimidis-Spirakis, O(n))."""
    if count >= len(weights):
        return np.arange(len(weights))
    keys = np.log(rng.random(len(weights))) / np.maximum(weights, 1e-12)
    return np.argpartition(keys, -count)[-count:]


def select_points(predictions: dict[str, np.ndarray], time_steps: list[int], conf_percentile: float = 0.0,
                  conf_threshold: float = 0.0, point_budget: int = 200_000, seed: int = 0,
                  source: str = "world_points") -> PointSelection:
    """Drop padding and non-finite points, filter by confidence (percentile over what is left, then absolute),
    then meet the budget by sampling."""
    points = predictions[source][time_steps]
    confidence = predictions[f"{source}_conf" if source == "world_points" else "depth_conf"][time_steps]
    images = predictions["images"][time_steps]
    steps, cameras, height, width = confidence.shape
    time_index = np.broadcast_to(np.array(time_steps)[:, None, None, None], confidence.shape).reshape(-1)
    camera_index = np.broadcast_to(np.arange(cameras)[None, :, None, None], confidence.shape).reshape(-1)
    pixel_index = np.broadcast_to(np.arange(height * width).reshape(height, width), confidence.shape).reshape(-1)
    xyz = points.reshape(-1, 3)
    conf = confidence.reshape(-1)
    rgb = np.moveaxis(images, 2, -1).reshape(-1, 3)
    keep = np.isfinite(xyz).all(axis=1) & np.isfinite(conf)
    if "valid_mask" in predictions:
        keep &= predictions["valid_mask"][time_steps].reshape(-1)
    if conf_percentile > 0 and keep.any():
        keep &= conf >= np.percentile(conf[keep], conf_percentile)
    if conf_threshold > 0:
        keep &= conf >= conf_threshold
    kept = np.flatnonzero(keep)
    total = len(kept)
    chosen = kept[weighted_sample_without_replacement(conf[kept], point_budget, np.random.default_rng(seed))]
    return PointSelection(xyz[chosen].astype(np.float32), rgb[chosen].astype(np.float32), conf[chosen],
                          time_index[chosen], camera_index[chosen], total, pixel_index[chosen])


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
    return {"color": np.log(np.maximum(selection.confidence, 1e-6)).astype(np.float32), "colorscale": "Inferno",
            "colorbar": {"title": {"text": "log confidence"}, "thickness": 12}}
