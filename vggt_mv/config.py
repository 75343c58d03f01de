"""VGGTMVConfig: every size and switch of VGGT_MV, with named presets."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

ATTENTION_MODES = ("auto", "single", "multi", "global")
PATCH_EMBEDS = ("conv", "dinov2_vits14_reg", "dinov2_vitb14_reg", "dinov2_vitl14_reg", "dinov2_vitg2_reg")


@dataclass
class VGGTMVConfig:
    """Sizes and switches of VGGT_MV; the defaults are VGGT-1B's, so `VGGTMVConfig()` loads facebook/VGGT-1B."""

    img_size: int = 518
    patch_size: int = 14
    embed_dim: int = 1024
    depth: int = 24
    num_heads: int = 16
    mlp_ratio: float = 4.0
    num_register_tokens: int = 4
    patch_embed: str = "dinov2_vitl14_reg"
    qk_norm: bool = True
    rope_freq: int = 100
    init_values: float = 0.01
    camera_trunk_depth: int = 4
    camera_num_heads: int = 16
    dpt_features: int = 256
    dpt_out_channels: list[int] = field(default_factory=lambda: [256, 512, 1024, 1024])
    dpt_intermediate_layer_idx: list[int] = field(default_factory=lambda: [4, 11, 17, 23])
    track_features: int = 128
    track_hidden_size: int = 384
    track_iters: int = 4
    enable_camera: bool = True
    enable_point: bool = True
    enable_depth: bool = True
    enable_track: bool = True
    enable_sparse_global: bool = False
    num_memory_tokens: int = 32
    enable_dual_stream: bool = False
    attention_mode: str = "auto"

    def __post_init__(self) -> None:
        """Fail at construction, not deep inside forward, when sizes cannot work together."""
        if self.attention_mode not in ATTENTION_MODES:
            raise ValueError(f"attention_mode must be one of {ATTENTION_MODES}, got {self.attention_mode!r}")
        if self.patch_embed not in PATCH_EMBEDS:
            raise ValueError(f"patch_embed must be one of {PATCH_EMBEDS}, got {self.patch_embed!r}")
        if self.embed_dim % self.num_heads:
            raise ValueError(f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}")
        if self.rope_freq > 0 and (self.embed_dim // self.num_heads) % 4:
            raise ValueError("2D RoPE needs a head dimension divisible by 4")
        if len(self.dpt_out_channels) != 4 or len(self.dpt_intermediate_layer_idx) != 4:
            raise ValueError("dpt_out_channels and dpt_intermediate_layer_idx need 4 entries each")
        bad_layers = [i for i in self.dpt_intermediate_layer_idx if not 0 <= i < self.depth]
        if bad_layers:
            raise ValueError(f"dpt_intermediate_layer_idx {bad_layers} outside 0..{self.depth - 1}")
        self.dpt_out_channels = list(self.dpt_out_channels)
        self.dpt_intermediate_layer_idx = list(self.dpt_intermediate_layer_idx)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict, for reports and cache keys."""
        return dataclasses.asdict(self)

    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "VGGTMVConfig":
        """Build a named preset (`vggt-1b`, `tiny`), optionally overriding fields."""
        try:
            base = PRESETS[name]
        except KeyError:
            raise ValueError(f"unknown preset {name!r}; choose one of {sorted(PRESETS)}") from None
        return cls(**{**base, **overrides})


PRESETS: dict[str, dict[str, Any]] = {
    "vggt-1b": {},
    # Small enough to run a few frames on a laptop CPU in about a second; same topology as VGGT-1B.
    "tiny": dict(
        embed_dim=64,
        depth=4,
        num_heads=4,
        patch_embed="conv",
        camera_trunk_depth=1,
        camera_num_heads=4,
        dpt_features=32,
        dpt_out_channels=[16, 32, 64, 64],
        dpt_intermediate_layer_idx=[0, 1, 2, 3],
        track_features=32,
        track_hidden_size=64,
        track_iters=2,
    ),
}
