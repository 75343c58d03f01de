"""The Plotly 3D scene with its time player: points of every time step (one trace per step), one frustum per camera
that moves along that camera's trajectory, optional ground truth, and one animation frame per time step.

Everything that changes with the time step is an AnimatedLayer: its traces as drawn at step 0, and what each
frame replaces in them. The points' arrays are sent once (frames only switch steps on and off), so the payload is
the same in every player mode. Tracks (when points were tracked) are one more layer: one polyline per (track,
camera) that grows with the player, in the track's colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import plotly.graph_objects as go

from vggt_mv.viz.cameras import (align_ground_truth, camera_centers, default_frustum_depth, frustum_corners,
                                 to_display)
from vggt_mv.viz.depth_edges import DEFAULT_EDGE_THRESHOLD
from vggt_mv.viz.player import (PLAYER_MARGIN_PX, PLAYER_MODE_LABELS, PLAYER_MODES, frame_name, player_controls,
                                visible_steps)
from vggt_mv.viz.points import CAMERA_PALETTE, PointFilters, PointSelection, point_colors, select_points
from vggt_mv.viz.tracks import track_polylines

DEFAULT_POINT_BUDGET = 200_000
SCENE_HEIGHT_PX = 640  # gr.Plot's own default leaves the 3D view too small once the player sits below it


@dataclass
class SceneOptions:
    """Display choices; changing them never re-runs the model. The point filters apply to the exports too."""

    color_by: str = "rgb"
    conf_percentile: float = 25.0
    conf_threshold: float = 0.0
    point_budget: int = DEFAULT_POINT_BUDGET
    player_mode: str = "step"
    depth_edges: bool = True
    max_dynamic: float = 1.0
    show_cameras: bool = True
    show_trajectories: bool = True
    show_ground_truth: bool = True
    point_size: float = 1.5
    seed: int = 0

    def point_filters(self) -> PointFilters:
        """The filters deciding which pixels are points, shared by the scene and the downloads."""
        return PointFilters(conf_percentile=self.conf_percentile, conf_threshold=self.conf_threshold,
                            depth_edges=self.depth_edges, edge_threshold=DEFAULT_EDGE_THRESHOLD,
                            max_dynamic=self.max_dynamic)


@dataclass
class AnimatedLayer:
    """Traces that follow the player: `initial` as drawn at step 0, `at_step(t)` one update per initial trace (same
    order) holding only what changes at step t."""

    initial: list[go.Scatter3d]
    at_step: Callable[[int], list[go.Scatter3d]]


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


def _line_coordinates(xyz: np.ndarray) -> dict[str, list]:
    """x, y, z as short JSON lists (None for a gap): frames carry them as plain lists, never typed arrays."""
    rounded = np.round(xyz.astype(np.float64), 5)
    return {axis: [None if not np.isfinite(v) else float(v) for v in rounded[:, index]]
            for index, axis in enumerate("xyz")}


def _line_trace(xyz: np.ndarray, name: str, color: str, group: str, dash: str = "solid", width: float = 3,
                show_legend: bool = True) -> go.Scatter3d:
    """A 3D polyline trace."""
    return go.Scatter3d(**_line_coordinates(xyz), mode="lines", name=name, legendgroup=group, showlegend=show_legend,
                        line={"color": color, "width": width, "dash": dash}, hoverinfo="name")


def highest_confidence(predictions: dict[str, np.ndarray], time_steps: list[int]) -> float | None:
    """The largest point confidence among valid, finite points of the shown time steps (None when there are none)."""
    highest = None
    for time_step in time_steps:  # one step at a time: a long run's maps are on disk
        confidence = np.asarray(predictions["world_points_conf"][time_step])
        keep = np.isfinite(confidence) & np.isfinite(predictions["world_points"][time_step]).all(axis=-1)
        if "valid_mask" in predictions:
            keep &= predictions["valid_mask"][time_step]
        if keep.any():
            highest = max(float(confidence[keep].max()), highest if highest is not None else -np.inf)
    return highest


def empty_scene_message(options: SceneOptions, highest: float | None) -> str:
    """Why no point is drawn, naming the control to lower, so an empty plot never looks like a broken one."""
    if highest is None:
        return "No valid point at the shown time steps."
    if options.conf_threshold > highest:
        return (f"No point passes the filters: lower 'Min confidence' (now {options.conf_threshold:g}; "
                f"the highest confidence here is {highest:.3g}).")
    return "No point passes the filters: lower 'Drop lowest confidence (%)' or 'Min confidence'."


def points_counter(selection: PointSelection, num_steps: int) -> str:
    """'200,000 of 1,234,567 points (25,000 per step); 12,345 depth-edge points removed': what the filters did."""
    shown = len(selection.xyz)
    text = f"{shown:,} of {selection.total_before_budget:,} points"
    if num_steps > 1:
        text += f" ({shown // num_steps:,} per step)"
    removed = []
    if selection.removed_as_edges:
        removed.append(f"{selection.removed_as_edges:,} depth-edge points removed")
    if selection.removed_as_dynamic:
        removed.append(f"{selection.removed_as_dynamic:,} dynamic points hidden")
    return "; ".join([text] + removed)


def points_layer(selection: PointSelection, colours: dict, options: SceneOptions, num_steps: int) -> AnimatedLayer:
    """One points trace per time step, coloured from `colours` (point_colors over all steps, so every step shares
    one scale); a frame only switches steps on and off as the player mode says."""
    colors = colours["color"]
    display_points = to_display(selection.xyz)
    traces = []
    for step in range(num_steps):
        members = selection.time_index == step
        xyz = display_points[members]
        traces.append(go.Scatter3d(
            x=xyz[:, 0], y=xyz[:, 1], z=xyz[:, 2], mode="markers", name=f"points, step {step}",
            legendgroup="points", showlegend=False, hoverinfo="skip",
            visible=visible_steps(options.player_mode, 0, num_steps)[step],
            marker={"size": options.point_size, "color": colors[members], "coloraxis": "coloraxis"}))
    return AnimatedLayer(traces, lambda current: [go.Scatter3d(visible=shown) for shown in
                                                  visible_steps(options.player_mode, current, num_steps)])


def colour_axis(colours: dict) -> dict:
    """layout.coloraxis from point_colors' settings: one colour scale (and bar) shared by every step's trace, sent
    once however many steps there are."""
    axis = {key: value for key, value in colours.items() if key != "color"}
    return {**axis, "showscale": "colorbar" in axis}


def frustum_layer(extrinsics: np.ndarray, intrinsics: np.ndarray, image_size_hw, depth: float, names: list[str],
                  colors: list[str], group: Callable[[int], str], dash: str = "solid",
                  show_legend: Callable[[int], bool] = lambda camera: True) -> AnimatedLayer:
    """One frustum per camera, placed at the current time step (extrinsics/intrinsics [T, N, ...])."""
    num_cameras = extrinsics.shape[1]

    def lines(step: int, camera: int) -> np.ndarray:
        return _frustum_lines(extrinsics[step:step + 1, camera], intrinsics[step:step + 1, camera], image_size_hw,
                              depth)

    initial = [_line_trace(lines(0, camera), names[camera], colors[camera], group(camera), dash=dash, width=2,
                           show_legend=show_legend(camera)) for camera in range(num_cameras)]
    return AnimatedLayer(initial, lambda step: [go.Scatter3d(**_line_coordinates(lines(step, camera)))
                                                for camera in range(num_cameras)])


def tracks_layer(world_points: np.ndarray, visibility: np.ndarray | None, player_mode: str) -> AnimatedLayer:
    """Every track as one polyline per camera (track_polylines), up to the current step ("all": every step), each
    vertex in its track's colour; frames carry plain lists, as the frustums' do."""
    count, last = world_points.shape[2], world_points.shape[0] - 1

    def lines(step: int) -> dict:
        polylines = track_polylines(world_points, last if player_mode == "all" else step, visibility)
        colors = polylines.vertex_colors()
        # markers too: at step 0 a track is a single vertex, which a line alone does not draw
        return {**_line_coordinates(to_display(polylines.xyz)), "line": {"color": colors, "width": 4},
                "marker": {"color": colors, "size": 2.5}}

    initial = go.Scatter3d(**lines(0), mode="lines+markers", name=f"tracks ({count})", legendgroup="tracks",
                           connectgaps=False, hoverinfo="name")
    return AnimatedLayer([initial], lambda step: [go.Scatter3d(**lines(step))])


def animated_layers(predictions: dict[str, np.ndarray], options: SceneOptions, selection: PointSelection,
                    colours: dict, depth: float) -> list[AnimatedLayer]:
    """Every layer that moves with the player: points, predicted frustums, ground-truth frustums, tracks."""
    num_steps, num_cameras = predictions["world_points"].shape[:2]
    image_size = predictions["images"].shape[-2:]
    palette = [CAMERA_PALETTE[camera % len(CAMERA_PALETTE)] for camera in range(num_cameras)]
    layers = [points_layer(selection, colours, options, num_steps)]
    if options.show_cameras:
        layers.append(frustum_layer(predictions["extrinsic"], predictions["intrinsic"], image_size, depth,
                                    [f"camera {camera}" for camera in range(num_cameras)], palette,
                                    group=lambda camera: f"camera {camera}"))
    if options.show_ground_truth and "gt_extrinsic" in predictions:
        aligned = align_ground_truth(predictions["gt_extrinsic"], predictions["extrinsic"])
        layers.append(frustum_layer(aligned, predictions["gt_intrinsic"], image_size, depth,
                                    [f"ground truth {camera}" for camera in range(num_cameras)],
                                    ["#7f7f7f"] * num_cameras, group=lambda camera: "ground truth", dash="dash",
                                    show_legend=lambda camera: camera == 0))
    if "track_world_points" in predictions:
        layers.append(tracks_layer(predictions["track_world_points"], predictions.get("vis"), options.player_mode))
    return layers


def static_traces(predictions: dict[str, np.ndarray], options: SceneOptions) -> list:
    """What stays put while the player runs: each camera's whole trajectory."""
    num_cameras = predictions["world_points"].shape[1]
    traces = []
    if options.show_trajectories:
        centers = camera_centers(predictions["extrinsic"])
        for camera in range(num_cameras):
            traces.append(_line_trace(to_display(centers[:, camera]), f"camera {camera} trajectory",
                                      CAMERA_PALETTE[camera % len(CAMERA_PALETTE)], f"camera {camera}", width=5,
                                      show_legend=not options.show_cameras))
    return traces


def fixed_axis_ranges(traces: list, padding: float = 0.02) -> dict:
    """layout.scene axis ranges spanning every trace of every step (the figure's and each frame's, given before
    they join the figure: read back through its frames, each is looked up among all of them, which grew with the
    square of the steps), so the box (and the view) does not jump when the player shows another step (autorange
    would refit to the visible traces each frame)."""
    columns = {axis: [np.asarray(trace[axis], dtype=np.float64) for trace in traces if trace[axis] is not None]
               for axis in "xyz"}
    ranges = {}
    for axis, arrays in columns.items():
        values = np.concatenate(arrays) if arrays else np.zeros(0)
        values = values[np.isfinite(values)]
        if values.size == 0:
            continue
        low, high = float(values.min()), float(values.max())
        margin = max(high - low, 1e-3) * padding
        ranges[f"{axis}axis"] = {"range": [low - margin, high + margin], "autorange": False}
    return ranges


def build_scene(predictions: dict[str, np.ndarray], options: SceneOptions | None = None) -> go.Figure:
    """Figure with one animation frame per time step, from numpy predictions with a [T, N] prefix (see
    vggt_mv.inference.predict); the point budget is split evenly over the steps."""
    options = options or SceneOptions()
    if options.player_mode not in PLAYER_MODES:
        raise ValueError(f"player mode must be one of {PLAYER_MODES}")
    num_steps = predictions["world_points"].shape[0]
    all_steps = list(range(num_steps))
    selection = select_points(predictions, all_steps, options.point_filters(), options.point_budget, options.seed,
                              split_budget=True)
    depth = default_frustum_depth(camera_centers(predictions["extrinsic"]), selection.xyz)
    colours = point_colors(selection, options.color_by, num_steps)
    layers = animated_layers(predictions, options, selection, colours, depth)
    fixed = static_traces(predictions, options)
    figure = go.Figure(data=fixed + [trace for layer in layers for trace in layer.initial])
    moving = list(range(len(fixed), len(figure.data)))
    updates = [[update for layer in layers for update in layer.at_step(step)] for step in all_steps]
    ranges = fixed_axis_ranges(list(figure.data) + [update for step in updates for update in step])
    figure.frames = [go.Frame(name=frame_name(step), traces=moving, data=data)
                     for step, data in zip(all_steps, updates)]
    figure.update_layout(scene=ranges)
    figure.update_layout(
        scene={"aspectmode": "data", "xaxis": {"title": "x"}, "yaxis": {"title": "z (forward)"},
               "zaxis": {"title": "-y (up)"},
               "camera": {"up": {"x": 0, "y": 0, "z": 1}, "eye": {"x": 0.0, "y": -1.6, "z": 0.7},
                          "center": {"x": 0, "y": 0, "z": 0}}},
        margin={"l": 0, "r": 0, "t": 30, "b": PLAYER_MARGIN_PX}, height=SCENE_HEIGHT_PX,
        legend={"itemsizing": "constant", "groupclick": "togglegroup", "x": 0.01, "y": 0.93, "xanchor": "left",
                "yanchor": "top", "bgcolor": "rgba(255, 255, 255, 0.7)"},  # clear of the colour bar on the right
        coloraxis=colour_axis(colours),
        uirevision="scene",  # a rebuild (new colours, filters, mode) keeps the user's view
        title={"text": f"{PLAYER_MODE_LABELS[options.player_mode]}: {points_counter(selection, num_steps)}",
               "x": 0.02, "font": {"size": 14}},
        **player_controls(num_steps))
    if len(selection.xyz) == 0:
        figure.add_annotation(text=empty_scene_message(options, highest_confidence(predictions, all_steps)),
                              xref="paper", yref="paper", x=0.5, y=0.5, showarrow=False, font={"size": 16},
                              bgcolor="rgba(255, 240, 200, 0.9)")
    return figure
