"""Bilinear sampling at pixel coordinates (x, y), pixel centres at integers (align_corners=True)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def bilinear_sample(values: torch.Tensor, coords: torch.Tensor, padding_mode: str = "border") -> torch.Tensor:
    """values [B, C, H, W] at coords [B, Ho, Wo, 2] in pixels -> [B, C, Ho, Wo] (grid_sample in pixel units)."""
    height, width = values.shape[-2:]
    scale = torch.tensor([2 / max(width - 1, 1), 2 / max(height - 1, 1)], device=values.device, dtype=values.dtype)
    grid = coords.detach().to(device=values.device, dtype=values.dtype) * scale - 1
    return F.grid_sample(values, grid, align_corners=True, padding_mode=padding_mode)


def sample_point_features(feature_map: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """feature_map [B, C, H, W] at points [B, R, 2] -> [B, R, C]."""
    batch = feature_map.shape[0]
    sampled = bilinear_sample(feature_map, points.unsqueeze(2))
    return sampled.permute(0, 2, 1, 3).reshape(batch, -1, sampled.shape[1] * sampled.shape[3])
