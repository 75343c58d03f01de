"""Named tensor transforms that rule files may ask for (`transform = "name"`); none is built in.

A transform changes a source tensor on its way into the model (a transpose, a split, a reshape) and says what
shape it produces from a source shape, so a dry run can check shapes from headers alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable

import torch

TRANSFORM_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class Transform:
    """A tensor function and the shape it makes of a source shape."""

    function: Callable[[torch.Tensor], torch.Tensor]
    shape: Callable[[tuple[int, ...]], tuple[int, ...]]


_REGISTRY: dict[str, Transform] = {}


def register_transform(name: str, function: Callable[[torch.Tensor], torch.Tensor],
                       shape: Callable[[tuple[int, ...]], tuple[int, ...]] | None = None) -> None:
    """Make `transform = "<name>"` usable in rule files; `shape` defaults to "unchanged"."""
    if not isinstance(name, str) or not TRANSFORM_NAME.fullmatch(name):
        raise ValueError(f"transform name {name!r}: letters, digits, '_', '-', '.' (64 at most), starting with a letter")
    _REGISTRY[name] = Transform(function, shape or (lambda source_shape: tuple(source_shape)))


def unregister_transform(name: str) -> None:
    """Forget a transform (tests register and remove their own)."""
    _REGISTRY.pop(name, None)


def get_transform(name: str) -> Transform | None:
    """The registered transform of that name, or None."""
    return _REGISTRY.get(name)


def transform_names() -> list[str]:
    """Every registered name, for messages."""
    return sorted(_REGISTRY)
