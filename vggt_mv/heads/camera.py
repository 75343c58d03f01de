"""Camera head: iteratively refined pose encodings (absT_quaR_FoV) from each frame's camera token."""

from __future__ import annotations

import torch
import torch.nn as nn

from vggt_mv.heads.activations import activate_pose
from vggt_mv.layers.block import Block
from vggt_mv.layers.mlp import Mlp

POSE_ENCODING_SIZES = {"absT_quaR_FoV": 9}


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: scale and shift a normalised input by quantities predicted from the current pose."""
    return x * (1 + scale) + shift


class CameraHead(nn.Module):
    """A transformer trunk over the camera tokens of all frames, conditioned on the previous estimate."""

    def __init__(self, dim_in: int = 2048, trunk_depth: int = 4, pose_encoding_type: str = "absT_quaR_FoV",
                 num_heads: int = 16, mlp_ratio: int = 4, init_values: float = 0.01, trans_act: str = "linear",
                 quat_act: str = "linear", fl_act: str = "relu"):
        super().__init__()
        if pose_encoding_type not in POSE_ENCODING_SIZES:
            raise ValueError(f"unsupported camera encoding {pose_encoding_type!r}")
        self.target_dim = POSE_ENCODING_SIZES[pose_encoding_type]
        self.trans_act, self.quat_act, self.fl_act = trans_act, quat_act, fl_act
        self.trunk = nn.Sequential(*[Block(dim=dim_in, num_heads=num_heads, mlp_ratio=mlp_ratio,
                                           init_values=init_values) for _ in range(trunk_depth)])
        self.token_norm = nn.LayerNorm(dim_in)
        self.trunk_norm = nn.LayerNorm(dim_in)
        self.empty_pose_tokens = nn.Parameter(torch.empty(1, 1, self.target_dim))
        self.embed_pose = nn.Linear(self.target_dim, dim_in)
        self.poseLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(dim_in, 3 * dim_in, bias=True))
        self.adaln_norm = nn.LayerNorm(dim_in, elementwise_affine=False, eps=1e-6)
        self.pose_branch = Mlp(in_features=dim_in, hidden_features=dim_in // 2, out_features=self.target_dim, drop=0)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """The first iteration starts from an all-zero pose."""
        nn.init.zeros_(self.empty_pose_tokens)

    def forward(self, aggregated_tokens_list: list[torch.Tensor | None], num_iterations: int = 4) -> list[torch.Tensor]:
        """Last layer's tokens [B, S, P, C] -> one activated [B, S, 9] encoding per iteration."""
        pose_tokens = self.token_norm(aggregated_tokens_list[-1][:, :, 0])
        batch, frames, _ = pose_tokens.shape
        encoding = None
        encodings = []
        for _ in range(num_iterations):
            if encoding is None:
                condition = self.embed_pose(self.empty_pose_tokens.expand(batch, frames, -1))
            else:
                condition = self.embed_pose(encoding.detach())
            shift, scale, gate = self.poseLN_modulation(condition).chunk(3, dim=-1)
            modulated = gate * modulate(self.adaln_norm(pose_tokens), shift, scale) + pose_tokens
            delta = self.pose_branch(self.trunk_norm(self.trunk(modulated)))
            encoding = delta if encoding is None else encoding + delta
            encodings.append(activate_pose(encoding, trans_act=self.trans_act, quat_act=self.quat_act,
                                           fl_act=self.fl_act))
        return encodings
