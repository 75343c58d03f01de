"""2D rotary position embedding (RoPE) with cos/sin tables cached per patch grid and device.

The feature dimension of each head is split in two halves: the first half rotates with the token's
row, the second with its column, each with the rotate-half convention and the frequencies
1 / base^(2i / (head_dim / 2)) — VGGT's RoPE2D. Special tokens (camera, registers) sit at position
(0, 0), which is the identity rotation; patch (r, c) sits at (r + 1, c + 1).
"""

from __future__ import annotations

import torch
import torch.nn as nn

RopeTables = tuple[torch.Tensor, torch.Tensor]


def axis_angles(positions: torch.Tensor, half_dim: int, base_frequency: float) -> torch.Tensor:
    """Angles [L, half_dim] for one axis: each frequency used twice (rotate-half layout)."""
    exponents = torch.arange(0, half_dim, 2, device=positions.device, dtype=torch.float32) / half_dim
    inverse_frequency = 1.0 / (base_frequency ** exponents)
    angles = positions.to(torch.float32)[:, None] * inverse_frequency[None, :]
    return torch.cat([angles, angles], dim=-1)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([-second, first], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate x [..., L, D] by tables [L, D]; math in fp32, result in x's dtype."""
    x_float = x.float()
    vertical, horizontal = x_float.chunk(2, dim=-1)
    rotated = torch.cat([rotate_half(vertical), rotate_half(horizontal)], dim=-1)
    return (x_float * cos + rotated * sin).to(x.dtype)


class RotaryPositionEmbedding2D(nn.Module):
    """Holds the base frequency and the per-grid table cache; owns no parameters."""

    def __init__(self, frequency: float = 100.0):
        super().__init__()
        self.base_frequency = float(frequency)
        self._cache: dict[tuple, RopeTables] = {}

    def tables(self, grid_h: int, grid_w: int, num_special_tokens: int, head_dim: int,
               device: torch.device | str) -> RopeTables:
        """cos/sin [num_special + grid_h * grid_w, head_dim] in fp32, built once per grid and device."""
        device = torch.device(device)
        key = (grid_h, grid_w, num_special_tokens, head_dim, device)
        cached = self._cache.get(key)
        if cached is not None:
            return cached
        rows = torch.arange(grid_h, device=device).repeat_interleave(grid_w) + 1
        cols = torch.arange(grid_w, device=device).repeat(grid_h) + 1
        special = torch.zeros(num_special_tokens, device=device, dtype=rows.dtype)
        rows, cols = torch.cat([special, rows]), torch.cat([special, cols])
        half = head_dim // 2
        angles = torch.cat([axis_angles(rows, half, self.base_frequency),
                            axis_angles(cols, half, self.base_frequency)], dim=-1)
        tables = (angles.cos(), angles.sin())
        self._cache[key] = tables
        return tables

    def forward(self, x: torch.Tensor, tables: RopeTables) -> torch.Tensor:
        """Rotate queries or keys [B, heads, L, head_dim] with precomputed tables."""
        return apply_rotary(x, *tables)
