"""Sinusoidal 2D position embeddings the DPT heads add to their feature maps."""

from __future__ import annotations

import functools

import torch


def uv_grid(width: int, height: int, aspect_ratio: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[height, width, 2] coordinates spanning the image, normalised by its diagonal (VGGT's create_uv_grid)."""
    diagonal = (aspect_ratio ** 2 + 1.0) ** 0.5
    span_x, span_y = aspect_ratio / diagonal, 1.0 / diagonal
    xs = torch.linspace(-span_x * (width - 1) / width, span_x * (width - 1) / width, steps=width,
                        dtype=dtype, device=device)
    ys = torch.linspace(-span_y * (height - 1) / height, span_y * (height - 1) / height, steps=height,
                        dtype=dtype, device=device)
    grid_u, grid_v = torch.meshgrid(xs, ys, indexing="xy")
    return torch.stack((grid_u, grid_v), dim=-1)


def sincos_embedding(dim: int, positions: torch.Tensor, omega_0: float = 100.0) -> torch.Tensor:
    """[M] positions -> [M, dim] (sin half, cos half), computed in float64 as VGGT does."""
    exponents = torch.arange(dim // 2, dtype=torch.float64, device=positions.device) / (dim / 2.0)
    omega = 1.0 / omega_0 ** exponents
    angles = positions.reshape(-1).to(torch.float64)[:, None] * omega[None, :]
    return torch.cat([torch.sin(angles), torch.cos(angles)], dim=1).float()


@functools.lru_cache(maxsize=32)
def image_position_embedding(channels: int, height: int, width: int, aspect_ratio: float,
                             dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[channels, height, width] embedding of a feature map; cached since every chunk and frame reuses it."""
    grid = uv_grid(width, height, aspect_ratio, dtype, device).reshape(-1, 2)
    embedding = torch.cat([sincos_embedding(channels // 2, grid[:, 0]),
                           sincos_embedding(channels // 2, grid[:, 1])], dim=-1)
    return embedding.view(height, width, channels).permute(2, 0, 1).to(dtype)


def add_position_embedding(features: torch.Tensor, image_width: int, image_height: int,
                           ratio: float = 0.1) -> torch.Tensor:
    """features [B, C, h, w] + ratio * embedding of the image's aspect ratio."""
    channels, height, width = features.shape[1:]
    embedding = image_position_embedding(channels, height, width, image_width / image_height,
                                         features.dtype, features.device)
    return features + ratio * embedding[None]
