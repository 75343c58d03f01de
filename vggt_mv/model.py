"""VGGT_MV: VGGT's aggregator and heads over a [B, T, N] grid of frames (T time steps, N cameras)."""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn as nn

from vggt_mv.aggregator import Aggregator
from vggt_mv.config import VGGTMVConfig
from vggt_mv.heads.camera import CameraHead
from vggt_mv.heads.dpt import DPTHead, chunk_bounds
from vggt_mv.heads.track import TrackContext, TrackHead

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
        predictions, _ = self._forward(images, query_points, mode, frames_chunk_size, progress, keep_track_context=False)
        return predictions

    def forward_with_track_context(self, images: torch.Tensor, query_points: torch.Tensor | None = None,
                                   mode: str | None = None, frames_chunk_size: int = DEFAULT_FRAMES_CHUNK_SIZE,
                                   progress: ProgressCallback | None = None,
                                   ) -> tuple[dict[str, torch.Tensor], TrackContext | None]:
        """`forward`, plus what `track` needs to add tracks later without the aggregator (None: no track head)."""
        return self._forward(images, query_points, mode, frames_chunk_size, progress,
                             keep_track_context=self.track_head is not None)

    def track(self, context: TrackContext, query_points: torch.Tensor) -> dict[str, torch.Tensor]:
        """Only the track head, on a kept context: the same track/vis/conf as `model(images, query_points=...)`.

        query_points [B, K, 2] (or [K, 2]) in pixels of frame (t=0, n=0); the context may live on any device
        (its tensors are moved to the model's).
        """
        if self.track_head is None:
            raise ValueError("this model has no track head (enable_track=False)")
        if query_points.dim() == 2:
            query_points = query_points.unsqueeze(0)
        batch, time_steps, cameras = context.grid
        if query_points.dim() != 3 or query_points.shape[0] != batch or query_points.shape[-1] != 2:
            raise ValueError(f"query_points must be [{batch}, K, 2]; got {tuple(query_points.shape)}")
        device = next(self.parameters()).device
        layers: list[torch.Tensor | None] = [None] * self.config.depth
        for index, tokens in context.layers.items():
            layers[index] = tokens.to(device)
        with torch.autocast(device_type=device.type, enabled=False):
            return self._run_track_head(layers, context.frames.to(device), context.patch_start_idx,
                                        query_points.to(device), (batch, time_steps, cameras))

    def _run_track_head(self, layers: list[torch.Tensor | None], frames: torch.Tensor, patch_start_idx: int,
                        query_points: torch.Tensor, grid_prefix: tuple[int, int, int]) -> dict[str, torch.Tensor]:
        """The track head in fp32 -> track [B, T, N, K, 2], vis and conf [B, T, N, K]."""
        layers = [None if t is None else t.float() for t in layers]
        tracks, visibility, confidence = self.track_head(layers, images=frames.float(),
                                                         patch_start_idx=patch_start_idx,
                                                         query_points=query_points.float())
        return {name: tensor.reshape(*grid_prefix, *tensor.shape[2:])
                for name, tensor in (("track", tracks[-1]), ("vis", visibility), ("conf", confidence))}

    def _forward(self, images: torch.Tensor, query_points: torch.Tensor | None, mode: str | None,
                 frames_chunk_size: int, progress: ProgressCallback | None,
                 keep_track_context: bool) -> tuple[dict[str, torch.Tensor], TrackContext | None]:
        """The forward pass; with `keep_track_context` the track head's layers are kept and returned."""
        images = as_frame_grid(images)
        batch, time_steps, cameras, _, height, width = images.shape
        if query_points is not None and query_points.dim() == 2:
            query_points = query_points.unsqueeze(0)
        with_tracks = self.track_head is not None and query_points is not None
        counter = None if progress is None else ProgressCounter(
            self.progress_units(time_steps * cameras, with_tracks, frames_chunk_size), progress)
        track_layers = self.geometry_layers_needed(True) if keep_track_context else set()
        aggregated = self.aggregator(images, mode=mode,
                                     keep_geometry_layers=self.geometry_layers_needed(with_tracks) | track_layers,
                                     on_layer=None if counter is None else counter.step)
        frames = images.reshape(batch, time_steps * cameras, 3, height, width)
        grid_prefix = (batch, time_steps, cameras)
        context = None
        if keep_track_context:
            context = TrackContext({i: aggregated.geometry_layers[i] for i in sorted(track_layers)},
                                   aggregated.patch_start_idx, frames, grid_prefix)

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
                predictions.update(self._run_track_head(geometry_layers, frames, aggregated.patch_start_idx,
                                                        query_points, grid_prefix))
                if counter is not None:
                    counter.step("track head")
        return predictions, context
