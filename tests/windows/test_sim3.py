"""Window-to-window similarity: recovered from noisy, outlier-ridden overlaps; cameras and depths follow the world."""

import warnings

import numpy as np
import pytest

from vggt_mv.windows.sim3 import (AlignmentError, AlignmentResult, Sim3, robust_sim3, transform_depth,
                                  transform_extrinsics, weighted_umeyama)

POINTS = 2000


def random_rotation(rng: np.random.Generator) -> np.ndarray:
    """A uniformly random proper rotation (QR of a Gaussian matrix, signs fixed)."""
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] *= -1
    return q


def random_sim3(rng: np.random.Generator) -> Sim3:
    return Sim3(rng.uniform(0.3, 3.0), random_rotation(rng), rng.normal(size=3) * 5)


def rotation_error_degrees(estimate: np.ndarray, truth: np.ndarray) -> float:
    cosine = (np.trace(estimate @ truth.T) - 1) / 2
    return float(np.degrees(np.arccos(np.clip(cosine, -1, 1))))


def scene_size(points: np.ndarray) -> float:
    return float(np.sqrt(((points - points.mean(0)) ** 2).sum(-1).mean()))


def overlap(seed: int, noise: float = 0.001, outlier_fraction: float = 0.0):
    """Two windows' point maps of the same pixels: (truth, source, target, confidence), noise in scene sizes."""
    rng = np.random.default_rng(seed)
    truth = random_sim3(rng)
    source = rng.normal(size=(POINTS, 3)) * [2.0, 1.0, 3.0]
    target = truth.apply(source)
    size = scene_size(target)
    target = target + rng.normal(size=target.shape) * noise * size
    outliers = rng.choice(POINTS, int(outlier_fraction * POINTS), replace=False)
    target[outliers] = target.mean(0) + rng.uniform(-5, 5, size=(len(outliers), 3)) * size
    return truth, source, target, rng.uniform(0.1, 1.0, POINTS)


def recovered(estimate: Sim3, truth: Sim3, target: np.ndarray) -> bool:
    """Within 0.5 degrees, 1% scale and 1% of the scene's size in translation."""
    return (rotation_error_degrees(estimate.rotation, truth.rotation) < 0.5
            and abs(estimate.scale / truth.scale - 1) < 0.01
            and np.linalg.norm(estimate.translation - truth.translation) < 0.01 * scene_size(target))


def assert_same_transform(a: Sim3, b: Sim3, atol: float = 1e-9) -> None:
    np.testing.assert_allclose(a.matrix(), b.matrix(), atol=atol)


@pytest.mark.parametrize("seed", range(5))
def test_noisy_overlap_recovers_the_transform(seed):
    truth, source, target, confidence = overlap(seed)
    assert recovered(weighted_umeyama(source, target, confidence), truth, target)
    result = robust_sim3(source, target, confidence)
    assert isinstance(result, AlignmentResult)
    assert recovered(result.transform, truth, target)
    assert result.points == POINTS
    assert result.inlier_fraction > 0.98


@pytest.mark.parametrize("seed", range(5))
def test_thirty_percent_gross_outliers_need_the_robust_loop(seed):
    truth, source, target, confidence = overlap(seed, outlier_fraction=0.3)
    assert not recovered(weighted_umeyama(source, target, confidence), truth, target)
    result = robust_sim3(source, target, confidence)
    assert recovered(result.transform, truth, target)
    assert 0.65 < result.inlier_fraction < 0.75
    assert result.relative_residual < 0.01


def test_zero_weight_points_do_not_matter():
    truth, source, target, confidence = overlap(0, noise=0.0)
    corrupted = target.copy()
    corrupted[:500] = np.random.default_rng(1).normal(size=(500, 3)) * 100
    confidence[:500] = 0
    assert_same_transform(weighted_umeyama(source, corrupted, confidence), truth)
    result = robust_sim3(source, corrupted, confidence)
    assert_same_transform(result.transform, truth)
    assert result.points == POINTS - 500


@pytest.mark.parametrize("seed", range(8))
def test_a_flat_overlap_gets_a_rotation_not_a_mirror(seed):
    # A window that overlaps only on a floor or a wall: the fit must not flip the world through the plane.
    rng = np.random.default_rng(100 + seed)
    truth = random_sim3(rng)
    source = np.concatenate([rng.normal(size=(POINTS, 2)), np.zeros((POINTS, 1))], axis=-1)
    target = truth.apply(source) + rng.normal(size=(POINTS, 3)) * 1e-3
    for estimate in (weighted_umeyama(source, target, np.ones(POINTS)),
                     robust_sim3(source, target, np.ones(POINTS)).transform):
        assert np.linalg.det(estimate.rotation) == pytest.approx(1.0)
        assert recovered(estimate, truth, target)


def test_residual_is_zero_for_exact_data_and_grows_with_noise():
    exact = robust_sim3(*overlap(0, noise=0.0)[1:])
    assert exact.residual < 1e-9 and exact.relative_residual < 1e-9
    assert exact.inlier_fraction == 1.0
    results = [robust_sim3(*overlap(0, noise=noise)[1:]) for noise in (0.001, 0.01, 0.05)]
    residuals = [result.relative_residual for result in results]
    assert residuals == sorted(residuals) and residuals[0] > 0
    # Gaussian noise of sigma per axis is sqrt(3) sigma RMS in 3-D: the seam error reads as a fraction of the scene.
    np.testing.assert_allclose(residuals, np.sqrt(3) * np.array([0.001, 0.01, 0.05]), rtol=0.2)
    _, _, target, confidence = overlap(0, noise=0.01)
    assert results[1].residual == pytest.approx(results[1].relative_residual * scene_size(target), rel=0.05)


def test_cameras_see_the_same_pixels_with_depths_scaled():
    rng = np.random.default_rng(3)
    times, cameras, count = 2, 3, 200
    intrinsic = np.array([[500.0, 0, 320], [0, 480.0, 240], [0, 0, 1]])
    rotations = np.stack([random_rotation(rng) for _ in range(times * cameras)]).reshape(times, cameras, 3, 3)
    # Every camera looks at the unit ball from 4 units away, so all points are in front (depths 3..5).
    translations = np.concatenate([rng.uniform(-0.5, 0.5, (times, cameras, 2)), np.full((times, cameras, 1), 4.0)], -1)
    extrinsics = np.concatenate([rotations, translations[..., None]], axis=-1)
    directions = rng.normal(size=(count, 3))
    world = directions / np.linalg.norm(directions, axis=-1, keepdims=True) * rng.uniform(0, 1, (count, 1))
    sim3 = random_sim3(rng)

    def project(extrinsic, points):
        camera = points @ np.swapaxes(extrinsic[..., :3], -1, -2) + extrinsic[..., None, :, 3]
        pixels = camera @ intrinsic.T
        return pixels[..., :2] / pixels[..., 2:], camera[..., 2]

    pixels, depths = project(extrinsics, world)
    assert depths.shape == (times, cameras, count) and depths.min() > 2.9
    moved_pixels, moved_depths = project(transform_extrinsics(extrinsics, sim3), sim3.apply(world))
    np.testing.assert_allclose(moved_pixels, pixels, atol=1e-6)
    np.testing.assert_allclose(moved_depths, depths * sim3.scale, rtol=1e-9)
    np.testing.assert_allclose(transform_depth(depths, sim3), moved_depths, rtol=1e-9)
    # A window whose first camera is at identity: after the move, that camera sits where the transform says.
    first = transform_extrinsics(np.eye(3, 4), sim3)
    centre = -first[:, :3].T @ first[:, 3]
    np.testing.assert_allclose(centre, sim3.translation, atol=1e-9)


def test_float32_stays_float32_and_non_finite_stays_non_finite():
    sim3 = random_sim3(np.random.default_rng(4))
    extrinsics = np.tile(np.eye(3, 4, dtype=np.float32), (4, 1, 1))
    extrinsics[1] = np.nan
    extrinsics[2, 0, 3] = np.inf
    points = np.random.default_rng(5).normal(size=(2, 5, 3)).astype(np.float32)
    points[0, 1, 2] = np.nan
    points[1, 3, 0] = -np.inf
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        moved_extrinsics = transform_extrinsics(extrinsics, sim3)
        moved_points = sim3.apply(points)
        moved_depth = transform_depth(np.array([1.0, np.nan, np.inf], dtype=np.float32), sim3)
    assert moved_extrinsics.dtype == np.float32 and moved_extrinsics.shape == (4, 3, 4)
    assert np.isfinite(moved_extrinsics[[0, 3]]).all()
    assert not np.isfinite(moved_extrinsics[1]).any() and not np.isfinite(moved_extrinsics[2]).all()
    assert moved_points.dtype == np.float32 and moved_points.shape == points.shape
    assert np.isnan(moved_points[0, 1]).all() and np.isnan(moved_points[1, 3]).all()
    assert np.isfinite(np.delete(moved_points.reshape(-1, 3), [1, 8], axis=0)).all()
    assert sim3.apply(points.astype(np.float64)).dtype == np.float64
    assert moved_depth.dtype == np.float32 and moved_depth[0] == pytest.approx(sim3.scale)
    assert np.isnan(moved_depth[1]) and np.isinf(moved_depth[2])


def test_compose_and_inverse_round_trip_to_identity():
    rng = np.random.default_rng(6)
    a, b = random_sim3(rng), random_sim3(rng)
    assert_same_transform(a.compose(a.inverse()), Sim3.identity())
    assert_same_transform(a.inverse().compose(a), Sim3.identity())
    points = rng.normal(size=(10, 3))
    np.testing.assert_allclose(a.compose(b).apply(points), a.apply(b.apply(points)), atol=1e-9)
    np.testing.assert_allclose(a.compose(b).matrix(), a.matrix() @ b.matrix(), atol=1e-9)
    np.testing.assert_allclose(a.inverse().apply(a.apply(points)), points, atol=1e-9)
    assert_same_transform(Sim3.identity(), Sim3(1.0, np.eye(3), np.zeros(3)))
    np.testing.assert_allclose(Sim3.identity().apply(points), points)


def test_a_sim3_is_really_a_similarity_and_frozen():
    with pytest.raises(ValueError, match="scale"):
        Sim3(-1.0, np.eye(3), np.zeros(3))
    with pytest.raises(ValueError, match="orthonormal"):
        Sim3(1.0, np.diag([1.0, 1.0, -1.0]), np.zeros(3))
    sim3 = Sim3.identity()
    with pytest.raises(ValueError):
        sim3.rotation[0, 0] = 2.0


def degenerate_inputs():
    rng = np.random.default_rng(7)
    line = np.outer(rng.normal(size=50), [1.0, 2.0, 3.0]) + [4.0, 5.0, 6.0]
    cloud = rng.normal(size=(50, 3))
    return {
        "two points": (cloud[:2], cloud[:2], np.ones(2)),
        "collinear": (line, line * 2, np.ones(50)),
        "coincident": (np.tile([1.0, 2.0, 3.0], (50, 1)), cloud, np.ones(50)),
        "all weights zero": (cloud, cloud, np.zeros(50)),
        "all NaN": (np.full((50, 3), np.nan), cloud, np.ones(50)),
    }


@pytest.mark.parametrize("case", list(degenerate_inputs()))
@pytest.mark.parametrize("fit", [weighted_umeyama, lambda *args: robust_sim3(*args).transform])
def test_degenerate_input_raises_a_readable_alignment_error(case, fit):
    source, target, weights = degenerate_inputs()[case]
    with pytest.raises(AlignmentError) as error:
        fit(source, target, weights)
    message = str(error.value)
    assert isinstance(error.value, ValueError)
    assert message.startswith("cannot align:") and "\n" not in message and len(message) < 120


def test_nan_points_are_ignored_not_propagated():
    truth, source, target, confidence = overlap(8, noise=0.0, outlier_fraction=0.2)
    source[::7] = np.nan
    target[3::11, 1] = np.inf
    confidence[5::13] = np.nan
    result = robust_sim3(source, target, confidence)
    assert np.isfinite(result.transform.matrix()).all() and np.isfinite(result.residual)
    assert recovered(result.transform, truth, target[np.isfinite(target).all(-1)])
    usable = np.isfinite(source).all(-1) & np.isfinite(target).all(-1) & np.isfinite(confidence)
    assert result.points == int(usable.sum())
    clean = weighted_umeyama(source[usable], target[usable], confidence[usable])
    assert_same_transform(weighted_umeyama(source, target, confidence), clean)


def test_large_overlaps_are_subsampled_deterministically():
    truth, source, target, confidence = overlap(9, outlier_fraction=0.3)
    first = robust_sim3(source, target, confidence, max_points=500)
    second = robust_sim3(source, target, confidence, max_points=500)
    assert_same_transform(first.transform, second.transform, atol=0)
    assert first.points == POINTS and first.residual == second.residual
    assert recovered(first.transform, truth, target)
    # Point maps arrive as [T, H, W, 3] with confidences [T, H, W]: the same pairs, the same seam.
    maps = robust_sim3(source.reshape(2, 20, 50, 3), target.reshape(2, 20, 50, 3), confidence.reshape(2, 20, 50))
    assert_same_transform(maps.transform, robust_sim3(source, target, confidence).transform, atol=0)
