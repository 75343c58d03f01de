"""A long run's per-pixel predictions on disk: one `.npy` file per key in the run's folder, written a window at a
time and read a slice at a time.

Nothing stays mapped between calls: each write or read maps the file, copies, and unmaps it. Pages a process keeps
mapped count towards its memory (RSS) for as long as the mapping lives, so a long-lived memmap would grow with every
time step the scene or an export had read; this way a run's memory is the slice at hand, whatever T is.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np


class StoredArray:
    """A read-only [T, ...] array whose data stays in its `.npy` file: indexing returns an in-memory copy of just
    that part, `np.asarray` the whole (for the small arrays only)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        mapped = np.load(self.path, mmap_mode="r")
        self.shape: tuple[int, ...] = tuple(mapped.shape)
        self.dtype = mapped.dtype
        del mapped

    @property
    def ndim(self) -> int:
        """Number of dimensions, as ndarray has it."""
        return len(self.shape)

    @property
    def size(self) -> int:
        """Number of values."""
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        """Bytes of the whole array (on disk, not in memory)."""
        return self.size * self.dtype.itemsize

    def __len__(self) -> int:
        return self.shape[0]

    def __getitem__(self, index) -> np.ndarray:
        mapped = np.load(self.path, mmap_mode="r")
        return np.array(mapped[index])

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        whole = self[...]
        return whole if dtype is None else whole.astype(dtype)

    def __repr__(self) -> str:
        return f"StoredArray({self.path.name}, shape={self.shape}, dtype={self.dtype})"


class StoreWriter:
    """`writer[index] = values` into one key's file (mapped for that assignment only): what a decoder or a window
    writes into."""

    def __init__(self, path: Path, shape: tuple[int, ...], dtype) -> None:
        self.path, self.shape, self.dtype = path, tuple(shape), np.dtype(dtype)

    def __setitem__(self, index, values) -> None:
        mapped = np.lib.format.open_memmap(self.path, mode="r+")
        mapped[index] = values
        mapped.flush()
        del mapped


class PredictionStore:
    """The folder holding one run's stored arrays (a key per file); created empty, removed with `delete`."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.folder.mkdir(parents=True, exist_ok=True)

    def path_of(self, key: str) -> Path:
        """Where a key's file lives (keys are the pipeline's own names, never a user's)."""
        if not key.replace("_", "").isalnum():
            raise ValueError(f"not a prediction key: {key!r}")
        return self.folder / f"{key}.npy"

    def create(self, key: str, shape: tuple[int, ...], dtype) -> StoreWriter:
        """A new zero-filled file of `shape` (sparse on disk until written) and its writer."""
        mapped = np.lib.format.open_memmap(self.path_of(key), mode="w+", dtype=np.dtype(dtype), shape=tuple(shape))
        del mapped
        return StoreWriter(self.path_of(key), shape, dtype)

    def array(self, key: str) -> StoredArray:
        """The key's array, read a slice at a time."""
        return StoredArray(self.path_of(key))

    def keys(self) -> list[str]:
        """Keys written so far."""
        return sorted(path.stem for path in self.folder.glob("*.npy"))

    def bytes_on_disk(self) -> int:
        """Bytes the store's files take."""
        return sum(path.stat().st_size for path in self.folder.glob("*.npy"))

    def delete(self) -> None:
        """Remove the folder (arrays already read stay valid: they are copies)."""
        shutil.rmtree(self.folder, ignore_errors=True)
