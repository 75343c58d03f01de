"""VGGT_MV: VGGT's aggregator and heads over a [B, T, N] grid of frames (T time steps, N cameras)."""

from __future__ import annotations

from typing import Any, Callable

import torch
import torch.nn as nn

from vggt_mv.aggregator import Aggregator
from vggt_mv.config import VGGTMVConfig
from vggt_mv.heads.camera import CameraHead
from vggt_mv.heads.dpt import DPTHead, chunk_bounds
from vggt_mv.heads.track import TrackHead

DEFAULT_FRAMES_CHUNK_SIZE = 8

# progress(done, total, stage): called after each aggregator layer and each head (chunk), in order.
ProgressCallback = Callable[[int, int, str], None]


class ProgressCounter:
    """Counts finished units of work and tells the caller; pure Python, never reads a tensor."""

    def __init__(self, total: int, callback: ProgressCallback):
        self.done, self.total, self.callback = 0, total, callback

    def step(self, stage: str) -> None:
        """One more unit finished."""
        self.done += 1
        self.callback(self.done, self.total, stage)

    def prefixed(self, prefix: str) -> Callable[[str], None]:
        """A step function that names its stage `prefix stage`."""
        return lambda stage: self.step(f"{prefix} {stage}")


def as_frame_grid(images: torch.Tensor) -> torch.Tensor:
    """Accept [B, T, N, 3, H, W], or VGGT's [B, S, 3, H, W] / [S, 3, H, W] as one camera's S frames."""
    if images.dim() == 4:
        images = images.unsqueeze(0)
    if images.dim() == 5:
        images = images.unsqueeze(2)
    if images.dim() != 6:
        raise ValueError(f"images must be [B, T, N, 3, H, W], [B, S, 3, H, W] or [S, 3, H, W]; got {tuple(images.shape)}")
    return images


class VGGT_MV(nn.Module):
    """VGGT for synchronized multi-view video; with T=1 or N=1 it computes exactly what VGGT computes."""

    def __init__(self, config: VGGTMVConfig | None = None):
        super().__init__()
        self.config = config = config if config is not None else VGGTMVConfig()
        dim_in = 2 * config.embed_dim
        self.aggregator = Aggregator(config)
        self.camera_head = CameraHead(dim_in=dim_in, trunk_depth=config.camera_trunk_depth,
                                      num_heads=config.camera_num_heads) if config.enable_camera else None
        dpt_sizes = dict(patch_size=config.patch_size, features=config.dpt_features,
                         out_channels=config.dpt_out_channels,
                         intermediate_layer_idx=config.dpt_intermediate_layer_idx)
        self.point_head = DPTHead(dim_in=dim_in, output_dim=4, activation="inv_log", conf_activation="expp1",
                                  **dpt_sizes) if config.enable_point else None
        self.depth_head = DPTHead(dim_in=dim_in, output_dim=2, activation="exp", conf_activation="expp1",
                                  **dpt_sizes) if config.enable_depth else None
        self.track_head = TrackHead(dim_in=dim_in, patch_size=config.patch_size, features=config.track_features,
                                    iters=config.track_iters, hidden_size=config.track_hidden_size,
                                    dpt_out_channels=config.dpt_out_channels,
                                    dpt_intermediate_layer_idx=config.dpt_intermediate_layer_idx,
                                    ) if config.enable_track else None

    def init_non_persistent_buffers(self, device: torch.device | str | None = None) -> None:
        """Restore constants that state_dict does not carry (after a meta-device build)."""
        self.aggregator.init_non_persistent_buffers(device)

    def load_pretrained_weights(self, checkpoint: Any = None, pi3: Any = None, pi3_rules: str = "decoder",
                                dry_run: bool = False):
        """Load VGGT and/or Pi3 weights over the whole model and return the provenance report."""
        from vggt_mv.weights import load_weights

        return load_weights(self, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules, dry_run=dry_run)

    def geometry_layers_needed(self, with_tracks: bool) -> set[int]:
        """Aggregator layers the enabled DPT-based heads read; the rest are never kept."""
        readers = [self.point_head, self.depth_head] + ([self.track_head] if with_tracks else [])
        return set(self.config.dpt_intermediate_layer_idx) if any(h is not None for h in readers) else set()

    def progress_units(self, frames: int, with_tracks: bool, frames_chunk_size: int | None) -> int:
        """How many progress calls a forward makes: one per aggregator layer, per head, per DPT chunk."""
        chunks = len(chunk_bounds(frames, frames_chunk_size))
        dense_heads = sum(head is not None for head in (self.depth_head, self.point_head))
        return (self.config.depth + (self.camera_head is not None) + dense_heads * chunks + int(with_tracks))

    def forward(self, images: torch.Tensor, query_points: torch.Tensor | None = None, mode: str | None = None,
                frames_chunk_size: int = DEFAULT_FRAMES_CHUNK_SIZE,
                progress: ProgressCallback | None = None) -> dict[str, torch.Tensor]:
        """images [B, T, N, 3, H, W] in [0, 1] -> predictions with a [B, T, N] prefix (see DESIGN.md)."""
        images = as_frame_grid(images)
        batch, time_steps, cameras, _, height, width = images.shape
        if query_points is not None and query_points.dim() == 2:
            query_points = query_points.unsqueeze(0)
        with_tracks = self.track_head is not None and query_points is not None
        counter = None if progress is None else ProgressCounter(
            self.progress_units(time_steps * cameras, with_tracks, frames_chunk_size), progress)
        aggregated = self.aggregator(images, mode=mode,
                                     keep_geometry_layers=self.geometry_layers_needed(with_tracks),
                                     on_layer=None if counter is None else counter.step)
        frames = images.reshape(batch, time_steps * cameras, 3, height, width)
        grid_prefix = (batch, time_steps, cameras)

        def unflatten(tensor: torch.Tensor) -> torch.Tensor:
            return tensor.reshape(*grid_prefix, *tensor.shape[2:])

        predictions: dict[str, torch.Tensor] = {"dynamic_mask": aggregated.dynamic_mask}
        with torch.autocast(device_type=images.device.type, enabled=False):
            camera_layers = [None if t is None else t.float() for t in aggregated.camera_layers]
            geometry_layers = [None if t is None else t.float() for t in aggregated.geometry_layers]
            frames = frames.float()
            if self.camera_head is not None:
                predictions["pose_enc"] = unflatten(self.camera_head(camera_layers)[-1])
                if counter is not None:
                    counter.step("camera head")
            for name, head in (("depth", self.depth_head), ("world_points", self.point_head)):
                if head is not None:
                    values, confidence = head(geometry_layers, images=frames,
                                              patch_start_idx=aggregated.patch_start_idx,
                                              frames_chunk_size=frames_chunk_size,
                                              on_chunk=None if counter is None else counter.prefixed(f"{name} head"))
                    predictions[name] = unflatten(values)
                    predictions[f"{name}_conf"] = unflatten(confidence)
            if with_tracks:
                tracks, visibility, confidence = self.track_head(
                    geometry_layers, images=frames, patch_start_idx=aggregated.patch_start_idx,
                    query_points=query_points.float())
                predictions["track"] = unflatten(tracks[-1])
                predictions["vis"] = unflatten(visibility)
                predictions["conf"] = unflatten(confidence)
                if counter is not None:
                    counter.step("track head")
        return predictions
