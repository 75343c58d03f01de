"""Per-camera strips at one time step: input, depth, confidence and dynamic score as images a person can compare."""

from __future__ import annotations

import numpy as np

from vggt_mv.viz.points import DYNAMIC_COLORSCALE, pixel_dynamic_scores
from vggt_mv.viz.tracks import HALO_WIDTH, STRIP_MARK_RADIUS, draw_track_marks, mark_frame, track_colors

# A perceptually ordered ramp (dark blue -> teal -> yellow), sampled at 5 stops.
PADDING_COLORS = np.array([[205, 205, 205], [160, 160, 160]], dtype=np.uint8)
PADDING_STRIPE_WIDTH = 6
RAMP = np.array([[0.18, 0.0, 0.33], [0.23, 0.32, 0.55], [0.13, 0.57, 0.55], [0.37, 0.79, 0.38], [0.99, 0.91, 0.15]])
# The 3D view's 'dynamic' colours (static blue -> grey -> moving red), on the fixed range 0..1.
DYNAMIC_RAMP = np.array([[int(color[i:i + 2], 16) / 255 for i in (1, 3, 5)] for _, color in DYNAMIC_COLORSCALE])


def colorize(values: np.ndarray, low: float | None = None, high: float | None = None,
             ramp: np.ndarray = RAMP) -> np.ndarray:
    """[H, W] scalars -> uint8 [H, W, 3] through the ramp, robustly normalised (2nd..98th percentile) unless
    low and high are given."""
    finite = values[np.isfinite(values)]
    low = float(np.percentile(finite, 2)) if low is None and finite.size else (low or 0.0)
    high = float(np.percentile(finite, 98)) if high is None and finite.size else (1.0 if high is None else high)
    scaled = np.clip((values - low) / max(high - low, 1e-9), 0, 1) * (len(ramp) - 1)
    scaled = np.nan_to_num(scaled)
    lower = np.floor(scaled).astype(int).clip(0, len(ramp) - 2)
    fraction = (scaled - lower)[..., None]
    return ((ramp[lower] * (1 - fraction) + ramp[lower + 1] * fraction) * 255).astype(np.uint8)


def padding_pattern(height: int, width: int) -> np.ndarray:
    """uint8 [H, W, 3] grey diagonal stripes: what padding looks like, so no one reads it as a white wall."""
    rows, cols = np.mgrid[0:height, 0:width]
    stripes = ((rows + cols) // PADDING_STRIPE_WIDTH) % 2
    return PADDING_COLORS[stripes]


def show_padding(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """The image with its padded pixels (valid False) drawn as stripes."""
    if valid.all():
        return image
    pattern = padding_pattern(*valid.shape)
    return np.where(valid[..., None], image, pattern)


STRIP_PANELS = ("input", "depth", "confidence", "dynamic")


def reference_frame(predictions: dict[str, np.ndarray]) -> np.ndarray:
    """uint8 [H, W, 3]: camera 0's first processed frame at the model's pixel size (a click's pixel is a query
    point's pixel), padding striped, each query point marked where it was clicked, in its track's colour and never
    faded (the strip shows what the model made of it there)."""
    image = (np.moveaxis(predictions["images"][0, 0], 0, -1) * 255).clip(0, 255).astype(np.uint8)
    if "valid_mask" in predictions:
        image = show_padding(image, predictions["valid_mask"][0, 0])
    if "query_points" not in predictions:
        return image
    points = predictions["query_points"]
    return draw_track_marks(image, points, None, track_colors(len(points)), STRIP_MARK_RADIUS, halo=HALO_WIDTH)


def camera_rows(predictions: dict[str, np.ndarray], time_step: int) -> list[np.ndarray]:
    """One uint8 image per camera, [input | depth | confidence | dynamic] at `time_step`, padding striped; the
    dynamic score is the per-patch mask at its fixed 0..1 range, each patch a block of its pixels; tracked points
    are dots on the input, faded where the track head says they are hidden (vis)."""
    dynamic = pixel_dynamic_scores(predictions, [time_step])[0]
    rows = []
    for camera in range(predictions["depth"].shape[1]):
        height, width = predictions["depth"].shape[2:4]
        valid = (predictions["valid_mask"][time_step, camera] if "valid_mask" in predictions
                 else np.ones((height, width), dtype=bool))
        image = (np.moveaxis(predictions["images"][time_step, camera], 0, -1) * 255).clip(0, 255).astype(np.uint8)
        depth = colorize(np.where(valid, predictions["depth"][time_step, camera, ..., 0], np.nan))
        confidence = colorize(np.where(valid, np.log(np.maximum(predictions["depth_conf"][time_step, camera], 1e-6)),
                                       np.nan))
        motion = colorize(np.where(valid, dynamic[camera], np.nan), 0.0, 1.0, DYNAMIC_RAMP)
        panels = [show_padding(panel, valid) for panel in (image, depth, confidence, motion)]
        panels[0] = mark_frame(panels[0], predictions, time_step, camera, STRIP_MARK_RADIUS, HALO_WIDTH)
        rows.append(np.concatenate(panels, axis=1))
    return rows
