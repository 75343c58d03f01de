"""A small Gradio app for the ZeroGPU harness's own tests: GPU and main-process handlers with known side effects.

Run it through tests/support/zerogpu_launch.py (spaces must be imported with ZeroGPU on before this module).
"""

from __future__ import annotations

import argparse
import os
import time

import gradio as gr
import spaces
import torch

GPU_SECONDS = 17
STEP_SECONDS = 0.2  # Gradio sends a run's latest progress every 10 ms, and none once it ended: steps must last
STATE: dict[str, str] = {}
# Placed on "cuda" by the main thread at start-up, as a model would be: spaces keeps a fake here, packs the data
# to disk at launch and hands it to each worker.
PLACED = torch.arange(6, dtype=torch.float32).to("cuda")
PLACED_LARGER = torch.arange(3000, dtype=torch.int16).to("cuda")  # over a page: packed after PLACED, aligned


def count_seconds(count: int, progress=None) -> int:
    """The GPU seconds a generator run asks for: a base plus one per value."""
    return 5 + int(count)


@spaces.GPU(duration=GPU_SECONDS)
def remember(key: str, value: str) -> dict:
    """Store a value in this process's STATE and tell which process did it."""
    STATE[key] = value
    return {"pid": os.getpid(), "state": dict(STATE)}


@spaces.GPU(duration=count_seconds)
def count_up(count: int, progress=gr.Progress()):
    """Yield 0 .. count-1, reporting progress before each value."""
    for index in range(int(count)):
        progress((index + 1) / int(count), desc=f"value {index}")
        time.sleep(STEP_SECONDS)
        yield {"pid": os.getpid(), "value": index}


@spaces.GPU(duration=GPU_SECONDS)
def tell(message: str, progress=gr.Progress()) -> dict:
    """Report progress and a gr.Info toast from inside the worker."""
    progress(0.5, desc="halfway")
    gr.Info(message)
    time.sleep(1.0)  # Gradio sends the latest progress on a 10 ms tick while the event runs: stay running for it
    return {"pid": os.getpid()}


@spaces.GPU(duration=GPU_SECONDS)
def abort_worker(exit_now: bool) -> dict:
    """Kill this process when asked, as a crashed GPU worker would die; otherwise report it."""
    if exit_now:
        os._exit(3)
    return {"pid": os.getpid()}


@spaces.GPU(duration=GPU_SECONDS)
def fail(kind: str) -> dict:
    """Raise a user-facing gr.Error or a plain exception inside the worker."""
    if kind == "gradio":
        raise gr.Error("the frames are too many", title="Refused")
    raise ValueError("a detail only the server log should see")


@spaces.GPU(duration=GPU_SECONDS)
def describe_request(request: gr.Request) -> dict:
    """What of the gr.Request survives the trip to the worker."""
    return {"pid": os.getpid(), "session_hash": request.session_hash, "probe": request.headers.get("x-probe"),
            "client_host": request.client.host if request.client else None}


@spaces.GPU(duration=GPU_SECONDS)
def placed_values() -> dict:
    """The start-up tensor as the worker sees it, computed on."""
    return {"pid": os.getpid(), "device": str(PLACED.device), "values": (PLACED * 2).tolist(),
            "larger_sum": int(PLACED_LARGER.sum())}


@spaces.GPU(duration=GPU_SECONDS)
def worker_memory() -> dict:
    """A CUDA memory call where ZeroGPU allows one (on a CPU build it answers 0)."""
    return {"pid": os.getpid(), "allocated": torch.cuda.memory_allocated()}


def main_process_view() -> dict:
    """The main process's own STATE and the start-up tensor as a handler thread of the main process sees it."""
    return {"pid": os.getpid(), "state": dict(STATE), "placed_device": str(PLACED.device),
            "placed_values": PLACED.tolist()}


def free_memory() -> dict:
    """Ask for GPU memory in the main process: the guard refuses it (ZeroGPU itself answers fixed numbers)."""
    free, total = torch.cuda.mem_get_info()
    return {"free": free, "total": total}


def build() -> gr.Blocks:
    """Every handler as an event of one button, each under the API name the tests call (no one clicks it)."""
    with gr.Blocks() as demo:
        text, other_text, number, flag = gr.Textbox(), gr.Textbox(), gr.Number(precision=0), gr.Checkbox()
        output, button = gr.JSON(), gr.Button()
        button.click(remember, [text, other_text], output, api_name="remember")
        button.click(count_up, number, output, api_name="count_up")
        button.click(tell, text, output, api_name="tell")
        button.click(abort_worker, flag, output, api_name="abort_worker")
        button.click(fail, text, output, api_name="fail")
        button.click(describe_request, None, output, api_name="describe_request")
        button.click(placed_values, None, output, api_name="placed_values")
        button.click(worker_memory, None, output, api_name="worker_memory")
        button.click(main_process_view, None, output, api_name="main_process_view")
        button.click(free_memory, None, output, api_name="free_memory")
    return demo


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    build().queue().launch(server_name="127.0.0.1", server_port=parser.parse_args().port, show_error=True)
