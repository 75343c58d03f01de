"""Camera geometry for drawing: centres, frustum corners, ground-truth alignment, display axes."""

from __future__ import annotations

import numpy as np

# OpenCV world (x right, y down, z forward) -> display (x right, y forward/depth, z up).
DISPLAY_FROM_OPENCV = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]], dtype=np.float32)


def to_display(points: np.ndarray) -> np.ndarray:
    """[..., 3] OpenCV-world points in display axes, so 'up' in the viewer is up in the scene."""
    return points @ DISPLAY_FROM_OPENCV.T


def camera_centers(extrinsics: np.ndarray) -> np.ndarray:
    """World-to-camera [..., 3, 4] -> camera centres [..., 3] (C = -R^T t)."""
    rotation, translation = extrinsics[..., :3, :3], extrinsics[..., :3, 3]
    return -np.einsum("...ji,...j->...i", rotation, translation)


def frustum_corners(extrinsic: np.ndarray, intrinsic: np.ndarray, image_size_hw: tuple[int, int],
                    depth: float) -> np.ndarray:
    """World positions [4, 3] of the image corners at `depth` in front of one camera."""
    height, width = image_size_hw
    pixels = np.array([[0, 0, 1], [width, 0, 1], [width, height, 1], [0, height, 1]], dtype=np.float64)
    rays = pixels @ np.linalg.inv(intrinsic).T * depth
    rotation, translation = extrinsic[:3, :3], extrinsic[:3, 3]
    return (rays - translation) @ rotation


def align_ground_truth(gt_extrinsics: np.ndarray, predicted_extrinsics: np.ndarray) -> np.ndarray:
    """Express ground truth in the prediction's frame: camera (t=0, n=0) as the world, scale matched by centres."""
    reference = np.eye(4)
    reference[:3, :4] = gt_extrinsics[0, 0]
    inverse_reference = np.linalg.inv(reference)
    aligned = np.einsum("...ij,jk->...ik", gt_extrinsics.astype(np.float64), inverse_reference)
    gt_spread = np.linalg.norm(camera_centers(aligned), axis=-1).mean()
    predicted_spread = np.linalg.norm(camera_centers(predicted_extrinsics), axis=-1).mean()
    scale = predicted_spread / gt_spread if gt_spread > 1e-9 else 1.0
    aligned[..., :3, 3] *= scale
    return aligned.astype(np.float32)


def default_frustum_depth(centers: np.ndarray, points: np.ndarray | None) -> float:
    """A frustum size readable next to the scene: a fraction of its extent."""
    extent = 0.0
    if points is not None and len(points):
        extent = float(np.percentile(np.linalg.norm(points - np.median(points, axis=0), axis=1), 90))
    if centers.size > 3:
        extent = max(extent, float(np.linalg.norm(np.ptp(centers.reshape(-1, 3), axis=0))))
    return max(extent * 0.08, 1e-3)
