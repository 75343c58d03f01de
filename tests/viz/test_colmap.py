"""COLMAP export, read back by a reader written from COLMAP's documented format (colmap.github.io/format.html)."""

import struct
from pathlib import Path

import numpy as np
import pytest

from tests.support.predictions import fake_predictions
from vggt_mv.viz.colmap import rotation_to_quaternion, write_colmap_models
from vggt_mv.viz.points import NO_FILTERS, PointFilters

CAMERA_MODEL_PARAMS = {0: 3, 1: 4, 2: 4, 3: 5, 4: 8}


def read(file, fmt: str):
    return struct.unpack("<" + fmt, file.read(struct.calcsize("<" + fmt)))


def read_cameras(path: Path) -> dict:
    """{camera_id: (model_id, width, height, params)}."""
    cameras = {}
    with open(path, "rb") as file:
        for _ in range(read(file, "Q")[0]):
            camera_id, model_id, width, height = read(file, "iiQQ")
            cameras[camera_id] = (model_id, width, height, read(file, "d" * CAMERA_MODEL_PARAMS[model_id]))
        assert file.read() == b""
    return cameras


def read_images(path: Path) -> dict:
    """{image_id: (qvec, tvec, camera_id, name, xys [K, 2], point3D_ids [K])}."""
    images = {}
    with open(path, "rb") as file:
        for _ in range(read(file, "Q")[0]):
            image_id, *pose, camera_id = read(file, "idddddddi")
            name = b""
            while (char := file.read(1)) != b"\0":
                name += char
            count = read(file, "Q")[0]
            entries = np.array(read(file, "ddq" * count)).reshape(count, 3) if count else np.zeros((0, 3))
            images[image_id] = (np.array(pose[:4]), np.array(pose[4:]), camera_id, name.decode(), entries[:, :2],
                                entries[:, 2].astype(np.int64))
        assert file.read() == b""
    return images


def read_points(path: Path) -> dict:
    """{point3D_id: (xyz, rgb, error, [(image_id, point2D_idx), ...])}."""
    points = {}
    with open(path, "rb") as file:
        for _ in range(read(file, "Q")[0]):
            point_id, x, y, z, r, g, b, error = read(file, "QdddBBBd")
            track_length = read(file, "Q")[0]
            track = np.array(read(file, "ii" * track_length)).reshape(-1, 2)
            points[point_id] = (np.array([x, y, z]), (r, g, b), error, [tuple(t) for t in track])
        assert file.read() == b""
    return points


def quaternion_to_rotation(q: np.ndarray) -> np.ndarray:
    w, x, y, z = q
    return np.array([[1 - 2 * y * y - 2 * z * z, 2 * x * y - 2 * w * z, 2 * x * z + 2 * w * y],
                     [2 * x * y + 2 * w * z, 1 - 2 * x * x - 2 * z * z, 2 * y * z - 2 * w * x],
                     [2 * x * z - 2 * w * y, 2 * y * z + 2 * w * x, 1 - 2 * x * x - 2 * y * y]])


def rotation(yaw: float, pitch: float) -> np.ndarray:
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    return np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])


def consistent_predictions(steps: int = 2, cameras: int = 2, padded_rows: int = 3) -> dict:
    """Fake predictions whose world points are exactly the pixels' centres seen at depth 3 by rotated cameras."""
    predictions = fake_predictions(steps=steps, cameras=cameras, padded_rows=padded_rows)
    height, width = predictions["valid_mask"].shape[2:]
    rows, cols = np.mgrid[0:height, 0:width]
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones_like(rows, dtype=float)], axis=-1)
    for t in range(steps):
        for n in range(cameras):
            predictions["extrinsic"][t, n, :, :3] = rotation(0.3 * n + 0.1 * t, 0.2 * n)
            predictions["intrinsic"][t, n, 0, 0] = 40.0 + 5 * n
            extrinsic, intrinsic = predictions["extrinsic"][t, n].astype(float), predictions["intrinsic"][t, n]
            camera_points = pixels @ np.linalg.inv(intrinsic).T * 3.0
            predictions["world_points"][t, n] = (camera_points - extrinsic[:, 3]) @ extrinsic[:, :3]
    return predictions


@pytest.mark.parametrize("yaw, pitch", [(0.0, 0.0), (3.0, 0.0), (0.5, 3.1), (-2.0, 1.0), (np.pi, 0.0)])
def test_quaternions_round_trip_rotations(yaw, pitch):
    matrix = rotation(yaw, pitch)
    q = rotation_to_quaternion(matrix)
    assert q[0] >= 0 and np.linalg.norm(q) == pytest.approx(1.0)
    np.testing.assert_allclose(quaternion_to_rotation(q), matrix, atol=1e-12)


def test_each_time_step_is_a_colmap_model_with_the_predicted_cameras_and_valid_points(tmp_path):
    predictions = consistent_predictions(steps=2, cameras=2, padded_rows=3)
    folders = write_colmap_models(tmp_path / "colmap", predictions, NO_FILTERS, point_budget=10 ** 6)
    assert [f.name for f in folders] == ["t000", "t001"]
    height, width = predictions["valid_mask"].shape[2:]
    for t, folder in enumerate(folders):
        cameras, images = read_cameras(folder / "cameras.bin"), read_images(folder / "images.bin")
        points = read_points(folder / "points3D.bin")
        for n in range(2):
            model_id, cam_width, cam_height, params = cameras[n + 1]
            intrinsic = predictions["intrinsic"][t, n]
            assert (model_id, cam_width, cam_height) == (1, width, height)
            np.testing.assert_allclose(params, [intrinsic[0, 0], intrinsic[1, 1], intrinsic[0, 2], intrinsic[1, 2]])
            qvec, tvec, camera_id, name, xys, point_ids = images[n + 1]
            assert camera_id == n + 1 and name == f"camera{n}_t{t:03d}.png"
            np.testing.assert_allclose(quaternion_to_rotation(qvec), predictions["extrinsic"][t, n, :, :3], atol=1e-6)
            np.testing.assert_allclose(tvec, predictions["extrinsic"][t, n, :, 3], atol=1e-6)
            assert len(xys) == predictions["valid_mask"][t, n].sum(), "every real pixel and no padding"
            rows = np.floor(xys[:, 1]).astype(int)
            assert predictions["valid_mask"][t, n][rows, np.floor(xys[:, 0]).astype(int)].all()
            for index in (0, len(point_ids) // 2, len(point_ids) - 1):
                assert (n + 1, index) in points[point_ids[index]][3], "tracks point back at the pixel"
        assert len(points) == predictions["valid_mask"][t].sum()
        errors = np.array([p[2] for p in points.values()])
        assert errors.max() < 1e-3, "points consistent with their cameras reproject onto their pixels"


def test_confidence_percentile_and_budget_limit_the_points(tmp_path):
    predictions = consistent_predictions(steps=2, cameras=2)
    folders = write_colmap_models(tmp_path / "colmap", predictions, PointFilters(conf_percentile=50),
                                  point_budget=600)
    for folder in folders:
        points = read_points(folder / "points3D.bin")
        assert len(points) == 300
        images = read_images(folder / "images.bin")
        assert sum(len(image[4]) for image in images.values()) == 300
