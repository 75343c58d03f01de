"""The one model a server process shares: loaded once at start-up, with a banner saying how it was loaded."""

from __future__ import annotations

import html
import logging
import os
import threading
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from vggt_mv.config import VGGTMVConfig
from vggt_mv.inference import pick_device
from vggt_mv.serving.gpu import keep_forks_safe, on_zerogpu
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.weights.source_specs import SourceSpec
from vggt_mv.weights.trained_attention import TrainedAttention, trained_attention_of

logger = logging.getLogger(__name__)

FALLBACK_PRESET = "tiny"
RANDOM_TRAINING = "random weights: trained for nothing"
FALLBACK_SUMMARY = (f"'{FALLBACK_PRESET}' preset with RANDOM weights: reconstructions are meaningless, but every part "
                    "of the app works.")


@dataclass(frozen=True)
class ModelRecipe:
    """How to build the served model anywhere, small and picklable: every GPU call carries it, and a ZeroGPU worker
    whose copy of the model is older (it was forked before a load in the Weights tab) rebuilds from it."""

    version: int
    preset: str
    checkpoint: str | None = None
    pi3: str | None = None
    pi3_rules: str = "decoder"
    sources: tuple[SourceSpec, ...] = ()

    @property
    def is_random(self) -> bool:
        """No weights at all: the preset with its seeded random init."""
        return self.checkpoint is None and self.pi3 is None and not self.sources

    def locations(self) -> list[str | Path]:
        """Every source of the load, in order (what trained_attention_of reads)."""
        return [location for location in (self.checkpoint, self.pi3) if location is not None] + \
            [spec.location for spec in self.sources]


@dataclass
class ServedModel:
    """The shared model, its recipe and load report, what its weights were trained for, and the visitors' banner.

    The main process owns it. A ZeroGPU worker holds a forked copy, which only `model_for` changes.
    """

    model: torch.nn.Module
    preset: str
    device: torch.device
    report: object | None
    banner: str | None
    random_share: float
    fallback_error: str | None = None
    recipe: ModelRecipe | None = None
    trained: TrainedAttention = field(default_factory=lambda: TrainedAttention(None, RANDOM_TRAINING))
    lock: threading.Lock = field(default_factory=threading.Lock)
    owner_pid: int = field(default_factory=os.getpid)
    identity: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    replaced: list[Callable[[], None]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.recipe is None:
            self.recipe = ModelRecipe(0, self.preset)

    @property
    def tag(self) -> str:
        """Changes whenever the served model or its weights change: part of every cache key."""
        return f"{self.identity}:{self.recipe.version}"

    def record_load(self, report, mostly_random_share: float) -> None:
        """New weights went into the served model: refresh the report, the random share and the banner."""
        self.report = report
        self.random_share = random_parameter_share(report)
        self.fallback_error = None
        self.banner = mostly_random_banner(self.random_share, mostly_random_share)

    def replace_model(self, model: torch.nn.Module, report, mostly_random_share: float,
                      sources: tuple[SourceSpec, ...] = ()) -> None:
        """Swap in a fully loaded model in one step under the lock (a run sees the old model or the new one, never
        a mix), with its report, banner and recipe, and tell the listeners (the run cache forgets old runs)."""
        recipe = ModelRecipe(self.recipe.version + 1, self.preset, sources=tuple(sources))
        trained = trained_attention_of(recipe.locations()) if sources else self.trained
        with self.lock:
            self.model = model
            self.recipe = recipe
            self.trained = trained
            self.record_load(report, mostly_random_share)
        for listener in self.replaced:
            listener()

    def model_for(self, recipe: ModelRecipe) -> torch.nn.Module:
        """The model a GPU call asked for. In the main process (a plain server) that is the served model, or a
        refusal when it was replaced meanwhile. In a forked ZeroGPU worker whose copy is older (it was forked before
        a load in the Weights tab), the recipe's model, built there once and kept for the worker's next calls; a
        worker also moves a model loaded on the CPU in the main process onto its GPU."""
        in_worker = os.getpid() != self.owner_pid
        if recipe != self.recipe:
            if not in_worker:
                from vggt_mv.pipeline import ReconstructionError

                raise ReconstructionError("the served weights changed while this request waited; run it again")
            logger.info("GPU worker: building served model version %d (its copy was version %d)", recipe.version,
                        self.recipe.version)
            self.model = build_model(recipe, "cpu")
            self.recipe = recipe
        if in_worker:
            self.model = self.model.to(worker_device(self.device))
        return self.model

    @property
    def weight_count(self) -> int:
        """Parameters of the served model (by shape: nothing is read)."""
        return sum(p.numel() for p in self.model.parameters())

    @property
    def dtype(self) -> torch.dtype | None:
        """The floating point dtype of the served weights (None for a model without any)."""
        return next((p.dtype for p in self.model.parameters() if p.is_floating_point()), None)

    @property
    def config(self) -> VGGTMVConfig:
        """The served model's configuration."""
        return self.model.config


def random_parameter_share(report) -> float:
    """Share of parameters that kept their random init, from a load report (1.0 without one)."""
    if report is None:
        return 1.0
    parameters = report.summary()["parameters"]
    return parameters["random"] / parameters["total"] if parameters["total"] else 1.0


def random_model(preset: str, device: torch.device | str) -> torch.nn.Module:
    """A randomly initialised model of the preset (seeded: a worker rebuilding it gets the same weights)."""
    from vggt_mv.model import VGGT_MV

    torch.manual_seed(0)
    return VGGT_MV(VGGTMVConfig.from_preset(preset)).eval().to(device)


def build_model(recipe: ModelRecipe, device: torch.device | str) -> torch.nn.Module:
    """The recipe's model on `device` (weights read from its sources; no untrained-tensor scan, as it was done)."""
    from vggt_mv.weights import build_and_load

    if recipe.is_random:
        return random_model(recipe.preset, device)
    model, _ = build_and_load(VGGTMVConfig.from_preset(recipe.preset), checkpoint=recipe.checkpoint, pi3=recipe.pi3,
                              pi3_rules=recipe.pi3_rules, sources=list(recipe.sources) or None, device=str(device),
                              check_untrained=False)
    return model.eval()


def worker_device(served_device: torch.device) -> torch.device:
    """Where a GPU worker runs the model: the served device, unless CUDA is not really there (a CPU stand-in for
    ZeroGPU's worker, as in the tests), then the CPU."""
    if served_device.type == "cuda" and not torch.cuda.is_available():
        return torch.device("cpu")
    return served_device


def startup_device(settings: ServeSettings) -> torch.device:
    """Where the model lives: on ZeroGPU always `cuda` (the `spaces` package moves it there in each worker; asking
    torch would initialise CUDA in the main process), otherwise the setting or what torch finds."""
    if on_zerogpu() and settings.device in ("auto", "cuda"):
        return torch.device("cuda")
    return pick_device(settings.device)


def load_served_model(settings: ServeSettings) -> ServedModel:
    """Load the configured weights; when they cannot be had, serve the tiny preset and say why.

    On ZeroGPU the model is built on the CPU and moved to `cuda` here, at start-up, as ZeroGPU documents."""
    from vggt_mv.weights import build_and_load

    if on_zerogpu():
        keep_forks_safe()
    device = startup_device(settings)
    build_device = torch.device("cpu") if on_zerogpu() else device
    if settings.checkpoint is None and settings.pi3 is None:
        model = random_model(settings.preset, build_device).to(device)
        return ServedModel(model, settings.preset, device, None,
                           f"No weights were requested: the {settings.preset} preset runs with random weights.", 1.0,
                           recipe=ModelRecipe(0, settings.preset))
    try:
        model, report = build_and_load(VGGTMVConfig.from_preset(settings.preset), checkpoint=settings.checkpoint,
                                       pi3=settings.pi3, pi3_rules=settings.pi3_rules, device=str(build_device))
        recipe = ModelRecipe(0, settings.preset, settings.checkpoint, settings.pi3, settings.pi3_rules)
        trained = trained_attention_of(recipe.locations())
    except Exception as error:  # noqa: BLE001 - any failure to get weights means the offline fallback
        logger.warning("weights unavailable, serving the %s preset with random weights: %s", FALLBACK_PRESET, error)
        model = random_model(FALLBACK_PRESET, build_device).to(device)
        banner = f"Weights could not be loaded ({error}). Serving the {FALLBACK_SUMMARY}"
        return ServedModel(model, FALLBACK_PRESET, device, None, banner, 1.0, fallback_error=str(error),
                           recipe=ModelRecipe(0, FALLBACK_PRESET))
    model = model.eval().to(device)
    share = random_parameter_share(report)
    return ServedModel(model, settings.preset, device, report, mostly_random_banner(share, settings.mostly_random_share),
                       share, recipe=recipe, trained=trained)


def mostly_random_banner(share: float, threshold: float) -> str | None:
    """The warning every tab shows while too much of the served model is random."""
    if share > threshold:
        return f"{share:.0%} of the served model's parameters are random: see the Weights tab."
    return None


def banner_markdown(served: ServedModel) -> str:
    """The banner as one line; an offline fallback's long reason (every file tried) folds into a <details>."""
    if not served.banner:
        return ""
    if served.fallback_error is None:
        return f"⚠️ **{html.escape(served.banner, quote=False)}**"
    return (f"<details class='model-banner-details'><summary>⚠️ <b>Weights could not be loaded: serving the "
            f"{html.escape(FALLBACK_SUMMARY)}</b> (click for why)</summary>\n\n"
            f"<pre style='white-space: pre-wrap'>{html.escape(served.fallback_error)}</pre>\n\n</details>")
