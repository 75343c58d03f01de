"""Track head: follows query points of frame (t=0, n=0) through every frame of the grid."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn

from vggt_mv.heads.dpt import DPTHead
from vggt_mv.heads.track_modules.tracker import BaseTrackerPredictor


@dataclass(frozen=True)
class TrackContext:
    """What the track head reads from a forward, kept so tracks can be added later without the aggregator.

    `layers` maps aggregator layer index -> tokens [B, S, P, 2C] (only the distinct layers of
    dpt_intermediate_layer_idx, in the dtype the aggregator produced them: fp32, also under CUDA bf16 autocast,
    since LayerScale's fp32 gammas keep the residual stream in fp32); `frames` [B, S, 3, H, W] give the head its
    image size; `grid` is (B, T, N) with S = T * N.

    Why the layers and not the track feature maps ([B, S, 128, H/2, W/2], what the head's DPT makes of them):
    the layers already exist after every forward (the depth and point heads read the same ones), so keeping them
    costs no compute on runs nobody tracks; the feature maps would cost a DPT pass on every run to save 24% of the
    bytes (vggt-1b at 8 x 4 frames of 518x294: layers 4 x [32, 782, 2048] fp32 = 0.82 GB, feature maps 0.62 GB).
    Stored exactly as computed, `track` reproduces the forward's tracks bit for bit; a bf16 copy would halve the
    bytes but not reproduce them. vggt_mv.inference keeps contexts on the CPU (device memory is freed between
    runs, ZeroGPU has no device between calls); vggt_mv.pipeline bounds how many it keeps.
    """

    layers: dict[int, torch.Tensor]
    patch_start_idx: int
    frames: torch.Tensor
    grid: tuple[int, int, int]

    @property
    def layer_bytes(self) -> int:
        """Bytes held by the kept aggregator layers (the bulk of a context)."""
        return sum(t.numel() * t.element_size() for t in self.layers.values())

    @property
    def nbytes(self) -> int:
        """Bytes held by the whole context (layers and frames)."""
        return self.layer_bytes + self.frames.numel() * self.frames.element_size()

    def to(self, device: torch.device | str) -> "TrackContext":
        """The same context with its tensors on `device` (no copy for tensors already there)."""
        return TrackContext({i: t.to(device) for i, t in self.layers.items()}, self.patch_start_idx,
                            self.frames.to(device), self.grid)


class TrackHead(nn.Module):
    """DPT features at half resolution, then the iterative tracker."""

    def __init__(self, dim_in: int, patch_size: int = 14, features: int = 128, iters: int = 4,
                 predict_conf: bool = True, stride: int = 2, corr_levels: int = 7, corr_radius: int = 4,
                 hidden_size: int = 384, dpt_out_channels: list[int] = (256, 512, 1024, 1024),
                 dpt_intermediate_layer_idx: list[int] = (4, 11, 17, 23)):
        super().__init__()
        self.patch_size = patch_size
        self.iters = iters
        self.feature_extractor = DPTHead(dim_in=dim_in, patch_size=patch_size, features=features, feature_only=True,
                                         down_ratio=2, pos_embed=False, out_channels=dpt_out_channels,
                                         intermediate_layer_idx=dpt_intermediate_layer_idx)
        self.tracker = BaseTrackerPredictor(latent_dim=features, predict_conf=predict_conf, stride=stride,
                                            corr_levels=corr_levels, corr_radius=corr_radius,
                                            hidden_size=hidden_size)

    def forward(self, aggregated_tokens_list: list[torch.Tensor | None], images: torch.Tensor, patch_start_idx: int,
                query_points: torch.Tensor, iters: int | None = None, frames_chunk_size: int | None = 8):
        """-> (tracks per iteration [B, S, K, 2], visibility [B, S, K], confidence [B, S, K])."""
        feature_maps = self.feature_extractor(aggregated_tokens_list, images, patch_start_idx,
                                              frames_chunk_size=frames_chunk_size)
        return self.tracker(query_points=query_points, fmaps=feature_maps, iters=iters or self.iters)
