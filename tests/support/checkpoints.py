"""Tiny real checkpoints written by tests: VGGT layout, Pi3 layout, and the broken variants users make."""

from __future__ import annotations

from pathlib import Path

import torch
from safetensors.torch import save_file

from vggt_mv import VGGT_MV, VGGTMVConfig


def tiny_source_model(seed: int = 7, **overrides) -> VGGT_MV:
    """A seeded tiny model whose weights the checkpoints carry."""
    torch.manual_seed(seed)
    return VGGT_MV(VGGTMVConfig.from_preset("tiny", **overrides)).eval()


def tiny_state(seed: int = 7) -> dict[str, torch.Tensor]:
    """A tiny model's full state dict (contiguous, detached)."""
    return {k: v.detach().clone().contiguous() for k, v in tiny_source_model(seed).state_dict().items()}


def pi3_layout_state(state: dict[str, torch.Tensor], register_shape=(1, 1, 5, 64)) -> dict[str, torch.Tensor]:
    """A Pi3-shaped state dict built from a VGGT_MV one: decoder.{2i} = frame block i, decoder.{2i+1} = global i."""
    pi3 = {}
    for key, value in state.items():
        for stack, parity in (("aggregator.frame_blocks.", 0), ("aggregator.global_blocks.", 1)):
            if key.startswith(stack):
                index, rest = key[len(stack):].split(".", 1)
                pi3[f"decoder.{2 * int(index) + parity}.{rest}"] = (value + 1.0).contiguous()
    pi3["register_token"] = torch.randn(register_shape)
    pi3["point_decoder.projects.weight"] = torch.randn(8, 8)
    pi3["image_mean"] = torch.zeros(1, 3, 1, 1)
    return pi3


def write_safetensors(path: Path, state: dict[str, torch.Tensor]) -> Path:
    """safetensors file of a state dict."""
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path
