"""Two apps with different models in one process share nothing: each run is its own model's, each cache its own."""

import threading

import numpy as np
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from tests.support.videos import write_video
from vggt_mv import pipeline
from vggt_mv.pipeline import ReconstructionSettings
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings


def test_two_pipelines_with_different_models_run_side_by_side_without_sharing_state(tmp_path):
    videos = [write_video(tmp_path / f"cam{i}.mp4", frames=4, width=56, height=42) for i in range(2)]
    first = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    second = load_served_model(ServeSettings(checkpoint=str(write_safetensors(tmp_path / "other.safetensors",
                                                                              tiny_state(seed=3))), preset="tiny"))
    states = [AppState(first, tmp_path / "a"), AppState(second, tmp_path / "b")]
    settings = ReconstructionSettings(frames_per_camera=2, mode="multi")
    results = [None, None]

    def run(index: int) -> None:
        results[index] = states[index].reconstruct(videos, settings)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    for served, result in zip((first, second), results):
        alone = pipeline.reconstruct(served.model, videos, settings)  # the model's own run, nothing cached
        for name in ("depth", "world_points", "pose_enc"):
            np.testing.assert_array_equal(result.predictions[name], alone.predictions[name])
    assert not np.array_equal(results[0].predictions["depth"], results[1].predictions["depth"])
    assert results[0].key != results[1].key, "the model is part of the cache key"
    assert states[0].runs.get(results[1].key) is None and states[1].runs.get(results[0].key) is None
    assert states[0].runs.get(results[0].key) is results[0] and states[1].runs.get(results[1].key) is results[1]
    second.replace_model(torch.nn.Identity(), second.report, 0.5)
    assert states[1].runs.get(results[1].key) is None, "a load forgets only its own app's runs"
    assert states[0].runs.get(results[0].key) is results[0]
