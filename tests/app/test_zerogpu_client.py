"""The app as a ZeroGPU Space, driven through gradio_client: the real `spaces` package forks the GPU worker, pickles
both ways and asks a loopback scheduler stand-in (tests/support/zerogpu_scheduler.py). ZeroGPU's own refusals and
a killed worker reach the caller as one line each, the main process never touches CUDA, and a load in the Weights
tab changes what the (already forked) worker computes next."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from tests.support.app_server import zerogpu_app
from tests.support.checkpoints import tiny_state, write_safetensors
from tests.support.zerogpu_scheduler import Grant, NoGpu, QuotaExceeded
from vggt_mv import pipeline
from vggt_mv.config import VGGTMVConfig
from vggt_mv.io.examples import list_examples
from vggt_mv.pipeline import ReconstructionSettings
from vggt_mv.serving.gpu import reconstruct_seconds
from vggt_mv.weights import build_and_load

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def weights_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("weights")
    write_safetensors(folder / "finetune.safetensors", tiny_state(seed=5))
    return folder


@pytest.fixture(scope="module")
def space(weights_dir):
    with zerogpu_app("--allow-weight-loading", "--weights-dir", str(weights_dir), timeout=120.0) as app:
        yield app, Client(app.url, verbose=False)


def example_videos() -> list:
    return [handle_file(str(path)) for path in list_examples()[0].video_paths]


def reconstruct(client: Client, frames: int = 1, mode: str = "multi") -> tuple[dict, str]:
    """One /reconstruct call: (the NPZ's arrays, the status)."""
    *_, status = client.predict(videos=example_videos(), frames_per_camera=frames, mode=mode, point_budget=10_000,
                                api_name="/reconstruct")
    downloads, _ = client.predict(name="npz", api_name="/download")  # built in the main process, no GPU call
    npz = next(path for path in downloads if path.endswith("predictions.npz"))
    with np.load(npz) as archive:
        return {name: archive[name] for name in ("depth", "world_points")}, status


def test_a_reconstruction_runs_in_the_gpu_worker_sized_from_the_plan_and_the_main_process_never_touches_cuda(space):
    app, client = space
    mark = app.scheduler.request_count()
    arrays, status = reconstruct(client, frames=2, mode="auto")
    assert arrays["depth"].shape == (2, 3, 294, 518, 1) and "2 time steps x 3 cameras" in status
    assert "auto chose global for 3 cameras" in status
    (scheduled,) = app.scheduler.requests("/schedule", since=mark)
    tiny = VGGTMVConfig.from_preset("tiny")
    weights = sum(p.numel() for p in build_and_load(tiny, dry_run=False)[0].parameters())
    assert scheduled.duration == reconstruct_seconds(tiny, weights, (2, 3, 3, 294, 518), "global")
    (released,) = app.scheduler.requests("/release", since=mark)
    assert not released.fail
    assert app.cuda_violations() == []


@pytest.mark.parametrize("refusal, phrase, frames", [
    (QuotaExceeded(left=0, wait=60.0), "ZeroGPU quota exceeded: ", 3),
    (NoGpu(queued=False), "ZeroGPU client error: No GPU was available; try again in a minute", 4),
])
def test_zerogpus_refusals_reach_the_caller_as_one_line_and_the_same_run_then_works(space, refusal, phrase, frames):
    app, client = space
    app.scheduler.answer_next(refusal)
    with pytest.raises(AppError) as refused:
        reconstruct(client, frames)  # a run not in the cache yet: it needs the GPU
    assert phrase in str(refused.value) and "\n" not in str(refused.value)
    arrays, _ = reconstruct(client, frames)
    assert np.isfinite(arrays["depth"]).all()


def worker_processes(parent: int) -> list[int]:
    """The app process's children: spaces' forked GPU workers."""
    children = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                children.append(int(entry.name))
    return children


def in_the_forward(job) -> bool:
    """Whether the job's progress says the model is running (in the GPU worker)."""
    progress = job.status().progress_data or []
    return any("VGGT_MV: " in (unit.desc or "") for unit in progress)


def test_a_worker_killed_mid_run_is_gpu_task_aborted_in_one_line_and_the_next_run_forks_a_new_one(space):
    app, client = space
    reconstruct(client)  # a warm worker exists
    job = client.submit(videos=example_videos(), frames_per_camera=6, mode="multi", point_budget=10_000,
                        api_name="/reconstruct")
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not in_the_forward(job):
        time.sleep(0.05)
    workers = worker_processes(app.pid)
    assert workers, "no GPU worker to stop"
    for pid in workers:
        os.kill(pid, signal.SIGKILL)
    with pytest.raises(AppError) as aborted:
        job.result(timeout=120)
    assert "ZeroGPU worker error: GPU task aborted; the GPU worker stopped" in str(aborted.value)
    assert "\n" not in str(aborted.value)
    arrays, _ = reconstruct(client, 6)  # the aborted run again: it never reached the cache
    assert np.isfinite(arrays["depth"]).all() and set(worker_processes(app.pid)).isdisjoint(workers)


def test_a_load_in_the_weights_tab_changes_what_the_forked_worker_computes_next(space, weights_dir):
    app, client = space
    before, _ = reconstruct(client)
    report = client.predict(sources=[{"name": "finetune", "source": "finetune.safetensors", "rules": "identity"}],
                            dry_run=False, api_name="/inspect_sources")
    assert report["summary"]["loaded"] == {"finetune": report["summary"]["total"]}
    after, _ = reconstruct(client)
    model, _ = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint=weights_dir / "finetune.safetensors")
    expected = pipeline.reconstruct(model, list_examples()[0].video_paths,
                                    ReconstructionSettings(frames_per_camera=1, mode="multi"))
    np.testing.assert_allclose(after["depth"], expected.predictions["depth"], rtol=1e-4, atol=1e-5)
    assert not np.allclose(before["depth"], after["depth"], rtol=1e-3), "the load changed nothing"
    assert "GPU worker: building served model version 1" in app.log_text(), "the warm worker rebuilt the new model"
    app.scheduler.answer_next(Grant(idle=False))  # a fresh worker, forked after the load (its model is the new one)
    fresh, _ = reconstruct(client, frames=2)
    expected = pipeline.reconstruct(model, list_examples()[0].video_paths,
                                    ReconstructionSettings(frames_per_camera=2, mode="multi"))
    np.testing.assert_allclose(fresh["depth"], expected.predictions["depth"], rtol=1e-4, atol=1e-5)
    assert app.cuda_violations() == []


@pytest.fixture(scope="module")
def windowed_space():
    """The Space with room for 2 time steps of the example's 3 cameras per pass (so longer runs go in windows)."""
    with zerogpu_app("--max-total-frames", "6", timeout=120.0) as app:
        yield app, Client(app.url, verbose=False)


def test_a_long_run_is_one_gpu_call_per_window_and_tracks_follow_through_every_window(windowed_space):
    app, client = windowed_space
    mark = app.scheduler.request_count()
    *_, status = client.predict(videos=example_videos(), frames_per_camera=4, mode="multi", point_budget=10_000,
                                query_points=[[100, 100]], api_name="/reconstruct")
    assert "4 time steps x 3 cameras" in status and "3 windows of 2 time steps" in status
    assert "Tracks run per window" in status
    assert len(app.scheduler.requests("/schedule", since=mark)) == 3 + 3  # a forward and a track call per window
    downloads, _ = client.predict(name="npz", api_name="/download")
    with np.load(next(path for path in downloads if path.endswith("predictions.npz"))) as npz:
        assert npz["depth"].shape[:2] == (4, 3) and npz["track"].shape == (4, 3, 1, 2)
        assert npz["window_ranges"].tolist() == [[0, 2], [1, 3], [2, 4]]
    assert app.cuda_violations() == []
