"""Full-size checkpoint files without the disk: real safetensors headers over a data region that is a hole."""

from __future__ import annotations

import json
import struct
from pathlib import Path

import torch

from vggt_mv.weights.known_layouts import reference_layout  # noqa: F401 - re-exported for the tests
from vggt_mv.weights.sources import SAFETENSORS_DTYPES

DTYPE_CODES = {dtype: code for code, dtype in SAFETENSORS_DTYPES.items()}


def write_sparse_safetensors(path: Path, layout: dict[str, list[int]], dtype: torch.dtype = torch.float32) -> Path:
    """A valid safetensors file whose data region is never written (a sparse hole on disk)."""
    itemsize = torch.empty((), dtype=dtype).element_size()
    header, offset = {}, 0
    for key, shape in layout.items():
        size = itemsize * int(torch.Size(shape).numel())
        header[key] = {"dtype": DTYPE_CODES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    encoded = json.dumps(header).encode()
    encoded += b" " * (-len(encoded) % 8)
    with path.open("wb") as handle:
        handle.write(struct.pack("<Q", len(encoded)))
        handle.write(encoded)
        handle.truncate(8 + len(encoded) + offset)
    return path
