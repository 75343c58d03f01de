"""Start-up settings of the app, from command-line flags or their environment-variable twins (for Spaces)."""

from __future__ import annotations

import argparse
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path

DEFAULT_CHECKPOINT = "facebook/VGGT-1B"
ENVIRONMENT_PREFIX = "VGGT_MV_"
DEFAULT_SESSIONS_DIR = Path(tempfile.gettempdir()) / "vggt-mv-sessions"


@dataclass(frozen=True)
class ServeSettings:
    """Everything the operator decides when starting the app."""

    checkpoint: str | None = DEFAULT_CHECKPOINT
    pi3: str | None = None
    pi3_rules: str = "decoder"
    preset: str = "vggt-1b"
    device: str = "auto"
    host: str = "127.0.0.1"
    port: int = 7860
    weights_dir: Path | None = None
    allow_weight_loading: bool = False
    mostly_random_share: float = 0.5
    max_total_frames: int = 64
    # Time steps per camera a visitor may ask for; runs longer than one pass (max_total_frames) go in windows, one
    # GPU call each.
    max_time_steps: int = 128
    queue_size: int = 16
    sessions_dir: Path = DEFAULT_SESSIONS_DIR
    cache_max_age: int = 3600
    # Bytes one run may use where the model runs; None: a ZeroGPU slice's figure, the GPU's total or the host's
    # available memory (vggt_mv.serving.gpu.memory_budget), never asked of CUDA in the main process.
    gpu_memory_bytes: int | None = None

    @property
    def delete_cache(self) -> tuple[int, int]:
        """Gradio's (how often, older than) in seconds for cleaning its upload and download cache."""
        return max(1, min(600, self.cache_max_age // 2)), max(1, self.cache_max_age)


def _flag_default(name: str, fallback):
    """Environment variable VGGT_MV_<NAME> overrides the built-in default, a flag overrides both."""
    value = os.environ.get(ENVIRONMENT_PREFIX + name.upper())
    return fallback if value is None else value


def build_parser() -> argparse.ArgumentParser:
    """The `python app.py` flags; every one also reads VGGT_MV_<FLAG> from the environment."""
    parser = argparse.ArgumentParser(description="VGGT_MV demo and weights inspector")
    defaults = ServeSettings()
    parser.add_argument("--checkpoint", default=_flag_default("checkpoint", defaults.checkpoint),
                        help="VGGT checkpoint: local file/dir or Hub repo id ('none' for random weights)")
    parser.add_argument("--pi3", default=_flag_default("pi3", defaults.pi3), help="Pi3 checkpoint: file or repo id")
    parser.add_argument("--pi3-rules", default=_flag_default("pi3_rules", defaults.pi3_rules),
                        choices=["decoder", "decoder+encoder"])
    parser.add_argument("--preset", default=_flag_default("preset", defaults.preset), choices=["vggt-1b", "tiny"])
    parser.add_argument("--device", default=_flag_default("device", defaults.device), help="auto, cpu, cuda, cuda:1 ...")
    # A Space tells Gradio where to listen through GRADIO_SERVER_NAME / GRADIO_SERVER_PORT (0.0.0.0:7860).
    parser.add_argument("--host", default=_flag_default("host", os.environ.get("GRADIO_SERVER_NAME", defaults.host)))
    parser.add_argument("--port", type=int, default=int(_flag_default(
        "port", os.environ.get("GRADIO_SERVER_PORT", defaults.port))))
    parser.add_argument("--weights-dir", default=_flag_default("weights_dir", None),
                        help="directory whose weight files visitors may pick in the Weights tab")
    parser.add_argument("--allow-weight-loading", action="store_true",
                        default=str(_flag_default("allow_weight_loading", "")).lower() in ("1", "true", "yes"),
                        help="let visitors load other weights into the served model")
    parser.add_argument("--mostly-random-share", type=float,
                        default=float(_flag_default("mostly_random_share", defaults.mostly_random_share)),
                        help="warn on the Reconstruct tab when more than this share of parameters is random")
    parser.add_argument("--max-total-frames", type=int,
                        default=int(_flag_default("max_total_frames", defaults.max_total_frames)),
                        help="most frames (time steps x cameras) in one pass (one GPU call); longer runs go in windows")
    parser.add_argument("--max-time-steps", type=int,
                        default=int(_flag_default("max_time_steps", defaults.max_time_steps)),
                        help="most time steps per camera a visitor may ask for")
    parser.add_argument("--queue-size", type=int, default=int(_flag_default("queue_size", defaults.queue_size)))
    parser.add_argument("--sessions-dir", default=_flag_default("sessions_dir", defaults.sessions_dir),
                        help="folder for per-session downloads (only its own session folders are ever removed)")
    parser.add_argument("--cache-max-age", type=int,
                        default=int(_flag_default("cache_max_age", defaults.cache_max_age)),
                        help="seconds an uploaded or downloadable file stays in Gradio's cache")
    parser.add_argument("--gpu-memory", type=float, default=_flag_default("gpu_memory", None), metavar="GIB",
                        help="GiB one run may use where the model runs (default: a ZeroGPU slice's 69.5 GiB on "
                             "ZeroGPU, the GPU's total on a GPU server, the available RAM on a CPU)")
    return parser


def parse_settings(argv: list[str] | None = None) -> ServeSettings:
    """Flags (or environment) -> ServeSettings; 'none' turns a weights source off."""
    args = build_parser().parse_args(argv)

    def source(value: str | None) -> str | None:
        return None if value in (None, "", "none", "None") else value

    return ServeSettings(
        checkpoint=source(args.checkpoint), pi3=source(args.pi3), pi3_rules=args.pi3_rules,
        preset=args.preset, device=args.device, host=args.host, port=args.port,
        weights_dir=Path(args.weights_dir).resolve() if args.weights_dir else None,
        allow_weight_loading=args.allow_weight_loading, mostly_random_share=args.mostly_random_share,
        max_total_frames=args.max_total_frames, max_time_steps=args.max_time_steps, queue_size=args.queue_size,
        sessions_dir=Path(args.sessions_dir).resolve(), cache_max_age=args.cache_max_age,
        gpu_memory_bytes=int(float(args.gpu_memory) * 1024 ** 3) if args.gpu_memory else None,
    )
