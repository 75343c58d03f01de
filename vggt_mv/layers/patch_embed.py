"""Non-overlapping patchify convolution: image [B, 3, H, W] -> tokens [B, H/p * W/p, C]."""

from __future__ import annotations

import torch
import torch.nn as nn


class PatchEmbed(nn.Module):
    """A strided conv (key `proj`), VGGT's "conv" patch embed and DINOv2's stem."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 norm_layer: type[nn.Module] | None = None, flatten_embedding: bool = True):
        super().__init__()
        self.img_size = (img_size, img_size)
        self.patch_size = (patch_size, patch_size)
        self.num_patches = (img_size // patch_size) ** 2
        self.embed_dim = embed_dim
        self.flatten_embedding = flatten_embedding
        self.proj = nn.Conv2d(in_chans, embed_dim, kernel_size=patch_size, stride=patch_size)
        self.norm = norm_layer(embed_dim) if norm_layer else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Patchify; H and W must be multiples of the patch size."""
        height, width = x.shape[-2:]
        if height % self.patch_size[0] or width % self.patch_size[1]:
            raise ValueError(f"image size {height}x{width} is not a multiple of the patch size {self.patch_size[0]}")
        x = self.proj(x)
        grid_h, grid_w = x.shape[-2:]
        x = self.norm(x.flatten(2).transpose(1, 2))
        return x if self.flatten_embedding else x.reshape(-1, grid_h, grid_w, self.embed_dim)
