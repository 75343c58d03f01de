"""Correlation pyramid: how well each track's feature matches every location, sampled around its position."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from vggt_mv.heads.track_modules.sampling import bilinear_sample


class CorrelationPyramid:
    """Average-pooled feature maps; correlations are computed level by level and never stored whole."""

    def __init__(self, feature_maps: torch.Tensor, num_levels: int = 4, radius: int = 4):
        self.radius = radius
        self.levels = [feature_maps]
        for _ in range(num_levels - 1):
            previous = self.levels[-1]
            batch, frames, channels, height, width = previous.shape
            if height < 2 or width < 2:
                # VGGT fails here on images too small for its pyramid; repeating the coarsest level
                # keeps small inputs usable and leaves every size VGGT accepts unchanged.
                self.levels.append(previous)
                continue
            pooled = F.avg_pool2d(previous.reshape(batch * frames, channels, height, width), kernel_size=2, stride=2)
            self.levels.append(pooled.reshape(batch, frames, channels, *pooled.shape[-2:]))
        offsets = torch.linspace(-radius, radius, 2 * radius + 1, device=feature_maps.device, dtype=feature_maps.dtype)
        self.window = torch.stack(torch.meshgrid(offsets, offsets, indexing="ij"), dim=-1)

    def sample(self, track_features: torch.Tensor, coords: torch.Tensor) -> torch.Tensor:
        """track_features [B, S, N, C], coords [B, S, N, 2] -> [B, S, N, levels * (2r+1)^2]."""
        batch, frames, count, channels = track_features.shape
        side = 2 * self.radius + 1
        sampled_levels = []
        for index, level in enumerate(self.levels):
            height, width = level.shape[-2:]
            correlation = torch.matmul(track_features, level.reshape(batch, frames, channels, height * width))
            correlation = (correlation / math.sqrt(channels)).reshape(batch * frames * count, 1, height, width)
            level_coords = coords.reshape(-1, 1, 1, 2) / self._scale(index)
            window = level_coords + self.window.to(coords.dtype).view(1, side, side, 2)
            sampled = bilinear_sample(correlation, window, padding_mode="zeros")
            sampled_levels.append(sampled.view(batch, frames, count, -1))
        return torch.cat(sampled_levels, dim=-1).contiguous()

    def _scale(self, index: int) -> float:
        """Pixel scale of level `index`: 2^index, frozen once levels stop shrinking."""
        scale = 1
        for previous, current in zip(self.levels[:index], self.levels[1:index + 1]):
            if current is not previous:
                scale *= 2
        return float(scale)
