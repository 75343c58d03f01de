"""The COLMAP export, read back with pycolmap (COLMAP's own reader): what someone who points COLMAP, gsplat or
nerfstudio at colmap/tNNN gets, on scenes whose geometry is known exactly (tests.support.colmap_scene)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pycolmap
import pytest
from PIL import Image

from tests.support.colmap_scene import (
    PADDING_POINT,
    box_scene,
    example_rig_predictions,
    perturbed_cameras,
    visible_from,
)
from tests.support.predictions import fake_predictions
from vggt_mv.exports.colmap import write_colmap_export
from vggt_mv.viz.points import NO_FILTERS, PointFilters

BUDGET = 10 ** 6  # more than the tiny scenes have pixels: every point that passes the filters


def read_models(folder: Path, steps: int) -> list[pycolmap.Reconstruction]:
    """Every time step's sparse/0 as pycolmap reads it (and that there is one folder per time step)."""
    assert sorted(p.name for p in folder.iterdir()) == [f"t{t:03d}" for t in range(steps)]
    return [pycolmap.Reconstruction(folder / f"t{t:03d}" / "sparse" / "0") for t in range(steps)]


def observation_errors(model: pycolmap.Reconstruction) -> np.ndarray:
    """Pixels between each observation and its 3D point projected by pycolmap into that image."""
    errors = []
    for image in model.images.values():
        observed = [p for p in image.points2D if p.has_point3D()]
        if not observed:
            continue
        xyz = np.array([model.point3D(p.point3D_id).xyz for p in observed])
        projected = image.camera.img_from_cam(image.cam_from_world() * xyz)
        errors.append(np.linalg.norm(projected - np.array([p.xy for p in observed]), axis=1))
    return np.concatenate(errors) if errors else np.zeros(0)


def track_lengths(model: pycolmap.Reconstruction) -> np.ndarray:
    """Each 3D point's number of observations."""
    return np.array([point.track.length() for point in model.points3D.values()])


def assert_nothing_non_finite(model: pycolmap.Reconstruction) -> None:
    """Every number COLMAP reads (camera parameters, poses, points, errors, 2D points) is finite."""
    for camera in model.cameras.values():
        assert np.isfinite(camera.params).all() and camera.focal_length_x > 0 and camera.focal_length_y > 0
    for image in model.images.values():
        assert image.has_pose and np.isfinite(image.cam_from_world().matrix()).all()
        assert all(np.isfinite(p.xy).all() for p in image.points2D)
    for point in model.points3D.values():
        assert np.isfinite(point.xyz).all() and np.isfinite(point.error)


def assert_images_on_disk(step_folder: Path, model: pycolmap.Reconstruction) -> None:
    """Each image images.bin names is a PNG in images/ of its camera's width and height, and nothing else is."""
    names = set()
    for image in model.images.values():
        with Image.open(step_folder / "images" / image.name) as png:
            assert png.size == (image.camera.width, image.camera.height) and png.mode == "RGB"
        names.add(image.name)
    assert {p.name for p in (step_folder / "images").iterdir()} == names


def test_every_time_step_reads_back_with_its_images_poses_and_multi_view_tracks(tmp_path):
    predictions = box_scene(steps=2)
    export = write_colmap_export(tmp_path / "colmap", predictions, NO_FILTERS, BUDGET)
    models = read_models(tmp_path / "colmap", 2)
    for t, (model, step) in enumerate(zip(models, export.steps)):
        assert sorted(model.images) == [1, 2, 3] and step.cameras_written == [0, 1, 2] and step.skipped == []
        assert_images_on_disk(tmp_path / "colmap" / f"t{t:03d}", model)
        for n in range(3):
            image = model.image(n + 1)
            assert image.name == f"camera{n}.png" and image.camera.model == pycolmap.CameraModelId.PINHOLE
            np.testing.assert_allclose(image.cam_from_world().matrix(), predictions["extrinsic"][t, n], atol=1e-6)
        lengths = track_lengths(model)
        assert lengths.mean() >= 2 and (lengths >= 2).mean() > 0.7 and lengths.max() == 3
        assert step.points == len(lengths) and step.mean_track_length == pytest.approx(lengths.mean())
        errors = observation_errors(model)
        assert len(errors) == lengths.sum() and errors.max() < 0.05, "exact geometry: points land on their pixels"
        assert model.compute_mean_reprojection_error() < 0.01
        assert_nothing_non_finite(model)
    assert export.notes() == []


def test_classic_files_alone_still_hold_the_poses(tmp_path):
    """nerfstudio, gsplat and COLMAP before 3.12 read only cameras/images/points3D.bin: those carry everything."""
    predictions = box_scene()
    write_colmap_export(tmp_path / "colmap", predictions, NO_FILTERS, BUDGET)
    classic = tmp_path / "classic"
    classic.mkdir()
    for name in ("cameras.bin", "images.bin", "points3D.bin"):
        shutil.copy(tmp_path / "colmap" / "t000" / "sparse" / "0" / name, classic / name)
    full, alone = read_models(tmp_path / "colmap", 1)[0], pycolmap.Reconstruction(classic)
    assert alone.num_points3D() == full.num_points3D() and sorted(alone.images) == sorted(full.images)
    for image_id, image in alone.images.items():
        np.testing.assert_allclose(image.cam_from_world().matrix(), full.image(image_id).cam_from_world().matrix())


@pytest.mark.parametrize("as_uint8", [False, True])
def test_padding_is_cropped_away_and_the_principal_point_follows(tmp_path, as_uint8):
    predictions = box_scene()  # camera 1: 3 padding rows top and bottom; camera 2: 4 padding columns right
    source = np.clip(np.round(predictions["images"] * 255), 0, 255).astype(np.uint8)
    if as_uint8:
        predictions["images"] = source
    height, width = predictions["valid_mask"].shape[2:]
    write_colmap_export(tmp_path / "colmap", predictions, NO_FILTERS, BUDGET)
    model = read_models(tmp_path / "colmap", 1)[0]
    for n, (top, left, size) in enumerate([(0, 0, (width, height)), (3, 0, (width, height - 6)),
                                           (0, 0, (width - 4, height))]):
        camera = model.image(n + 1).camera
        assert (camera.width, camera.height) == size
        fx, fy, cx, cy = predictions["intrinsic"][0, n][[0, 1, 0, 1], [0, 1, 2, 2]]
        # the model's pixel centres are at integers, COLMAP's at +0.5; the crop moves the origin by (left, top)
        np.testing.assert_allclose(camera.params, [fx, fy, cx - left + 0.5, cy - top + 0.5], rtol=1e-6)
        png = np.asarray(Image.open(tmp_path / "colmap" / "t000" / "images" / f"camera{n}.png"))
        assert png.shape == (size[1], size[0], 3)
        for row, col in [(top, left), (top + 5, left + 7), (top + size[1] - 1, left + size[0] - 1)]:
            np.testing.assert_array_equal(png[row - top, col - left], source[0, n, :, row, col])
    xyz = np.array([point.xyz for point in model.points3D.values()])
    assert np.linalg.norm(xyz - PADDING_POINT, axis=1).min() > 0.1, "no point comes from a padding pixel"
    assert observation_errors(model).max() < 0.05, "the shifted principal point matches the cropped frame"


def test_hostile_padding_of_fake_predictions_never_becomes_a_point(tmp_path):
    predictions = fake_predictions(steps=2, cameras=2, padded_rows=4)  # padding has the highest confidence
    export = write_colmap_export(tmp_path / "colmap", predictions, PointFilters(), 400)
    for t, model in enumerate(read_models(tmp_path / "colmap", 2)):
        assert model.image(1).camera.height == 28 - 8 and model.image(2).camera.height == 28
        assert all(0 <= p.xy[1] < 20 for p in model.image(1).points2D)
        assert 0 < model.num_points3D() <= 200 and export.steps[t].points == model.num_points3D()
        assert_nothing_non_finite(model)


@pytest.mark.parametrize("breakage, time_step, camera, reason", [
    ("infinite_fy", 1, 1, "its intrinsics are not finite"),
    ("nan_pose", 0, 2, "its pose is not finite"),
    ("negative_focal", 1, 0, "its focal length is not positive"),
    ("scaled_rotation", 0, 1, "its pose's rotation is not a rotation"),
])
def test_a_broken_camera_is_left_out_with_a_note_and_the_rest_reads_back(tmp_path, breakage, time_step, camera,
                                                                           reason):
    predictions = box_scene(steps=2)
    if breakage == "infinite_fy":
        predictions["intrinsic"][time_step, camera, 1, 1] = np.inf
    elif breakage == "nan_pose":
        predictions["extrinsic"][time_step, camera, 0, 3] = np.nan
    elif breakage == "scaled_rotation":
        predictions["extrinsic"][time_step, camera, :, :3] *= 2.0
    else:
        predictions["intrinsic"][time_step, camera, 0, 0] = -26.0
    export = write_colmap_export(tmp_path / "colmap", predictions, NO_FILTERS, BUDGET)
    assert f"time step {time_step}, camera {camera} left out of the COLMAP export: {reason}" in export.notes()
    assert export.steps[time_step].skipped == [(camera, reason)]
    for t, model in enumerate(read_models(tmp_path / "colmap", 2)):
        expected = [n + 1 for n in range(3) if (t, n) != (time_step, camera)]
        assert sorted(model.images) == expected and sorted(model.cameras) == expected
        assert_images_on_disk(tmp_path / "colmap" / f"t{t:03d}", model)
        assert_nothing_non_finite(model)
        assert track_lengths(model).mean() >= (1.5 if t == time_step else 2)


def test_a_point_hidden_behind_the_box_is_not_claimed_visible(tmp_path):
    predictions = box_scene(height=36, width=48, focal=39.0)
    write_colmap_export(tmp_path / "colmap", predictions, NO_FILTERS, BUDGET)
    model = read_models(tmp_path / "colmap", 1)[0]
    point_ids = np.array(list(model.points3D))
    xyz = np.array([model.point3D(i).xyz for i in point_ids])
    hidden_in_view = claimed_hidden = visible_in_view = claimed_visible = 0
    for image_id, image in model.images.items():
        observed = {p.point3D_id for p in image.points2D if p.has_point3D()}
        claimed = np.isin(point_ids, list(observed))
        projected = image.camera.img_from_cam(image.cam_from_world() * xyz)
        in_view = ((projected >= 1) & (projected < [image.camera.width - 1, image.camera.height - 1])).all(axis=1)
        visible = visible_from(predictions["extrinsic"][0, image_id - 1].astype(np.float64), xyz)
        hidden_in_view += np.count_nonzero(in_view & ~visible)
        claimed_hidden += np.count_nonzero(claimed & ~visible)
        visible_in_view += np.count_nonzero(in_view & visible)
        claimed_visible += np.count_nonzero(in_view & visible & claimed)
    assert hidden_in_view > 20, "the scene has points one camera sees and another's view hides behind the box"
    assert claimed_hidden == 0
    assert claimed_visible / visible_in_view > 0.9, "where a point is in plain view, the track has it"


def test_bundle_adjustment_lowers_the_error_of_perturbed_cameras(tmp_path):
    truth = box_scene(steps=2, height=36, width=48, focal=39.0)
    predictions = perturbed_cameras(truth, angle=0.01, shift=0.02)
    export = write_colmap_export(tmp_path / "colmap", predictions, NO_FILTERS, BUDGET, bundle_adjust=True)
    models = read_models(tmp_path / "colmap", 2)
    for t, (model, step) in enumerate(zip(models, export.steps)):
        assert step.error_before > 0.1 and step.error_after < 0.1 * step.error_before
        assert model.compute_mean_reprojection_error() == pytest.approx(step.error_after, abs=1e-6)
        assert observation_errors(model).mean() < 0.1
        assert_nothing_non_finite(model)
        assert_images_on_disk(tmp_path / "colmap" / f"t{t:03d}", model)
        for n in (1, 2):
            rotation = model.image(n + 1).cam_from_world().rotation.matrix()
            true, perturbed = truth["extrinsic"][t, n, :, :3], predictions["extrinsic"][t, n, :, :3]
            assert angle_between(rotation, true) < 0.5 * angle_between(perturbed, true), "BA recovers the rotation"
    summary = [note for note in export.notes() if "bundle adjustment" in note]
    assert len(summary) == 1 and "t000" in summary[0] and "t001" in summary[0]
    plain = write_colmap_export(tmp_path / "plain", predictions, NO_FILTERS, BUDGET)
    assert all(step.error_before is None and step.error_after is None for step in plain.steps)
    assert not any("bundle adjustment" in note for note in plain.notes())


def angle_between(first: np.ndarray, second: np.ndarray) -> float:
    """Radians of the rotation taking one rotation matrix to the other."""
    cosine = (np.trace(first.astype(np.float64) @ second.astype(np.float64).T) - 1) / 2
    return float(np.arccos(np.clip(cosine, -1, 1)))


def test_the_point_budget_is_shared_out_over_the_time_steps(tmp_path):
    export = write_colmap_export(tmp_path / "colmap", box_scene(steps=3), PointFilters(), 300)
    for step, model in zip(export.steps, read_models(tmp_path / "colmap", 3)):
        assert 50 <= model.num_points3D() <= 100 and track_lengths(model).mean() >= 2
        assert step.points == model.num_points3D()


def hostile_predictions(case: str) -> dict[str, np.ndarray]:
    """Predictions a broken model or an odd input gives."""
    if case == "one_row":
        return box_scene(steps=2, height=1, width=32, padded=False)
    if case == "one_column":
        return box_scene(steps=2, height=24, width=1, padded=False)
    predictions = box_scene(steps=2)
    if case == "camera_all_padding":
        predictions["valid_mask"][:, 1] = False
    elif case == "all_nan":
        for key, value in predictions.items():
            if np.issubdtype(value.dtype, np.floating):
                predictions[key] = np.full_like(value, np.nan)
    elif case == "nan_points":
        predictions["world_points"][:] = np.nan
    return predictions


@pytest.mark.parametrize("case", ["one_row", "one_column", "camera_all_padding", "all_nan", "nan_points"])
@pytest.mark.parametrize("bundle_adjust", [False, True])
def test_hostile_predictions_give_readable_finite_models(tmp_path, case, bundle_adjust):
    predictions = hostile_predictions(case)
    export = write_colmap_export(tmp_path / "colmap", predictions, PointFilters(), BUDGET, bundle_adjust)
    models = read_models(tmp_path / "colmap", 2)
    for t, model in enumerate(models):
        assert_nothing_non_finite(model)
        assert_images_on_disk(tmp_path / "colmap" / f"t{t:03d}", model)
    notes = export.notes()
    assert any("bundle adjustment" in note for note in notes) == bundle_adjust
    if case == "camera_all_padding":
        assert [sorted(model.images) for model in models] == [[1, 3], [1, 3]]
        assert "time step 0, camera 1 left out of the COLMAP export: it has no valid pixel (all padding)" in notes
        assert all(track_lengths(model).mean() > 1.5 for model in models)
    elif case == "all_nan":
        assert all(model.num_images() == 0 and model.num_points3D() == 0 for model in models)
        assert "time step 1, camera 2 left out of the COLMAP export: its intrinsics are not finite" in notes
        assert "time step 0: no camera could be written, its COLMAP model is empty" in notes
        assert all(step.error_before is None for step in export.steps)
        assert not bundle_adjust or "t001 not adjusted (it needs two cameras that see a common point)" in notes[-1]
    elif case == "nan_points":
        assert all(model.num_images() == 3 and model.num_points3D() == 0 for model in models)
        assert all(step.points == 0 and step.mean_track_length == 0 for step in export.steps)
    else:
        assert all(model.num_images() == 3 and model.num_points3D() > 0 for model in models)


def test_the_example_rig_exports_with_images_and_multi_view_tracks(tmp_path):
    """Done when: pycolmap reads every time step of the example rig's export, images present, track length >= 2."""
    predictions = example_rig_predictions((0, 15))
    export = write_colmap_export(tmp_path / "colmap", predictions, PointFilters(), 30_000)
    for t, model in enumerate(read_models(tmp_path / "colmap", 2)):
        assert model.num_images() == 3 and model.num_points3D() > 10_000
        assert_images_on_disk(tmp_path / "colmap" / f"t{t:03d}", model)
        assert (model.image(1).camera.width, model.image(1).camera.height) == (518, 294)
        assert model.compute_mean_track_length() >= 2
        assert observation_errors(model).mean() < 0.1
        assert_nothing_non_finite(model)
    assert export.notes() == []
