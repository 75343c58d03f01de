"""How each camera's frames become model input without stretching: uniform scale, centre crop, centred padding.

Each camera is scaled uniformly to width 518 with its height rounded to a multiple of 14 (VGGT's "crop"
preprocessing); a camera taller than `max_height` is centre-cropped to it, as VGGT's crop mode does. All
cameras are then padded, centred, to the tallest one with white (1.0, VGGT's pad value); the valid mask
marks the real pixels.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

TARGET_WIDTH = 518
PATCH_SIZE = 14
MAX_HEIGHT = 518
PAD_VALUE = 1.0


@dataclass(frozen=True)
class CameraLayout:
    """One camera: its displayed size, its uniform scale, the rows a crop removes and where it sits on the canvas."""

    source: tuple[int, int]
    scaled: tuple[int, int]
    crop_top: int
    kept_height: int
    canvas: tuple[int, int]
    pad_top: int

    @property
    def cropped(self) -> bool:
        """True when rows were cut (the camera was taller than the cap)."""
        return self.kept_height < self.scaled[1]

    @property
    def padded(self) -> bool:
        """True when the canvas is taller than this camera's pixels."""
        return self.kept_height < self.canvas[1]

    def valid_mask(self) -> np.ndarray:
        """bool [H, W] on the canvas: True where a real pixel of this camera lies."""
        width, height = self.canvas
        mask = np.zeros((height, width), dtype=bool)
        mask[self.pad_top:self.pad_top + self.kept_height, :self.scaled[0]] = True
        return mask

    def describe(self) -> str:
        """'640x360 -> 518x294' plus what was cropped or padded."""
        text = f"{self.source[0]}x{self.source[1]} -> {self.scaled[0]}x{self.kept_height}"
        if self.cropped:
            cut = self.scaled[1] - self.kept_height
            text += f" (centre-cropped from {self.scaled[0]}x{self.scaled[1]}, {cut} rows cut)"
        if self.padded:
            text += f", padded to {self.canvas[0]}x{self.canvas[1]}"
        return text


def scaled_size(display_width: int, display_height: int, width: int = TARGET_WIDTH,
                patch: int = PATCH_SIZE) -> tuple[int, int]:
    """(width, height): width 518, height keeping the aspect, rounded to a multiple of the patch (VGGT's rule)."""
    height = max(patch, int(round(display_height * width / display_width / patch)) * patch)
    return width, height


def plan_layouts(display_sizes: list[tuple[int, int]], width: int = TARGET_WIDTH, max_height: int = MAX_HEIGHT,
                 patch: int = PATCH_SIZE) -> list[CameraLayout]:
    """Per camera: scale uniformly, centre-crop above `max_height`, pad centred to the tallest camera."""
    scaled = [scaled_size(w, h, width, patch) for w, h in display_sizes]
    kept = [min(height, max_height) for _, height in scaled]
    canvas = (width, max(kept))
    return [CameraLayout(source=tuple(source), scaled=size, crop_top=(size[1] - keep) // 2, kept_height=keep,
                         canvas=canvas, pad_top=(canvas[1] - keep) // 2)
            for source, size, keep in zip(display_sizes, scaled, kept)]


def place_on_canvas(frames: np.ndarray, layout: CameraLayout) -> np.ndarray:
    """uint8 [T, h, w, 3] at the scaled size -> float32 [T, 3, H, W] in [0, 1] on the canvas, padding white."""
    width, height = layout.canvas
    canvas = np.full((len(frames), 3, height, width), PAD_VALUE, dtype=np.float32)
    kept = frames[:, layout.crop_top:layout.crop_top + layout.kept_height]
    canvas[:, :, layout.pad_top:layout.pad_top + layout.kept_height, :kept.shape[2]] = (
        kept.transpose(0, 3, 1, 2).astype(np.float32) / 255.0)
    return canvas
