"""A run longer than one pass, end to end with the tiny preset: windows, the store, every step distinct, every
download readable."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from tests.exports.test_colmap import assert_images_on_disk, assert_nothing_non_finite, read_models
from tests.support.videos import frame_number_seen, write_video
from vggt_mv.exports.colmap import step_cameras
from vggt_mv.exports.formats import ExportOptions, build_format, unavailable
from vggt_mv.io.prediction_store import StoredArray
from vggt_mv.pipeline import ReconstructionError, ReconstructionSettings, reconstruct
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.viz.scene import build_scene

STEPS = 14


@pytest.fixture(scope="module")
def served():
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


@pytest.fixture(scope="module")
def windowed_run(served, tmp_path_factory):
    folder = tmp_path_factory.mktemp("windowed")
    videos = [write_video(folder / f"camera{n}.mp4", frames=STEPS, fps=10, width=128, height=72) for n in range(2)]
    settings = ReconstructionSettings(frames_per_camera=STEPS, max_total_frames=10, track_grid=6)
    result = reconstruct(served.model, videos, settings, store_folder=folder / "store")
    yield result
    result.store.delete()


def frame_numbers(images, camera: int) -> list[int]:
    """The source frame each time step of a camera shows (images [T, N, 3, H, W] in [0, 1])."""
    steps = images.shape[0]
    return [frame_number_seen(np.round(np.asarray(images[t, camera]).transpose(1, 2, 0) * 255).astype(np.uint8))
            for t in range(steps)]


def test_a_long_run_goes_in_windows_and_every_step_reaches_the_model(windowed_run):
    result = windowed_run
    assert result.windows.count > 1 and result.windows.size == 5
    predictions = result.predictions
    assert predictions["world_points"].shape[:2] == (STEPS, 2)
    assert isinstance(predictions["world_points"], StoredArray) and isinstance(predictions["images"], StoredArray)
    for camera in range(2):
        assert frame_numbers(predictions["images"], camera) == list(range(STEPS))
    assert len(result.seams) == result.windows.count - 1
    assert any(note.startswith("Windows: ") for note in result.notes)
    assert any("Tracks run per window" in note for note in result.notes)
    assert predictions["track"].shape == (STEPS, 2, len(predictions["query_points"]), 2)
    assert np.isfinite(np.asarray(predictions["extrinsic"])).all()


def test_the_scene_plays_every_step_of_a_windowed_run(windowed_run):
    figure = build_scene(windowed_run.predictions)
    assert len(figure.frames) == STEPS


@pytest.mark.parametrize("name", ["glb", "npz", "cameras", "ply", "colmap", "rerun"])
def test_every_download_builds_from_the_stored_predictions(windowed_run, tmp_path, name):
    if unavailable(name):
        pytest.skip(unavailable(name))  # rerun-sdk is an extra; CI installs it (requirements-dev.txt)
    written = build_format(name, windowed_run.predictions, tmp_path, ExportOptions())
    assert written.files() and all(path.stat().st_size > 0 for path in written.files())
    if name == "npz":
        with np.load(written.paths[0]) as npz:
            np.testing.assert_array_equal(npz["world_points"],
                                          np.nan_to_num(np.asarray(windowed_run.predictions["world_points"]),
                                                        nan=0, posinf=0, neginf=0))
            assert npz["images"].dtype == np.uint8 and npz["images"].shape[:2] == (STEPS, 2)
            assert npz["window_ranges"].shape == (windowed_run.windows.count, 2)
            assert len(npz["seam_relative_residual"]) == windowed_run.windows.count - 1
            assert npz["valid_mask"].shape == (STEPS, 2) + npz["images"].shape[-2:]
    if name == "colmap":  # read with pycolmap, as COLMAP users open it: one model per time step, with its frames
        for step, model in enumerate(read_models(tmp_path / "colmap", STEPS)):
            kept, _ = step_cameras(windowed_run.predictions, step)  # random weights break some cameras
            assert sorted(image.name for image in model.images.values()) == sorted(c.file_name for c in kept)
            assert_images_on_disk(tmp_path / "colmap" / f"t{step:03d}", model)
            assert_nothing_non_finite(model)
    if name == "rerun":  # read with Rerun's own reader: each drawable camera's image at every step, all windows
        from tests.exports.test_rerun_recording import read_back
        from vggt_mv.exports.rerun_recording import cameras_left_out

        recording = read_back(written.paths[0])
        left_out = cameras_left_out(windowed_run.predictions)  # random weights break some cameras
        for camera in range(2):
            drawable = {step for step in range(STEPS) if (step, camera) not in left_out}
            assert recording.steps(f"/world/camera{camera}/image", "Image:buffer") == drawable
    if name == "cameras":
        cameras = json.loads(written.paths[0].read_text())
        assert len(cameras["frames"] if "frames" in cameras else cameras) > 0


def test_the_npz_streams_like_np_savez(tmp_path):
    """The NPZ is written member by member; numpy reads it as it reads its own."""
    from vggt_mv.viz.export import write_npz

    predictions = {"images": np.random.default_rng(0).random((3, 2, 3, 4, 5), dtype=np.float32),
                   "depth": np.full((3, 2, 4, 5, 1), 2.0, dtype=np.float32),
                   "extrinsic": np.zeros((3, 2, 3, 4), dtype=np.float32)}
    predictions["depth"][1, 0, 0, 0, 0] = np.inf
    with np.load(write_npz(tmp_path / "a.npz", predictions)) as npz:
        assert npz["depth"][1, 0, 0, 0, 0] == 0 and not npz["depth_finite"][1, 0, 0, 0, 0]
        assert npz["depth_finite"].sum() == npz["depth"].size - 1
        np.testing.assert_array_equal(npz["images"], np.round(predictions["images"] * 255).astype(np.uint8))
    with zipfile.ZipFile(tmp_path / "a.npz") as archive:
        assert sorted(archive.namelist()) == ["depth.npy", "depth_finite.npy", "extrinsic.npy", "images.npy"]


def test_a_window_must_overlap_and_fit_one_pass(served, tmp_path):
    video = write_video(tmp_path / "a.mp4", frames=12)
    with pytest.raises(ReconstructionError, match="at least 2 time steps"):
        reconstruct(served.model, [video], ReconstructionSettings(frames_per_camera=8, window_steps=1))
    with pytest.raises(ReconstructionError, match="over the limit of 4 frames per pass"):
        reconstruct(served.model, [video, video],
                    ReconstructionSettings(frames_per_camera=8, window_steps=3, max_total_frames=4))
    with pytest.raises(ReconstructionError, match="too few to split"):
        reconstruct(served.model, [video] * 3, ReconstructionSettings(frames_per_camera=8, max_total_frames=4))
