"""DINOv2 ViT with register tokens, VGGT's default patch embed; key names match facebook/VGGT-1B."""

from __future__ import annotations

from functools import partial

import torch
import torch.nn as nn
import torch.nn.functional as F

from vggt_mv.layers.block import Block
from vggt_mv.layers.mlp import Mlp
from vggt_mv.layers.patch_embed import PatchEmbed


class DinoVisionTransformer(nn.Module):
    """Patchify, add (interpolated) position embeddings, insert registers, run the blocks, normalise."""

    def __init__(self, img_size: int = 224, patch_size: int = 16, in_chans: int = 3, embed_dim: int = 768,
                 depth: int = 12, num_heads: int = 12, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 ffn_bias: bool = True, proj_bias: bool = True, init_values: float | None = None,
                 act_layer: type[nn.Module] = nn.GELU, ffn_layer: type[nn.Module] = Mlp, block_chunks: int = 0,
                 num_register_tokens: int = 0, interpolate_antialias: bool = False,
                 interpolate_offset: float = 0.1, qk_norm: bool = False):
        super().__init__()
        if block_chunks:
            raise ValueError("block_chunks > 0 (FSDP wrapping) is not supported; VGGT builds with 0")
        norm_layer = partial(nn.LayerNorm, eps=1e-6)
        self.embed_dim = self.num_features = embed_dim
        self.patch_size = patch_size
        self.num_register_tokens = num_register_tokens
        self.interpolate_antialias = interpolate_antialias
        self.interpolate_offset = interpolate_offset
        self.patch_embed = PatchEmbed(img_size=img_size, patch_size=patch_size, in_chans=in_chans,
                                      embed_dim=embed_dim)
        self.cls_token = nn.Parameter(torch.empty(1, 1, embed_dim))
        self.pos_embed = nn.Parameter(torch.empty(1, self.patch_embed.num_patches + 1, embed_dim))
        self.register_tokens = nn.Parameter(torch.empty(1, num_register_tokens, embed_dim)) \
            if num_register_tokens else None
        self.blocks = nn.ModuleList(
            Block(dim=embed_dim, num_heads=num_heads, mlp_ratio=mlp_ratio, qkv_bias=qkv_bias, proj_bias=proj_bias,
                  ffn_bias=ffn_bias, norm_layer=norm_layer, act_layer=act_layer, ffn_layer=ffn_layer,
                  init_values=init_values, qk_norm=qk_norm)
            for _ in range(depth)
        )
        self.norm = norm_layer(embed_dim)
        self.mask_token = nn.Parameter(torch.empty(1, embed_dim))
        self.reset_parameters()
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.trunc_normal_(module.weight, std=0.02)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def reset_parameters(self) -> None:
        """DINOv2's init of the ViT's own tensors (its Linear layers use trunc-normal at construction)."""
        nn.init.trunc_normal_(self.pos_embed, std=0.02)
        nn.init.normal_(self.cls_token, std=1e-6)
        if self.register_tokens is not None:
            nn.init.normal_(self.register_tokens, std=1e-6)
        nn.init.zeros_(self.mask_token)

    def interpolate_pos_encoding(self, num_patches: int, height: int, width: int, dtype: torch.dtype) -> torch.Tensor:
        """Position embeddings resized (bicubic, fp32) from the square training grid to this image's grid."""
        trained_patches = self.pos_embed.shape[1] - 1
        if num_patches == trained_patches and height == width:
            return self.pos_embed.to(dtype)
        pos_embed = self.pos_embed.float()
        side = int(round(trained_patches ** 0.5))
        if side * side != trained_patches:
            raise ValueError(f"position embedding of {trained_patches} patches is not a square grid")
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        if self.interpolate_offset:
            size_or_scale = {"scale_factor": ((grid_h + self.interpolate_offset) / side,
                                              (grid_w + self.interpolate_offset) / side)}
        else:
            size_or_scale = {"size": (grid_h, grid_w)}
        patch_pos = F.interpolate(pos_embed[:, 1:].reshape(1, side, side, -1).permute(0, 3, 1, 2),
                                  mode="bicubic", antialias=self.interpolate_antialias, **size_or_scale)
        patch_pos = patch_pos.permute(0, 2, 3, 1).reshape(1, grid_h * grid_w, -1)
        return torch.cat([pos_embed[:, :1], patch_pos], dim=1).to(dtype)

    def prepare_tokens(self, x: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] -> [B, 1 + registers + patches, C]: cls, registers, then patches."""
        height, width = x.shape[-2:]
        tokens = self.patch_embed(x)
        tokens = torch.cat([self.cls_token.expand(tokens.shape[0], -1, -1).to(tokens.dtype), tokens], dim=1)
        tokens = tokens + self.interpolate_pos_encoding(tokens.shape[1] - 1, height, width, tokens.dtype)
        if self.register_tokens is not None:
            registers = self.register_tokens.expand(tokens.shape[0], -1, -1).to(tokens.dtype)
            tokens = torch.cat([tokens[:, :1], registers, tokens[:, 1:]], dim=1)
        return tokens

    def forward(self, x: torch.Tensor) -> dict[str, torch.Tensor]:
        """DINOv2's feature dict; VGGT reads `x_norm_patchtokens`."""
        tokens = self.prepare_tokens(x)
        for block in self.blocks:
            tokens = block(tokens)
        normed = self.norm(tokens)
        return {
            "x_norm_clstoken": normed[:, 0],
            "x_norm_regtokens": normed[:, 1:self.num_register_tokens + 1],
            "x_norm_patchtokens": normed[:, self.num_register_tokens + 1:],
            "x_prenorm": tokens,
        }


def _dinov2(embed_dim: int, depth: int, num_heads: int, patch_size: int = 16, num_register_tokens: int = 0,
            **kwargs) -> DinoVisionTransformer:
    """One DINOv2 size; mlp_ratio 4 throughout (VGGT's giant2 keeps the plain MLP FFN)."""
    return DinoVisionTransformer(patch_size=patch_size, embed_dim=embed_dim, depth=depth, num_heads=num_heads,
                                 mlp_ratio=4, num_register_tokens=num_register_tokens, **kwargs)


vit_small = partial(_dinov2, 384, 12, 6)
vit_base = partial(_dinov2, 768, 12, 12)
vit_large = partial(_dinov2, 1024, 24, 16)
vit_giant2 = partial(_dinov2, 1536, 40, 24)
