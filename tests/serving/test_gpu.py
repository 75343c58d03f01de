"""The GPU calls: pure (arrays in, picklable CPU arrays out), sized from the run, refusals as data, ZeroGPU's own
errors as one line, memory known without CUDA, and a forked worker that follows the main process's model."""

import pickle
import subprocess
import sys
import types
from pathlib import Path

import gradio as gr
import numpy as np
import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from tests.support.forked_worker import run_in_a_fresh_process
from vggt_mv.config import VGGTMVConfig
from vggt_mv.pipeline import ModelOutputs, ReconstructionError
from vggt_mv.serving import gpu
from vggt_mv.serving.gpu import (MAX_SECONDS, GpuCalls, GpuFailure, GpuProgress, memory_budget, reconstruct_seconds,
                                 track_seconds, wrap_for_gpu, zerogpu_errors_as_messages)
from vggt_mv.serving.model_store import ModelRecipe

VGGT_1B_PARAMETERS = 1_256_537_516


def test_the_duration_grows_with_frames_and_with_attention_cost_and_stays_under_zerogpus_cap():
    config = VGGTMVConfig()
    small = reconstruct_seconds(config, VGGT_1B_PARAMETERS, (2, 2, 3, 294, 518), "multi")
    large = reconstruct_seconds(config, VGGT_1B_PARAMETERS, (8, 4, 3, 294, 518), "multi")
    assert small < large <= MAX_SECONDS
    multi = reconstruct_seconds(config, VGGT_1B_PARAMETERS, (16, 8, 3, 294, 518), "multi")
    global_ = reconstruct_seconds(config, VGGT_1B_PARAMETERS, (16, 8, 3, 294, 518), "global")
    assert multi < global_, "global attention over all T*N frames costs more than Time-SA / View-SA"
    assert reconstruct_seconds(config, VGGT_1B_PARAMETERS, (512, 8, 3, 518, 518), "global") == MAX_SECONDS
    assert track_seconds(4) < track_seconds(512) <= MAX_SECONDS


def test_without_spaces_the_calls_are_plain_functions_and_with_it_each_is_wrapped_with_its_duration(monkeypatch):
    def work(recipe, images, mode):
        return "done"

    monkeypatch.setitem(sys.modules, "spaces", None)
    assert wrap_for_gpu(len)(work) is work
    asked = []

    def fake_gpu(duration):
        asked.append(duration)
        return lambda function: (lambda *args: ("on gpu", function(*args)))

    monkeypatch.setitem(sys.modules, "spaces", types.SimpleNamespace(GPU=fake_gpu))
    assert wrap_for_gpu(len)(work)(None, None, "multi") == ("on gpu", "done") and asked == [len]


def test_the_forward_call_yields_progress_then_picklable_cpu_outputs_without_the_input_images(served):
    calls = GpuCalls(served)
    images = np.random.default_rng(0).random((2, 2, 3, 28, 42), dtype=np.float32)
    events = list(calls.reconstruct(served.recipe, images, "multi"))
    progress, outputs = events[:-1], events[-1]
    assert progress and all(isinstance(event, GpuProgress) for event in progress)
    assert progress[-1].done == progress[-1].total, "the bar reaches the end of the model's work"
    assert isinstance(outputs, ModelOutputs) and "images" not in outputs.predictions
    assert outputs.predictions["depth"].shape == (2, 2, 28, 42, 1)
    assert outputs.track_context.frames.numel() == 0, "the context does not send the frames back either"
    assert all(t.device.type == "cpu" for t in outputs.track_context.layers.values())
    back = pickle.loads(pickle.dumps(outputs))  # what a ZeroGPU worker's result queue does
    np.testing.assert_array_equal(back.predictions["world_points"], outputs.predictions["world_points"])


def test_a_refusal_inside_the_gpu_call_comes_back_as_data_with_its_message(served):
    stale = ModelRecipe(served.recipe.version + 7, served.preset)
    events = list(GpuCalls(served).reconstruct(stale, np.zeros((1, 1, 3, 28, 28), np.float32), "single"))
    assert events == [GpuFailure("the served weights changed while this request waited; run it again")]
    assert isinstance(GpuCalls(served).track(stale, None, np.zeros((1, 2), np.float32)), GpuFailure)


@pytest.mark.parametrize("title, message, phrase", [
    ("ZeroGPU worker error", "GPU task aborted", "ZeroGPU worker error: GPU task aborted; the GPU worker stopped"),
    ("ZeroGPU quota exceeded", "You have exceeded your free ZeroGPU quota (60s requested vs. 10s left). Try again in "
     "0:05:00.", "ZeroGPU quota exceeded: You have exceeded your free ZeroGPU quota"),
    ("ZeroGPU client error", "No GPU was available", "ZeroGPU client error: No GPU was available; try again in a"),
])
def test_zerogpus_own_errors_become_one_line_each(title, message, phrase):
    with pytest.raises(ReconstructionError, match=phrase) as refused:
        with zerogpu_errors_as_messages():
            raise gr.Error(message + "\n", title=title)
    assert "\n" not in str(refused.value)


def test_the_memory_budget_never_asks_cuda_in_the_main_process(monkeypatch):
    def no_cuda(*args, **kwargs):
        raise AssertionError("the main process asked CUDA")

    monkeypatch.setattr(torch.cuda, "mem_get_info", no_cuda)
    monkeypatch.setattr(torch.cuda, "get_device_properties", no_cuda)
    monkeypatch.setenv("SPACES_ZERO_GPU", "true")
    monkeypatch.delenv("ZEROGPU_CUDA_TOTAL_MEMORY", raising=False)
    assert memory_budget("cuda") == gpu.MemoryBudget(gpu.ZEROGPU_MEMORY_BYTES, "a ZeroGPU slice")
    monkeypatch.setenv("ZEROGPU_CUDA_TOTAL_MEMORY", str(40 * 1024 ** 3))
    assert memory_budget("cuda").bytes == 40 * 1024 ** 3
    assert memory_budget("cuda", 5 * 1024 ** 3) == gpu.MemoryBudget(5 * 1024 ** 3, "the --gpu-memory setting")
    monkeypatch.setenv("SPACES_ZERO_GPU", "false")
    cpu = memory_budget("cpu")
    assert cpu.where == "the host's available memory" and 0 < cpu.bytes < 1 << 50


def test_a_worker_forked_before_a_load_computes_with_the_loaded_weights(tmp_path):
    """The ZeroGPU case: the worker was forked while version 0 was served, then the main process loaded new weights;
    the next call's recipe makes the worker build that model (parallel torch work in a forked child: the main
    process kept itself fork-safe), and its outputs are the new model's."""
    path = write_safetensors(tmp_path / "new.safetensors", tiny_state(seed=5))
    report = run_in_a_fresh_process(path)
    first_version, worker_version, before = report["first"]
    assert first_version == worker_version == 0
    asked_version, worker_version, after = report["second"]
    assert asked_version == worker_version == report["current_version"] == 1, "the worker followed the main process"
    np.testing.assert_allclose(after, report["main_process_depth"], rtol=1e-5)  # 1 thread here, all cores there
    assert not np.array_equal(before, after), "new weights, new depth"


def test_a_forked_child_of_a_fork_safe_main_process_runs_parallel_torch_ops():
    """libgomp's pool does not survive a fork: after keep_forks_safe, a child may use every core."""
    script = ("import os, torch\n"
              "from vggt_mv.serving.gpu import WORKER_THREADS, keep_forks_safe, use_the_workers_cores\n"
              "keep_forks_safe(); owner = os.getpid(); torch.rand(4_000_000).sum()\n"
              "if os.fork() == 0:\n"
              "    use_the_workers_cores(owner)\n"
              "    assert torch.get_num_threads() == WORKER_THREADS\n"
              "    print('child', float(torch.rand(4_000_000).sum()) > 0, flush=True); os._exit(0)\n"
              "os.wait(); print('main threads', torch.get_num_threads())\n")
    finished = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                              cwd=Path(__file__).resolve().parents[2])
    assert finished.stdout.split() == ["child", "True", "main", "threads", "1"], finished.stderr
