"""The downloads as the app and the CLI build them on request: every format from the same predictions, whatever
the filters leave, nothing non-finite in any file, and the bundle the only copy of what it holds."""

import zipfile

import numpy as np
import pytest
import trimesh

from tests.support.predictions import fake_predictions
from vggt_mv.exports.formats import FORMATS, ExportOptions, build_format, offered_files, unavailable
from vggt_mv.viz.points import PointFilters

EVERY_POINT_REMOVED = ExportOptions(filters=PointFilters(conf_threshold=1e9))


@pytest.mark.parametrize("name", list(FORMATS))
def test_every_format_builds_when_the_filters_remove_every_point_and_says_so_where_it_matters(tmp_path, name):
    written = build_format(name, fake_predictions(steps=2, cameras=2), tmp_path, EVERY_POINT_REMOVED)
    assert written.files() and all(path.stat().st_size > 0 for path in written.files())
    if name == "glb":
        assert "holds no points" in " ".join(written.notes)
        scene = trimesh.load(written.paths[0], force="scene")
        assert sum(type(g).__name__ == "Trimesh" for g in scene.geometry.values()) == 4, "the cameras are still in it"


def test_a_camera_with_an_infinite_focal_length_is_named_by_every_format_that_needs_a_camera(tmp_path):
    predictions = fake_predictions(steps=2, cameras=2)
    predictions["intrinsic"][1, 0, 0, 0] = np.inf
    for name in ("glb", "cameras", "colmap", "rerun"):
        notes = build_format(name, predictions, tmp_path / name).notes
        assert any(note.startswith("time step 1, camera 0 ") and "intrinsics are not finite" in note
                   for note in notes), (name, notes)
    npz = build_format("npz", predictions, tmp_path / "npz")
    assert npz.notes == ["NPZ: 1 non-finite values in intrinsic written as 0 (see intrinsic_finite)"]


def test_the_bundle_holds_every_format_once_and_leaves_no_other_copy_behind(tmp_path):
    written = build_format("zip", fake_predictions(steps=2, cameras=2), tmp_path)
    assert [path.name for path in tmp_path.iterdir()] == ["everything.zip"]
    names = zipfile.ZipFile(written.paths[0]).namelist()
    assert len(names) == len(set(names))
    assert {"scene.glb", "predictions.npz", "cameras.json", "ply/points_t001.ply", "recording.rrd",
            "colmap/t001/sparse/0/images.bin", "colmap/t001/images/camera1.png"} <= set(names)


def test_a_folder_format_is_offered_as_one_zip_and_files_as_they_are(tmp_path):
    colmap = build_format("colmap", fake_predictions(steps=1, cameras=2), tmp_path)
    (archive,) = offered_files(colmap)
    assert archive.name == "colmap.zip" and "t000/sparse/0/cameras.bin" in zipfile.ZipFile(archive).namelist()
    ply = build_format("ply", fake_predictions(steps=3, cameras=2), tmp_path / "p")
    assert [path.name for path in offered_files(ply)] == ["points_t000.ply", "points_t001.ply", "points_t002.ply"]


@pytest.mark.parametrize("name", ["../../etc/passwd", "", "ZIP", "glb\n", "x" * 10_000])
def test_an_unknown_format_is_refused_in_one_line_before_anything_is_written(tmp_path, name):
    reason = unavailable(name)
    assert reason.startswith("unknown download format") and "\n" not in reason and len(reason) < 200
    with pytest.raises(ValueError, match="unknown download format"):
        build_format(name, fake_predictions(), tmp_path / "out")
    assert not (tmp_path / "out").exists()
