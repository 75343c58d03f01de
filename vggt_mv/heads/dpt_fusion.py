"""DPT's refinement path: residual conv units and the fusion blocks that merge coarse and fine features."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

# nn.functional.interpolate fails above this many output elements in one call.
INTERPOLATE_ELEMENT_LIMIT = 1_610_612_736


def interpolate(x: torch.Tensor, size: tuple[int, int] | None = None, scale_factor: float | None = None,
                mode: str = "bilinear", align_corners: bool = True) -> torch.Tensor:
    """Bilinear resize that splits the batch when the output would be too large for one kernel call."""
    if size is None:
        size = (int(x.shape[-2] * scale_factor), int(x.shape[-1] * scale_factor))
    elements = size[0] * size[1] * x.shape[0] * x.shape[1]
    if elements <= INTERPOLATE_ELEMENT_LIMIT:
        return F.interpolate(x, size=size, mode=mode, align_corners=align_corners)
    chunks = torch.chunk(x, chunks=elements // INTERPOLATE_ELEMENT_LIMIT + 1, dim=0)
    return torch.cat([F.interpolate(c, size=size, mode=mode, align_corners=align_corners) for c in chunks])


class ResidualConvUnit(nn.Module):
    """relu(x) + conv(relu(conv(relu(x)))): VGGT's in-place ReLU also rectifies the skip path."""

    def __init__(self, features: int):
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)
        self.conv2 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1, bias=True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Skip from the rectified input, matching the released weights' behaviour."""
        rectified = F.relu(x)
        return rectified + self.conv2(F.relu(self.conv1(rectified)))


class FeatureFusionBlock(nn.Module):
    """Adds a refined skip feature (when it has one), refines, upsamples, projects (1x1 conv)."""

    def __init__(self, features: int, has_residual: bool = True):
        super().__init__()
        self.out_conv = nn.Conv2d(features, features, kernel_size=1, stride=1, padding=0, bias=True)
        self.has_residual = has_residual
        if has_residual:
            self.resConfUnit1 = ResidualConvUnit(features)
        self.resConfUnit2 = ResidualConvUnit(features)

    def forward(self, coarse: torch.Tensor, skip: torch.Tensor | None = None,
                size: tuple[int, int] | None = None) -> torch.Tensor:
        """Upsample to `size`, or by 2 without one."""
        output = coarse
        if self.has_residual:
            output = output + self.resConfUnit1(skip)
        output = self.resConfUnit2(output)
        output = interpolate(output, size=size, scale_factor=None if size is not None else 2)
        return self.out_conv(output)
