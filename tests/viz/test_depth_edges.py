"""The depth-edge filter: the flying pixels of a depth step go, the flat parts stay, in the scene and every export."""

import numpy as np
import pycolmap
import pytest
import trimesh

from tests.support.predictions import fake_predictions
from vggt_mv.exports.colmap import write_colmap_export
from vggt_mv.viz.depth_edges import camera_depth, depth_edge_mask
from vggt_mv.viz.export import write_glb, write_ply_per_time
from vggt_mv.viz.points import PointFilters, select_points
from vggt_mv.viz.scene import SceneOptions, build_scene

SEAM = 20  # column of the flying pixel between the near (depth 2) and the far (depth 4) half
SEAM_COLUMNS = (SEAM - 1, SEAM, SEAM + 1)  # the flying pixel and its two neighbours across the jump
ALL_POINTS = PointFilters(conf_percentile=0)  # only the depth-edge filter (on by default) is at work


def rotation(yaw: float, pitch: float) -> np.ndarray:
    """A camera turned by `yaw` about y, then `pitch` about x."""
    cy, sy, cp, sp = np.cos(yaw), np.sin(yaw), np.cos(pitch), np.sin(pitch)
    return np.array([[cy, 0, sy], [0, 1, 0], [-sy, 0, cy]]) @ np.array([[1, 0, 0], [0, cp, -sp], [0, sp, cp]])


def step_edge_predictions(cameras: int = 2) -> dict:
    """One time step: every camera (rotated, so world z is not depth) sees depth 2 left of the seam, 4 right of it,
    and one flying pixel at depth 3 on the seam, its points exactly the pixels unprojected at that depth."""
    predictions = fake_predictions(steps=1, cameras=cameras)
    height, width = predictions["valid_mask"].shape[2:]
    rows, cols = np.mgrid[0:height, 0:width]
    depth = np.where(cols < SEAM, 2.0, 4.0)
    depth[:, SEAM] = 3.0
    pixels = np.stack([cols + 0.5, rows + 0.5, np.ones_like(rows, dtype=float)], axis=-1)
    for camera in range(cameras):
        predictions["extrinsic"][0, camera, :, :3] = rotation(0.4 * camera + 0.2, 0.1)
        extrinsic, intrinsic = predictions["extrinsic"][0, camera].astype(float), predictions["intrinsic"][0, camera]
        camera_points = pixels @ np.linalg.inv(intrinsic).T * depth[..., None]
        predictions["world_points"][0, camera] = (camera_points - extrinsic[:, 3]) @ extrinsic[:, :3]
        predictions["depth"][0, camera, ..., 0] = depth
    return predictions


def test_camera_depth_recovers_the_depth_each_camera_saw():
    predictions = step_edge_predictions()
    depth = camera_depth(predictions["world_points"], predictions["extrinsic"])
    np.testing.assert_allclose(depth, predictions["depth"][..., 0], atol=1e-4)


def test_a_depth_step_marks_its_seam_and_nothing_else():
    depth = step_edge_predictions()["depth"][0, 0, ..., 0]
    edges = depth_edge_mask(depth)
    assert sorted(set(np.nonzero(edges)[1].tolist())) == list(SEAM_COLUMNS)
    assert edges[:, list(SEAM_COLUMNS)].all()


def test_edges_are_relative_a_gentle_slope_is_no_edge_but_a_jump_over_the_threshold_is():
    cols = np.arange(40, dtype=float)
    slope = np.tile(10.0 * (1 + 0.01 * cols), (8, 1))  # 1% deeper per pixel
    assert not depth_edge_mask(slope, threshold=0.03).any()
    jump = slope.copy()
    jump[:, 20:] *= 1.05
    assert set(np.nonzero(depth_edge_mask(jump, threshold=0.03))[1].tolist()) == {19, 20}


def test_padding_and_missing_neighbours_never_make_an_edge():
    depth = np.full((10, 12), 5.0)
    valid = np.ones_like(depth, dtype=bool)
    valid[:3] = False
    depth[:3] = 100.0  # the model's depth on padding: anything
    depth[6, 6] = np.nan
    assert not depth_edge_mask(depth, valid=valid).any()
    assert depth_edge_mask(depth)[3].all(), "without the mask, padding next to real pixels would be a jump"


def test_selection_drops_the_seam_counts_it_and_keeps_the_flat_parts():
    predictions = step_edge_predictions()
    height = predictions["valid_mask"].shape[2]
    kept = select_points(predictions, [0], ALL_POINTS, point_budget=10 ** 6)
    columns = kept.pixel_index % predictions["valid_mask"].shape[3]
    assert not set(columns.tolist()) & set(SEAM_COLUMNS)
    assert kept.removed_as_edges == 2 * height * len(SEAM_COLUMNS)
    assert len(kept.xyz) == predictions["valid_mask"].sum() - kept.removed_as_edges
    off = select_points(predictions, [0], PointFilters(conf_percentile=0, depth_edges=False), point_budget=10 ** 6)
    assert off.removed_as_edges == 0 and len(off.xyz) == predictions["valid_mask"].sum()


def test_the_points_counter_says_how_many_edge_points_were_removed():
    predictions = step_edge_predictions()
    removed = 2 * predictions["valid_mask"].shape[2] * len(SEAM_COLUMNS)
    title = build_scene(predictions, SceneOptions(conf_percentile=0, point_budget=10 ** 6)).layout.title.text
    assert f"{removed:,} depth-edge points removed" in title
    title = build_scene(predictions, SceneOptions(conf_percentile=0, depth_edges=False)).layout.title.text
    assert "depth-edge" not in title


def seam_free_count(predictions: dict) -> int:
    """How many points every export must hold: all real pixels but the seam's."""
    return int(predictions["valid_mask"].sum()) - 2 * predictions["valid_mask"].shape[2] * len(SEAM_COLUMNS)


@pytest.mark.parametrize("export", ["glb", "ply", "colmap"])
def test_every_export_drops_the_same_seam_points(tmp_path, export):
    predictions = step_edge_predictions()
    if export == "glb":
        scene = trimesh.load(write_glb(tmp_path / "scene.glb", predictions, ALL_POINTS))
        (cloud,) = [g for g in scene.geometry.values() if isinstance(g, trimesh.PointCloud)]
        count = len(cloud.vertices)
    elif export == "ply":
        count = len(trimesh.load(write_ply_per_time(tmp_path, predictions, ALL_POINTS)[0]).vertices)
    else:
        export = write_colmap_export(tmp_path / "colmap", predictions, ALL_POINTS)
        model = pycolmap.Reconstruction(str(export.steps[0].folder / "sparse" / "0"))
        count = model.num_points3D()
        anchors = [model.images[point.track.elements[0].image_id].points2D[point.track.elements[0].point2D_idx].xy
                   for point in model.points3D.values()]
        assert not {int(x) for x, _ in anchors} & set(SEAM_COLUMNS), "a seam pixel became a COLMAP point"
    assert count == seam_free_count(predictions)
