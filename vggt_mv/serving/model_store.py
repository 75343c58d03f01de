"""The one model a server process shares: loaded once at start-up, with a banner saying how it was loaded."""

from __future__ import annotations

import html
import logging
import threading
from dataclasses import dataclass, field

import torch

from vggt_mv.config import VGGTMVConfig
from vggt_mv.inference import pick_device
from vggt_mv.serving.settings import ServeSettings

logger = logging.getLogger(__name__)

FALLBACK_PRESET = "tiny"
FALLBACK_SUMMARY = (f"'{FALLBACK_PRESET}' preset with RANDOM weights: reconstructions are meaningless, but every part "
                    "of the app works.")


@dataclass
class ServedModel:
    """The shared model, its load report, and what visitors must be told about it."""

    model: torch.nn.Module
    preset: str
    device: torch.device
    report: object | None
    banner: str | None
    random_share: float
    fallback_error: str | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record_load(self, report, mostly_random_share: float) -> None:
        """New weights went into the served model: refresh the report, the random share and the banner."""
        self.report = report
        self.random_share = random_parameter_share(report)
        self.fallback_error = None
        self.banner = mostly_random_banner(self.random_share, mostly_random_share)

    def replace_model(self, model: torch.nn.Module, report, mostly_random_share: float) -> None:
        """Swap in a fully loaded model in one step under the lock (a run sees the old model or the new one, never
        a mix), with its report and banner, and forget the runs cached for the old one."""
        from vggt_mv.pipeline import clear_cache

        with self.lock:
            self.model = model
            self.record_load(report, mostly_random_share)
            clear_cache()

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


def random_model(preset: str, device: torch.device) -> torch.nn.Module:
    """A randomly initialised model of the preset, for offline demos and tests."""
    from vggt_mv.model import VGGT_MV

    torch.manual_seed(0)
    return VGGT_MV(VGGTMVConfig.from_preset(preset)).eval().to(device)


def load_served_model(settings: ServeSettings) -> ServedModel:
    """Load the configured weights; when they cannot be had, serve the tiny preset and say why."""
    from vggt_mv.weights import build_and_load

    device = pick_device(settings.device)
    if settings.checkpoint is None and settings.pi3 is None:
        model = random_model(settings.preset, device)
        return ServedModel(model, settings.preset, device, None,
                           f"No weights were requested: the {settings.preset} preset runs with random weights.", 1.0)
    try:
        model, report = build_and_load(VGGTMVConfig.from_preset(settings.preset), checkpoint=settings.checkpoint,
                                       pi3=settings.pi3, pi3_rules=settings.pi3_rules, device=str(device))
    except Exception as error:  # noqa: BLE001 - any failure to get weights means the offline fallback
        logger.warning("weights unavailable, serving the %s preset with random weights: %s", FALLBACK_PRESET, error)
        model = random_model(FALLBACK_PRESET, device)
        banner = f"Weights could not be loaded ({error}). Serving the {FALLBACK_SUMMARY}"
        return ServedModel(model, FALLBACK_PRESET, device, None, banner, 1.0, fallback_error=str(error))
    model.eval()
    share = random_parameter_share(report)
    return ServedModel(model, settings.preset, device, report, mostly_random_banner(share, settings.mostly_random_share),
                       share)


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
