"""Which VGGT_MV configuration a checkpoint was saved from, read off its header's key names and shapes alone.

A checkpoint of another size (a `tiny` checkpoint against `vggt-1b`) otherwise shows up as hundreds of shape
mismatches; the fields that differ, and the preset they make, say what to build instead.
"""

from __future__ import annotations

import re
from typing import Mapping

from vggt_mv.config import PRESETS, VGGTMVConfig

# Fields whose difference makes tensors of other shapes (or none); heads only count when the model has one.
SHAPE_FIELDS = ("embed_dim", "depth", "num_heads", "mlp_ratio", "num_register_tokens", "patch_embed",
                "camera_trunk_depth")
HEAD_FIELDS = {"enable_camera": "camera_head", "enable_point": "point_head", "enable_depth": "depth_head",
               "enable_track": "track_head"}
DINOV2_BY_WIDTH = {384: "dinov2_vits14_reg", 768: "dinov2_vitb14_reg", 1024: "dinov2_vitl14_reg",
                   1536: "dinov2_vitg2_reg"}
BLOCK_INDEX = re.compile(r"aggregator\.(?:frame|time)_blocks\.(\d+)\.")
TRUNK_INDEX = re.compile(r"camera_head\.trunk\.(\d+)\.")


def _shape(tensors: Mapping, key: str, rank: int) -> tuple[int, ...] | None:
    """The shape of `key` if it has the rank VGGT_MV gives it (anything else says nothing about the config)."""
    info = tensors.get(key)
    shape = None if info is None else tuple(info.shape)
    return shape if shape is not None and len(shape) == rank and all(size > 0 for size in shape) else None


def _count(pattern: re.Pattern, keys) -> int:
    """1 + the highest index the pattern finds (0 when none)."""
    indices = [int(m.group(1)) for key in keys if (m := pattern.match(key))]
    return max(indices) + 1 if indices else 0


def infer_config(tensors: Mapping) -> dict | None:
    """VGGTMVConfig fields a header pins down ({key: object with .shape}), or None when it is not a whole VGGT_MV
    (or VGGT) state dict."""
    camera_token = _shape(tensors, "aggregator.camera_token", 4)
    if camera_token is None or camera_token[:3] != (1, 2, 1):
        return None
    width = camera_token[-1]
    fields: dict = {"embed_dim": width}
    register = _shape(tensors, "aggregator.register_token", 4)
    if register is not None and register[-1] == width:
        fields["num_register_tokens"] = register[2]
    depth = _count(BLOCK_INDEX, tensors)
    if depth:
        fields["depth"] = depth
    head_dim = _shape(tensors, "aggregator.frame_blocks.0.attn.q_norm.weight", 1)
    if head_dim and width % head_dim[0] == 0:
        fields["num_heads"] = width // head_dim[0]
    hidden = _shape(tensors, "aggregator.frame_blocks.0.mlp.fc1.weight", 2)
    if hidden and hidden[1] == width:
        fields["mlp_ratio"] = hidden[0] / width
    if "aggregator.patch_embed.proj.weight" in tensors:
        fields["patch_embed"] = "conv"
    else:
        cls_token = _shape(tensors, "aggregator.patch_embed.cls_token", 3)
        if cls_token and cls_token[-1] in DINOV2_BY_WIDTH:
            fields["patch_embed"] = DINOV2_BY_WIDTH[cls_token[-1]]
    prefixes = {key.split(".", 1)[0] for key in tensors}
    for flag, module in HEAD_FIELDS.items():
        fields[flag] = module in prefixes
    trunk = _count(TRUNK_INDEX, tensors)
    if trunk:
        fields["camera_trunk_depth"] = trunk
    return fields


def matching_preset(fields: dict) -> str | None:
    """The preset whose config has every inferred size (heads aside), or None."""
    for name in PRESETS:
        config = VGGTMVConfig.from_preset(name).to_dict()
        if all(config[field] == fields[field] for field in SHAPE_FIELDS if field in fields):
            return name
    return None


def config_difference(source: dict | None, model: dict | None, empty_modules: list[str]) -> dict[str, tuple]:
    """{field: (source value, model value)} for sizes that differ, and heads the model has, the source lacks and
    nothing else loaded (a head another source filled is no problem)."""
    if not source or not model:
        return {}
    difference = {field: (source[field], model[field]) for field in SHAPE_FIELDS
                  if field in source and field in model and source[field] != model[field]}
    for flag, module in HEAD_FIELDS.items():
        if model.get(flag) and not source.get(flag) and module in empty_modules:
            difference[flag] = (False, True)
    return difference


def describe_fields(fields: dict) -> str:
    """'embed_dim 768 (dinov2_vitb14_reg), depth 12' for a message."""
    parts = []
    for field, value in fields.items():
        if field == "embed_dim" and value in DINOV2_BY_WIDTH and "patch_embed" not in fields:
            parts.append(f"embed_dim {value} ({DINOV2_BY_WIDTH[value]} width)")
        else:
            parts.append(f"{field} {value}")
    return ", ".join(parts)


def suggested_config(source: dict, difference: dict[str, tuple]) -> tuple[str | None, str]:
    """(preset name or None, what to build): "VGGTMVConfig.from_preset('tiny')" or "VGGTMVConfig(embed_dim=768, ...)"."""
    preset = matching_preset(source)
    if preset is not None:
        heads = {field: False for field in difference if field in HEAD_FIELDS}
        extra = "".join(f", {field}=False" for field in heads)
        return preset, f"VGGTMVConfig.from_preset({preset!r}{extra})"
    arguments = ", ".join(f"{field}={value[0]!r}" for field, value in difference.items())
    return None, f"VGGTMVConfig({arguments})"
