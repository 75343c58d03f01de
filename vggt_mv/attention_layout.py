"""How the [B, T, N] grid of frames is grouped into attention sequences, per attention mode."""

from __future__ import annotations

from dataclasses import dataclass

import torch

# Which frames each block stack attends over, per resolved mode:
#   "image": each image alone; "time": the T frames of one camera; "view": the N cameras of one
#   time step; "all": all T*N frames (t-major), i.e. VGGT's global attention.
STACK_GROUPING = {
    "single": ("image", "all"),
    "multi": ("time", "view"),
    "global": ("image", "all"),
}


def resolve_mode(requested: str, num_cameras: int) -> str:
    """Turn "auto" into a concrete mode so one input grid always means one computation."""
    if requested == "auto":
        return "single" if num_cameras == 1 else "multi"
    if requested == "single" and num_cameras != 1:
        raise ValueError(
            f"attention mode 'single' treats the input as one camera's frames, but it has N={num_cameras} "
            "cameras; use 'multi' (Time-SA/View-SA) or 'global' (all frames together)"
        )
    if requested not in STACK_GROUPING:
        raise ValueError(f"unknown attention mode {requested!r}; choose auto, single, multi or global")
    return requested


@dataclass(frozen=True)
class FrameGrid:
    """Sizes of one forward pass; tokens live as [B*T*N, P, C] between blocks."""

    batch: int
    time_steps: int
    cameras: int
    tokens_per_frame: int

    def frames_per_group(self, grouping: str) -> int:
        """Number of frames joined into one attention sequence by this grouping."""
        return {"image": 1, "time": self.time_steps, "view": self.cameras,
                "all": self.time_steps * self.cameras}[grouping]

    def group(self, tokens: torch.Tensor, grouping: str) -> torch.Tensor:
        """[B*T*N, P, C] frame-major tokens -> [groups, frames_per_group * P, C]."""
        b, t, n, p = self.batch, self.time_steps, self.cameras, self.tokens_per_frame
        c = tokens.shape[-1]
        if grouping == "image":
            return tokens
        if grouping == "time":
            return tokens.view(b, t, n, p, c).transpose(1, 2).reshape(b * n, t * p, c)
        if grouping == "view":
            return tokens.view(b * t, n * p, c)
        return tokens.view(b, t * n * p, c)

    def ungroup(self, tokens: torch.Tensor, grouping: str) -> torch.Tensor:
        """Inverse of `group`: back to [B*T*N, P, C] in t-major frame order."""
        b, t, n, p = self.batch, self.time_steps, self.cameras, self.tokens_per_frame
        c = tokens.shape[-1]
        if grouping == "time":
            return tokens.view(b, n, t, p, c).transpose(1, 2).reshape(b * t * n, p, c)
        return tokens.reshape(b * t * n, p, c)
