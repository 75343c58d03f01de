"""Output activations of VGGT's heads: what turns raw channels into poses, points, depths and confidences."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def inverse_log_transform(y: torch.Tensor) -> torch.Tensor:
    """sign(y) * (exp(|y|) - 1): lets a head cover near and far points with one output scale."""
    return torch.sign(y) * torch.expm1(torch.abs(y))


def _pose_part(values: torch.Tensor, activation: str) -> torch.Tensor:
    """One of linear, inv_log, exp, relu."""
    if activation == "linear":
        return values
    if activation == "inv_log":
        return inverse_log_transform(values)
    if activation == "exp":
        return torch.exp(values)
    if activation == "relu":
        return F.relu(values)
    raise ValueError(f"unknown pose activation {activation!r}")


def activate_pose(encoding: torch.Tensor, trans_act: str = "linear", quat_act: str = "linear",
                  fl_act: str = "linear") -> torch.Tensor:
    """[..., 9] = translation 3, quaternion 4, field of view 2, each with its own activation."""
    translation, quaternion, field_of_view = encoding[..., :3], encoding[..., 3:7], encoding[..., 7:]
    return torch.cat([_pose_part(translation, trans_act), _pose_part(quaternion, quat_act),
                      _pose_part(field_of_view, fl_act)], dim=-1)


def _activate_values(values: torch.Tensor, activation: str) -> torch.Tensor:
    """Points/depth activation over the last (channel) dimension."""
    if activation == "norm_exp":
        norm = values.norm(dim=-1, keepdim=True).clamp(min=1e-8)
        return values / norm * torch.expm1(norm)
    if activation == "norm":
        return values / values.norm(dim=-1, keepdim=True)
    if activation == "exp":
        return torch.exp(values)
    if activation == "relu":
        return F.relu(values)
    if activation == "inv_log":
        return inverse_log_transform(values)
    if activation == "xy_inv_log":
        xy, z = values.split([2, 1], dim=-1)
        z = inverse_log_transform(z)
        return torch.cat([xy * z, z], dim=-1)
    if activation == "sigmoid":
        return torch.sigmoid(values)
    if activation == "linear":
        return values
    raise ValueError(f"unknown activation {activation!r}")


def _activate_confidence(confidence: torch.Tensor, activation: str) -> torch.Tensor:
    """expp1 keeps confidence >= 1, the scale VGGT's confidence filters expect."""
    if activation == "expp1":
        return 1 + confidence.exp()
    if activation == "expp0":
        return confidence.exp()
    if activation == "sigmoid":
        return torch.sigmoid(confidence)
    raise ValueError(f"unknown confidence activation {activation!r}")


def activate_head(output: torch.Tensor, activation: str = "norm_exp",
                  conf_activation: str = "expp1") -> tuple[torch.Tensor, torch.Tensor]:
    """[B, C, H, W] -> values [B, H, W, C-1] and confidence [B, H, W] (the last channel)."""
    channels_last = output.permute(0, 2, 3, 1)
    return (_activate_values(channels_last[..., :-1], activation),
            _activate_confidence(channels_last[..., -1], conf_activation))
