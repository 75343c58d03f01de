"""The aggregator: patch embedding plus alternating frame/global attention over a [B, T, N] grid of frames."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn as nn

from vggt_mv.attention_layout import STACK_GROUPING, FrameGrid, resolve_mode
from vggt_mv.config import VGGTMVConfig
from vggt_mv.layers.block import Block
from vggt_mv.layers.patch_embed import PatchEmbed
from vggt_mv.layers.rope import RotaryPositionEmbedding2D
from vggt_mv.layers.vision_transformer import vit_base, vit_giant2, vit_large, vit_small

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

DINOV2_FACTORIES = {
    "dinov2_vits14_reg": (vit_small, 384),
    "dinov2_vitb14_reg": (vit_base, 768),
    "dinov2_vitl14_reg": (vit_large, 1024),
    "dinov2_vitg2_reg": (vit_giant2, 1536),
}

LAMBDA_LOGIT_INIT = -4.0
STREAM_STACKS = ("pose_frame_blocks", "pose_global_blocks", "geo_frame_blocks", "geo_global_blocks")

RopeTables = tuple[torch.Tensor, torch.Tensor]


@dataclass
class AggregatorOutput:
    """Per-layer [B, S, P, 2C] tokens for the heads (None where no enabled head reads the layer)."""

    camera_layers: list[torch.Tensor | None]
    geometry_layers: list[torch.Tensor | None]
    patch_start_idx: int
    dynamic_mask: torch.Tensor
    mode: str


def build_patch_embed(config: VGGTMVConfig) -> nn.Module:
    """Conv patchify or a DINOv2 ViT with registers, built exactly as VGGT builds it."""
    if config.patch_embed == "conv":
        return PatchEmbed(img_size=config.img_size, patch_size=config.patch_size, in_chans=3,
                          embed_dim=config.embed_dim)
    factory, width = DINOV2_FACTORIES[config.patch_embed]
    if width != config.embed_dim:
        raise ValueError(f"patch_embed {config.patch_embed!r} produces {width}-wide tokens; "
                         f"set embed_dim={width} (got {config.embed_dim})")
    vit = factory(img_size=config.img_size, patch_size=config.patch_size,
                  num_register_tokens=config.num_register_tokens, interpolate_antialias=True,
                  interpolate_offset=0.0, block_chunks=0, init_values=1.0)
    vit.mask_token.requires_grad_(False)
    return vit


def build_block_stack(config: VGGTMVConfig, rope: nn.Module | None) -> nn.ModuleList:
    """One stack of `depth` VGGT blocks (qk-norm, layer scale, 2D RoPE)."""
    return nn.ModuleList(
        Block(dim=config.embed_dim, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
              qkv_bias=True, proj_bias=True, ffn_bias=True, init_values=config.init_values,
              qk_norm=config.qk_norm, rope=rope)
        for _ in range(config.depth)
    )


def reference_slot_tokens(token: torch.Tensor, batch: int, time_steps: int, cameras: int) -> torch.Tensor:
    """[1, 2, X, C] -> [B*T*N, X, C]: slot 0 for frame (t=0, n=0), slot 1 for every other frame."""
    frames = time_steps * cameras
    first = token[:, :1].expand(batch, 1, *token.shape[2:])
    others = token[:, 1:].expand(batch, frames - 1, *token.shape[2:])
    return torch.cat([first, others], dim=1).reshape(batch * frames, *token.shape[2:])


class Aggregator(nn.Module):
    """Alternates `frame_blocks[i]` and `global_blocks[i]`; what each attends over depends on the mode."""

    def __init__(self, config: VGGTMVConfig):
        super().__init__()
        self.config = config
        dim = config.embed_dim
        self.patch_size = config.patch_size
        self.depth = config.depth
        self.patch_start_idx = 1 + config.num_register_tokens
        self.patch_embed = build_patch_embed(config)
        self.rope = RotaryPositionEmbedding2D(frequency=config.rope_freq) if config.rope_freq > 0 else None
        self.frame_blocks = build_block_stack(config, self.rope)
        self.global_blocks = build_block_stack(config, self.rope)
        self.camera_token = nn.Parameter(torch.empty(1, 2, 1, dim))
        self.register_token = nn.Parameter(torch.empty(1, 2, config.num_register_tokens, dim))
        self.spatial_mask_head = nn.Sequential(
            nn.LayerNorm(dim), nn.Linear(dim, dim // 4), nn.GELU(), nn.Linear(dim // 4, 1)
        )
        if config.enable_sparse_global:
            self.memory_tokens = nn.Parameter(torch.empty(1, config.num_memory_tokens, dim))
        if config.enable_dual_stream:
            for name in STREAM_STACKS:
                setattr(self, name, build_block_stack(config, self.rope))
            self.lambda_pose_logit = nn.Parameter(torch.empty(()))
            self.lambda_geo_logit = nn.Parameter(torch.empty(()))
        self.register_buffer("_resnet_mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("_resnet_std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.reset_parameters()

    @property
    def time_blocks(self) -> nn.ModuleList:
        """Multi-view name of `frame_blocks` (Time-SA); an alias, never a second set of weights."""
        return self.frame_blocks

    @property
    def view_blocks(self) -> nn.ModuleList:
        """Multi-view name of `global_blocks` (View-SA); an alias, never a second set of weights."""
        return self.global_blocks

    def reset_parameters(self) -> None:
        """Initialise the aggregator's own tensors as VGGT does (tiny special tokens)."""
        nn.init.normal_(self.camera_token, std=1e-6)
        nn.init.normal_(self.register_token, std=1e-6)
        if hasattr(self, "memory_tokens"):
            nn.init.normal_(self.memory_tokens, std=0.02)
        if hasattr(self, "lambda_pose_logit"):
            nn.init.constant_(self.lambda_pose_logit, LAMBDA_LOGIT_INIT)
            nn.init.constant_(self.lambda_geo_logit, LAMBDA_LOGIT_INIT)

    def init_non_persistent_buffers(self, device: torch.device | str | None = None) -> None:
        """Recreate the normalisation constants, which a meta-device build leaves without data."""
        device = device if device is not None else self.camera_token.device
        self._resnet_mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
        self._resnet_std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def copy_shared_blocks_into_streams(self) -> None:
        """Dual-stream init: each stream starts as a copy of the shared blocks (status `derived`)."""
        for name in STREAM_STACKS:
            source = self.frame_blocks if "frame" in name else self.global_blocks
            getattr(self, name).load_state_dict(source.state_dict())

    def forward(self, images: torch.Tensor, mode: str | None = None,
                keep_camera_layers: set[int] | None = None,
                keep_geometry_layers: set[int] | None = None,
                on_layer: Callable[[str], None] | None = None) -> AggregatorOutput:
        """images [B, T, N, 3, H, W] in [0, 1] -> per-layer tokens for the heads; `on_layer` hears of each layer."""
        batch, time_steps, cameras, channels, height, width = images.shape
        if channels != 3:
            raise ValueError(f"expected 3 colour channels, got {channels}")
        if height % self.patch_size or width % self.patch_size:
            raise ValueError(f"image size {height}x{width} must be a multiple of {self.patch_size}")
        mode = resolve_mode(mode or self.config.attention_mode, cameras)
        last = self.depth - 1
        keep_camera = {last} if keep_camera_layers is None else set(keep_camera_layers)
        keep_geometry = set() if keep_geometry_layers is None else set(keep_geometry_layers)
        keep_camera.add(last)

        frames = batch * time_steps * cameras
        pixels = images.reshape(frames, 3, height, width)
        pixels = (pixels - self._resnet_mean.to(pixels.dtype)) / self._resnet_std.to(pixels.dtype)
        patch_tokens = self.patch_embed(pixels)
        if isinstance(patch_tokens, dict):
            patch_tokens = patch_tokens["x_norm_patchtokens"]
        grid_h, grid_w = height // self.patch_size, width // self.patch_size
        dynamic_mask = torch.sigmoid(self.spatial_mask_head(patch_tokens)).view(
            batch, time_steps, cameras, grid_h, grid_w)

        tokens = torch.cat([
            reference_slot_tokens(self.camera_token, batch, time_steps, cameras).to(patch_tokens.dtype),
            reference_slot_tokens(self.register_token, batch, time_steps, cameras).to(patch_tokens.dtype),
            patch_tokens,
        ], dim=1)
        grid = FrameGrid(batch, time_steps, cameras, tokens.shape[1])
        frame_rope = self._rope_tables(grid_h, grid_w, tokens.device)
        frame_grouping, global_grouping = STACK_GROUPING[mode]
        memory = self._initial_memory(batch, mode, tokens.dtype)
        streams = self._initial_streams(tokens, dynamic_mask, grid, (frame_grouping, global_grouping), frame_rope)

        camera_layers: list[torch.Tensor | None] = [None] * self.depth
        geometry_layers: list[torch.Tensor | None] = [None] * self.depth
        for i in range(self.depth):
            frame_out = self._run_block(self.frame_blocks[i], tokens, grid, frame_grouping, frame_rope)
            global_out, memory = self._run_global_block(self.global_blocks[i], frame_out, grid, global_grouping,
                                                        frame_rope, memory)
            tokens = global_out
            stream_outputs = self._advance_streams(streams, i, grid) if streams is not None else None
            if on_layer is not None:
                on_layer(f"aggregator layer {i + 1}/{self.depth}")
            if i not in keep_camera and i not in keep_geometry:
                continue
            shared = self._concat_layer(frame_out, global_out, grid)
            if stream_outputs is None:
                camera_layers[i] = shared if i in keep_camera else None
                geometry_layers[i] = shared if i in keep_geometry else None
                continue
            pose, geo = stream_outputs
            if i in keep_camera:
                camera_layers[i] = shared + torch.sigmoid(self.lambda_pose_logit) * (pose - shared)
            if i in keep_geometry:
                geometry_layers[i] = shared + torch.sigmoid(self.lambda_geo_logit) * (geo - shared)
        return AggregatorOutput(camera_layers, geometry_layers, self.patch_start_idx, dynamic_mask, mode)

    def _rope_tables(self, grid_h: int, grid_w: int, device: torch.device) -> RopeTables | None:
        """Per-frame cos/sin tables, built once per grid and device by the RoPE module's cache."""
        if self.rope is None:
            return None
        head_dim = self.config.embed_dim // self.config.num_heads
        return self.rope.tables(grid_h, grid_w, self.patch_start_idx, head_dim, device)

    @staticmethod
    def _tile_rope(frame_rope: RopeTables | None, frames: int, extra_tokens: int = 0) -> RopeTables | None:
        """Tables for a sequence of `frames` frames plus position-0 tokens (memory) at its end."""
        if frame_rope is None:
            return None
        cos, sin = frame_rope
        if frames > 1:
            cos, sin = cos.repeat(frames, 1), sin.repeat(frames, 1)
        if extra_tokens:
            cos = torch.cat([cos, frame_rope[0][:1].expand(extra_tokens, -1)], dim=0)
            sin = torch.cat([sin, frame_rope[1][:1].expand(extra_tokens, -1)], dim=0)
        return cos, sin

    def _run_block(self, block: nn.Module, tokens: torch.Tensor, grid: FrameGrid, grouping: str,
                   frame_rope: RopeTables | None, attn_bias: torch.Tensor | None = None) -> torch.Tensor:
        """Apply one block to the frames grouped as `grouping`; returns [B*T*N, P, C]."""
        grouped = grid.group(tokens, grouping)
        rope = self._tile_rope(frame_rope, grid.frames_per_group(grouping))
        return grid.ungroup(block(grouped, rope=rope, attn_bias=attn_bias), grouping)

    def _initial_memory(self, batch: int, mode: str, dtype: torch.dtype) -> torch.Tensor | None:
        """Sparse Global-SA memory, one summary per sequence, only used by View-SA in multi-view mode."""
        if not hasattr(self, "memory_tokens") or mode != "multi":
            return None
        return self.memory_tokens.to(dtype).expand(batch, -1, -1)

    def _run_global_block(self, block: nn.Module, tokens: torch.Tensor, grid: FrameGrid, grouping: str,
                          frame_rope: RopeTables | None, memory: torch.Tensor | None
                          ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Global/View-SA block; with memory tokens each time step also sees (and updates) the summary."""
        if memory is None:
            return self._run_block(block, tokens, grid, grouping, frame_rope), None
        grouped = grid.group(tokens, grouping)
        num_memory = memory.shape[1]
        per_step_memory = memory.unsqueeze(1).expand(-1, grid.time_steps, -1, -1).reshape(
            grid.batch * grid.time_steps, num_memory, -1)
        rope = self._tile_rope(frame_rope, grid.frames_per_group(grouping), extra_tokens=num_memory)
        out = block(torch.cat([grouped, per_step_memory], dim=1), rope=rope)
        new_memory = out[:, -num_memory:].view(grid.batch, grid.time_steps, num_memory, -1).mean(dim=1)
        return grid.ungroup(out[:, :-num_memory], grouping), new_memory

    @staticmethod
    def _concat_layer(frame_out: torch.Tensor, global_out: torch.Tensor, grid: FrameGrid) -> torch.Tensor:
        """[B*T*N, P, C] pair -> [B, T*N, P, 2C], the heads' per-layer input."""
        shape = (grid.batch, grid.time_steps * grid.cameras, grid.tokens_per_frame, -1)
        return torch.cat([frame_out.view(shape), global_out.view(shape)], dim=-1)

    def _initial_streams(self, tokens: torch.Tensor, dynamic_mask: torch.Tensor, grid: FrameGrid,
                         groupings: tuple[str, str], frame_rope: RopeTables | None) -> dict | None:
        """Dual-stream state: both streams start from the embedded tokens; pose attention ignores movers."""
        if not self.config.enable_dual_stream:
            return None
        frames = grid.batch * grid.time_steps * grid.cameras
        static_share = (1.0 - dynamic_mask.reshape(frames, -1)).clamp_min(1e-6)
        key_bias = torch.cat([static_share.new_zeros(frames, self.patch_start_idx), static_share.log()], dim=1)
        pose_bias = [
            grid.group(key_bias.to(tokens.dtype).unsqueeze(-1), grouping).squeeze(-1)[:, None, None, :]
            for grouping in groupings
        ]
        return {"pose": tokens, "geo": tokens, "groupings": groupings, "rope": frame_rope, "pose_bias": pose_bias}

    def _advance_streams(self, streams: dict, layer: int, grid: FrameGrid) -> tuple[torch.Tensor, torch.Tensor]:
        """Run layer `layer` of the pose and geometry streams; return their [B, S, P, 2C] outputs."""
        frame_grouping, global_grouping = streams["groupings"]
        outputs = []
        for stream, bias in (("pose", streams["pose_bias"]), ("geo", (None, None))):
            frame_stack = getattr(self, f"{stream}_frame_blocks")
            global_stack = getattr(self, f"{stream}_global_blocks")
            frame_out = self._run_block(frame_stack[layer], streams[stream], grid, frame_grouping,
                                        streams["rope"], bias[0])
            global_out = self._run_block(global_stack[layer], frame_out, grid, global_grouping,
                                         streams["rope"], bias[1])
            streams[stream] = global_out
            outputs.append(self._concat_layer(frame_out, global_out, grid))
        return outputs[0], outputs[1]

