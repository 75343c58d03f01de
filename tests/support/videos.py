"""Small test videos written with PyAV: any size, rate, rotation, timing, and the broken files users upload."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np


def frame_image(index: int, width: int, height: int) -> np.ndarray:
    """A frame whose left half encodes its index as brightness (readable after lossy coding)."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[:, : width // 2] = (index * 20) % 250
    image[:, width // 2:, 1] = 200
    image[: height // 4, : width // 4, 0] = 255  # a top-left marker that shows rotation
    bit_width = width / 2 / FRAME_NUMBER_BITS
    for bit in range(FRAME_NUMBER_BITS):  # the index in binary, bottom right: readable for a thousand frames
        if index >> bit & 1:
            image[3 * height // 4:, int(width / 2 + bit * bit_width):int(width / 2 + (bit + 1) * bit_width), 2] = 255
    return image


FRAME_NUMBER_BITS = 10


def frame_number_seen(image: np.ndarray) -> int:
    """Which frame an RGB image [H, W, 3] came from, from its binary blocks (any index up to 1023)."""
    height, width = image.shape[:2]
    bit_width = width / 2 / FRAME_NUMBER_BITS
    number = 0
    for bit in range(FRAME_NUMBER_BITS):
        left = int(width / 2 + (bit + 0.25) * bit_width)
        right = max(left + 1, int(width / 2 + (bit + 0.75) * bit_width))
        block = image[int(height * 0.8):int(height * 0.95), left:right, 2]
        number |= int(block.mean() > 127) << bit
    return number


def write_video(path: Path, frames: int = 10, fps: int = 10, width: int = 64, height: int = 48,
                rotation: int | None = None, times: list[float] | None = None, codec: str = "libx264") -> Path:
    """Encode frames 0..n-1; `times` gives explicit presentation times (variable frame rate)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.time_base = Fraction(1, 1000)
        if rotation is not None:
            stream.set_display_rotation(rotation)
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")
            seconds = times[index] if times is not None else index / fps
            frame.pts = int(round(seconds * 1000))
            frame.time_base = Fraction(1, 1000)
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def frame_index_seen(image: np.ndarray) -> int:
    """Which frame an RGB image [H, W, 3] came from (inverse of frame_image)."""
    height, width = image.shape[:2]
    value = float(image[height // 2:, : width // 2].mean())
    return int(round(value / 20))


def write_with_container(path: Path, container_format: str | None = None, codec: str = "libx264",
                         pix_fmt: str = "yuv420p", frames: int = 6, fps: int = 10, width: int = 64,
                         height: int = 48) -> Path:
    """Frames 0..n-1 in any container/codec PyAV writes (MPEG-TS, GIF, Matroska ...), constant rate."""
    with av.open(str(path), "w", format=container_format) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, pix_fmt
        for index in range(frames):
            frame = av.VideoFrame.from_ndarray(frame_image(index, width, height), format="rgb24")
            for packet in stream.encode(frame.reformat(format=pix_fmt) if pix_fmt != "yuv420p" else frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_audio_only(path: Path, seconds: float = 0.5, rate: int = 8000) -> Path:
    """An .mp4 holding only an AAC audio track (a voice memo, a mis-picked file)."""
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=rate)
        samples = np.zeros((1, int(seconds * rate)), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(samples, format="fltp", layout="mono")
        frame.sample_rate = rate
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def write_png(path: Path, width: int = 16, height: int = 16) -> Path:
    """A PNG still image (under any name)."""
    with av.open(str(path), "w", format="image2") as container:
        stream = container.add_stream("png", rate=1)
        stream.width, stream.height, stream.pix_fmt = width, height, "rgb24"
        frame = av.VideoFrame.from_ndarray(frame_image(0, width, height), format="rgb24")
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
