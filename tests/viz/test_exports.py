"""Downloads load back in the tools people use: trimesh for GLB/PLY, numpy for NPZ, json for cameras."""

import json
import zipfile

import numpy as np
import pytest
import trimesh

from tests.support.predictions import fake_predictions
from vggt_mv.viz.export import write_cameras_json, write_glb, write_npz, write_ply_per_time
from vggt_mv.viz.points import NO_FILTERS
from vggt_mv.viz.previews import PADDING_COLORS, camera_rows


def test_glb_holds_points_and_one_frustum_per_camera_per_time(tmp_path):
    predictions = fake_predictions(steps=2, cameras=3)
    scene = trimesh.load(write_glb(tmp_path / "scene.glb", predictions))
    kinds = [type(g).__name__ for g in scene.geometry.values()]
    assert kinds.count("PointCloud") == 1 and kinds.count("Trimesh") == 6


def test_ply_per_time_step(tmp_path):
    paths = write_ply_per_time(tmp_path, fake_predictions(steps=3), NO_FILTERS)
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


def test_camera_rows_are_one_per_camera_with_columns_input_depth_confidence_dynamic():
    rows = camera_rows(fake_predictions(cameras=3), time_step=1)
    assert len(rows) == 3 and all(row.shape == (28, 4 * 42, 3) and row.dtype == np.uint8 for row in rows)


def strict_json(text: str):
    """json.loads that refuses NaN/Infinity, as JSON.parse in a browser does."""
    def refuse(constant):
        raise ValueError(f"not JSON: {constant}")
    return json.loads(text, parse_constant=refuse)


def test_cameras_json_is_strict_json_with_null_for_non_finite_values(tmp_path):
    predictions = fake_predictions(steps=1, cameras=2)
    predictions["intrinsic"][0, 1, 0, 0] = np.inf
    predictions["extrinsic"][0, 0, 2, 3] = np.nan
    cameras = strict_json(write_cameras_json(tmp_path / "cameras.json", predictions).read_text())
    assert cameras["frames"][1]["intrinsic"][0][0] is None and cameras["frames"][0]["extrinsic"][2][3] is None
    assert cameras["frames"][1]["intrinsic"][1][1] == pytest.approx(40.0)


def test_npz_holds_the_valid_mask_and_is_stored_uncompressed_for_speed(tmp_path):
    predictions = fake_predictions(padded_rows=3)
    path = write_npz(tmp_path / "p.npz", predictions)
    assert np.array_equal(np.load(path)["valid_mask"], predictions["valid_mask"])
    assert {info.compress_type for info in zipfile.ZipFile(path).infolist()} == {zipfile.ZIP_STORED}


def test_padding_never_becomes_a_point_in_any_download(tmp_path):
    predictions = fake_predictions(steps=1, cameras=2, padded_rows=5)
    cloud = trimesh.load(write_ply_per_time(tmp_path, predictions, NO_FILTERS)[0])
    assert len(cloud.vertices) == predictions["valid_mask"].sum()


def test_camera_rows_show_padding_as_stripes_in_every_panel():
    predictions = fake_predictions(cameras=2, padded_rows=4)
    strip = camera_rows(predictions, time_step=0)[0]
    top_rows = strip[:4]
    assert set(map(tuple, top_rows.reshape(-1, 3))) <= set(map(tuple, PADDING_COLORS))
    assert len(set(map(tuple, strip[10, :42]))) > 2, "real pixels are drawn as the image"


def test_npz_images_are_the_uint8_frames_and_floats_stay_float32(tmp_path):
    predictions = fake_predictions(steps=2, cameras=2)
    archive = np.load(write_npz(tmp_path / "p.npz", predictions))
    assert archive["images"].dtype == np.uint8
    assert np.abs(archive["images"] / 255.0 - predictions["images"]).max() <= 0.5 / 255 + 1e-6
    assert all(archive[key].dtype == np.float32 for key in ("depth", "world_points", "extrinsic", "intrinsic"))


def test_npz_float16_only_on_request_halves_the_maps_and_never_overflows_to_inf(tmp_path):
    predictions = fake_predictions(steps=2, cameras=2)
    predictions["world_points_conf"][0, 0, 0, 0] = 1e9  # VGGT's confidences are 1 + exp(x): they can be huge
    full = write_npz(tmp_path / "full.npz", predictions)
    half = np.load(write_npz(tmp_path / "half.npz", predictions, float16=True))
    assert half["world_points"].dtype == np.float16 and half["extrinsic"].dtype == np.float32
    assert np.isfinite(half["world_points_conf"]).all()
    assert np.allclose(half["world_points"], predictions["world_points"], atol=2e-3)
    assert (tmp_path / "half.npz").stat().st_size < 0.7 * full.stat().st_size


def test_npz_holds_no_nan_and_masks_where_a_prediction_was_not_finite(tmp_path):
    predictions = fake_predictions(steps=1, cameras=2)
    predictions["depth"][0, 1, 3, 4, 0] = np.nan
    predictions["intrinsic"][0, 0, 1, 1] = np.inf
    archive = np.load(write_npz(tmp_path / "p.npz", predictions))
    for key in archive.files:
        if np.issubdtype(archive[key].dtype, np.floating):
            assert np.isfinite(archive[key]).all(), key
    assert archive["depth"][0, 1, 3, 4, 0] == 0 and not archive["depth_finite"][0, 1, 3, 4, 0]
    assert archive["depth_finite"].sum() == archive["depth"].size - 1
    assert not archive["intrinsic_finite"][0, 0, 1, 1] and "world_points_finite" not in archive.files


def test_glb_leaves_out_the_frustum_of_a_camera_with_an_infinite_focal_length(tmp_path):
    predictions = fake_predictions(steps=2, cameras=2)
    predictions["intrinsic"][1, 0, 1, 1] = np.inf
    scene = trimesh.load(write_glb(tmp_path / "scene.glb", predictions))
    frustums = [name for name, g in scene.geometry.items() if type(g).__name__ == "Trimesh"]
    assert len(frustums) == 3 and "camera0_t1" not in frustums
    for geometry in scene.geometry.values():
        assert np.isfinite(geometry.vertices).all()
