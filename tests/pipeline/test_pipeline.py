"""Videos -> predictions -> downloads, with the tiny preset; sizing, caching and refusals."""

import numpy as np
import pytest

from tests.support.videos import write_video
from vggt_mv.io.examples import list_examples
from vggt_mv.pipeline import (ReconstructionError, ReconstructionSettings, estimate_run, plan_run, reconstruct,
                              write_outputs)
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings


@pytest.fixture(scope="module")
def served():
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


def test_example_reconstructs_with_ground_truth_and_every_download(served, tmp_path):
    example = list_examples()[0]
    result = reconstruct(served, example.video_paths, ReconstructionSettings(frames_per_camera=2), example=example)
    predictions = result.predictions
    assert predictions["world_points"].shape == (2, 3, 294, 518, 3)
    assert predictions["extrinsic"].shape == predictions["gt_extrinsic"].shape == (2, 3, 3, 4)
    outputs = write_outputs(result, tmp_path, with_html=True)
    assert outputs["html"].read_text().count("plotly") > 1
    assert len(outputs["ply"]) == 2 and outputs["glb"].stat().st_size > 0


def test_same_videos_and_settings_are_served_from_the_cache(served, tmp_path):
    video = write_video(tmp_path / "a.mp4", frames=6, width=56, height=28)
    copy = tmp_path / "renamed.mp4"
    copy.write_bytes(video.read_bytes())
    first = reconstruct(served, [video], ReconstructionSettings(frames_per_camera=2))
    assert reconstruct(served, [copy], ReconstructionSettings(frames_per_camera=2)) is first
    assert reconstruct(served, [video], ReconstructionSettings(frames_per_camera=3)) is not first


def test_estimates_grow_with_the_grid_and_a_run_too_big_for_memory_is_refused(served, tmp_path, monkeypatch):
    config = served.config
    small = estimate_run(config, 2, 2, 294, 518, 0)
    large = estimate_run(config, 8, 4, 294, 518, 0)
    assert large.tokens == 8 * small.tokens and large.peak_bytes > small.peak_bytes
    assert "8 time steps x 4 cameras" in large.describe()
    video = write_video(tmp_path / "a.mp4")
    monkeypatch.setattr("vggt_mv.pipeline.available_memory", lambda device: 1024)
    with pytest.raises(ReconstructionError, match="GiB is free"):
        plan_run(served, [video], ReconstructionSettings(frames_per_camera=2))


def test_out_of_memory_during_inference_becomes_a_message(served, tmp_path, monkeypatch):
    def exhausted(*args, **kwargs):
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 99 GB")

    monkeypatch.setattr("vggt_mv.pipeline.predict", exhausted)
    video = write_video(tmp_path / "oom.mp4", frames=4, width=70, height=28)
    with pytest.raises(ReconstructionError, match="ran out of memory"):
        reconstruct(served, [video], ReconstructionSettings(frames_per_camera=1))
    assert not served.lock.locked()


def test_too_many_cameras_or_frames_are_refused(served, tmp_path):
    video = write_video(tmp_path / "a.mp4")
    with pytest.raises(ReconstructionError, match="at most 8 cameras"):
        reconstruct(served, [video] * 9)
    with pytest.raises(ReconstructionError, match="over the limit"):
        reconstruct(served, [video] * 4, ReconstructionSettings(frames_per_camera=20, max_total_frames=64))
