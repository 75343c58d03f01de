"""The windowed path against an oracle: every window sees the rig's true geometry in its own random Sim(3) frame,
with noise. Aligned, the windows must give one trajectory and one set of points."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from vggt_mv.heads.track import TrackContext
from vggt_mv.io.prediction_store import PredictionStore, StoredArray
from vggt_mv.windows.plan import plan_windows
from vggt_mv.windows.run import run_windows, track_windows
from vggt_mv.windows.sim3 import Sim3, transform_depth, transform_extrinsics, weighted_umeyama

STEPS, CAMERAS, HEIGHT, WIDTH = 40, 2, 28, 42
NOISE = 0.002  # of depth: ~1 cm at 5 m
ATE_TOLERANCE = 0.01  # of the trajectory's extent
SEAM_TOLERANCE = 0.02  # of the scene's size: the noise alone leaves about 1% (both windows are noisy)


def yaw_rotation(angle: float) -> np.ndarray:
    """Rotation by `angle` radians about the y axis (a car turning)."""
    cos, sin = np.cos(angle), np.sin(angle)
    return np.array([[cos, 0, sin], [0, 1, 0], [-sin, 0, cos]])


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (QR of a Gaussian matrix, signs fixed)."""
    matrix, upper = np.linalg.qr(rng.normal(size=(3, 3)))
    matrix = matrix * np.sign(np.diag(upper))
    return matrix if np.linalg.det(matrix) > 0 else -matrix


def rig_truth(seed: int = 0) -> dict[str, np.ndarray]:
    """A 2-camera rig driving a curve past a wavy wall: extrinsic [T, N, 3, 4], intrinsic, depth, world points."""
    rng = np.random.default_rng(seed)
    focal = 40.0
    intrinsic = np.array([[focal, 0, WIDTH / 2], [0, focal, HEIGHT / 2], [0, 0, 1]], dtype=np.float32)
    extrinsic = np.zeros((STEPS, CAMERAS, 3, 4), dtype=np.float32)
    depth = np.zeros((STEPS, CAMERAS, HEIGHT, WIDTH, 1), dtype=np.float32)
    points = np.zeros((STEPS, CAMERAS, HEIGHT, WIDTH, 3), dtype=np.float32)
    rows, cols = np.meshgrid(np.arange(HEIGHT), np.arange(WIDTH), indexing="ij")
    for t in range(STEPS):
        for n in range(CAMERAS):
            yaw = 0.02 * t + 0.3 * n
            world_from_camera = yaw_rotation(yaw)
            centre = np.array([0.1 * t + 0.5 * n, 0.05 * np.sin(t / 5), 0.02 * t])
            rotation = world_from_camera.T
            extrinsic[t, n, :, :3] = rotation
            extrinsic[t, n, :, 3] = -rotation @ centre
            frame_depth = 4 + np.sin(cols / 7 + t / 9) + 0.5 * np.cos(rows / 5) + rng.uniform(0, 0.01, rows.shape)
            depth[t, n, ..., 0] = frame_depth
            camera_points = np.stack([(cols - WIDTH / 2) * frame_depth / focal,
                                      (rows - HEIGHT / 2) * frame_depth / focal, frame_depth], axis=-1)
            points[t, n] = (camera_points - extrinsic[t, n, :, 3]) @ rotation
    return {"extrinsic": extrinsic, "intrinsic": np.broadcast_to(intrinsic, (STEPS, CAMERAS, 3, 3)).copy(),
            "depth": depth, "world_points": points, "world_points_conf": np.ones((STEPS, CAMERAS, HEIGHT, WIDTH),
                                                                                 dtype=np.float32) * 2}


def random_sim3(rng: np.random.Generator) -> Sim3:
    """A window's own frame: any scale, rotation and offset."""
    return Sim3(float(rng.uniform(0.3, 3.0)), random_rotation(rng), rng.normal(0, 5, 3))


def oracle(truth: dict[str, np.ndarray], windows, seed: int = 1, noise: float = NOISE, outliers: float = 0.0):
    """A forward that answers each window (in order) with the truth in a random Sim(3) frame, plus noise."""
    rng = np.random.default_rng(seed)
    calls = iter(windows.ranges)
    frames = []

    def forward(images, progress):
        start, stop = next(calls)
        assert images.shape[0] == stop - start
        transform = random_sim3(rng)
        frames.append(transform)
        part = {name: array[start:stop] for name, array in truth.items()}
        jitter = rng.normal(0, noise, part["depth"].shape[:-1] + (3,)) * part["depth"]
        points = part["world_points"] + jitter
        if outliers:
            wrong = rng.random(points.shape[:-1]) < outliers
            points[wrong] += rng.normal(0, 10, (int(wrong.sum()), 3))
        progress(1, 1, "oracle")
        return {"world_points": transform.apply(points.astype(np.float32)),
                "world_points_conf": part["world_points_conf"],
                "depth": transform_depth(part["depth"], transform),
                "extrinsic": transform_extrinsics(part["extrinsic"], transform),
                "intrinsic": part["intrinsic"]}, None

    return forward, frames


def camera_centres(extrinsic: np.ndarray) -> np.ndarray:
    """World positions [.., 3] of OpenCV camera-from-world cameras."""
    rotation, translation = extrinsic[..., :3, :3].astype(np.float64), extrinsic[..., :3, 3].astype(np.float64)
    return -np.einsum("...ji,...j->...i", rotation, translation)


def trajectory_error(predicted: np.ndarray, truth: np.ndarray) -> float:
    """ATE: RMS camera-centre error after one Sim(3) over the whole run, as a share of the trajectory's extent."""
    predicted_centres, true_centres = camera_centres(predicted).reshape(-1, 3), camera_centres(truth).reshape(-1, 3)
    transform = weighted_umeyama(predicted_centres, true_centres, np.ones(len(true_centres)))
    error = np.sqrt(np.mean(np.sum((transform.apply(predicted_centres) - true_centres) ** 2, axis=-1)))
    return float(error / np.ptp(true_centres, axis=0).max())


def run(tmp_path, truth, windows, **oracle_options):
    forward, frames = oracle(truth, windows, **oracle_options)
    images = np.zeros((STEPS, CAMERAS, 3, HEIGHT, WIDTH), dtype=np.float32)
    valid = np.ones((CAMERAS, HEIGHT, WIDTH), dtype=bool)
    return run_windows(windows, images, valid, forward, PredictionStore(tmp_path / "store")), frames


@pytest.mark.parametrize("size, overlap", [(8, 2), (12, 4), (5, 1)])
def test_windows_recover_one_trajectory_and_one_point_cloud(tmp_path, size, overlap):
    truth = rig_truth()
    windows = plan_windows(STEPS, size, overlap)
    windowed, frames = run(tmp_path, truth, windows)
    predictions = windowed.predictions
    assert predictions["extrinsic"].shape == (STEPS, CAMERAS, 3, 4)
    assert trajectory_error(predictions["extrinsic"], truth["extrinsic"]) < ATE_TOLERANCE
    # Everything sits in the first window's frame: undo it and compare with the truth point for point.
    first = frames[0].inverse()
    points = first.apply(np.asarray(predictions["world_points"], dtype=np.float64))
    spread = np.ptp(truth["world_points"].reshape(-1, 3), axis=0).max()
    assert np.sqrt(np.mean(np.sum((points - truth["world_points"]) ** 2, axis=-1))) < 0.01 * spread
    depth_ratio = np.asarray(predictions["depth"]) / truth["depth"]
    np.testing.assert_allclose(depth_ratio, frames[0].scale, rtol=0.02)
    assert len(windowed.seams) == windows.count - 1
    assert all(seam.aligned and seam.relative_residual < SEAM_TOLERANCE for seam in windowed.seams)


def test_without_alignment_the_same_windows_do_not_agree(tmp_path):
    """The check above can fail: windows left in their own frames give a broken trajectory."""
    truth = rig_truth()
    windows = plan_windows(STEPS, 8, 2)
    forward, _ = oracle(truth, windows)
    raw = [forward(np.zeros((stop - start, CAMERAS, 3, HEIGHT, WIDTH)), lambda *args: None)[0]
           for start, stop in windows.ranges]
    stitched = np.concatenate([part["extrinsic"][windows.new_steps(i).start - windows.ranges[i][0]:]
                               for i, part in enumerate(raw)])
    assert trajectory_error(stitched, truth["extrinsic"]) > 10 * ATE_TOLERANCE


def test_alignment_shrugs_off_gross_outliers_and_reports_seams(tmp_path):
    truth = rig_truth()
    windows = plan_windows(STEPS, 10, 3)
    windowed, _ = run(tmp_path, truth, windows, outliers=0.2)
    assert trajectory_error(windowed.predictions["extrinsic"], truth["extrinsic"]) < ATE_TOLERANCE
    assert all(0.6 < seam.inlier_fraction < 0.95 for seam in windowed.seams)
    assert all("of the scene's size" in seam.describe() for seam in windowed.seams)


def test_per_pixel_predictions_go_to_the_store_and_cameras_stay_in_memory(tmp_path):
    truth = rig_truth()
    windowed, _ = run(tmp_path, truth, plan_windows(STEPS, 8, 2))
    predictions = windowed.predictions
    assert isinstance(predictions["world_points"], StoredArray) and isinstance(predictions["depth"], StoredArray)
    assert isinstance(predictions["extrinsic"], np.ndarray)
    assert sorted(PredictionStore(tmp_path / "store").keys()) == ["depth", "world_points", "world_points_conf"]
    # a slice is read from disk on its own: every step was written once, none left at the file's zero fill
    assert all(np.asarray(predictions["depth"][step]).min() > 0 for step in range(STEPS))


def test_tracks_chain_through_the_windows(tmp_path):
    """A fake track head that 'sees' each query moving one pixel right per step: chained over windows, the
    tracks must continue where the previous window left them."""
    windows = plan_windows(20, 6, 2)
    calls = []

    def track(context, queries):
        calls.append(queries.copy())
        steps = context.frames.shape[1] // CAMERAS
        moved = queries[None, None] + np.arange(steps)[:, None, None, None] * np.array([1.0, 0.0])
        track_xy = np.broadcast_to(moved, (steps, CAMERAS) + queries.shape).astype(np.float32)
        visible = np.ones(track_xy.shape[:3], dtype=np.float32)
        return {"track": track_xy, "vis": visible, "conf": visible}

    contexts = [TrackContext({}, 0, torch.empty(0), (1, stop - start, CAMERAS)) for start, stop in windows.ranges]
    images = np.zeros((20, CAMERAS, 3, 4, 4), dtype=np.float32)
    tracks = track_windows(windows, contexts, images, np.array([[1.0, 2.0]]), track)
    assert tracks["track"].shape == (20, CAMERAS, 1, 2)
    np.testing.assert_allclose(tracks["track"][:, 0, 0, 0], 1.0 + np.arange(20))
    assert len(calls) == windows.count
    assert tracks["vis"].min() == 1.0
