"""COLMAP sparse models, one per time step, in COLMAP's documented binary format (colmap.github.io/format.html).

colmap/t000/ holds cameras.bin, images.bin and points3D.bin for time step 0, and so on:
- cameras: one PINHOLE camera per input camera (CAMERA_ID n+1): fx, fy, cx, cy of the predicted intrinsics at
  the processed resolution (the model's input, padding included), WIDTH x HEIGHT of that image.
- images: one per camera (IMAGE_ID n+1 with CAMERA_ID n+1, NAME camera{n}_t{t}.png), QW QX QY QZ and TX TY TZ of
  the world-to-camera transform (VGGT's extrinsic: OpenCV axes, as COLMAP's), and as POINTS2D the pixel centres
  (COLMAP's convention: the image's top-left corner is 0,0) that produced a point, with that point's id.
- points3D: points of real (not padding), confident pixels off depth edges (the scene's filters); RGB of the input;
  ERROR the distance in pixels between the pixel and the point projected into its own camera; TRACK that one
  (IMAGE_ID, POINT2D_IDX).
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

from vggt_mv.viz.points import PointFilters, select_points

PINHOLE_MODEL_ID = 1
COLMAP_POINT_BUDGET = 1_000_000  # over all time steps
POINT2D_DTYPE = np.dtype([("xy", "<f8", 2), ("point3D_id", "<i8")])
POINT3D_DTYPE = np.dtype([("id", "<u8"), ("xyz", "<f8", 3), ("rgb", "u1", 3), ("error", "<f8"),
                          ("track_length", "<u8"), ("image_id", "<i4"), ("point2D_idx", "<i4")])


def rotation_to_quaternion(rotation: np.ndarray) -> np.ndarray:
    """[3, 3] rotation -> unit quaternion (qw, qx, qy, qz), qw >= 0, Hamilton convention as COLMAP uses."""
    m = rotation.astype(np.float64)
    trace = m[0, 0] + m[1, 1] + m[2, 2]
    if trace > 0:
        s = 2.0 * np.sqrt(trace + 1.0)
        q = [0.25 * s, (m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [(m[2, 1] - m[1, 2]) / s, 0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 2] - m[2, 0]) / s, (m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[1, 0] - m[0, 1]) / s, (m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s]
    q = np.array(q) / np.linalg.norm(q)
    return -q if q[0] < 0 else q


def reprojection_error(xyz: np.ndarray, pixels_xy: np.ndarray, extrinsic: np.ndarray,
                       intrinsic: np.ndarray) -> np.ndarray:
    """Pixels between each point projected into its camera and the pixel it came from ([K, 3], [K, 2], per point)."""
    camera = np.einsum("kij,kj->ki", extrinsic[:, :, :3], xyz) + extrinsic[:, :, 3]
    projected = np.einsum("kij,kj->ki", intrinsic, camera)
    with np.errstate(divide="ignore", invalid="ignore"):
        uv = projected[:, :2] / projected[:, 2:3]
    return np.nan_to_num(np.linalg.norm(uv - pixels_xy, axis=1), nan=1e6, posinf=1e6)


def write_cameras_bin(path: Path, intrinsics: np.ndarray, width: int, height: int) -> None:
    """cameras.bin: one PINHOLE camera (fx, fy, cx, cy) per input camera, ids 1..N."""
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(intrinsics)))
        for index, matrix in enumerate(intrinsics.astype(np.float64)):
            file.write(struct.pack("<iiQQ", index + 1, PINHOLE_MODEL_ID, width, height))
            file.write(struct.pack("<4d", matrix[0, 0], matrix[1, 1], matrix[0, 2], matrix[1, 2]))


def write_images_bin(path: Path, extrinsics: np.ndarray, names: list[str], points2d: list[np.ndarray]) -> None:
    """images.bin: pose (quaternion + translation, world-to-camera), camera id, name and 2D points per image."""
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(extrinsics)))
        for index, (extrinsic, name, observed) in enumerate(zip(extrinsics.astype(np.float64), names, points2d)):
            file.write(struct.pack("<i4d3di", index + 1, *rotation_to_quaternion(extrinsic[:, :3]),
                                   *extrinsic[:, 3], index + 1))
            file.write(name.encode() + b"\0")
            file.write(struct.pack("<Q", len(observed)))
            file.write(observed.tobytes())


def write_points3d_bin(path: Path, records: np.ndarray) -> None:
    """points3D.bin: id, xyz, rgb, error and a one-element track per point (records of POINT3D_DTYPE)."""
    with open(path, "wb") as file:
        file.write(struct.pack("<Q", len(records)))
        file.write(records.tobytes())


def write_colmap_model(folder: Path, predictions: dict[str, np.ndarray], time_step: int, filters: PointFilters,
                       point_budget: int) -> Path:
    """One time step's cameras, images and points as a COLMAP binary model in `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    height, width = predictions["images"].shape[-2:]
    extrinsics = predictions["extrinsic"][time_step]
    intrinsics = predictions["intrinsic"][time_step]
    selection = select_points(predictions, [time_step], filters, point_budget, seed=time_step)
    order = np.argsort(selection.camera_index, kind="stable")
    camera = selection.camera_index[order]
    rows, cols = np.divmod(selection.pixel_index[order], width)
    pixels_xy = np.stack([cols + 0.5, rows + 0.5], axis=1)
    xyz = selection.xyz[order].astype(np.float64)
    starts = np.searchsorted(camera, np.arange(len(extrinsics)))
    records = np.zeros(len(order), dtype=POINT3D_DTYPE)
    records["id"] = np.arange(1, len(order) + 1)
    records["xyz"] = xyz
    records["rgb"] = np.clip(np.round(selection.rgb[order] * 255), 0, 255).astype(np.uint8)
    records["error"] = reprojection_error(xyz, pixels_xy, extrinsics[camera].astype(np.float64),
                                          intrinsics[camera].astype(np.float64))
    records["track_length"] = 1
    records["image_id"] = camera + 1
    records["point2D_idx"] = np.arange(len(order)) - starts[camera]
    points2d = []
    for index in range(len(extrinsics)):
        members = np.flatnonzero(camera == index)
        observed = np.zeros(len(members), dtype=POINT2D_DTYPE)
        observed["xy"], observed["point3D_id"] = pixels_xy[members], records["id"][members]
        points2d.append(observed)
    names = [f"camera{index}_t{time_step:03d}.png" for index in range(len(extrinsics))]
    write_cameras_bin(folder / "cameras.bin", intrinsics, int(width), int(height))
    write_images_bin(folder / "images.bin", extrinsics, names, points2d)
    write_points3d_bin(folder / "points3D.bin", records)
    return folder


def write_colmap_models(folder: Path, predictions: dict[str, np.ndarray], filters: PointFilters = PointFilters(),
                        point_budget: int = COLMAP_POINT_BUDGET) -> list[Path]:
    """colmap/t000, colmap/t001, ...: a COLMAP sparse model per time step, the point budget shared out."""
    steps = predictions["world_points"].shape[0]
    per_step = max(1, point_budget // steps)
    return [write_colmap_model(folder / f"t{time_step:03d}", predictions, time_step, filters, per_step)
            for time_step in range(steps)]
