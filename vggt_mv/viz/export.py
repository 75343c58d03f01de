"""Downloads: GLB (points + camera frustums, trimesh), PLY per time step, NPZ of every prediction, cameras.json,
and one zip of them all (COLMAP models: vggt_mv.viz.colmap). Written uncompressed: float maps barely compress
and deflating 70 MB took most of a run.

NPZ keys (every array has the [T, N] prefix: T time steps, N cameras):
    images [T, N, 3, H, W] float32 in [0, 1]      pose_enc [T, N, 9]
    depth [T, N, H, W, 1]     depth_conf [T, N, H, W]
    world_points [T, N, H, W, 3]     world_points_conf [T, N, H, W]
    dynamic_mask [T, N, H/14, W/14]
    valid_mask [T, N, H, W] bool: True on a camera's own pixels, False on padding (never a point)
    extrinsic [T, N, 3, 4] (world-to-camera, OpenCV)     intrinsic [T, N, 3, 3] (pixels)
    times [T] seconds on the common clock (when known)
    gt_extrinsic, gt_intrinsic (examples only) as extrinsic/intrinsic
    tracks (only when points were tracked; K query points of the reference frame t=0, n=0):
    query_points [K, 2] pixels (x, y)     track [T, N, K, 2] pixels in each frame
    vis, conf [T, N, K]     track_world_points [T, N, K, 3] (tracked pixels unprojected; NaN without depth there)
"""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import trimesh

from vggt_mv.viz.cameras import camera_centers, default_frustum_depth, frustum_corners
from vggt_mv.viz.points import CAMERA_PALETTE, PointFilters, select_points
from vggt_mv.viz.tracks import TRACK_KEYS

EXPORT_POINT_BUDGET = 1_000_000
NPZ_KEYS = ("images", "pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "dynamic_mask",
            "valid_mask", "extrinsic", "intrinsic", "times", "gt_extrinsic", "gt_intrinsic") + TRACK_KEYS


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
    """Points (the scene's filters) coloured by RGB plus one frustum per camera per time step, OpenCV world frame."""
    steps, cameras = predictions["world_points"].shape[:2]
    selection = select_points(predictions, list(range(steps)), filters, point_budget)
    scene = trimesh.Scene()
    colors = np.hstack([np.clip(selection.rgb * 255, 0, 255), np.full((len(selection.rgb), 1), 255)]).astype(np.uint8)
    scene.add_geometry(trimesh.PointCloud(selection.xyz, colors=colors), geom_name="points")
    height, width = predictions["images"].shape[-2:]
    depth = default_frustum_depth(camera_centers(predictions["extrinsic"]), selection.xyz)
    for time_step in range(steps):
        for camera in range(cameras):
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


def write_npz(path: Path, predictions: dict[str, np.ndarray]) -> Path:
    """Every prediction array (see the module docstring for keys and shapes), uncompressed (fast to write)."""
    np.savez(path, **{key: np.asarray(predictions[key]) for key in NPZ_KEYS if key in predictions})
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


def write_zip(path: Path, folder: Path, exclude: tuple[str, ...] = ()) -> Path:
    """Every file under `folder` (except `exclude` at its top) in one zip, stored uncompressed for speed."""
    files = sorted(p for p in folder.rglob("*") if p.is_file() and p.relative_to(folder).parts[0] not in exclude)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        for file in files:
            archive.write(file, file.relative_to(folder).as_posix())
    return path
