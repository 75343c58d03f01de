"""The Plotly 3D scene: predicted points, one frustum trace and one trajectory per camera, optional ground truth."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from vggt_mv.viz.cameras import (align_ground_truth, camera_centers, default_frustum_depth, frustum_corners,
                                 to_display)
from vggt_mv.viz.points import CAMERA_PALETTE, point_colors, select_points

DEFAULT_POINT_BUDGET = 200_000


@dataclass
class SceneOptions:
    """Display choices; changing them never re-runs the model."""

    color_by: str = "rgb"
    conf_percentile: float = 25.0
    conf_threshold: float = 0.0
    point_budget: int = DEFAULT_POINT_BUDGET
    time_step: int | None = None
    show_cameras: bool = True
    show_trajectories: bool = True
    show_ground_truth: bool = True
    point_size: float = 1.5
    seed: int = 0


def _frustum_lines(extrinsics: np.ndarray, intrinsics: np.ndarray, image_size_hw, depth: float) -> np.ndarray:
    """Polyline vertices (NaN-separated) of several frustums: apex to each corner, then the image rectangle."""
    segments = []
    for extrinsic, intrinsic in zip(extrinsics, intrinsics):
        corners = frustum_corners(extrinsic, intrinsic, image_size_hw, depth)
        apex = camera_centers(extrinsic)
        path = [apex, corners[0], corners[1], apex, corners[2], corners[3], apex, corners[0], corners[3],
                corners[2], corners[1]]
        segments.append(np.vstack(path + [np.full(3, np.nan)]))
    return to_display(np.vstack(segments)).astype(np.float32)


def _line_trace(xyz: np.ndarray, name: str, color: str, group: str, dash: str = "solid", width: float = 3,
                show_legend: bool = True) -> go.Scatter3d:
    """A 3D polyline trace."""
    return go.Scatter3d(x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="lines", name=name, legendgroup=group,
                        showlegend=show_legend, line={"color": color, "width": width, "dash": dash},
                        hoverinfo="name")


def highest_confidence(predictions: dict[str, np.ndarray], time_steps: list[int]) -> float | None:
    """The largest point confidence among valid, finite points of the shown time steps (None when there are none)."""
    confidence = predictions["world_points_conf"][time_steps]
    keep = np.isfinite(confidence) & np.isfinite(predictions["world_points"][time_steps]).all(axis=-1)
    if "valid_mask" in predictions:
        keep &= predictions["valid_mask"][time_steps]
    return float(confidence[keep].max()) if keep.any() else None


def empty_scene_message(options: SceneOptions, highest: float | None) -> str:
    """Why no point is drawn, naming the control to lower, so an empty plot never looks like a broken one."""
    if highest is None:
        return "No valid point at the shown time steps."
    if options.conf_threshold > highest:
        return (f"No point passes the filters: lower 'Min confidence' (now {options.conf_threshold:g}; "
                f"the highest confidence here is {highest:.3g}).")
    return "No point passes the filters: lower 'Drop lowest confidence (%)' or 'Min confidence'."


def build_scene(predictions: dict[str, np.ndarray], options: SceneOptions | None = None) -> go.Figure:
    """Figure from numpy predictions with a [T, N] prefix (see vggt_mv.inference.predict)."""
    options = options or SceneOptions()
    num_steps, num_cameras = predictions["world_points"].shape[:2]
    if options.time_step is not None and not 0 <= options.time_step < num_steps:
        raise ValueError(f"time step {options.time_step} outside 0..{num_steps - 1}")
    shown_steps = list(range(num_steps)) if options.time_step is None else [options.time_step]
    selection = select_points(predictions, shown_steps, options.conf_percentile, options.conf_threshold,
                              options.point_budget, options.seed)
    display_points = to_display(selection.xyz)
    figure = go.Figure()
    figure.add_trace(go.Scatter3d(
        x=display_points[:, 0], y=display_points[:, 1], z=display_points[:, 2], mode="markers",
        name=f"points ({len(display_points):,} of {selection.total_before_budget:,})", hoverinfo="skip",
        marker={"size": options.point_size, **point_colors(selection, options.color_by, num_steps)}))
    height, width = predictions["images"].shape[-2:]
    extrinsics, intrinsics = predictions["extrinsic"], predictions["intrinsic"]
    centers = camera_centers(extrinsics)
    depth = default_frustum_depth(centers, selection.xyz)
    for camera in range(num_cameras):
        color = CAMERA_PALETTE[camera % len(CAMERA_PALETTE)]
        group = f"camera {camera}"
        if options.show_cameras:
            lines = _frustum_lines(extrinsics[shown_steps, camera], intrinsics[shown_steps, camera], (height, width),
                                   depth)
            figure.add_trace(_line_trace(lines, f"camera {camera}", color, group, width=2))
        if options.show_trajectories:
            figure.add_trace(_line_trace(to_display(centers[:, camera]), f"camera {camera} trajectory", color, group,
                                         width=5, show_legend=not options.show_cameras))
    if options.show_ground_truth and "gt_extrinsic" in predictions:
        aligned = align_ground_truth(predictions["gt_extrinsic"], extrinsics)
        for camera in range(num_cameras):
            lines = _frustum_lines(aligned[shown_steps, camera], predictions["gt_intrinsic"][shown_steps, camera],
                                   (height, width), depth)
            figure.add_trace(_line_trace(lines, f"ground truth {camera}", "#7f7f7f", "ground truth", dash="dash",
                                         width=2, show_legend=camera == 0))
    figure.update_layout(
        scene={"aspectmode": "data", "xaxis": {"title": "x"}, "yaxis": {"title": "z (forward)"},
               "zaxis": {"title": "-y (up)"},
               "camera": {"up": {"x": 0, "y": 0, "z": 1}, "eye": {"x": 0.0, "y": -1.6, "z": 0.7},
                          "center": {"x": 0, "y": 0, "z": 0}}},
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        legend={"itemsizing": "constant", "groupclick": "togglegroup", "x": 0.01, "y": 0.93, "xanchor": "left",
                "yanchor": "top", "bgcolor": "rgba(255, 255, 255, 0.7)"},  # clear of the colour bar on the right
        uirevision="scene", title={"text": ("all time steps" if options.time_step is None
                                            else f"time step {options.time_step}"), "x": 0.02})
    if len(display_points) == 0:
        figure.add_annotation(text=empty_scene_message(options, highest_confidence(predictions, shown_steps)),
                              xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 16},
                              bgcolor="rgba(255, 240, 200, 0.9)")
    return figure
