"""EfficientUpdateFormer: time attention per track, space attention through a few virtual tracks."""

from __future__ import annotations

import torch
import torch.nn as nn

from vggt_mv.heads.track_modules.attention_blocks import AttnBlock, CrossAttnBlock


class EfficientUpdateFormer(nn.Module):
    """Predicts per-frame coordinate and feature updates for every track."""

    def __init__(self, space_depth: int = 6, time_depth: int = 6, input_dim: int = 320, hidden_size: int = 384,
                 num_heads: int = 8, output_dim: int = 130, mlp_ratio: float = 4.0, add_space_attn: bool = True,
                 num_virtual_tracks: int = 64):
        super().__init__()
        self.num_virtual_tracks = num_virtual_tracks
        self.add_space_attn = add_space_attn
        self.input_norm = nn.LayerNorm(input_dim)
        self.input_transform = nn.Linear(input_dim, hidden_size, bias=True)
        self.output_norm = nn.LayerNorm(hidden_size)
        self.flow_head = nn.Linear(hidden_size, output_dim, bias=True)
        # "virual" is the spelling of VGGT's checkpoint key.
        self.virual_tracks = nn.Parameter(torch.empty(1, num_virtual_tracks, 1, hidden_size)) if add_space_attn else None
        self.time_blocks = nn.ModuleList(AttnBlock(hidden_size, num_heads, mlp_ratio=mlp_ratio)
                                         for _ in range(time_depth))
        if add_space_attn:
            self.space_virtual_blocks = nn.ModuleList(AttnBlock(hidden_size, num_heads, mlp_ratio=mlp_ratio)
                                                      for _ in range(space_depth))
            self.space_point2virtual_blocks = nn.ModuleList(
                CrossAttnBlock(hidden_size, hidden_size, num_heads, mlp_ratio=mlp_ratio) for _ in range(space_depth))
            self.space_virtual2point_blocks = nn.ModuleList(
                CrossAttnBlock(hidden_size, hidden_size, num_heads, mlp_ratio=mlp_ratio) for _ in range(space_depth))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Virtual tracks start as unit Gaussians; every Linear below is Xavier with zero bias, the flow head tiny.

        Descendants are re-initialised here (not in __init__) so a meta build that initialises what stayed random
        gets the constructor's init."""
        if self.virual_tracks is not None:
            nn.init.normal_(self.virual_tracks)
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        nn.init.trunc_normal_(self.flow_head.weight, std=0.001)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, N, S, input_dim] -> updates [B, N, S, output_dim]."""
        tokens = self.input_transform(self.input_norm(tokens))
        initial = tokens
        batch, _, frames, _ = tokens.shape
        if self.add_space_attn:
            tokens = torch.cat([tokens, self.virual_tracks.repeat(batch, 1, frames, 1)], dim=1)
        count = tokens.shape[1]
        space_every = len(self.time_blocks) // len(self.space_virtual_blocks) if self.add_space_attn else 0
        space_index = 0
        for index, time_block in enumerate(self.time_blocks):
            tokens = time_block(tokens.contiguous().view(batch * count, frames, -1)).view(batch, count, frames, -1)
            if self.add_space_attn and index % space_every == 0:
                space = tokens.permute(0, 2, 1, 3).contiguous().view(batch * frames, count, -1)
                points, virtual = space[:, :count - self.num_virtual_tracks], space[:, count - self.num_virtual_tracks:]
                virtual = self.space_virtual2point_blocks[space_index](virtual, points)
                virtual = self.space_virtual_blocks[space_index](virtual)
                points = self.space_point2virtual_blocks[space_index](points, virtual)
                tokens = torch.cat([points, virtual], dim=1).view(batch, frames, count, -1).permute(0, 2, 1, 3)
                space_index += 1
        if self.add_space_attn:
            tokens = tokens[:, :count - self.num_virtual_tracks]
        return self.flow_head(self.output_norm(tokens + initial))
