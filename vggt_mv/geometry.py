"""Camera geometry over any leading dims ([B, T, N] included): pose encodings, quaternions, unprojection.

Conventions are VGGT's: OpenCV cameras (x right, y down, z forward), extrinsics map world to camera
([R | t], 3x4), intrinsics in pixels with the principal point at the image centre, quaternions
XYZW (scalar last) with a non-negative scalar part.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def quat_to_mat(quaternions: torch.Tensor) -> torch.Tensor:
    """[..., 4] XYZW (need not be unit) -> rotation matrices [..., 3, 3]."""
    i, j, k, r = torch.unbind(quaternions, -1)
    two_s = 2.0 / (quaternions * quaternions).sum(-1)
    matrix = torch.stack((
        1 - two_s * (j * j + k * k), two_s * (i * j - k * r), two_s * (i * k + j * r),
        two_s * (i * j + k * r), 1 - two_s * (i * i + k * k), two_s * (j * k - i * r),
        two_s * (i * k - j * r), two_s * (j * k + i * r), 1 - two_s * (i * i + j * j),
    ), -1)
    return matrix.reshape(quaternions.shape[:-1] + (3, 3))


def mat_to_quat(matrix: torch.Tensor) -> torch.Tensor:
    """Rotation matrices [..., 3, 3] -> unit quaternions [..., 4] XYZW with w >= 0 (numerically stable branch)."""
    if matrix.shape[-2:] != (3, 3):
        raise ValueError(f"expected rotation matrices [..., 3, 3], got {tuple(matrix.shape)}")
    leading = matrix.shape[:-2]
    m00, m01, m02, m10, m11, m12, m20, m21, m22 = torch.unbind(matrix.reshape(leading + (9,)), dim=-1)
    squared = torch.stack([1.0 + m00 + m11 + m22, 1.0 + m00 - m11 - m22,
                           1.0 - m00 + m11 - m22, 1.0 - m00 - m11 + m22], dim=-1)
    q_abs = torch.where(squared > 0, torch.sqrt(squared.clamp_min(0)), torch.zeros_like(squared))
    candidates = torch.stack([
        torch.stack([q_abs[..., 0] ** 2, m21 - m12, m02 - m20, m10 - m01], dim=-1),
        torch.stack([m21 - m12, q_abs[..., 1] ** 2, m10 + m01, m02 + m20], dim=-1),
        torch.stack([m02 - m20, m10 + m01, q_abs[..., 2] ** 2, m12 + m21], dim=-1),
        torch.stack([m10 - m01, m20 + m02, m21 + m12, q_abs[..., 3] ** 2], dim=-1),
    ], dim=-2)
    candidates = candidates / (2.0 * q_abs[..., None].clamp_min(0.1))
    best = F.one_hot(q_abs.argmax(dim=-1), num_classes=4).to(candidates.dtype)
    wxyz = (candidates * best[..., None]).sum(dim=-2)
    xyzw = wxyz[..., [1, 2, 3, 0]]
    return torch.where(xyzw[..., 3:4] < 0, -xyzw, xyzw)


def extri_intri_to_pose_encoding(extrinsics: torch.Tensor, intrinsics: torch.Tensor, image_size_hw: tuple[int, int],
                                 pose_encoding_type: str = "absT_quaR_FoV") -> torch.Tensor:
    """[..., 3, 4] and [..., 3, 3] -> [..., 9]: translation, quaternion, field of view (height, width)."""
    if pose_encoding_type != "absT_quaR_FoV":
        raise ValueError(f"unsupported pose encoding {pose_encoding_type!r}")
    height, width = image_size_hw
    fov_h = 2 * torch.atan((height / 2) / intrinsics[..., 1, 1])
    fov_w = 2 * torch.atan((width / 2) / intrinsics[..., 0, 0])
    return torch.cat([extrinsics[..., :3, 3], mat_to_quat(extrinsics[..., :3, :3]),
                      fov_h[..., None], fov_w[..., None]], dim=-1).float()


def pose_encoding_to_extri_intri(pose_encoding: torch.Tensor, image_size_hw: tuple[int, int] | None = None,
                                 pose_encoding_type: str = "absT_quaR_FoV", build_intrinsics: bool = True
                                 ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """[..., 9] -> extrinsics [..., 3, 4] and intrinsics [..., 3, 3] (centred principal point)."""
    if pose_encoding_type != "absT_quaR_FoV":
        raise ValueError(f"unsupported pose encoding {pose_encoding_type!r}")
    translation, quaternion = pose_encoding[..., :3], pose_encoding[..., 3:7]
    extrinsics = torch.cat([quat_to_mat(quaternion), translation[..., None]], dim=-1)
    if not build_intrinsics:
        return extrinsics, None
    height, width = image_size_hw
    focal_y = (height / 2.0) / torch.tan(pose_encoding[..., 7] / 2.0)
    focal_x = (width / 2.0) / torch.tan(pose_encoding[..., 8] / 2.0)
    intrinsics = torch.zeros(pose_encoding.shape[:-1] + (3, 3), device=pose_encoding.device,
                             dtype=pose_encoding.dtype)
    intrinsics[..., 0, 0] = focal_x
    intrinsics[..., 1, 1] = focal_y
    intrinsics[..., 0, 2] = width / 2
    intrinsics[..., 1, 2] = height / 2
    intrinsics[..., 2, 2] = 1.0
    return extrinsics, intrinsics


def closed_form_inverse_se3(transforms: torch.Tensor) -> torch.Tensor:
    """Invert [..., 3, 4] or [..., 4, 4] rigid transforms without a general matrix inverse."""
    rotation, translation = transforms[..., :3, :3], transforms[..., :3, 3:]
    rotation_t = rotation.transpose(-1, -2)
    inverse = torch.zeros(transforms.shape[:-2] + (4, 4), dtype=transforms.dtype, device=transforms.device)
    inverse[..., :3, :3] = rotation_t
    inverse[..., :3, 3:] = -rotation_t @ translation
    inverse[..., 3, 3] = 1.0
    return inverse if transforms.shape[-2] == 4 else inverse[..., :3, :]


def depth_to_cam_coords_points(depth: torch.Tensor, intrinsics: torch.Tensor) -> torch.Tensor:
    """depth [..., H, W] or [..., H, W, 1] -> camera-frame points [..., H, W, 3] (pixel centres at integers)."""
    if depth.shape[-1] == 1 and depth.dim() >= 3:
        depth = depth[..., 0]
    height, width = depth.shape[-2:]
    rows, cols = torch.meshgrid(torch.arange(height, device=depth.device, dtype=depth.dtype),
                                torch.arange(width, device=depth.device, dtype=depth.dtype), indexing="ij")
    fx, fy = intrinsics[..., 0, 0, None, None], intrinsics[..., 1, 1, None, None]
    cx, cy = intrinsics[..., 0, 2, None, None], intrinsics[..., 1, 2, None, None]
    return torch.stack([(cols - cx) * depth / fx, (rows - cy) * depth / fy, depth], dim=-1)


def unproject_depth_map_to_point_map(depth: torch.Tensor, extrinsics: torch.Tensor,
                                     intrinsics: torch.Tensor) -> torch.Tensor:
    """depth [..., H, W(, 1)], world-to-camera extrinsics [..., 3, 4] -> world points [..., H, W, 3]."""
    camera_points = depth_to_cam_coords_points(depth, intrinsics)
    camera_to_world = closed_form_inverse_se3(extrinsics)
    rotation = camera_to_world[..., None, None, :3, :3]
    translation = camera_to_world[..., None, None, :3, 3]
    return (rotation @ camera_points[..., None])[..., 0] + translation


depth_to_world_coords_points = unproject_depth_map_to_point_map
