"""Multi-head self-attention through scaled_dot_product_attention, with optional qk-norm and 2D RoPE."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from vggt_mv.layers.rope import RopeTables, apply_rotary


class Attention(nn.Module):
    """VGGT's attention (keys qkv, q_norm, k_norm, proj); RoPE arrives as precomputed tables."""

    def __init__(self, dim: int, num_heads: int = 8, qkv_bias: bool = True, proj_bias: bool = True,
                 attn_drop: float = 0.0, proj_drop: float = 0.0, norm_layer: type[nn.Module] = nn.LayerNorm,
                 qk_norm: bool = False, rope: nn.Module | bool | None = None):
        super().__init__()
        if dim % num_heads:
            raise ValueError(f"dim {dim} is not divisible by num_heads {num_heads}")
        self.num_heads = num_heads
        self.head_dim = dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=qkv_bias)
        self.q_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm_layer(self.head_dim) if qk_norm else nn.Identity()
        self.attn_drop = attn_drop
        self.proj = nn.Linear(dim, dim, bias=proj_bias)
        self.proj_drop = nn.Dropout(proj_drop)
        self.uses_rope = bool(rope)

    def forward(self, x: torch.Tensor, rope: RopeTables | None = None,
                attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """x [B, L, C]; attn_bias (broadcastable to [B, heads, L, L]) is added to the logits."""
        batch, length, channels = x.shape
        qkv = self.qkv(x).reshape(batch, length, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k, v = qkv.unbind(0)
        q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None and self.uses_rope:
            q, k = apply_rotary(q, *rope), apply_rotary(k, *rope)
        if attn_bias is not None:
            attn_bias = attn_bias.to(q.dtype)
        x = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_bias,
                                           dropout_p=self.attn_drop if self.training else 0.0)
        return self.proj_drop(self.proj(x.transpose(1, 2).reshape(batch, length, channels)))
