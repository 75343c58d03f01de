"""VGGT's prediction heads: camera, DPT (points and depth) and tracks."""

from vggt_mv.heads.camera import CameraHead
from vggt_mv.heads.dpt import DPTHead
from vggt_mv.heads.track import TrackHead

__all__ = ["CameraHead", "DPTHead", "TrackHead"]
