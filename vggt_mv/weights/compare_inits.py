"""Which initialisations a checkpoint comparison checks equal tensors against: VGGT_MV's, for the configuration the
checkpoints' headers were saved from.

Two checkpoints that agree on a tensor agree for one of two reasons: it was frozen after training, or it never
trained in either and still holds its init (two random inits share every LayerNorm at 1 and every zero bias). The
untrained-tensor detector (untrained.py) tells them apart, but it needs the model's init of each key; the model is
built on the meta device from the config `config_inference` reads off b's header (a's when b's is not a VGGT_MV
state dict). Checkpoints of another model get no reference, and their equal modules stay "unchanged" without a
verdict.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping

from vggt_mv.config import VGGTMVConfig
from vggt_mv.weights.config_inference import HEAD_FIELDS, infer_config, matching_preset
from vggt_mv.weights.meta_build import build_on_meta
from vggt_mv.weights.untrained import InitSpec, init_specs

SPARSE_GLOBAL_KEY = "aggregator.memory_tokens"
DUAL_STREAM_PREFIX = "aggregator.pose_frame_blocks."


@dataclass(frozen=True)
class InitReference:
    """The inits of one model: key -> its possible inits and its shape, and which model that is, in words."""

    description: str
    specs: dict[str, list[InitSpec]]
    shapes: dict[str, tuple[int, ...]]

    def specs_for(self, key: str, shape: tuple[int, ...]) -> list[InitSpec]:
        """The inits of `key` when the model has it with this shape (none otherwise: another tensor)."""
        return self.specs.get(key, []) if self.shapes.get(key) == tuple(shape) else []


def header_config(tensors: Mapping) -> tuple[VGGTMVConfig, str] | None:
    """The VGGT_MV config a header was saved from and its name ("the `tiny` preset"), or None when the header is
    no VGGT_MV state dict or its sizes make no buildable config."""
    fields = infer_config(tensors)
    if fields is None:
        return None
    switches = {flag: fields[flag] for flag in HEAD_FIELDS}
    memory = tensors.get(SPARSE_GLOBAL_KEY)
    if memory is not None and len(memory.shape) == 3:
        switches.update(enable_sparse_global=True, num_memory_tokens=memory.shape[1])
    switches["enable_dual_stream"] = any(key.startswith(DUAL_STREAM_PREFIX) for key in tensors)
    preset = matching_preset(fields)
    try:
        if preset is not None:
            return VGGTMVConfig.from_preset(preset, **switches), f"the `{preset}` preset"
        sizes = {name: value for name, value in fields.items() if name not in HEAD_FIELDS}
        return VGGTMVConfig(**sizes, **switches), "a config of its own sizes"
    except (TypeError, ValueError):
        return None


def init_reference(tensors_a: Mapping, tensors_b: Mapping, roles: tuple[str, str] = ("a", "b")
                   ) -> InitReference | None:
    """The inits of the VGGT_MV that b's header (else a's) fits, or None when neither is a VGGT_MV state dict."""
    from vggt_mv.model import VGGT_MV

    for role, tensors in ((roles[1], tensors_b), (roles[0], tensors_a)):
        found = header_config(tensors)
        if found is None:
            continue
        config, name = found
        model = build_on_meta(lambda: VGGT_MV(config))
        shapes = {key: tuple(value.shape) for key, value in model.state_dict(keep_vars=True).items()}
        return InitReference(f"VGGT_MV, {name} (read off {role}'s header)", init_specs(model), shapes)
    return None
