"""Read ahead of a stream of memory-mapped tensors: ask the kernel for the next bytes before they are touched.

Why: a tensor read through a memory map faults its pages in as it is touched, synchronously. From a cold page
cache, comparing the two full-size VGGT-1B files that way took 189 s where one sequential read of both took 14 s
(benchmarks/bench_compare.py, busy machine); telling the kernel which byte ranges come next (posix_fadvise
WILLNEED), a window ahead, brought it to 8.5 s. The untrained scan, which needs only the first chunk of most
tensors, hints just those bytes (`bytes_per_key`): 23 s -> 1.1 s. Only the safetensors files of a source have
known byte ranges (their header says where each tensor lies); other formats, and systems without posix_fadvise,
simply get no read-ahead.
"""

from __future__ import annotations

import os
from pathlib import Path

from vggt_mv.weights.errors import WeightsSourceError
from vggt_mv.weights.sources import DDP_PREFIX, Source, parse_safetensors_header

WINDOW_BYTES = 64 * 1024 * 1024  # measured from a cold cache: 64 MiB beat 256 MiB and 1 GiB (noisy machine)

ByteRange = tuple[Path, int, int]  # file, offset, length


def tensor_ranges(source: Source) -> dict[str, ByteRange]:
    """key -> (file, offset, length) of each tensor of a safetensors source; {} for other formats."""
    if source.format != "safetensors":
        return {}
    ranges: dict[str, ByteRange] = {}
    try:
        for path in source.files:
            header, data_start = parse_safetensors_header(path)
            for key, entry in header.items():
                begin, end = entry["data_offsets"]
                ranges[key] = (path, data_start + begin, end - begin)
    except WeightsSourceError:
        return {}  # the file changed since it was opened: read without hints
    if source.tensors and all(key not in ranges for key in source.tensors):  # keys were stripped of `module.`
        ranges = {key[len(DDP_PREFIX):]: value for key, value in ranges.items() if key.startswith(DDP_PREFIX)}
    return ranges


class ReadAhead:
    """Keeps WILLNEED hints `window_bytes` ahead of the tensor being visited, on every source that has ranges."""

    def __init__(self, sources: list[Source], keys: list[str], window_bytes: int = WINDOW_BYTES,
                 bytes_per_key: int | None = None):
        """`bytes_per_key`: hint only the first bytes of each tensor (a reader that may stop after them)."""
        self.keys = keys
        self.window_bytes = window_bytes
        self.ranges = [r for r in (tensor_ranges(s) for s in sources) if r] if hasattr(os, "posix_fadvise") else []
        if bytes_per_key is not None:
            self.ranges = [{key: (path, offset, min(length, bytes_per_key))
                            for key, (path, offset, length) in r.items()} for r in self.ranges]
        self.starts = []  # stream position (bytes, larger side) where each key starts
        position = 0
        for key in keys:
            self.starts.append(position)
            position += max((ranges[key][2] for ranges in self.ranges if key in ranges), default=0)
        self.descriptors: dict[Path, int] = {}
        self.next_index = 0  # first key not hinted yet

    def _hint(self, key: str) -> None:
        """Tell the kernel this key's bytes are wanted soon, on every side."""
        for ranges in self.ranges:
            if key not in ranges:
                continue
            path, offset, length = ranges[key]
            try:
                if path not in self.descriptors:
                    self.descriptors[path] = os.open(path, os.O_RDONLY)
                os.posix_fadvise(self.descriptors[path], offset, length, os.POSIX_FADV_WILLNEED)
            except OSError:
                continue  # a hint, never a failure

    def visit(self, index: int) -> None:
        """Call before reading keys[index]: hints every key up to `window_bytes` past its start."""
        if not self.ranges:
            return
        horizon = self.starts[index] + self.window_bytes
        while self.next_index < len(self.keys) and (self.next_index <= index
                                                    or self.starts[self.next_index] < horizon):
            self._hint(self.keys[self.next_index])
            self.next_index += 1

    def close(self) -> None:
        for descriptor in self.descriptors.values():
            os.close(descriptor)
        self.descriptors.clear()

    def __enter__(self) -> "ReadAhead":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def file_order(source: Source, keys: list[str]) -> list[str]:
    """keys sorted by where their data lies in `source` (sequential reads); unchanged when that is unknown."""
    ranges = tensor_ranges(source)
    if not ranges or any(key not in ranges for key in keys):
        return keys
    return sorted(keys, key=lambda key: (str(ranges[key][0]), ranges[key][1]))
