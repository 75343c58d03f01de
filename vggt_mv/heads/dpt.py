"""DPT head: dense per-pixel predictions (depth or world points, plus confidence) from four aggregator layers."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from vggt_mv.heads.activations import activate_head
from vggt_mv.heads.dpt_fusion import FeatureFusionBlock, interpolate
from vggt_mv.heads.position_embedding import add_position_embedding

OUTPUT_HIDDEN_CHANNELS = 32


def build_scratch(out_channels: list[int], features: int) -> nn.Module:
    """The `scratch` container of DPT (its key names are part of VGGT's checkpoint)."""
    scratch = nn.Module()
    for index, channels in enumerate(out_channels, start=1):
        setattr(scratch, f"layer{index}_rn",
                nn.Conv2d(channels, features, kernel_size=3, stride=1, padding=1, bias=False))
    scratch.refinenet1 = FeatureFusionBlock(features)
    scratch.refinenet2 = FeatureFusionBlock(features)
    scratch.refinenet3 = FeatureFusionBlock(features)
    scratch.refinenet4 = FeatureFusionBlock(features, has_residual=False)
    return scratch


def chunk_bounds(frames: int, frames_chunk_size: int | None) -> list[tuple[int, int]]:
    """[start, end) of each chunk of frames the head runs at once (one chunk when no size is given)."""
    if not frames_chunk_size or frames_chunk_size >= frames:
        return [(0, frames)]
    return [(start, min(start + frames_chunk_size, frames)) for start in range(0, frames, frames_chunk_size)]


class DPTHead(nn.Module):
    """Reassembles patch tokens of four layers into a feature pyramid, fuses it, predicts per pixel."""

    def __init__(self, dim_in: int, patch_size: int = 14, output_dim: int = 4, activation: str = "inv_log",
                 conf_activation: str = "expp1", features: int = 256,
                 out_channels: list[int] = (256, 512, 1024, 1024),
                 intermediate_layer_idx: list[int] = (4, 11, 17, 23), pos_embed: bool = True,
                 feature_only: bool = False, down_ratio: int = 1):
        super().__init__()
        out_channels = list(out_channels)
        self.patch_size = patch_size
        self.activation = activation
        self.conf_activation = conf_activation
        self.pos_embed = pos_embed
        self.feature_only = feature_only
        self.down_ratio = down_ratio
        self.intermediate_layer_idx = list(intermediate_layer_idx)
        self.norm = nn.LayerNorm(dim_in)
        self.projects = nn.ModuleList(nn.Conv2d(dim_in, channels, kernel_size=1) for channels in out_channels)
        self.resize_layers = nn.ModuleList([
            nn.ConvTranspose2d(out_channels[0], out_channels[0], kernel_size=4, stride=4, padding=0),
            nn.ConvTranspose2d(out_channels[1], out_channels[1], kernel_size=2, stride=2, padding=0),
            nn.Identity(),
            nn.Conv2d(out_channels[3], out_channels[3], kernel_size=3, stride=2, padding=1),
        ])
        self.scratch = build_scratch(out_channels, features)
        if feature_only:
            self.scratch.output_conv1 = nn.Conv2d(features, features, kernel_size=3, stride=1, padding=1)
        else:
            self.scratch.output_conv1 = nn.Conv2d(features, features // 2, kernel_size=3, stride=1, padding=1)
            self.scratch.output_conv2 = nn.Sequential(
                nn.Conv2d(features // 2, OUTPUT_HIDDEN_CHANNELS, kernel_size=3, stride=1, padding=1),
                nn.ReLU(inplace=True),
                nn.Conv2d(OUTPUT_HIDDEN_CHANNELS, output_dim, kernel_size=1, stride=1, padding=0),
            )

    def forward(self, aggregated_tokens_list: list[torch.Tensor | None], images: torch.Tensor, patch_start_idx: int,
                frames_chunk_size: int | None = 8, on_chunk: Callable[[str], None] | None = None):
        """images [B, S, 3, H, W] -> (values [B, S, H, W, C], conf [B, S, H, W]), or features [B, S, F, h, w]."""
        frames = images.shape[1]
        chunks = []
        for start, end in chunk_bounds(frames, frames_chunk_size):
            chunks.append(self._forward_frames(aggregated_tokens_list, images, patch_start_idx, start, end))
            if on_chunk is not None:
                on_chunk(f"frames {start + 1}-{end} of {frames}")
        if len(chunks) == 1:
            return chunks[0]
        if self.feature_only:
            return torch.cat(chunks, dim=1)
        return torch.cat([c[0] for c in chunks], dim=1), torch.cat([c[1] for c in chunks], dim=1)

    def _forward_frames(self, aggregated_tokens_list: list[torch.Tensor | None], images: torch.Tensor,
                        patch_start_idx: int, start: int, end: int):
        """The head on frames [start, end): bounded memory for long sequences."""
        batch, _, _, height, width = images.shape
        frames = end - start
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        pyramid = []
        for level, layer in enumerate(self.intermediate_layer_idx):
            tokens = aggregated_tokens_list[layer]
            if tokens is None:
                raise ValueError(f"DPT head needs aggregator layer {layer}, which was not kept")
            x = self.norm(tokens[:, start:end, patch_start_idx:].reshape(batch * frames, -1, tokens.shape[-1]))
            x = x.permute(0, 2, 1).reshape(batch * frames, -1, grid_h, grid_w)
            x = self.projects[level](x)
            if self.pos_embed:
                x = add_position_embedding(x, width, height)
            pyramid.append(self.resize_layers[level](x))
        fused = self._fuse(pyramid)
        fused = interpolate(fused, (int(grid_h * self.patch_size / self.down_ratio),
                                    int(grid_w * self.patch_size / self.down_ratio)))
        if self.pos_embed:
            fused = add_position_embedding(fused, width, height)
        if self.feature_only:
            return fused.view(batch, frames, *fused.shape[1:])
        values, confidence = activate_head(self.scratch.output_conv2(fused), activation=self.activation,
                                           conf_activation=self.conf_activation)
        return values.view(batch, frames, *values.shape[1:]), confidence.view(batch, frames, *confidence.shape[1:])

    def _fuse(self, pyramid: list[torch.Tensor]) -> torch.Tensor:
        """Coarse-to-fine fusion of the four levels, then the first output conv."""
        scratch = self.scratch
        level1, level2, level3, level4 = (getattr(scratch, f"layer{i}_rn")(x) for i, x in enumerate(pyramid, 1))
        out = scratch.refinenet4(level4, size=level3.shape[2:])
        out = scratch.refinenet3(out, level3, size=level2.shape[2:])
        out = scratch.refinenet2(out, level2, size=level1.shape[2:])
        out = scratch.refinenet1(out, level1)
        return scratch.output_conv1(out)
