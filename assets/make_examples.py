"""Render the example multi-view videos in assets/examples/ with ground-truth cameras.

A moving rig of three cameras looks at a checkered floor with three boxes and one bouncing ball
(the moving object). Everything is ray-cast in numpy, encoded with PyAV (H.264), and each camera's
world-to-camera extrinsics (OpenCV: x right, y down, z forward) and intrinsics per frame are saved
in cameras.json next to the videos. Deterministic; rerun with `python assets/make_examples.py`.
"""

from __future__ import annotations

import json
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

OUT = Path(__file__).resolve().parent / "examples" / "rig-three-cameras"
WIDTH, HEIGHT = 320, 180
FPS = 10
SECONDS = 3.0
FOCAL = 260.0
CAMERA_OFFSETS = (-0.6, 0.0, 0.6)
BOXES = [((-1.6, 0.0, 5.0), (-0.8, 1.0, 5.8), (0.85, 0.35, 0.25)),
         ((0.9, 0.0, 6.5), (1.9, 1.6, 7.3), (0.25, 0.5, 0.85)),
         ((-0.3, 0.0, 8.5), (0.6, 0.7, 9.2), (0.3, 0.75, 0.35))]
BALL_RADIUS = 0.35


def look_at(eye: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Camera-to-world rotation (OpenCV axes) for a camera at `eye` looking at `target`, world y up."""
    forward = (target - eye) / np.linalg.norm(target - eye)
    right = np.cross(forward, np.array([0.0, 1.0, 0.0]))
    right /= np.linalg.norm(right)
    down = np.cross(forward, right)
    return np.stack([right, down, forward], axis=1)


def rig_pose(time: float, camera: int) -> tuple[np.ndarray, np.ndarray]:
    """Eye and camera-to-world rotation: the rig slides sideways and forward while panning slightly."""
    progress = time / SECONDS
    rig_center = np.array([-0.8 + 1.6 * progress, 1.4, 1.0 + 0.8 * progress])
    eye = rig_center + np.array([CAMERA_OFFSETS[camera], 0.05 * camera, 0.0])
    target = np.array([0.2 * np.sin(2 * np.pi * progress), 0.5, 7.0])
    return eye, look_at(eye, target)


def ball_center(time: float) -> np.ndarray:
    """The moving object: a ball rolling left to right and bouncing."""
    return np.array([-1.5 + 3.0 * time / SECONDS, BALL_RADIUS + 0.8 * abs(np.sin(2.5 * time)), 4.2])


def intersect_boxes(origin: np.ndarray, directions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Nearest hit distance and colour over the axis-aligned boxes (slab method)."""
    best = np.full(directions.shape[0], np.inf)
    colour = np.zeros_like(directions)
    safe = np.where(np.abs(directions) < 1e-9, 1e-9, directions)
    for low, high, rgb in BOXES:
        t1 = (np.array(low) - origin) / safe
        t2 = (np.array(high) - origin) / safe
        near = np.minimum(t1, t2).max(axis=1)
        far = np.maximum(t1, t2).min(axis=1)
        hit = (far >= near) & (near > 0) & (near < best)
        axis = np.minimum(t1, t2).argmax(axis=1)
        shade = np.array([0.75, 1.0, 0.6])[axis]
        best = np.where(hit, near, best)
        colour[hit] = np.array(rgb) * shade[hit, None]
    return best, colour


@np.errstate(invalid="ignore")
def render(time: float, camera: int) -> np.ndarray:
    """One RGB frame [H, W, 3] uint8 of the scene (rays that miss an object carry inf/nan, masked out)."""
    eye, rotation = rig_pose(time, camera)
    rows, cols = np.mgrid[0:HEIGHT, 0:WIDTH]
    rays = np.stack([(cols - WIDTH / 2) / FOCAL, (rows - HEIGHT / 2) / FOCAL, np.ones_like(cols, float)], axis=-1)
    directions = rays.reshape(-1, 3) @ rotation.T
    directions /= np.linalg.norm(directions, axis=1, keepdims=True)
    sky = 0.55 + 0.35 * np.clip(directions[:, 1:2], 0, 1)
    image = np.concatenate([sky * 0.8, sky * 0.9, sky], axis=1)
    depth = np.full(directions.shape[0], np.inf)
    floor_t = np.where(directions[:, 1] < -1e-6, -eye[1] / np.where(directions[:, 1] < -1e-6, directions[:, 1], -1), np.inf)
    floor_points = eye + floor_t[:, None] * directions
    checker = ((np.floor(floor_points[:, 0] * 2) + np.floor(floor_points[:, 2] * 2)) % 2)[:, None]
    floor_colour = 0.35 + 0.4 * checker
    floor_hit = np.isfinite(floor_t)
    image[floor_hit] = np.repeat(floor_colour[floor_hit], 3, axis=1) * np.array([1.0, 0.95, 0.85])
    depth[floor_hit] = floor_t[floor_hit]
    box_t, box_colour = intersect_boxes(eye, directions)
    closer = box_t < depth
    image[closer], depth[closer] = box_colour[closer], box_t[closer]
    offset = eye - ball_center(time)
    b = (directions * offset).sum(axis=1)
    disc = b ** 2 - (offset ** 2).sum() + BALL_RADIUS ** 2
    ball_t = np.where(disc > 0, -b - np.sqrt(np.maximum(disc, 0)), np.inf)
    ball_hit = (ball_t > 0) & (ball_t < depth)
    normal = (eye + ball_t[:, None] * directions - ball_center(time)) / BALL_RADIUS
    light = np.clip(normal @ np.array([0.4, 0.8, -0.4]), 0.15, 1.0)
    image[ball_hit] = np.array([0.95, 0.2, 0.15]) * light[ball_hit, None]
    return (np.clip(image, 0, 1) * 255).astype(np.uint8).reshape(HEIGHT, WIDTH, 3)


def camera_record(time: float, camera: int) -> dict:
    """Ground truth for one frame: world-to-camera [R|t] and pixel intrinsics."""
    eye, camera_to_world = rig_pose(time, camera)
    rotation = camera_to_world.T
    extrinsic = np.concatenate([rotation, (-rotation @ eye)[:, None]], axis=1)
    intrinsic = [[FOCAL, 0.0, WIDTH / 2], [0.0, FOCAL, HEIGHT / 2], [0.0, 0.0, 1.0]]
    return {"time": round(time, 6), "extrinsic": np.round(extrinsic, 6).tolist(), "intrinsic": intrinsic}


def write_video(path: Path, camera: int, frame_times: list[float]) -> None:
    """H.264 at FPS with millisecond timestamps."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=FPS, options={"crf": "26", "preset": "medium"})
        stream.width, stream.height, stream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        for time in frame_times:
            frame = av.VideoFrame.from_ndarray(render(time, camera), format="rgb24")
            frame.pts, frame.time_base = int(round(time * 1000)), Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def main() -> None:
    """Write cam0.mp4, cam1.mp4, cam2.mp4 and cameras.json."""
    OUT.mkdir(parents=True, exist_ok=True)
    frame_times = [i / FPS for i in range(int(SECONDS * FPS))]
    cameras = []
    for camera in range(len(CAMERA_OFFSETS)):
        write_video(OUT / f"cam{camera}.mp4", camera, frame_times)
        cameras.append({"video": f"cam{camera}.mp4", "frames": [camera_record(t, camera) for t in frame_times]})
    (OUT / "cameras.json").write_text(json.dumps({
        "description": "Three cameras on a moving rig; a red ball moves. Extrinsics are world-to-camera (OpenCV).",
        "image_size_hw": [HEIGHT, WIDTH], "fps": FPS, "cameras": cameras}, indent=1))


if __name__ == "__main__":
    main()
