"""COLMAP sparse models, one per time step, that COLMAP, pycolmap, gsplat and nerfstudio read as is.

Layout: each time step is a COLMAP project of its own (image path tNNN/images, model tNNN/sparse/0):
    <folder>/t000/images/camera0.png ...  the processed frame of each written camera (uint8 RGB), padding cropped
    <folder>/t000/sparse/0/cameras.bin, images.bin, points3D.bin (+ rigs.bin, frames.bin of COLMAP 3.12+)
The model is built and written with pycolmap (Reconstruction, add_camera_with_trivial_rig,
add_image_with_trivial_frame, add_point3D, write): one PINHOLE camera per input camera (CAMERA_ID = IMAGE_ID =
camera index + 1), its width and height those of the cropped frame. images.bin keeps each image's pose (the
classic format), so readers that know only cameras/images/points3D (nerfstudio, gsplat, older COLMAP) read it too.

Pixels: the model's pixel centres are at integers (vggt_mv.geometry), COLMAP's at +0.5, and the frame is cropped
to its camera's real pixels (the bounding box of valid_mask), so the written principal point is
(cx - left + 0.5, cy - top + 0.5); fx and fy are the predicted ones.

Tracks, from the predicted point maps alone (no model call: on ZeroGPU every call costs GPU quota):
1. candidates: the step's points under the scene's filters (vggt_mv.viz.points.select_points: padding, non-finite,
   depth-edge, dynamic and confidence filters, confidence-weighted sampling), `written cameras x` the step's share
   of the budget, each in front of its own (anchor) camera;
2. a candidate is looked for in another camera by that camera's own prediction: projected with its pose to the
   nearest pixel (or, failing that, the pixel within MATCH_RADIUS whose predicted point is nearest), it is seen
   there only if that camera's point map, linearised at the pixel, holds it within one pixel and within
   RELATIVE_TOLERANCE of its depth, inside the real pixels, with no nearer surface (a depth jump towards the
   camera) among the four pixels around it. A point hidden behind a nearer surface is thus not seen there;
3. one 3D point per surface spot: a candidate that a lower-index camera sees is dropped (that camera's own
   candidates cover the spot), then the step's share of the budget is drawn at random from what is left;
4. POINT2D of the anchor camera is its pixel centre; in another camera it is the matched pixel plus the offset,
   in that image, between the point and the pixel's own predicted point (exact under perspective; a pose
   slightly off its point map shifts both alike, so the observation follows the point maps, not the pose, and
   bundle adjustment can correct the pose). ERROR is COLMAP's (update_point_3d_errors: mean over the track, px).
Measured (box_scene: 3 cameras side by side, a box hiding part of a wall, default filters, 2 CPU cores):
  48 x 64, whole budget: 1,825 points, mean track length 2.36 (ground truth allows 2.40), 79% of points seen by
    >= 2 cameras, 60 ms per time step;
  294 x 518, 120k points per step: mean track length 2.50 (ground truth 2.50), 82% seen by >= 2, 3.3 s per step,
    of which about 1.5 s is pycolmap's per-point add_point3D (about 12 us a point) and 1.5 s the matching;
  the example rig (tests.support.colmap_scene.example_rig_predictions, 294 x 518): mean track length 2.4.
Why one point per spot: keeping every candidate (duplicates) gave 8,640 points instead of 3,702 for the same
surface at 48 x 64 with no filters (2.3 x the file for nothing new), a spot seen by three cameras written three
times; its higher mean track length (2.64) only counts the overlap several times over.

Bundle adjustment (optional): pycolmap's default bundle adjuster (create_default_bundle_adjuster + solve) over
every image of the step: poses and points refined, intrinsics held (a few cameras constrain focal length poorly),
gauge fixed by two cameras, soft-L1 loss. pycolmap refuses points seen by one camera, so those are taken out and
put back on their pixel's ray in their adjusted camera, at the depth they had. A result that is not finite or
not better is thrown away (the step keeps its predicted cameras). On box_scene 48 x 64 with cameras 1 and 2 off
by 0.01 rad and 2 cm: mean reprojection error 0.31 -> 0.001 px (294 x 518: 1.39 -> 0.001 px).

Cameras whose intrinsics or pose are not finite, whose focal length is not positive, whose rotation is not one,
or that have no real pixel are left out of that step, with a note. A step left without cameras still gets its
folder: an empty images/ and an empty (readable) model, with a note. Nothing non-finite is ever written.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pycolmap

from vggt_mv.exports.bad_values import camera_notes, camera_problem
from vggt_mv.viz.export import as_uint8_images
from vggt_mv.viz.points import PointFilters, select_points

# Over all time steps. Tracked points cost about 25 us each (matching, then pycolmap's add_point3D): 200k take
# about 5 s, wherever the visitor's own budget (the scene's) is higher.
COLMAP_POINT_BUDGET = 200_000
DEFAULT_FILTERS = PointFilters()  # the scene's defaults
MATCH_RADIUS = 2  # pixels around a projection searched for the camera's own prediction of the point
RELATIVE_TOLERANCE = 0.05  # how far (relative to its depth in that camera) a camera's point map may be from a point
MAX_SUBPIXEL_STEP = 1.0  # pixels: farther than this from a real pixel's prediction, the point is not seen there
ROTATION_TOLERANCE = 1e-3
MATCH_CHUNK = 32_768  # points matched at once (bounds the memory of the window search)
BA_LOSS_SCALE = 1.0  # pixels, soft-L1


@dataclass(frozen=True)
class ColmapStep:
    """One time step's model: where it is, which cameras it holds or left out (and why), its points and BA."""

    time_step: int
    folder: Path
    cameras_written: list[int]
    skipped: list[tuple[int, str]]  # (camera, reason)
    points: int
    mean_track_length: float
    error_before: float | None  # bundle adjustment: mean reprojection error before, pixels (None: not run)
    error_after: float | None


@dataclass(frozen=True)
class ColmapExport:
    """Every time step's model under `folder`."""

    folder: Path
    steps: list[ColmapStep]
    bundle_adjusted: bool = False  # whether bundle adjustment was asked for

    def notes(self) -> list[str]:
        """What a user should know: each left-out camera, each empty step, and how bundle adjustment went."""
        skipped = {(step.time_step, camera): reason for step in self.steps for camera, reason in step.skipped}
        notes = camera_notes(skipped, "the COLMAP export")
        notes += [f"time step {step.time_step}: no camera could be written, its COLMAP model is empty"
                  for step in self.steps if not step.cameras_written]
        if self.bundle_adjusted:
            notes.append("COLMAP bundle adjustment, mean reprojection error per time step: "
                         + ", ".join(adjustment_summary(step) for step in self.steps))
        return notes


def adjustment_summary(step: ColmapStep) -> str:
    """'t000 1.39 -> 0.02 px', or why that step's cameras were kept as predicted."""
    if step.error_before is None:
        return f"t{step.time_step:03d} not adjusted (it needs two cameras that see a common point)"
    if step.error_after >= step.error_before:
        return f"t{step.time_step:03d} {step.error_before:.2f} px, kept as predicted (adjusting did not lower it)"
    return f"t{step.time_step:03d} {step.error_before:.2f} -> {step.error_after:.2f} px"


@dataclass(frozen=True)
class StepCamera:
    """One writable camera of a time step: its prediction and the box of its real pixels."""

    index: int
    extrinsic: np.ndarray  # [3, 4] float64, world-to-camera (OpenCV)
    intrinsic: np.ndarray  # [3, 3] float64, pixels of the model input, centres at integers
    box: tuple[int, int, int, int]  # top, bottom, left, right (bottom and right exclusive)
    points: np.ndarray  # [H, W, 3] the world points it predicts
    usable: np.ndarray  # [H, W] bool: real (inside the valid box and valid) and finite

    @property
    def image_id(self) -> int:
        """COLMAP's id of its camera and image: camera index + 1, the same in every time step."""
        return self.index + 1

    @property
    def file_name(self) -> str:
        """Its frame's name in images/ (and in images.bin)."""
        return f"camera{self.index}.png"

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the written (cropped) frame."""
        top, bottom, left, right = self.box
        return right - left, bottom - top

    def colmap_params(self) -> list[float]:
        """PINHOLE fx, fy, cx, cy in the cropped frame's pixels, COLMAP's convention (centres at +0.5)."""
        top, _, left, _ = self.box
        k = self.intrinsic
        return [k[0, 0], k[1, 1], k[0, 2] - left + 0.5, k[1, 2] - top + 0.5]

    def to_colmap_xy(self, xy: np.ndarray) -> np.ndarray:
        """Model-input pixel coordinates [K, 2] -> the cropped frame's, COLMAP's convention."""
        top, _, left, _ = self.box
        return xy + np.array([0.5 - left, 0.5 - top])


def valid_box(valid: np.ndarray) -> tuple[int, int, int, int] | None:
    """Bounding box (top, bottom, left, right; ends exclusive) of the True pixels, None when there are none."""
    rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
    if not len(rows):
        return None
    return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1


def skip_reason(extrinsic: np.ndarray, intrinsic: np.ndarray, box: tuple | None) -> str | None:
    """Why a camera cannot be written (COLMAP would get NaN, a broken pose or an empty image), or None."""
    problem = camera_problem(extrinsic, intrinsic)
    if problem is not None:
        return problem
    rotation = extrinsic[:, :3].astype(np.float64)
    if (np.abs(rotation @ rotation.T - np.eye(3)).max() > ROTATION_TOLERANCE
            or np.linalg.det(rotation) <= 0):
        return "its pose's rotation is not a rotation"
    if box is None:
        return "it has no valid pixel (all padding)"
    return None


def step_cameras(predictions: dict[str, np.ndarray], time_step: int) -> tuple[list[StepCamera], list[tuple[int, str]]]:
    """The cameras of a time step that can be written, and (camera, reason) for those that cannot."""
    world_points = predictions["world_points"][time_step]
    cameras, height, width = world_points.shape[:3]
    valid = (predictions["valid_mask"][time_step] if "valid_mask" in predictions
             else np.ones((cameras, height, width), bool))
    written, skipped = [], []
    for index in range(cameras):
        extrinsic, intrinsic = predictions["extrinsic"][time_step, index], predictions["intrinsic"][time_step, index]
        box = valid_box(valid[index])
        reason = skip_reason(extrinsic, intrinsic, box)
        if reason is not None:
            skipped.append((index, reason))
            continue
        top, bottom, left, right = box
        usable = np.zeros((height, width), bool)
        usable[top:bottom, left:right] = valid[index, top:bottom, left:right]
        usable &= np.isfinite(world_points[index]).all(axis=-1)
        written.append(StepCamera(index, extrinsic.astype(np.float64), intrinsic.astype(np.float64), box,
                                  world_points[index], usable))
    return written, skipped


def frames_uint8(images: np.ndarray) -> np.ndarray:
    """One step's images [N, 3, H, W] (float in [0, 1] or uint8) -> uint8 [N, H, W, 3], as PNGs want them."""
    return np.ascontiguousarray(as_uint8_images(images).transpose(0, 2, 3, 1))


def write_frames(folder: Path, frames: np.ndarray, cameras: list[StepCamera]) -> None:
    """images/camera{n}.png: each written camera's frame cropped to its real pixels (COLMAP's own PNG writer)."""
    folder.mkdir(parents=True, exist_ok=True)
    for camera in cameras:
        top, bottom, left, right = camera.box
        path = folder / camera.file_name
        bitmap = pycolmap.Bitmap.from_array(np.ascontiguousarray(frames[camera.index, top:bottom, left:right]))
        if not bitmap.write(path):
            raise OSError(f"could not write {path}")


def project(xyz: np.ndarray, extrinsic: np.ndarray, intrinsic: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """World points [K, 3] -> model-input pixels [K, 2] and depth [K] in that camera (pixels NaN-free only
    where depth > 0)."""
    camera = xyz @ extrinsic[:, :3].T + extrinsic[:, 3]
    depth = camera[:, 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        pixels = (camera @ intrinsic.T)[:, :2] / depth[:, None]
    return pixels, depth


def step_view(predictions: dict[str, np.ndarray], time_step: int, cameras: list[StepCamera]) -> dict:
    """The time step as a one-step predictions dict in which only the written cameras' usable pixels count."""
    view = {key: predictions[key][time_step:time_step + 1]
            for key in ("world_points", "world_points_conf", "images", "dynamic_mask") if key in predictions}
    count, height, width = view["world_points"].shape[1:4]
    view["valid_mask"] = np.zeros((1, count, height, width), bool)
    view["extrinsic"] = np.tile(np.eye(3, 4), (1, count, 1, 1))
    for camera in cameras:
        view["valid_mask"][0, camera.index] = camera.usable
        view["extrinsic"][0, camera.index] = camera.extrinsic
    return view


@dataclass(frozen=True)
class Candidates:
    """Points that may become 3D points: their anchor (position in the step's camera list, pixel) and xyz."""

    anchor: np.ndarray  # [K] position in the list of written cameras
    rows: np.ndarray
    cols: np.ndarray
    xyz: np.ndarray  # [K, 3] float64

    def take(self, members: np.ndarray) -> Candidates:
        """The candidates at `members` (indices or mask)."""
        return Candidates(self.anchor[members], self.rows[members], self.cols[members], self.xyz[members])


def candidate_points(predictions: dict[str, np.ndarray], time_step: int, cameras: list[StepCamera],
                     filters: PointFilters, count: int) -> Candidates:
    """Up to `count` points of the step under the scene's filters, each in front of the camera it came from."""
    selection = select_points(step_view(predictions, time_step, cameras), [0], filters, count, seed=time_step)
    width = predictions["world_points"].shape[3]
    position = {camera.index: slot for slot, camera in enumerate(cameras)}
    anchor = np.array([position[index] for index in selection.camera_index.tolist()], dtype=np.int64)
    rows, cols = np.divmod(selection.pixel_index, width)
    candidates = Candidates(anchor, rows, cols, selection.xyz.astype(np.float64))
    in_front = np.zeros(len(anchor), bool)
    for slot, camera in enumerate(cameras):
        members = anchor == slot
        in_front[members] = project(candidates.xyz[members], camera.extrinsic, camera.intrinsic)[1] > 0
    return candidates.take(in_front)


def nearest_prediction(camera: StepCamera, xyz: np.ndarray, rows: np.ndarray, cols: np.ndarray
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Within MATCH_RADIUS of (rows, cols): the usable pixel whose predicted point is nearest each point
    (rows, cols of it, and whether there was any usable pixel)."""
    top, bottom, left, right = camera.box
    offsets = np.arange(-MATCH_RADIUS, MATCH_RADIUS + 1)
    row_offsets, col_offsets = np.meshgrid(offsets, offsets, indexing="ij")
    window_rows, window_cols = rows[:, None] + row_offsets.ravel(), cols[:, None] + col_offsets.ravel()
    inside = (window_rows >= top) & (window_rows < bottom) & (window_cols >= left) & (window_cols < right)
    window_rows, window_cols = np.clip(window_rows, top, bottom - 1), np.clip(window_cols, left, right - 1)
    usable = inside & camera.usable[window_rows, window_cols]
    with np.errstate(invalid="ignore"):
        distance = np.linalg.norm(camera.points[window_rows, window_cols] - xyz[:, None], axis=-1)
    distance = np.where(usable, distance, np.inf)
    best = np.argmin(distance, axis=1)
    chosen = np.arange(len(rows))
    return window_rows[chosen, best], window_cols[chosen, best], usable[chosen, best]


def one_sided_gradient(camera: StepCamera, rows: np.ndarray, cols: np.ndarray, axis: int) -> np.ndarray:
    """The point map's change per pixel along an axis (0: rows, 1: cols) at each pixel: the smaller of the two
    one-sided differences to usable neighbours (so a depth edge on one side does not spoil it), 0 with none."""
    top, bottom, left, right = camera.box
    low, high = (top, bottom) if axis == 0 else (left, right)
    centre = camera.points[rows, cols].astype(np.float64)
    differences = []
    for sign in (1, -1):
        along = (rows if axis == 0 else cols) + sign
        inside = (along >= low) & (along < high)
        along = np.clip(along, low, high - 1)
        neighbour = (rows, along) if axis == 1 else (along, cols)
        ok = inside & camera.usable[neighbour]
        difference = np.where(ok[:, None], sign * (camera.points[neighbour] - centre), np.inf)
        differences.append(difference)
    forward, backward = differences
    use_forward = np.linalg.norm(forward, axis=1) <= np.linalg.norm(backward, axis=1)
    gradient = np.where(use_forward[:, None], forward, backward)
    return np.where(np.isfinite(gradient).all(axis=1)[:, None], gradient, 0.0)


def subpixel_step(camera: StepCamera, xyz: np.ndarray, rows: np.ndarray, cols: np.ndarray
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Pixel step (dx, dy) [K, 2] from (rows, cols) to where the camera's point map, locally linear, is nearest
    each point, the 3D distance left there [K], and that linear map's gradient [K, 3, 2] (d point / d (x, y))."""
    centre = camera.points[rows, cols].astype(np.float64)
    centre = np.where(np.isfinite(centre), centre, 0.0)
    jacobian = np.stack([one_sided_gradient(camera, rows, cols, 1), one_sided_gradient(camera, rows, cols, 0)],
                        axis=2)  # [K, 3, 2]: d point / d (x, y)
    normal = np.einsum("kia,kib->kab", jacobian, jacobian)
    normal += (1e-12 * np.trace(normal, axis1=1, axis2=2) + 1e-150)[:, None, None] * np.eye(2)
    rhs = np.einsum("kia,ki->ka", jacobian, xyz - centre)
    determinant = normal[:, 0, 0] * normal[:, 1, 1] - normal[:, 0, 1] * normal[:, 1, 0]
    with np.errstate(divide="ignore", invalid="ignore"):
        step = np.stack([normal[:, 1, 1] * rhs[:, 0] - normal[:, 0, 1] * rhs[:, 1],
                         normal[:, 0, 0] * rhs[:, 1] - normal[:, 1, 0] * rhs[:, 0]], axis=1) / determinant[:, None]
    step = np.where(np.isfinite(step), step, 0.0)
    residual = np.linalg.norm(centre + np.einsum("kia,ka->ki", jacobian, step) - xyz, axis=1)
    return step, residual, jacobian


def match_in_camera(camera: StepCamera, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Where `camera` sees each world point by its own point map: (seen [K], COLMAP pixel of its frame [K, 2]);
    seen only in front of it, inside its real pixels, and where its prediction there agrees (not hidden)."""
    seen, xy = np.zeros(len(xyz), bool), np.zeros((len(xyz), 2))
    for start in range(0, len(xyz), MATCH_CHUNK):
        part = slice(start, start + MATCH_CHUNK)
        seen[part], xy[part] = match_chunk(camera, xyz[part])
    return seen, xy


def agreement(camera: StepCamera, xyz: np.ndarray, depth: np.ndarray, rows: np.ndarray, cols: np.ndarray,
              found: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Whether the camera's point map near pixel (rows, cols) holds each point (within one pixel and
    RELATIVE_TOLERANCE of its depth, by the map's local gradient, inside the real pixels) and where it sees it:
    (agrees [K], COLMAP pixel [K, 2]). The location is the pixel plus the offset, in this camera's image, between
    the point and the pixel's own predicted point: exact under perspective, and a pose slightly off its point map
    shifts both alike."""
    step, residual, jacobian = subpixel_step(camera, xyz, rows, cols)
    own = np.where(found[:, None], camera.points[rows, cols].astype(np.float64), 0.0)
    own_pixels, own_depth = project(own, camera.extrinsic, camera.intrinsic)
    point_pixels = project(xyz, camera.extrinsic, camera.intrinsic)[0]
    offset = point_pixels - own_pixels
    location = camera.to_colmap_xy(np.stack([cols, rows], axis=1) + offset)
    width, height = camera.size
    with np.errstate(invalid="ignore"):
        holds = (found & (own_depth > 0) & (residual <= RELATIVE_TOLERANCE * depth)
                 & (np.abs(step) <= MAX_SUBPIXEL_STEP).all(axis=1) & (np.abs(offset) <= MAX_SUBPIXEL_STEP).all(axis=1))
        inside = (np.isfinite(location).all(axis=1) & (location[:, 0] >= 0) & (location[:, 0] < width)
                  & (location[:, 1] >= 0) & (location[:, 1] < height))
    hidden = occluder_around(camera, np.stack([cols, rows], axis=1) + offset, rows, cols, jacobian)
    return holds & inside & ~hidden, location


def occluder_around(camera: StepCamera, xy: np.ndarray, rows: np.ndarray, cols: np.ndarray,
                    jacobian: np.ndarray) -> np.ndarray:
    """True where one of the four real pixels around each location (model-input pixels [K, 2]) predicts a surface
    nearer, by more than RELATIVE_TOLERANCE, than the surface of pixel (rows, cols) continued there by its
    gradient: a depth jump towards the camera, so the point sits at (or behind) an occluder's border."""
    top, bottom, left, right = camera.box
    depth_row, depth_offset = camera.extrinsic[2, :3], camera.extrinsic[2, 3]
    centre = np.where(np.isfinite(camera.points[rows, cols]), camera.points[rows, cols], 0.0).astype(np.float64)
    base = np.floor(np.nan_to_num(xy, nan=-1e9, posinf=-1e9, neginf=-1e9)).astype(np.int64)
    occluded = np.zeros(len(xy), bool)
    for d_row, d_col in ((0, 0), (0, 1), (1, 0), (1, 1)):
        near_rows, near_cols = base[:, 1] + d_row, base[:, 0] + d_col
        inside = (near_rows >= top) & (near_rows < bottom) & (near_cols >= left) & (near_cols < right)
        near_rows, near_cols = np.clip(near_rows, top, bottom - 1), np.clip(near_cols, left, right - 1)
        continued = centre + np.einsum("kia,ka->ki", jacobian, np.stack([near_cols - cols, near_rows - rows], 1))
        own = camera.points[near_rows, near_cols].astype(np.float64)
        with np.errstate(invalid="ignore"):
            occluded |= (inside & camera.usable[near_rows, near_cols]
                         & (own @ depth_row + depth_offset < (continued @ depth_row + depth_offset)
                            * (1 - RELATIVE_TOLERANCE)))
    return occluded


def match_chunk(camera: StepCamera, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """match_in_camera for one chunk of points: first at the pixel each projects to, then, for those not found
    there, at the best pixel within MATCH_RADIUS (a camera slightly off its point map)."""
    top, bottom, left, right = camera.box
    pixels, depth = project(xyz, camera.extrinsic, camera.intrinsic)
    seen, xy = np.zeros(len(xyz), bool), np.zeros((len(xyz), 2))
    with np.errstate(invalid="ignore"):
        near = ((depth > 0) & (pixels[:, 0] > left - 1 - MATCH_RADIUS) & (pixels[:, 0] < right + MATCH_RADIUS)
                & (pixels[:, 1] > top - 1 - MATCH_RADIUS) & (pixels[:, 1] < bottom + MATCH_RADIUS))
    candidates = np.flatnonzero(near)
    rows = np.rint(pixels[candidates, 1]).astype(np.int64)
    cols = np.rint(pixels[candidates, 0]).astype(np.int64)
    inside = (rows >= top) & (rows < bottom) & (cols >= left) & (cols < right)
    rows_in, cols_in = np.clip(rows, top, bottom - 1), np.clip(cols, left, right - 1)
    found = inside & camera.usable[rows_in, cols_in]
    agrees, location = agreement(camera, xyz[candidates], depth[candidates], rows_in, cols_in, found)
    retry = np.flatnonzero(~agrees)
    if len(retry):
        best_rows, best_cols, found = nearest_prediction(camera, xyz[candidates[retry]], rows[retry], cols[retry])
        agrees[retry], location[retry] = agreement(camera, xyz[candidates[retry]], depth[candidates[retry]],
                                                   best_rows, best_cols, found)
    seen[candidates], xy[candidates] = agrees, np.where(agrees[:, None], location, 0.0)
    return seen, xy


def owned_spots(cameras: list[StepCamera], candidates: Candidates) -> np.ndarray:
    """Mask of the candidates that no lower-index camera sees: one 3D point per surface spot, anchored in the
    lowest-index camera that sees it (the others are duplicates of spots that camera's own candidates cover)."""
    alive = np.ones(len(candidates.anchor), bool)
    for slot, camera in enumerate(cameras[:-1]):
        tested = np.flatnonzero(alive & (candidates.anchor > slot))
        alive[tested[match_in_camera(camera, candidates.xyz[tested])[0]]] = False
    return alive


def observations(cameras: list[StepCamera], points: Candidates) -> tuple[np.ndarray, np.ndarray]:
    """Which written camera sees each point (seen [K, C]) and where (COLMAP pixels [K, C, 2]): the anchor at its
    pixel centre, the higher-index cameras where their own point maps hold the point (no lower-index camera
    does: owned_spots)."""
    count = len(points.anchor)
    seen, xy = np.zeros((count, len(cameras)), bool), np.zeros((count, len(cameras), 2))
    for slot, camera in enumerate(cameras):
        anchored = points.anchor == slot
        seen[anchored, slot] = True
        xy[anchored, slot] = camera.to_colmap_xy(np.stack([points.cols[anchored], points.rows[anchored]],
                                                          axis=1).astype(np.float64))
        lower = np.flatnonzero(points.anchor < slot)
        seen[lower, slot], xy[lower, slot] = match_in_camera(camera, points.xyz[lower])
    return seen, xy


def within_quota(members: np.ndarray, quota: int, seed: int) -> np.ndarray:
    """At most `quota` of the indices `members`, drawn at random (they were drawn by confidence already)."""
    if len(members) <= quota:
        return members
    return np.sort(np.random.default_rng(seed).choice(members, quota, replace=False))


def build_reconstruction(cameras: list[StepCamera], xyz: np.ndarray, colours: np.ndarray, seen: np.ndarray,
                         xy: np.ndarray) -> pycolmap.Reconstruction:
    """A pycolmap model: a PINHOLE camera, a trivial rig and a posed image per camera, a 3D point per row of xyz
    observed where `seen`, errors filled in."""
    reconstruction = pycolmap.Reconstruction()
    for slot, camera in enumerate(cameras):
        width, height = camera.size
        reconstruction.add_camera_with_trivial_rig(pycolmap.Camera(
            model="PINHOLE", width=width, height=height, params=camera.colmap_params(), camera_id=camera.image_id))
        image = pycolmap.Image(name=camera.file_name, keypoints=xy[seen[:, slot], slot],
                               camera_id=camera.image_id, image_id=camera.image_id)
        reconstruction.add_image_with_trivial_frame(image, pycolmap.Rigid3d(camera.extrinsic))
    add_points(reconstruction, [camera.image_id for camera in cameras], xyz, colours, seen)
    reconstruction.update_point_3d_errors()
    return reconstruction


def add_points(reconstruction: pycolmap.Reconstruction, image_ids: list[int], xyz: np.ndarray, colours: np.ndarray,
               seen: np.ndarray) -> None:
    """A 3D point per row of xyz, its track every image that sees it (point2D index: its rank among that
    image's observations); the track elements are made in one pass, to keep the per-point Python work small."""
    point_of, slot_of = np.nonzero(seen)  # row-major: each point's observations together, in camera order
    rank = (np.cumsum(seen, axis=0) - 1)[point_of, slot_of]
    elements = list(map(pycolmap.TrackElement, np.asarray(image_ids, dtype=np.int64)[slot_of].tolist(),
                        rank.tolist()))
    bounds = np.concatenate([[0], np.cumsum(seen.sum(axis=1))]).tolist()
    for point, colour, start, stop in zip(np.asarray(xyz, np.float64), np.asarray(colours, np.uint8), bounds[:-1],
                                          bounds[1:]):  # numpy rows: pybind converts them faster than lists
        reconstruction.add_point3D(point, pycolmap.Track(elements[start:stop]), colour)


def drop_non_finite_points(reconstruction: pycolmap.Reconstruction) -> None:
    """Delete points whose position or error is not finite (a point behind a camera has an infinite error)."""
    bad = [point_id for point_id, point in reconstruction.points3D.items()
           if not (np.isfinite(point.xyz).all() and np.isfinite(point.error))]
    for point_id in bad:
        reconstruction.delete_point3D(point_id)


def can_bundle_adjust(reconstruction: pycolmap.Reconstruction) -> bool:
    """Two posed images and a point seen by two: less leaves BA nothing to do (or no gauge to fix)."""
    return reconstruction.num_reg_images() >= 2 and any(
        point.track.length() >= 2 for point in reconstruction.points3D.values())


def single_view_points(reconstruction: pycolmap.Reconstruction) -> list[tuple[int, int, int]]:
    """(point id, image id, point2D index) of every point seen by one camera only."""
    singles = []
    for point_id, point in reconstruction.points3D.items():
        if point.track.length() == 1:
            element = point.track.elements[0]
            singles.append((point_id, element.image_id, element.point2D_idx))
    return singles


def solve_bundle_adjustment(reconstruction: pycolmap.Reconstruction) -> None:
    """pycolmap's default bundle adjuster in place: every image's pose and every point (all seen twice or more),
    intrinsics held, gauge fixed by two cameras, soft-L1 loss."""
    options = pycolmap.BundleAdjustmentOptions()
    options.refine_focal_length = options.refine_principal_point = options.refine_extra_params = False
    options.print_summary = False
    options.ceres.loss_function_type = pycolmap.LossFunctionType.SOFT_L1
    options.ceres.loss_function_scale = BA_LOSS_SCALE
    config = pycolmap.BundleAdjustmentConfig()
    for image_id in reconstruction.reg_image_ids():
        config.add_image(image_id)
    for camera_id in reconstruction.cameras:
        config.set_constant_cam_intrinsics(camera_id)
    config.fix_gauge(pycolmap.BundleAdjustmentGauge.TWO_CAMS_FROM_WORLD)
    pycolmap.create_default_bundle_adjuster(options, config, reconstruction).solve()


def restore_single_view_points(adjusted: pycolmap.Reconstruction, original: pycolmap.Reconstruction,
                               singles: list[tuple[int, int, int]]) -> None:
    """Put back the points seen once (BA cannot use them): each on the ray of its pixel in its adjusted camera,
    at the depth it had in that camera before."""
    for point_id, image_id, point2d_idx in singles:
        before, after = original.image(image_id), adjusted.image(image_id)
        pose = before.cam_from_world().matrix()
        depth = pose[2, :3] @ original.point3D(point_id).xyz + pose[2, 3]
        ray = np.append(after.camera.cam_from_img(after.points2D[point2d_idx].xy), 1.0)
        world_from_cam = after.cam_from_world().inverse().matrix()
        adjusted.add_point3D(world_from_cam[:, :3] @ (ray * depth) + world_from_cam[:, 3], pycolmap.Track([
            pycolmap.TrackElement(image_id, point2d_idx)]), original.point3D(point_id).color)


def bundle_adjust(reconstruction: pycolmap.Reconstruction) -> tuple[pycolmap.Reconstruction, float, float]:
    """The model bundle-adjusted (poses and points) and its mean reprojection error before and after; the model
    as it was when adjusting did not lower the error or left something non-finite."""
    before = float(reconstruction.compute_mean_reprojection_error())
    adjusted = pycolmap.Reconstruction(reconstruction)
    singles = single_view_points(adjusted)
    for point_id, _, _ in singles:
        adjusted.delete_point3D(point_id)
    solve_bundle_adjustment(adjusted)
    poses = [image.cam_from_world().matrix() for image in adjusted.images.values()]
    if not all(np.isfinite(pose).all() for pose in poses):
        return reconstruction, before, before
    restore_single_view_points(adjusted, reconstruction, singles)
    adjusted.update_point_3d_errors()
    drop_non_finite_points(adjusted)
    after = float(adjusted.compute_mean_reprojection_error())
    if not (np.isfinite(after) and after <= before):
        return reconstruction, before, before
    return adjusted, before, after


def write_step(folder: Path, predictions: dict[str, np.ndarray], time_step: int, filters: PointFilters,
               quota: int, bundle: bool) -> ColmapStep:
    """tNNN/images and tNNN/sparse/0 of one time step, with multi-view tracks and, if asked, BA."""
    cameras, skipped = step_cameras(predictions, time_step)
    frames = frames_uint8(predictions["images"][time_step])
    write_frames(folder / "images", frames, cameras)
    candidates = candidate_points(predictions, time_step, cameras, filters, quota * max(len(cameras), 1))
    points = candidates.take(within_quota(np.flatnonzero(owned_spots(cameras, candidates)), quota, time_step))
    seen, xy = observations(cameras, points)
    indices = np.array([camera.index for camera in cameras], dtype=np.int64)[points.anchor]
    colours = frames[indices, points.rows, points.cols]
    reconstruction = build_reconstruction(cameras, points.xyz, colours, seen, xy)
    error_before = error_after = None
    if bundle and can_bundle_adjust(reconstruction):
        reconstruction, error_before, error_after = bundle_adjust(reconstruction)
    model = folder / "sparse" / "0"
    model.mkdir(parents=True, exist_ok=True)
    reconstruction.write(model)
    return ColmapStep(time_step, folder, [camera.index for camera in cameras], skipped,
                      reconstruction.num_points3D(), float(reconstruction.compute_mean_track_length()),
                      error_before, error_after)


def write_colmap_export(folder: Path, predictions: dict[str, np.ndarray], filters: PointFilters = DEFAULT_FILTERS,
                        point_budget: int = COLMAP_POINT_BUDGET, bundle_adjust: bool = False) -> ColmapExport:
    """<folder>/tNNN/{images, sparse/0} per time step, the point budget shared out equally, optionally
    bundle-adjusted (see the module docstring)."""
    if point_budget < 1:
        raise ValueError("point_budget must be at least 1")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    count = predictions["world_points"].shape[0]
    quota = max(1, point_budget // max(count, 1))
    steps = [write_step(folder / f"t{time_step:03d}", predictions, time_step, filters, quota, bundle_adjust)
             for time_step in range(count)]
    return ColmapExport(folder, steps, bundle_adjust)
