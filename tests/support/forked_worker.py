"""A ZeroGPU main process in miniature, for tests/serving/test_gpu.py: a fresh process (spawned, so its torch never
ran a parallel op before it was kept fork-safe) serves a model, forks a GPU worker, loads new weights, and asks the
worker to compute with them, as ZeroGPU's warm worker would be asked."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np

IMAGES_SHAPE = (1, 1, 3, 28, 28)


def _worker(served, recipes, answers) -> None:
    """The forked worker: the forward of each recipe it is sent, with the model version it used."""
    from vggt_mv.serving.gpu import GpuCalls

    calls = GpuCalls(served)
    images = np.full(IMAGES_SHAPE, 0.5, np.float32)
    for recipe in iter(recipes.get, None):
        *_, outputs = calls.reconstruct(recipe, images, "single")
        answers.put((recipe.version, served.recipe.version, outputs.predictions["depth"]))


def main_process(checkpoint: str, results) -> None:
    """Serve the tiny preset, fork the worker, load `checkpoint` while it waits, and report what it computed."""
    from vggt_mv.serving.gpu import GpuCalls, keep_forks_safe
    from vggt_mv.serving.model_store import load_served_model
    from vggt_mv.serving.settings import ServeSettings
    from vggt_mv.weights import build_and_load
    from vggt_mv.weights.source_specs import SourceSpec

    keep_forks_safe()  # what load_served_model does on ZeroGPU
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    build_and_load(served.config, checkpoint=checkpoint)  # parallel torch work in the main process before the fork
    fork = multiprocessing.get_context("fork")
    recipes, answers = fork.Queue(), fork.Queue()
    worker = fork.Process(target=_worker, args=(served, recipes, answers), daemon=True)
    worker.start()
    try:
        recipes.put(served.recipe)
        first = answers.get(timeout=120)
        spec = SourceSpec("finetune", checkpoint, "identity")
        model, report = build_and_load(served.config, sources=[spec])
        served.replace_model(model, report, 0.5, (spec,))
        recipes.put(served.recipe)
        second = answers.get(timeout=120)
    finally:
        recipes.put(None)
        worker.join(timeout=30)
    *_, here = GpuCalls(served).reconstruct(served.recipe, np.full(IMAGES_SHAPE, 0.5, np.float32), "single")
    results.put({"first": first, "second": second, "current_version": served.recipe.version,
                 "main_process_depth": here.predictions["depth"]})


def run_in_a_fresh_process(checkpoint: Path, timeout: float = 300) -> dict:
    """main_process in a spawned interpreter; its report."""
    spawn = multiprocessing.get_context("spawn")
    results = spawn.Queue()
    process = spawn.Process(target=main_process, args=(str(checkpoint), results))
    process.start()
    try:
        return results.get(timeout=timeout)
    finally:
        process.join(timeout=30)
        if process.is_alive():
            process.kill()
