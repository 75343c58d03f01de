"""Sinusoidal embeddings of the tracker: of the feature grid and of each track's motion."""

from __future__ import annotations

import functools

import torch


def _sincos(dim: int, positions: torch.Tensor) -> torch.Tensor:
    """[M] -> [M, dim] (sin half, cos half), base 10000, float64 then float32."""
    exponents = torch.arange(dim // 2, dtype=torch.float64) / (dim / 2.0)
    angles = positions.reshape(-1).to(torch.float64)[:, None] * (1.0 / 10000 ** exponents)[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


@functools.lru_cache(maxsize=16)
def grid_position_embedding(dim: int, height: int, width: int, device: torch.device) -> torch.Tensor:
    """[1, dim, H, W]: first half embeds the column (x), second half the row (y); cached per grid."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float32), torch.arange(width, dtype=torch.float32),
                            indexing="ij")
    embedding = torch.cat([_sincos(dim // 2, xs), _sincos(dim // 2, ys)], dim=1)
    return embedding.reshape(1, height, width, dim).permute(0, 3, 1, 2).to(device)


def motion_embedding(xy: torch.Tensor, channels: int) -> torch.Tensor:
    """xy [B, N, 2] -> [B, N, 2 * channels]: interleaved sin/cos of x, then of y."""
    batch, count, _ = xy.shape
    frequencies = (torch.arange(0, channels, 2, device=xy.device, dtype=torch.float32)
                   * (1000.0 / channels)).reshape(1, 1, channels // 2)
    parts = []
    for axis in (0, 1):
        angles = xy[:, :, axis:axis + 1] * frequencies
        embedded = torch.zeros(batch, count, channels, device=xy.device, dtype=torch.float32)
        embedded[:, :, 0::2] = torch.sin(angles)
        embedded[:, :, 1::2] = torch.cos(angles)
        parts.append(embedded)
    return torch.cat(parts, dim=2)
