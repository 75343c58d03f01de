"""Camera geometry over [B, T, N]: encodings round-trip, rotations stay rotations, depth unprojects."""

import math

import torch

from vggt_mv.geometry import (closed_form_inverse_se3, extri_intri_to_pose_encoding, mat_to_quat,
                              pose_encoding_to_extri_intri, quat_to_mat, unproject_depth_map_to_point_map)


def random_rotations(*shape: int) -> torch.Tensor:
    quaternions = torch.nn.functional.normalize(torch.randn(*shape, 4, dtype=torch.float64), dim=-1)
    return quat_to_mat(quaternions)


def test_quaternion_matrix_round_trip_and_orthonormality():
    torch.manual_seed(0)
    rotations = random_rotations(2, 3, 4)
    identity = torch.eye(3, dtype=torch.float64).expand(2, 3, 4, 3, 3)
    torch.testing.assert_close(rotations @ rotations.transpose(-1, -2), identity)
    quaternions = mat_to_quat(rotations)
    assert (quaternions[..., 3] >= 0).all()
    torch.testing.assert_close(quat_to_mat(quaternions), rotations)


def test_pose_encoding_round_trip_over_time_and_cameras():
    torch.manual_seed(0)
    rotations = random_rotations(1, 4, 3).float()
    extrinsics = torch.cat([rotations, torch.randn(1, 4, 3, 3, 1)], dim=-1)
    intrinsics = torch.zeros(1, 4, 3, 3, 3)
    intrinsics[..., 0, 0], intrinsics[..., 1, 1] = 300.0, 310.0
    intrinsics[..., 0, 2], intrinsics[..., 1, 2], intrinsics[..., 2, 2] = 259.0, 147.0, 1.0
    encoding = extri_intri_to_pose_encoding(extrinsics, intrinsics, (294, 518))
    assert encoding.shape == (1, 4, 3, 9)
    back_extrinsics, back_intrinsics = pose_encoding_to_extri_intri(encoding, (294, 518))
    torch.testing.assert_close(back_extrinsics, extrinsics, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(back_intrinsics, intrinsics, atol=1e-3, rtol=1e-5)


def test_unprojecting_a_plane_and_reprojecting_lands_on_each_pixel():
    depth = torch.full((2, 3, 5, 7, 1), 4.0)
    intrinsics = torch.tensor([[10.0, 0, 3.5], [0, 10.0, 2.5], [0, 0, 1]]).expand(2, 3, 3, 3)
    angle = math.radians(30)
    rotation = torch.tensor([[math.cos(angle), 0, math.sin(angle)], [0, 1, 0], [-math.sin(angle), 0, math.cos(angle)]])
    extrinsics = torch.cat([rotation, torch.tensor([[0.5], [-1.0], [2.0]])], dim=-1).expand(2, 3, 3, 4)
    world = unproject_depth_map_to_point_map(depth, extrinsics, intrinsics)
    assert world.shape == (2, 3, 5, 7, 3)
    camera = (extrinsics[..., None, None, :3, :3] @ world[..., None])[..., 0] + extrinsics[..., None, None, :3, 3]
    torch.testing.assert_close(camera[..., 2], depth[..., 0], atol=1e-5, rtol=1e-5)
    pixels = (intrinsics[..., None, None, :, :] @ camera[..., None])[..., 0]
    pixels = pixels[..., :2] / pixels[..., 2:]
    rows, cols = torch.meshgrid(torch.arange(5.0), torch.arange(7.0), indexing="ij")
    torch.testing.assert_close(pixels[0, 0], torch.stack([cols, rows], dim=-1), atol=1e-4, rtol=1e-4)


def test_se3_inverse_composes_to_identity():
    torch.manual_seed(1)
    transform = torch.cat([random_rotations(3), torch.randn(3, 3, 1, dtype=torch.float64)], dim=-1)
    inverse = closed_form_inverse_se3(transform)
    bottom = torch.tensor([0, 0, 0, 1.0], dtype=torch.float64).expand(3, 1, 4)
    full = torch.cat([transform, bottom], dim=-2)
    torch.testing.assert_close(torch.cat([inverse, bottom], dim=-2) @ full, torch.eye(4, dtype=torch.float64).expand(3, 4, 4))
