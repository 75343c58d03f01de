"""Self- and cross-attention blocks of the tracker's update transformer (nn.MultiheadAttention, VGGT's keys)."""

from __future__ import annotations

import torch
import torch.nn as nn

from vggt_mv.layers.mlp import Mlp


class AttnBlock(nn.Module):
    """Normalise, self-attend, add; then an MLP residual."""

    def __init__(self, hidden_size: int, num_heads: int, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.attn = nn.MultiheadAttention(embed_dim=hidden_size, num_heads=num_heads, batch_first=True)
        self.mlp = Mlp(in_features=hidden_size, hidden_features=int(hidden_size * mlp_ratio), drop=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The residual starts from the normalised input, as in VGGT's tracker."""
        x = self.norm1(x)
        x = x + self.attn(x, x, x, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))


class CrossAttnBlock(nn.Module):
    """Tokens attend to a context (points <-> virtual tracks), then an MLP residual."""

    def __init__(self, hidden_size: int, context_dim: int, num_heads: int = 1, mlp_ratio: float = 4.0):
        super().__init__()
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm_context = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.cross_attn = nn.MultiheadAttention(embed_dim=hidden_size, num_heads=num_heads, batch_first=True)
        self.mlp = Mlp(in_features=hidden_size, hidden_features=int(hidden_size * mlp_ratio), drop=0)

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x attends over the normalised context."""
        x = self.norm1(x)
        context = self.norm_context(context)
        x = x + self.cross_attn(x, context, context, need_weights=False)[0]
        return x + self.mlp(self.norm2(x))
