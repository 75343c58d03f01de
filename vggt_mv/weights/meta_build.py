"""Build a model on the meta device without running its random inits (they produce no data there anyway).

Why bother: torch implements `normal_` on meta tensors in Python, and its first call imports torch._dynamo,
about one second of a fresh process: more than the whole rest of a dry run or of a warm full-size load.
"""

from __future__ import annotations

from typing import Callable, TypeVar

import torch
import torch.nn as nn
from torch.overrides import TorchFunctionMode

Built = TypeVar("Built", bound=nn.Module)
TENSOR_INITS = {torch.Tensor.normal_, torch.Tensor.uniform_}


def is_init_function(func) -> bool:
    """torch.nn.init.* (they dispatch as themselves) and the tensor methods they end in."""
    return func in TENSOR_INITS or getattr(func, "__module__", None) == "torch.nn.init"


class SkipInitOnMeta(TorchFunctionMode):
    """Init calls on meta tensors return the tensor untouched; everything else runs as usual."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if is_init_function(func):
            tensor = args[0] if args else kwargs.get("tensor")  # nn.init passes it by keyword
            if isinstance(tensor, torch.Tensor) and tensor.is_meta:
                return tensor
        return func(*args, **kwargs)


def build_on_meta(factory: Callable[[], Built]) -> Built:
    """factory() with every tensor on the meta device and init calls skipped."""
    with torch.device("meta"), SkipInitOnMeta():
        return factory()
