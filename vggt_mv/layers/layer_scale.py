"""Per-channel residual scaling (CaiT's LayerScale), key `gamma` as in VGGT and DINOv2."""

from __future__ import annotations

import torch
import torch.nn as nn


class LayerScale(nn.Module):
    """Scales a residual branch so deep stacks start close to identity."""

    def __init__(self, dim: int, init_values: float = 1e-5):
        super().__init__()
        self.init_values = init_values
        self.gamma = nn.Parameter(torch.empty(dim))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """gamma = init_values everywhere, as at construction."""
        nn.init.constant_(self.gamma, self.init_values)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Scale the branch output channel-wise."""
        return x * self.gamma
