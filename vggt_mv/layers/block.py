"""Pre-norm transformer block with layer scale: VGGT's frame/global blocks and DINOv2's blocks."""

from __future__ import annotations

import torch
import torch.nn as nn

from vggt_mv.layers.attention import Attention
from vggt_mv.layers.layer_scale import LayerScale
from vggt_mv.layers.mlp import Mlp
from vggt_mv.layers.rope import RopeTables


class Block(nn.Module):
    """x + ls1(attn(norm1(x))), then x + ls2(mlp(norm2(x))); keys match VGGT's Block."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, qkv_bias: bool = True,
                 proj_bias: bool = True, ffn_bias: bool = True, drop: float = 0.0, attn_drop: float = 0.0,
                 init_values: float | None = None, drop_path: float = 0.0, act_layer: type[nn.Module] = nn.GELU,
                 norm_layer: type[nn.Module] = nn.LayerNorm, ffn_layer: type[nn.Module] = Mlp,
                 qk_norm: bool = False, rope: nn.Module | bool | None = None):
        super().__init__()
        if drop_path:
            raise ValueError("stochastic depth (drop_path) is not supported; VGGT_MV is built for inference")
        self.norm1 = norm_layer(dim)
        self.attn = Attention(dim, num_heads=num_heads, qkv_bias=qkv_bias, proj_bias=proj_bias,
                              attn_drop=attn_drop, proj_drop=drop, qk_norm=qk_norm, rope=rope)
        self.ls1 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()
        self.norm2 = norm_layer(dim)
        self.mlp = ffn_layer(in_features=dim, hidden_features=int(dim * mlp_ratio), act_layer=act_layer,
                             drop=drop, bias=ffn_bias)
        self.ls2 = LayerScale(dim, init_values=init_values) if init_values else nn.Identity()

    def forward(self, x: torch.Tensor, rope: RopeTables | None = None,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Attention then feed-forward, each as a scaled residual."""
        x = x + self.ls1(self.attn(self.norm1(x), rope=rope, attn_bias=attn_bias))
        return x + self.ls2(self.mlp(self.norm2(x)))
