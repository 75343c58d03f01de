"""Predictions with exactly known geometry, ray-cast in numpy, for the COLMAP export's tests.

`box_scene`: a back wall, a floor and a box in front of the wall, seen by cameras side by side, so every camera
sees most of what the others see and the box hides a patch of the wall from each camera. Depth, world points and
camera are consistent exactly (pixel centres at integers, as vggt_mv.geometry unprojects); the padding pixels of
a camera (valid_mask False) hold a hostile prediction (a point far off, high confidence) that must never be used.

`example_rig_predictions`: the bundled example rig (assets/examples/rig-three-cameras) as a perfect model would
predict it: the ground-truth cameras of cameras.json at the processed size, depth ray-cast with the boxes and ball
of assets/make_examples.py, images from its renderer.
"""

from __future__ import annotations

import importlib.util
from functools import lru_cache
from types import ModuleType

import numpy as np

from vggt_mv.io.examples import EXAMPLES_DIR, find_example, load_ground_truth
from vggt_mv.io.layout import plan_layouts

# (low corner, high corner, colour) of axis-aligned boxes; world y points down, as the cameras' (OpenCV).
SCENE_BOXES = (
    ((-6.0, -4.0, 6.0), (6.0, 4.0, 6.5), (0.8, 0.8, 0.7)),    # back wall
    ((-6.0, 1.0, 0.5), (6.0, 1.5, 6.0), (0.5, 0.4, 0.3)),     # floor
    ((-0.5, -0.6, 3.2), (0.5, 0.6, 3.8), (0.2, 0.4, 0.9)),    # box in front of the wall
)
CAMERA_X = (-0.6, 0.0, 0.6, -0.3)
LOOK_AT = np.array([0.0, 0.0, 5.0])
PADDING_POINT = np.array([0.0, 0.0, 1.5], np.float32)  # where a hostile model puts padding pixels


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """World-to-camera [3, 4] (OpenCV: x right, y down, z forward) for a camera at `eye` facing `target`."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(np.array([0.0, 1.0, 0.0]), forward)
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    rotation = np.stack([right, down, forward])
    return np.concatenate([rotation, (-rotation @ eye)[:, None]], axis=1)


def camera_rays(extrinsic: np.ndarray, intrinsic: np.ndarray, height: int, width: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Camera centre [3], unit world directions [H*W, 3] and each ray's z per unit length [H*W] (integer centres)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64)
    pixels = np.stack([cols.ravel(), rows.ravel(), np.ones(height * width)], axis=1)
    camera_rays_ = pixels @ np.linalg.inv(intrinsic.astype(np.float64)).T
    lengths = np.linalg.norm(camera_rays_, axis=1)
    rotation = extrinsic[:, :3].astype(np.float64)
    centre = -rotation.T @ extrinsic[:, 3].astype(np.float64)
    return centre, (camera_rays_ / lengths[:, None]) @ rotation, 1.0 / lengths


def first_box_hit(origin: np.ndarray, directions: np.ndarray, boxes=SCENE_BOXES) -> tuple[np.ndarray, np.ndarray]:
    """Distance along each unit ray to the nearest box (inf: none) and the colour there (slab test)."""
    best = np.full(len(directions), np.inf)
    colour = np.zeros((len(directions), 3))
    safe = np.where(np.abs(directions) < 1e-12, 1e-12, directions)
    for low, high, rgb in boxes:
        t_low, t_high = (np.array(low) - origin) / safe, (np.array(high) - origin) / safe
        near, far = np.minimum(t_low, t_high).max(axis=1), np.maximum(t_low, t_high).min(axis=1)
        hit = (far >= near) & (near > 0) & (near < best)
        best[hit] = near[hit]
        colour[hit] = rgb
    return best, colour


def checker(points: np.ndarray) -> np.ndarray:
    """A brightness pattern on the surfaces, so the images are not flat colour."""
    return 0.6 + 0.4 * (np.floor(points * 4).sum(axis=1) % 2)


def render_view(extrinsic: np.ndarray, intrinsic: np.ndarray, height: int, width: int
                ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Depth [H, W] (camera z, inf where nothing is hit), world points [H, W, 3] and RGB [3, H, W] of the boxes."""
    centre, directions, z_per_length = camera_rays(extrinsic, intrinsic, height, width)
    distance, colour = first_box_hit(centre, directions)
    points = centre + distance[:, None] * directions
    rgb = np.where(np.isfinite(distance)[:, None], colour * checker(np.nan_to_num(points))[:, None], 1.0)
    return ((distance * z_per_length).reshape(height, width), points.reshape(height, width, 3),
            rgb.T.reshape(3, height, width))


def visible_from(extrinsic: np.ndarray, points: np.ndarray, boxes=SCENE_BOXES) -> np.ndarray:
    """Ground truth: True where nothing in the scene lies between the camera and the point ([K, 3] world)."""
    rotation = extrinsic[:, :3].astype(np.float64)
    centre = -rotation.T @ extrinsic[:, 3].astype(np.float64)
    offsets = points - centre
    distance = np.linalg.norm(offsets, axis=1)
    hit, _ = first_box_hit(centre, offsets / distance[:, None], boxes)
    return hit >= distance * (1 - 1e-6)


def box_scene(steps: int = 1, cameras: int = 3, height: int = 24, width: int = 32, focal: float = 26.0,
              padded: bool = True, seed: int = 0) -> dict[str, np.ndarray]:
    """Predictions of the box scene; with `padded`, camera 1 has 3 padding rows at top and bottom and camera 2
    its 4 rightmost columns (as a narrower camera on a wider canvas)."""
    rng = np.random.default_rng(seed)
    shape = (steps, cameras, height, width)
    out = {"images": np.ones(shape[:2] + (3, height, width), np.float32),
           "depth": np.zeros(shape + (1,), np.float32), "world_points": np.zeros(shape + (3,), np.float32),
           "world_points_conf": rng.uniform(1.0, 5.0, shape).astype(np.float32),
           "valid_mask": np.ones(shape, bool), "extrinsic": np.zeros(shape[:2] + (3, 4), np.float32),
           "intrinsic": np.zeros(shape[:2] + (3, 3), np.float32)}
    intrinsic = np.array([[focal, 0, width / 2], [0, focal, height / 2], [0, 0, 1]])
    for t in range(steps):
        for n in range(cameras):
            eye = np.array([CAMERA_X[n % len(CAMERA_X)] + 0.1 * t, -0.2 + 0.05 * n, 0.0])
            extrinsic = look_at(eye, LOOK_AT)
            depth, points, rgb = render_view(extrinsic, intrinsic, height, width)
            out["extrinsic"][t, n], out["intrinsic"][t, n] = extrinsic, intrinsic
            out["depth"][t, n, ..., 0], out["world_points"][t, n], out["images"][t, n] = depth, points, rgb
    if padded and cameras > 1:
        out["valid_mask"][:, 1, :3] = out["valid_mask"][:, 1, height - 3:] = False
    if padded and cameras > 2:
        out["valid_mask"][:, 2, :, width - 4:] = False
    padding = ~out["valid_mask"]
    out["world_points"][padding] = PADDING_POINT
    out["depth"][padding] = 1.5
    out["world_points_conf"][padding] = 100.0
    out["images"].transpose(0, 1, 3, 4, 2)[padding] = 1.0
    out["depth_conf"] = out["world_points_conf"].copy()
    return out


def perturbed_cameras(predictions: dict[str, np.ndarray], angle: float = 0.01, shift: float = 0.02,
                      seed: int = 1) -> dict[str, np.ndarray]:
    """A copy whose extrinsics (all but camera 0's) are off by a small random rotation and translation,
    as a model's cameras are slightly off its point maps."""
    rng = np.random.default_rng(seed)
    out = dict(predictions)
    out["extrinsic"] = predictions["extrinsic"].copy()
    steps, cameras = out["extrinsic"].shape[:2]
    for t in range(steps):
        for n in range(1, cameras):
            axis = rng.normal(size=3)
            rotation = axis_angle_rotation(axis / np.linalg.norm(axis) * angle)
            extrinsic = out["extrinsic"][t, n].astype(np.float64)
            out["extrinsic"][t, n, :, :3] = rotation @ extrinsic[:, :3]
            out["extrinsic"][t, n, :, 3] = rotation @ extrinsic[:, 3] + rng.normal(size=3) * shift
    return out


def axis_angle_rotation(vector: np.ndarray) -> np.ndarray:
    """Rodrigues: the rotation by |vector| radians about vector."""
    angle = np.linalg.norm(vector)
    if angle == 0:
        return np.eye(3)
    x, y, z = vector / angle
    cross = np.array([[0, -z, y], [z, 0, -x], [-y, x, 0]])
    return np.eye(3) + np.sin(angle) * cross + (1 - np.cos(angle)) * cross @ cross


@lru_cache(maxsize=1)
def make_examples() -> ModuleType:
    """assets/make_examples.py, imported from its file (it is a script, not a package)."""
    path = EXAMPLES_DIR.parent / "make_examples.py"
    spec = importlib.util.spec_from_file_location("make_examples", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def rig_hit_distance(module: ModuleType, time: float, origin: np.ndarray, directions: np.ndarray) -> np.ndarray:
    """Distance along unit rays to the nearest of the example's floor (y = 0), boxes and ball, inf for sky."""
    with np.errstate(divide="ignore", invalid="ignore"):
        floor = np.where(directions[:, 1] < -1e-6, -origin[1] / directions[:, 1], np.inf)
    boxes, _ = module.intersect_boxes(origin, directions)
    offset = origin - module.ball_center(time)
    b = directions @ offset
    disc = b ** 2 - offset @ offset + module.BALL_RADIUS ** 2
    ball = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    ball = np.where(ball > 0, ball, np.inf)
    return np.minimum(np.minimum(floor, boxes), ball)


def example_rig_predictions(frame_indices: tuple[int, ...] = (0, 15)) -> dict[str, np.ndarray]:
    """The example rig's frames at those indices as a perfect model predicts them at the processed size
    (518 x 294, no padding: the three cameras are the same size); sky has no point (NaN)."""
    module = make_examples()
    example = find_example("rig-three-cameras")
    layout = plan_layouts([(module.WIDTH, module.HEIGHT)] * len(module.CAMERA_OFFSETS))[0]
    width, height = layout.canvas
    times = [index / module.FPS for index in frame_indices]
    extrinsics, intrinsics = load_ground_truth(example, times, (height, width))
    steps, cameras = extrinsics.shape[:2]
    shape = (steps, cameras, height, width)
    out = {"images": np.zeros(shape[:2] + (3, height, width), np.uint8),
           "depth": np.full(shape + (1,), np.nan, np.float32),
           "world_points": np.full(shape + (3,), np.nan, np.float32),
           "world_points_conf": np.full(shape, 3.0, np.float32), "valid_mask": layout.valid_mask()[None, None]
           .repeat(steps, 0).repeat(cameras, 1), "extrinsic": extrinsics, "intrinsic": intrinsics}
    rows = np.arange(height) * module.HEIGHT // height
    cols = np.arange(width) * module.WIDTH // width
    for t, time in enumerate(times):
        for n in range(cameras):
            centre, directions, z_per_length = camera_rays(extrinsics[t, n], intrinsics[t, n], height, width)
            distance = rig_hit_distance(module, time, centre, directions)
            hit = np.isfinite(distance)
            points = np.where(hit[:, None], centre + np.where(hit, distance, 0)[:, None] * directions, np.nan)
            out["depth"][t, n, ..., 0] = np.where(hit, distance * z_per_length, np.nan).reshape(height, width)
            out["world_points"][t, n] = points.reshape(height, width, 3)
            out["images"][t, n] = module.render(time, n)[rows[:, None], cols[None, :]].transpose(2, 0, 1)
    out["depth_conf"] = out["world_points_conf"].copy()
    return out
