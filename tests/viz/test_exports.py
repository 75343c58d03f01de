"""Downloads load back in the tools people use: trimesh for GLB/PLY, numpy for NPZ, json for cameras."""

import json

import numpy as np
import trimesh

from tests.support.predictions import fake_predictions
from vggt_mv.viz.export import write_cameras_json, write_glb, write_npz, write_ply_per_time
from vggt_mv.viz.previews import camera_strip


def test_glb_holds_points_and_one_frustum_per_camera_per_time(tmp_path):
    predictions = fake_predictions(steps=2, cameras=3)
    scene = trimesh.load(write_glb(tmp_path / "scene.glb", predictions))
    kinds = [type(g).__name__ for g in scene.geometry.values()]
    assert kinds.count("PointCloud") == 1 and kinds.count("Trimesh") == 6


def test_ply_per_time_step(tmp_path):
    paths = write_ply_per_time(tmp_path, fake_predictions(steps=3), conf_percentile=0)
    assert [p.name for p in paths] == ["points_t000.ply", "points_t001.ply", "points_t002.ply"]
    cloud = trimesh.load(paths[1])
    assert cloud.vertices.shape == (3 * 28 * 42, 3) and cloud.colors.shape[0] == 3 * 28 * 42


def test_npz_and_cameras_json_keep_the_time_camera_grid(tmp_path):
    predictions = fake_predictions(steps=2, cameras=3)
    archive = np.load(write_npz(tmp_path / "p.npz", predictions))
    assert archive["world_points"].shape == (2, 3, 28, 42, 3) and archive["extrinsic"].shape == (2, 3, 3, 4)
    cameras = json.loads(write_cameras_json(tmp_path / "cameras.json", predictions).read_text())
    assert len(cameras["frames"]) == 6 and cameras["image_size_hw"] == [28, 42]
    assert np.allclose(cameras["frames"][4]["extrinsic"], predictions["extrinsic"][1, 1], atol=1e-5)


def test_camera_strip_rows_are_cameras_and_columns_input_depth_confidence():
    strip = camera_strip(fake_predictions(cameras=3), time_step=1)
    assert strip.shape == (3 * 28, 3 * 42, 3) and strip.dtype == np.uint8
