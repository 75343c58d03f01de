"""Videos -> predictions -> downloads, with the tiny preset; sizing, content keys and refusals.

These are the pipeline's own stages, which keep nothing; the cache the app serves from is tested in
tests/serving/test_app_state.py."""

import json
import time
import zipfile

import numpy as np
import pytest

from tests.support.videos import frame_index_seen, write_video
from vggt_mv.exports.formats import build_format
from vggt_mv.io.examples import list_examples
from vggt_mv.io.video import VideoError
from vggt_mv.pipeline import (MemoryBudget, ReconstructionError, ReconstructionSettings, StageTimes, content_key,
                              estimate_run, model_weight_bytes, plan_run, reconstruct)
from vggt_mv.viz.scene import build_scene
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings

NO_LIMIT = MemoryBudget(1 << 62, "no limit (test)")


@pytest.fixture(scope="module")
def served():
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


def plan(served, videos, settings, memory=NO_LIMIT):
    """plan_run for the served model, as the tab's plan calls it."""
    return plan_run(videos, settings, served.config, model_weight_bytes(served.model), memory, served.trained)


def test_example_reconstructs_with_ground_truth_and_every_download(served, tmp_path):
    example = list_examples()[0]
    result = reconstruct(served.model, example.video_paths, ReconstructionSettings(frames_per_camera=2),
                         example=example)
    predictions = result.predictions
    assert predictions["world_points"].shape == (2, 3, 294, 518, 3)
    assert predictions["extrinsic"].shape == predictions["gt_extrinsic"].shape == (2, 3, 3, 4)
    bundle = build_format("zip", predictions, tmp_path)
    names = zipfile.ZipFile(bundle.paths[0]).namelist()
    for name in ("scene.glb", "predictions.npz", "cameras.json", "ply/points_t001.ply", "recording.rrd",
                 "colmap/t001/sparse/0/cameras.bin", "colmap/t001/sparse/0/images.bin",
                 "colmap/t001/sparse/0/points3D.bin", "colmap/t001/images/camera2.png"):
        assert name in names, name
    assert sorted(path.name for path in tmp_path.iterdir()) == ["everything.zip"], "the bundle is the only copy"
    npz = build_format("npz", predictions, tmp_path / "npz").paths[0]
    assert np.load(npz)["valid_mask"].shape == (2, 3, 294, 518)


def test_same_videos_and_settings_have_one_content_key_whatever_the_names_or_the_tracks_asked(tmp_path):
    video = write_video(tmp_path / "a.mp4", frames=6, width=56, height=28)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(video.read_bytes())
    other = write_video(tmp_path / "b.mp4", frames=7, width=56, height=28)
    two = ReconstructionSettings(frames_per_camera=2)
    key = content_key([video], two, "model:0")
    assert content_key([copy], two, "model:0") == key
    assert content_key([video], ReconstructionSettings(frames_per_camera=2, query_points=((1, 2),)), "model:0") == key
    assert content_key([video], ReconstructionSettings(frames_per_camera=2, track_grid=9), "model:0") == key
    assert content_key([video], ReconstructionSettings(frames_per_camera=3), "model:0") != key
    assert content_key([video], ReconstructionSettings(frames_per_camera=2, mode="multi"), "model:0") != key
    assert content_key([video], two, "model:1") != key, "other weights, another run"
    assert content_key([other], two, "model:0") != key


def test_estimates_grow_with_the_grid_and_a_run_too_big_for_memory_is_refused(served, tmp_path):
    config = served.config
    small = estimate_run(config, 2, 2, 294, 518, 0)
    large = estimate_run(config, 8, 4, 294, 518, 0)
    assert large.tokens == 8 * small.tokens and large.peak_bytes > small.peak_bytes
    assert "8 time steps x 4 cameras" in large.describe()
    video = write_video(tmp_path / "a.mp4")
    with pytest.raises(ReconstructionError, match=r"GiB is available \(a tiny test budget\)"):
        plan(served, [video], ReconstructionSettings(frames_per_camera=2), MemoryBudget(1024, "a tiny test budget"))
    with pytest.raises(ReconstructionError, match="GiB is available"):
        reconstruct(served.model, [video], ReconstructionSettings(frames_per_camera=2), memory=MemoryBudget(1024, "x"))


def test_out_of_memory_during_inference_becomes_a_message(served, tmp_path, monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")

    monkeypatch.setattr("vggt_mv.pipeline.predict_with_track_context", exhausted)
    video = write_video(tmp_path / "oom.mp4", frames=4, width=70, height=28)
    with pytest.raises(ReconstructionError, match="ran out of memory"):
        reconstruct(served.model, [video], ReconstructionSettings(frames_per_camera=1))
    assert not served.lock.locked()


def test_too_many_cameras_or_frames_are_refused(served, tmp_path):
    video = write_video(tmp_path / "a.mp4")
    with pytest.raises(ReconstructionError, match="at most 8 cameras"):
        reconstruct(served.model, [video] * 9)
    long_video = write_video(tmp_path / "long.mp4", frames=40, fps=20)
    with pytest.raises(VideoError, match="over the limit"):
        reconstruct(served.model, [long_video] * 4,
                    ReconstructionSettings(frames_per_camera=20, max_time_steps=10))
    with pytest.raises(ReconstructionError, match="mode 'single'"):
        reconstruct(served.model, [video, video], ReconstructionSettings(frames_per_camera=2, mode="single"))


def own_pixels(images: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """uint8 [h, w, 3] of one camera at one time step, padding cut away ([3, H, W] images, [H, W] mask)."""
    rows, cols = np.nonzero(valid)
    crop = images[:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return np.round(crop.transpose(1, 2, 0) * 255).astype(np.uint8)


def test_videos_of_different_aspect_and_fps_keep_their_aspect_and_never_repeat_a_frame(served, tmp_path):
    wide = write_video(tmp_path / "wide.mp4", frames=12, fps=12, width=128, height=72)    # 16:9 at 12 fps
    boxy = write_video(tmp_path / "boxy.mp4", frames=5, fps=5, width=64, height=48)       # 4:3 at 5 fps
    planned = plan(served, [wide, boxy], ReconstructionSettings(frames_per_camera=8))
    text = planned.describe()
    assert "5 time steps x 2 cameras at 518x392" in text and "T capped at 5 (asked for 8)" in text
    assert "(wide.mp4): 128x72 -> 518x294, padded to 518x392" in text and "(boxy.mp4): 64x48 -> 518x392" in text
    assert "- Attention: auto chose global for 2 cameras" in text, "random weights were never trained multi-view"
    predictions = reconstruct(served.model, [wide, boxy], ReconstructionSettings(frames_per_camera=8)).predictions
    valid = predictions["valid_mask"]
    assert valid.shape == (5, 2, 392, 518) and valid.dtype == bool
    for camera, (width, height) in enumerate([(128, 72), (64, 48)]):
        rows, cols = np.nonzero(valid[0, camera])
        aspect = (np.ptp(cols) + 1) / (np.ptp(rows) + 1)
        assert aspect == pytest.approx(width / height, rel=0.02)
        seen = [frame_index_seen(own_pixels(predictions["images"][t, camera], valid[t, camera])) for t in range(5)]
        assert len(set(seen)) == 5, f"camera {camera} was fed frames {seen}"


def test_stage_times_cover_the_wall_time_and_the_scene_comes_before_any_file(served, tmp_path):
    videos = list_examples()[0].video_paths
    settings = ReconstructionSettings(frames_per_camera=2, window=(0.1, 0.9))
    stages = StageTimes()
    started = time.perf_counter()
    result = reconstruct(served.model, videos, settings, stages=stages)
    before_scene = list(stages.seconds)
    with stages.stage("scene"):
        build_scene(result.predictions)
    with stages.stage("files"):
        written = build_format("glb", result.predictions, tmp_path)
    wall = time.perf_counter() - started
    assert before_scene == list(result.seconds) == ["decode", "inference"]
    assert list(stages.seconds) == ["decode", "inference", "scene", "files"] and written.paths[0].is_file()
    assert stages.total == pytest.approx(wall, rel=0.1)


def test_model_progress_reaches_the_caller_per_layer_and_never_goes_back(served, tmp_path):
    video = write_video(tmp_path / "p.mp4", frames=6, width=70, height=28)
    reports = []
    reconstruct(served.model, [video], ReconstructionSettings(frames_per_camera=3),
                progress=lambda fraction, message: reports.append((fraction, message)))
    fractions = [fraction for fraction, _ in reports]
    assert fractions == sorted(fractions) and fractions[-1] <= 0.9
    layers = [message for _, message in reports if "aggregator layer" in message]
    assert len(layers) == served.config.depth


def test_predictions_that_are_not_finite_are_refused_before_anything_is_written(served, tmp_path, monkeypatch):
    from vggt_mv import pipeline

    real_predict = pipeline.predict_with_track_context

    def broken(*args, **kwargs):
        predictions, context = real_predict(*args, **kwargs)
        return {k: np.full_like(v, np.nan) if k != "images" else v for k, v in predictions.items()}, context

    monkeypatch.setattr(pipeline, "predict_with_track_context", broken)
    video = write_video(tmp_path / "nan.mp4", frames=4, width=56, height=28)
    with pytest.raises(ReconstructionError, match="NaN"):
        result = reconstruct(served.model, [video], ReconstructionSettings(frames_per_camera=1))
        build_format("npz", result.predictions, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cameras_json_of_a_run_is_strict_json(served, tmp_path):
    video = write_video(tmp_path / "j.mp4", frames=4, width=56, height=28)
    result = reconstruct(served.model, [video], ReconstructionSettings(frames_per_camera=2))
    text = build_format("cameras", result.predictions, tmp_path).paths[0].read_text()
    json.loads(text, parse_constant=lambda constant: pytest.fail(f"non-JSON constant {constant}"))
