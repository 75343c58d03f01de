"""Weights that are a pure function of each key's name and shape, so goldens regenerate exactly anywhere."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence

import torch


def key_seed(key: str) -> int:
    """Stable 63-bit seed from the key name (Python's hash() is salted per process)."""
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "little") >> 1


def deterministic_tensor(key: str, shape: Sequence[int]) -> torch.Tensor:
    """A well-scaled float32 tensor for `key`: norms near 1, matrices ~ N(0, 1/fan_in), small biases."""
    generator = torch.Generator().manual_seed(key_seed(key))
    noise = torch.randn(tuple(shape), generator=generator, dtype=torch.float64)
    leaf = key.rsplit(".", 1)[-1]
    if len(shape) >= 2 and not leaf.endswith("token") and leaf not in ("pos_embed", "virual_tracks"):
        fan_in = math.prod(shape[1:])
        values = noise / math.sqrt(fan_in)
    elif leaf == "gamma":
        values = 0.1 + 0.02 * noise
    elif leaf == "weight":
        values = 1.0 + 0.1 * noise
    elif leaf.endswith("bias"):
        values = 0.02 * noise
    else:
        values = 0.1 * noise
    return values.to(torch.float32)


def deterministic_state_dict(layout: Mapping[str, Sequence[int]]) -> dict[str, torch.Tensor]:
    """One deterministic tensor per key of a {key: shape} layout."""
    return {key: deterministic_tensor(key, shape) for key, shape in layout.items()}
