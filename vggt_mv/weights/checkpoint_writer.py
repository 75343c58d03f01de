"""Saving a VGGT_MV model as a safetensors checkpoint that says what it is: its config and the attention mode its
weights were trained with, in the file's `__metadata__` (strings only, as safetensors requires).

The file holds every `state_dict()` key under its own name, so `build_and_load(config, checkpoint=path)` loads
every tensor with status `checkpoint`. Metadata written here (all keys but `format` start with `vggt_mv.`):

- `format`: "pt" (the safetensors convention other tools check)
- `vggt_mv.format`: FORMAT_MARKER, the sign that save_checkpoint wrote the file
- `vggt_mv.config`: the model's VGGTMVConfig as JSON (read back with `config_from_metadata`)
- `vggt_mv.trained_attention`: "multi", "global" or "single" (read back by trained_attention.py)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn as nn
from safetensors.torch import save_file

from vggt_mv.config import VGGTMVConfig

TRAINED_ATTENTION_MODES = ("multi", "global", "single")
FORMAT_KEY = "vggt_mv.format"
FORMAT_MARKER = "vggt_mv-checkpoint/1"
CONFIG_KEY = "vggt_mv.config"
TRAINED_ATTENTION_KEY = "vggt_mv.trained_attention"
RESERVED_KEYS = ("format", FORMAT_KEY, CONFIG_KEY, TRAINED_ATTENTION_KEY)
CHECKPOINT_SUFFIX = ".safetensors"


def check_trained_attention(mode: object) -> str:
    """The mode itself when it is one a model can be trained with ("auto" is a choice at run time, not a training)."""
    if mode not in TRAINED_ATTENTION_MODES:
        raise ValueError(f"trained_attention must be one of {', '.join(TRAINED_ATTENTION_MODES)} (the attention mode "
                         f"the weights were trained with), got {mode!r}")
    return mode


def checkpoint_metadata(config: VGGTMVConfig, trained_attention: str,
                        extra_metadata: Mapping[str, str] | None = None) -> dict[str, str]:
    """The `__metadata__` of a VGGT_MV checkpoint; extra entries may add to it, never replace what it records."""
    metadata = {"format": "pt", FORMAT_KEY: FORMAT_MARKER, CONFIG_KEY: json.dumps(config.to_dict(), sort_keys=True),
                TRAINED_ATTENTION_KEY: check_trained_attention(trained_attention)}
    for key, value in (extra_metadata or {}).items():
        if not isinstance(key, str) or not isinstance(value, str):
            raise ValueError(f"extra_metadata must map strings to strings (a safetensors rule), got {key!r}: "
                             f"{type(value).__name__}")
        if key in RESERVED_KEYS:
            raise ValueError(f"extra_metadata key {key!r} is written by save_checkpoint itself; choose another")
        metadata[key] = value
    return metadata


def config_from_metadata(metadata: Mapping[str, str]) -> VGGTMVConfig:
    """The VGGTMVConfig a checkpoint written by save_checkpoint records, to build the model its tensors fit."""
    if metadata.get(FORMAT_KEY) != FORMAT_MARKER or CONFIG_KEY not in metadata:
        raise ValueError(f"not a checkpoint written by save_checkpoint (no {FORMAT_KEY} {FORMAT_MARKER!r} with a "
                         f"{CONFIG_KEY} entry)")
    try:
        return VGGTMVConfig(**json.loads(metadata[CONFIG_KEY]))
    except (TypeError, ValueError) as error:  # bad JSON, unknown fields, or sizes the config refuses
        raise ValueError(f"the checkpoint's {CONFIG_KEY} is not a usable VGGTMVConfig: {error}") from None


def tensors_to_save(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every state_dict entry as a dense CPU tensor with bytes of its own, so safetensors can store each key.

    Tensors whose bytes overlap another's (tied or aliased weights) are copied: safetensors refuses to store
    shared memory, and dropping a name would leave that key random on the next load. Views of one storage that do
    not overlap (a model loaded from one memory-mapped file) are kept as they are, without a copy.
    """
    state = model.state_dict()
    without_data = [key for key, value in state.items() if value.is_meta]
    if without_data:
        raise ValueError(f"the model has {len(without_data)} tensors without data (meta device), e.g. "
                         f"{without_data[0]!r}; load or initialise it before saving")
    tensors = {key: value.detach().to("cpu").contiguous() for key, value in state.items()}
    spans = sorted((value.untyped_storage().data_ptr(), value.data_ptr(), value.data_ptr() + value.nbytes, key)
                   for key, value in tensors.items())
    storage, reach = None, 0
    for owner, begin, end, key in spans:
        if owner != storage:
            storage, reach = owner, 0
        if begin < reach:
            tensors[key] = tensors[key].clone()
        else:
            reach = end
    return tensors


def save_checkpoint(model: nn.Module, path: str | Path, trained_attention: str, *,
                    extra_metadata: dict[str, str] | None = None) -> Path:
    """Write `model`'s weights with its config and the attention mode they were trained with, so `auto` can later
    tell VGGT_MV-trained weights from plain VGGT ones; returns the path written."""
    config = getattr(model, "config", None)
    if not isinstance(config, VGGTMVConfig):
        raise TypeError(f"save_checkpoint saves VGGT_MV models (model.config must be a VGGTMVConfig), got "
                        f"{type(model).__name__} with config {type(config).__name__}")
    path = Path(path)
    if path.suffix != CHECKPOINT_SUFFIX:
        raise ValueError(f"{path}: a VGGT_MV checkpoint is a {CHECKPOINT_SUFFIX} file (the loaders tell formats apart "
                         "by suffix)")
    metadata = checkpoint_metadata(config, trained_attention, extra_metadata)
    tensors = tensors_to_save(model)
    # Written aside and renamed, so an interrupted save never leaves a half file under the checkpoint's name.
    partial = path.with_name(path.name + ".partial")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        save_file(tensors, str(partial), metadata=metadata)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path
