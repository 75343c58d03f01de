"""Downloads: GLB (points + camera frustums, trimesh), PLY per time step, NPZ of every prediction, cameras.json,
and a zip bundle (COLMAP: vggt_mv.exports.colmap, Rerun: vggt_mv.exports.rerun_recording; which is built when:
vggt_mv.exports.formats). Written uncompressed: float maps barely compress and deflating 70 MB took most of a run.

NPZ keys (every array has the [T, N] prefix: T time steps, N cameras):
    images [T, N, 3, H, W] uint8 (0..255; the model saw images / 255)      pose_enc [T, N, 9]
    depth [T, N, H, W, 1]     depth_conf [T, N, H, W]
    world_points [T, N, H, W, 3]     world_points_conf [T, N, H, W]
    dynamic_mask [T, N, H/14, W/14]
    valid_mask [T, N, H, W] bool: True on a camera's own pixels, False on padding (never a point)
    extrinsic [T, N, 3, 4] (world-to-camera, OpenCV)     intrinsic [T, N, 3, 3] (pixels)
    times [T] seconds on the common clock (when known)
    gt_extrinsic, gt_intrinsic (examples only) as extrinsic/intrinsic
    tracks (only when points were tracked; K query points of the reference frame t=0, n=0):
    query_points [K, 2] pixels (x, y)     track [T, N, K, 2] pixels in each frame
    vis, conf [T, N, K]     track_world_points [T, N, K, 3] (tracked pixels unprojected)
    windows (only for runs longer than one pass): window_ranges [W, 2] (first step, stop) of each window;
    seam_residual [W-1] RMS distance between consecutive windows' points on their shared steps after the Sim(3)
    alignment (scene units), seam_relative_residual [W-1] the same as a share of the scene's size (NaN: not aligned)
    Depth, points and cameras are float32 (float16 only when asked for: `--float16`, values clipped to +-65504).
    No value is NaN or infinite: where a prediction was, it is 0 and `<key>_finite` (bool, same shape) is False
    there; that mask is only present for arrays that had such values (track_world_points has one wherever a
    tracked pixel had no depth).
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import trimesh

from vggt_mv.exports.bad_values import camera_problems, non_finite_counts
from vggt_mv.viz.cameras import camera_centers, default_frustum_depth, frustum_corners
from vggt_mv.viz.points import CAMERA_PALETTE, PointFilters, select_points
from vggt_mv.viz.tracks import TRACK_KEYS

EXPORT_POINT_BUDGET = 1_000_000
FLOAT16_MAX = float(np.finfo(np.float16).max)
FLOAT16_KEYS = ("depth", "depth_conf", "world_points", "world_points_conf", "track_world_points")
NPZ_KEYS = ("images", "pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "dynamic_mask",
            "valid_mask", "extrinsic", "intrinsic", "times", "gt_extrinsic", "gt_intrinsic") + TRACK_KEYS + (
            "window_ranges", "seam_residual", "seam_relative_residual")


def frustum_mesh(extrinsic: np.ndarray, intrinsic: np.ndarray, image_size_hw, depth: float, color: str) -> trimesh.Trimesh:
    """An open pyramid (apex at the camera) that GLB viewers show without line support."""
    apex = camera_centers(extrinsic)
    vertices = np.vstack([apex, frustum_corners(extrinsic, intrinsic, image_size_hw, depth)])
    faces = np.array([[0, 1, 2], [0, 2, 3], [0, 3, 4], [0, 4, 1]])
    rgba = np.array([int(color[i:i + 2], 16) for i in (1, 3, 5)] + [160], dtype=np.uint8)
    return trimesh.Trimesh(vertices=vertices, faces=np.vstack([faces, faces[:, ::-1]]),
                           vertex_colors=np.tile(rgba, (len(vertices), 1)), process=False)


def write_glb(path: Path, predictions: dict[str, np.ndarray], filters: PointFilters = PointFilters(),
              point_budget: int = EXPORT_POINT_BUDGET) -> Path:
    """Points (the scene's filters) coloured by RGB plus one frustum per camera per time step, OpenCV world frame;
    a camera with a non-finite or degenerate prediction gets no frustum (see exports.bad_values)."""
    steps, cameras = predictions["world_points"].shape[:2]
    selection = select_points(predictions, list(range(steps)), filters, point_budget)
    scene = trimesh.Scene()
    colors = np.hstack([np.clip(selection.rgb * 255, 0, 255), np.full((len(selection.rgb), 1), 255)]).astype(np.uint8)
    if len(selection.xyz):  # glTF cannot hold an empty point set; the filters may have removed every point
        scene.add_geometry(trimesh.PointCloud(selection.xyz, colors=colors), geom_name="points")
    height, width = predictions["images"].shape[-2:]
    problems = camera_problems(predictions)
    drawable = [(t, n) for t in range(steps) for n in range(cameras) if (t, n) not in problems]
    centers = np.array([camera_centers(predictions["extrinsic"][t, n]) for t, n in drawable]).reshape(-1, 3)
    depth = default_frustum_depth(centers, selection.xyz)
    for time_step, camera in drawable:
        mesh = frustum_mesh(predictions["extrinsic"][time_step, camera], predictions["intrinsic"][time_step, camera],
                            (height, width), depth, CAMERA_PALETTE[camera % len(CAMERA_PALETTE)])
        scene.add_geometry(mesh, geom_name=f"camera{camera}_t{time_step}")
    path.write_bytes(scene.export(file_type="glb"))
    return path


def write_ply_per_time(folder: Path, predictions: dict[str, np.ndarray], filters: PointFilters = PointFilters(),
                       point_budget: int = EXPORT_POINT_BUDGET) -> list[Path]:
    """points_t000.ply ...: every camera's points (the scene's filters) at each time step, coloured by RGB."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for time_step in range(predictions["world_points"].shape[0]):
        selection = select_points(predictions, [time_step], filters, point_budget)
        colors = (np.clip(selection.rgb, 0, 1) * 255).astype(np.uint8)
        path = folder / f"points_t{time_step:03d}.ply"
        trimesh.PointCloud(selection.xyz, colors=colors).export(str(path), file_type="ply")
        paths.append(path)
    return paths


def as_uint8_images(images: np.ndarray) -> np.ndarray:
    """Images as the 8-bit frames they were decoded from (a quarter of float32's bytes, nothing lost)."""
    if images.dtype == np.uint8:
        return images
    return np.clip(np.round(np.nan_to_num(images) * 255), 0, 255).astype(np.uint8)


def npz_value(key: str, values: np.ndarray, float16: bool) -> np.ndarray:
    """One array (or one time step of it) as the NPZ stores it: uint8 images, non-finite values as 0, float16 when
    asked for (clipped to +-65504)."""
    values = np.asarray(values)
    if key == "images":
        return as_uint8_images(values)
    if np.issubdtype(values.dtype, np.floating):
        values = np.where(np.isfinite(values), values, 0).astype(values.dtype)
        if float16 and key in FLOAT16_KEYS:
            values = np.clip(values, -FLOAT16_MAX, FLOAT16_MAX).astype(np.float16)
    return values


def stored_dtype(key: str, array, float16: bool) -> np.dtype:
    """The dtype an array has in the NPZ."""
    if key == "images":
        return np.dtype(np.uint8)
    if float16 and key in FLOAT16_KEYS and np.issubdtype(array.dtype, np.floating):
        return np.dtype(np.float16)
    return np.dtype(array.dtype)


def step_slices(array) -> list:
    """An array's parts, read in order: a time step at a time for the [T, ...] maps (a long run's are on disk),
    whole for the rest."""
    if array.ndim >= 4:
        return [slice(step, step + 1) for step in range(array.shape[0])]
    return [slice(None)]


def write_member(archive: zipfile.ZipFile, name: str, shape: tuple[int, ...], dtype: np.dtype, parts) -> None:
    """One `.npy` member written part by part (C order), as np.savez would write the whole array."""
    with archive.open(f"{name}.npy", "w", force_zip64=True) as member:
        np.lib.format.write_array_header_2_0(member, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                      "fortran_order": False, "shape": tuple(shape)})
        for part in parts:
            member.write(np.ascontiguousarray(part, dtype=dtype).tobytes())


def npz_keys(predictions: dict[str, np.ndarray]) -> list[str]:
    """The prediction arrays the NPZ holds, in NPZ_KEYS order."""
    return [key for key in NPZ_KEYS if key in predictions]


def write_npz(path: Path, predictions: dict[str, np.ndarray], float16: bool = False) -> Path:
    """Every prediction array (see the module docstring for keys and shapes), uncompressed (fast to write), each
    written a time step at a time, so a long run's stored maps never sit in memory whole."""
    counts = non_finite_counts({key: predictions[key] for key in npz_keys(predictions)})
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED, allowZip64=True) as archive:
        for key in npz_keys(predictions):
            array = predictions[key]
            write_member(archive, key, array.shape, stored_dtype(key, array, float16),
                         (npz_value(key, array[part], float16) for part in step_slices(array)))
            if key in counts:
                write_member(archive, f"{key}_finite", array.shape, np.dtype(bool),
                             (np.isfinite(np.asarray(array[part])) for part in step_slices(array)))
    return path


def write_cameras_json(path: Path, predictions: dict[str, np.ndarray]) -> Path:
    """Per time step and camera: extrinsic (world-to-camera, OpenCV) and intrinsic, plus the image size."""
    steps, cameras = predictions["extrinsic"].shape[:2]
    height, width = predictions["images"].shape[-2:]
    times = predictions.get("times")
    payload = {
        "convention": "OpenCV camera (x right, y down, z forward); extrinsic maps world to camera; world = camera 0 "
                      "at time step 0; intrinsic in pixels of the model's input image",
        "image_size_hw": [int(height), int(width)],
        "frames": [{"time_step": t, "time": None if times is None else float(times[t]), "camera": n,
                    "extrinsic": finite_or_none(predictions["extrinsic"][t, n].round(6)),
                    "intrinsic": finite_or_none(predictions["intrinsic"][t, n].round(4))}
                   for t in range(steps) for n in range(cameras)],
    }
    path.write_text(json.dumps(payload, indent=1, allow_nan=False))
    return path


def finite_or_none(values: np.ndarray) -> list:
    """Nested lists with NaN and infinities as None, so the file stays strict JSON (null)."""
    return np.where(np.isfinite(values), values, None).tolist()


def write_scene_html(path: Path, figure) -> Path:
    """The scene as one self-contained page (plotly.js inside, so it plays offline); the player waits for play."""
    figure.write_html(str(path), include_plotlyjs=True, auto_play=False)
    return path
