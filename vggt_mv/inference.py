"""Running VGGT_MV for a user: device choice, bf16 autocast on CUDA, numpy predictions over [T, N]."""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import numpy as np
import torch

from vggt_mv.geometry import pose_encoding_to_extri_intri
from vggt_mv.heads.track import TrackContext


def pick_device(requested: str | None = None) -> torch.device:
    """CUDA when present (the demo's GPU), else CPU; an explicit request wins."""
    if requested and requested != "auto":
        return torch.device(requested)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


@contextlib.contextmanager
def autocast_context(device: torch.device | str) -> Iterator[None]:
    """bf16 autocast for the aggregator on CUDA (the model keeps its heads in fp32); fp32 elsewhere."""
    device = torch.device(device)
    if device.type == "cuda":
        with torch.autocast("cuda", dtype=torch.bfloat16):
            yield
    else:
        yield


def predict(model: torch.nn.Module, images: torch.Tensor, mode: str | None = None,
            query_points: torch.Tensor | None = None,
            progress: Callable[[int, int, str], None] | None = None) -> dict[str, np.ndarray]:
    """images [T, N, 3, H, W] in [0, 1] -> numpy predictions [T, N, ...] plus extrinsic/intrinsic per frame.

    `progress(done, total, stage)` is called after each aggregator layer and each head (chunk).
    """
    predictions, _ = _predict(model, images, mode, query_points, progress, keep_track_context=False)
    return predictions


def predict_with_track_context(model: torch.nn.Module, images: torch.Tensor, mode: str | None = None,
                               query_points: torch.Tensor | None = None,
                               progress: Callable[[int, int, str], None] | None = None,
                               ) -> tuple[dict[str, np.ndarray], TrackContext | None]:
    """`predict`, plus the track head's context moved to the CPU (device memory is freed; see `predict_tracks`)."""
    return _predict(model, images, mode, query_points, progress, keep_track_context=True)


def predict_tracks(model: torch.nn.Module, context: TrackContext,
                   query_points: torch.Tensor | np.ndarray) -> dict[str, np.ndarray]:
    """Only the track head on a kept context: query points [K, 2] -> track [T, N, K, 2], vis and conf [T, N, K]."""
    queries = torch.as_tensor(np.asarray(query_points, dtype=np.float32)).reshape(1, -1, 2)
    with torch.inference_mode():
        outputs = model.track(context, queries)
    return {name: tensor[0].float().cpu().numpy() for name, tensor in outputs.items()}


def _predict(model: torch.nn.Module, images: torch.Tensor, mode: str | None, query_points: torch.Tensor | None,
             progress: Callable[[int, int, str], None] | None,
             keep_track_context: bool) -> tuple[dict[str, np.ndarray], TrackContext | None]:
    """One forward under inference mode (bf16 autocast on CUDA), numpy out, the context (if kept) on the CPU."""
    device = next(model.parameters()).device
    batch = images.unsqueeze(0).to(device, non_blocking=True)
    queries = None if query_points is None else query_points.to(device).reshape(1, -1, 2)
    context = None
    with torch.inference_mode(), autocast_context(device):
        if keep_track_context:
            outputs, context = model.forward_with_track_context(batch, query_points=queries, mode=mode,
                                                                progress=progress)
        else:
            outputs = model(batch, query_points=queries, mode=mode, progress=progress)
    height, width = images.shape[-2:]
    if "pose_enc" in outputs:
        extrinsic, intrinsic = pose_encoding_to_extri_intri(outputs["pose_enc"], (height, width))
        outputs["extrinsic"], outputs["intrinsic"] = extrinsic, intrinsic
    result = {name: tensor[0].float().cpu().numpy() for name, tensor in outputs.items()}
    result["images"] = images.float().cpu().numpy()
    if context is not None:
        # The caller's CPU images stand in for the device copy (same values, no second host copy).
        context = TrackContext({i: t.cpu() for i, t in context.layers.items()}, context.patch_start_idx,
                               images.reshape(1, -1, *images.shape[-3:]), context.grid)
    return result, context
