"""How each camera's frames become model input without stretching: uniform scale, then centred white padding.

Two ways to size a camera (`resize`):
- "fit" (default): scaled uniformly so it fits a width x max_height box (518 x 518: its longer side becomes 518),
  the other side rounded to a multiple of 14; nothing is cut, so a portrait camera keeps every row.
- "crop": VGGT's "crop" preprocessing: width 518, height rounded to a multiple of 14, and a camera taller than
  `max_height` centre-cropped to it.
Cameras of different shapes are then padded, centred, to a common box (the widest width by the tallest height)
with white (1.0, VGGT's pad value); the valid mask marks the real pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_WIDTH = 518
PATCH_SIZE = 14
MAX_HEIGHT = 518
PAD_VALUE = 1.0
RESIZE_MODES = ("fit", "crop")
DEFAULT_RESIZE = "fit"


@dataclass(frozen=True)
class CameraLayout:
    """One camera: its displayed size, its uniform scale, the rows a crop removes and where it sits on the canvas."""

    source: tuple[int, int]
    scaled: tuple[int, int]
    crop_top: int
    kept_height: int
    canvas: tuple[int, int]
    pad_top: int
    pad_left: int = 0

    @property
    def kept_width(self) -> int:
        """Columns of this camera on the canvas (no mode cuts columns)."""
        return self.scaled[0]

    @property
    def cropped(self) -> bool:
        """True when rows were cut (crop mode, the camera was taller than the cap)."""
        return self.kept_height < self.scaled[1]

    @property
    def padded(self) -> bool:
        """True when the canvas is taller or wider than this camera's pixels."""
        return self.kept_height < self.canvas[1] or self.kept_width < self.canvas[0]

    def content_box(self) -> tuple[slice, slice]:
        """(rows, columns) of the canvas that hold this camera's pixels."""
        return (slice(self.pad_top, self.pad_top + self.kept_height),
                slice(self.pad_left, self.pad_left + self.kept_width))

    def valid_mask(self) -> np.ndarray:
        """bool [H, W] on the canvas: True where a real pixel of this camera lies."""
        width, height = self.canvas
        mask = np.zeros((height, width), dtype=bool)
        mask[self.content_box()] = True
        return mask

    def describe(self) -> str:
        """'640x360 -> 518x294' plus what was cropped or padded."""
        text = f"{self.source[0]}x{self.source[1]} -> {self.kept_width}x{self.kept_height}"
        if self.cropped:
            cut = self.scaled[1] - self.kept_height
            text += f" (centre-cropped from {self.scaled[0]}x{self.scaled[1]}, {cut} rows cut)"
        if self.padded:
            text += f", padded to {self.canvas[0]}x{self.canvas[1]}"
        return text


def resize_problem(resize: object) -> str | None:
    """Why `resize` is not a sizing mode (one line), or None when it is one."""
    if resize in RESIZE_MODES:
        return None
    shown = repr(resize)
    shown = shown if len(shown) <= 40 else shown[:37] + "..."
    return (f"resize must be one of {', '.join(RESIZE_MODES)}, got {shown} (fit keeps every pixel, "
            "crop is VGGT's centre crop)")


def rounded_to_patch(length: float, patch: int = PATCH_SIZE) -> int:
    """A scaled side rounded to a whole number of patches, never below one patch."""
    return max(patch, int(round(length / patch)) * patch)


def scaled_size(display_width: int, display_height: int, width: int = TARGET_WIDTH,
                patch: int = PATCH_SIZE) -> tuple[int, int]:
    """(width, height): width 518, height keeping the aspect, rounded to a multiple of the patch (VGGT's rule)."""
    return width, rounded_to_patch(display_height * width / display_width, patch)


def fitted_size(display_width: int, display_height: int, width: int = TARGET_WIDTH, max_height: int = MAX_HEIGHT,
                patch: int = PATCH_SIZE) -> tuple[int, int]:
    """(width, height) inside the width x max_height box, aspect kept: the limiting side fills the box, nothing cut."""
    if display_width * max_height >= display_height * width:
        return width, rounded_to_patch(display_height * width / display_width, patch)
    return rounded_to_patch(display_width * max_height / display_height, patch), max_height


def plan_layouts(display_sizes: list[tuple[int, int]], width: int = TARGET_WIDTH, max_height: int = MAX_HEIGHT,
                 patch: int = PATCH_SIZE, resize: str = DEFAULT_RESIZE) -> list[CameraLayout]:
    """Per camera: scale uniformly (fit, or crop above `max_height`), pad centred to the common box."""
    problem = resize_problem(resize)
    if problem is not None:
        raise ValueError(problem)
    if resize == "crop":
        scaled = [scaled_size(w, h, width, patch) for w, h in display_sizes]
        kept = [min(height, max_height) for _, height in scaled]
    else:
        scaled = [fitted_size(w, h, width, max_height, patch) for w, h in display_sizes]
        kept = [height for _, height in scaled]
    canvas = (max(size[0] for size in scaled), max(kept))
    return [CameraLayout(source=tuple(source), scaled=size, crop_top=(size[1] - keep) // 2, kept_height=keep,
                         canvas=canvas, pad_top=(canvas[1] - keep) // 2, pad_left=(canvas[0] - size[0]) // 2)
            for source, size, keep in zip(display_sizes, scaled, kept)]


def place_frame(frame: np.ndarray, layout: CameraLayout, out: np.ndarray | None = None) -> np.ndarray:
    """uint8 [h, w, 3] at the scaled size -> float32 [3, H, W] in [0, 1] on the canvas (into `out`), padding white."""
    if frame.shape[:2] != (layout.scaled[1], layout.scaled[0]):
        raise ValueError(f"frame of {frame.shape[1]}x{frame.shape[0]} for a layout scaled to "
                         f"{layout.scaled[0]}x{layout.scaled[1]}")
    width, height = layout.canvas
    if out is None:
        out = np.empty((3, height, width), dtype=np.float32)
    out.fill(PAD_VALUE)
    kept = frame[layout.crop_top:layout.crop_top + layout.kept_height]
    rows, columns = layout.content_box()
    out[:, rows, columns] = kept.transpose(2, 0, 1).astype(np.float32) / 255.0
    return out


def place_on_canvas(frames: np.ndarray, layout: CameraLayout) -> np.ndarray:
    """uint8 [T, h, w, 3] at the scaled size -> float32 [T, 3, H, W] in [0, 1] on the canvas, padding white."""
    width, height = layout.canvas
    canvas = np.empty((len(frames), 3, height, width), dtype=np.float32)
    for frame, target in zip(frames, canvas):
        place_frame(frame, layout, target)
    return canvas
