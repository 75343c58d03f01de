"""Small VGGT_MV models for tests: tiny sizes, seeded, distinct special tokens so the reference rule is visible."""

from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from vggt_mv import VGGT_MV, VGGTMVConfig


def tiny_model(seed: int = 0, **overrides) -> VGGT_MV:
    """A seeded `tiny` model in eval mode whose blocks and token slots visibly matter."""
    torch.manual_seed(seed)
    model = VGGT_MV(VGGTMVConfig.from_preset("tiny", **overrides)).eval()
    with torch.no_grad():
        model.aggregator.camera_token.normal_(std=1.0)
        model.aggregator.register_token.normal_(std=1.0)
        # Random init scales every residual branch by 0.01, which would make the modes look alike.
        for name, parameter in model.named_parameters():
            if name.endswith(("ls1.gamma", "ls2.gamma")):
                parameter.fill_(0.5)
    return model


def random_images(time_steps: int, cameras: int, height: int = 28, width: int = 42, batch: int = 1,
                  seed: int = 1) -> torch.Tensor:
    """Images [B, T, N, 3, H, W] in [0, 1]."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(batch, time_steps, cameras, 3, height, width, generator=generator)


@contextlib.contextmanager
def forward_calls(module: torch.nn.Module) -> Iterator[list[int]]:
    """A list that gains one entry per forward of `module` while the block runs (to prove it did not run again)."""
    calls: list[int] = []
    handle = module.register_forward_hook(lambda *args: calls.append(1))
    try:
        yield calls
    finally:
        handle.remove()
