"""Key -> shape of the real checkpoints (`facebook/VGGT-1B`, `yyfz233/Pi3`, `yyfz233/Pi3X`), shipped with the package.

They let a user (and the tests) dry-run against the real layouts offline, with nothing downloaded: the
files in `layouts/` hold every key and shape of the official models' state dicts, no values.
"""

from __future__ import annotations

import json
from functools import lru_cache
from importlib import resources

import torch

KNOWN_LAYOUTS = {"vggt-1b": "facebook/VGGT-1B", "pi3": "yyfz233/Pi3", "pi3x": "yyfz233/Pi3X"}
LAYOUT_SCHEME = "layout:"


@lru_cache(maxsize=None)
def _layout_file(name: str) -> dict:
    """The parsed JSON file of a known layout (read once per process)."""
    if name not in KNOWN_LAYOUTS:
        raise KeyError(f"unknown layout {name!r}; known: {', '.join(KNOWN_LAYOUTS)}")
    return json.loads(resources.files("vggt_mv.weights").joinpath("layouts", f"{name}.keys.json").read_text())


def reference_layout(name: str) -> dict[str, tuple[int, ...]]:
    """Every key of the real checkpoint `name` ("vggt-1b", "pi3" or "pi3x") with its shape, in state_dict order."""
    return {key: tuple(shape) for key, shape in _layout_file(name)["tensors"].items()}


def reference_parameter_count(name: str) -> int:
    """Parameters of the real checkpoint, as recorded with its layout."""
    return int(_layout_file(name)["num_params"])


def layout_tensors(name: str) -> dict[str, "TensorInfo"]:
    """The layout as header entries (all float32, as the real checkpoints store them)."""
    from vggt_mv.weights.sources import TensorInfo

    return {key: TensorInfo(shape, torch.float32) for key, shape in reference_layout(name).items()}
