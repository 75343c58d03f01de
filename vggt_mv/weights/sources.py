"""Weights sources: local safetensors (single or sharded), torch pickles read safely, or Hub repos.

Opening a source reads headers only (safetensors JSON header, or `torch.load(mmap=True)` which maps
the file without reading tensor data); tensors are materialised only when a real load asks for them.
"""

from __future__ import annotations

import json
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from vggt_mv.weights.errors import WeightsSourceError, first_line

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool,
}
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
WRAPPER_KEYS = ("model", "state_dict")
DDP_PREFIX = "module."
MAX_HEADER_BYTES = 100 * 1024 * 1024
# A missing `dir/file.safetensors` is a typo'd local path, not a Hub repo id: say "not found", never go online.
LOCAL_ONLY_SUFFIXES = (".safetensors", ".json") + TORCH_SUFFIXES


@dataclass(frozen=True)
class TensorInfo:
    """What a header says about one tensor."""

    shape: tuple[int, ...]
    dtype: torch.dtype

    @property
    def numel(self) -> int:
        """Number of elements (parameters)."""
        count = 1
        for size in self.shape:
            count *= size
        return count


@dataclass
class Source:
    """An opened source: its keys and shapes, and a way to get each tensor when really loading."""

    role: str
    location: str
    files: list[Path]
    format: str
    tensors: dict[str, TensorInfo]
    notes: list[str] = field(default_factory=list)
    _fetch: Callable[[str], torch.Tensor] | None = None

    def tensor(self, key: str) -> torch.Tensor:
        """The tensor stored under `key` (memory-mapped where the format allows)."""
        if self._fetch is None:
            raise RuntimeError(f"source {self.location} was opened for headers only")
        return self._fetch(key)


def parse_safetensors_header(path: Path) -> tuple[dict[str, dict], int]:
    """The JSON header and where the data region starts; checks every tensor lies inside the file."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            prefix = handle.read(8)
            if len(prefix) < 8:
                raise WeightsSourceError(f"{path}: not a safetensors file (only {len(prefix)} bytes)")
            (header_length,) = struct.unpack("<Q", prefix)
            if header_length > min(MAX_HEADER_BYTES, size - 8):
                raise WeightsSourceError(f"{path}: corrupt or truncated safetensors file (header claims "
                                         f"{header_length} bytes, file has {size})")
            header = json.loads(handle.read(header_length))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise WeightsSourceError(f"{path}: corrupt safetensors header ({error})") from None
    except OSError as error:
        raise WeightsSourceError(f"{path}: cannot read ({error.strerror})") from None
    if not isinstance(header, dict):
        raise WeightsSourceError(f"{path}: corrupt safetensors header (not a JSON object)")
    header.pop("__metadata__", None)
    data_start = 8 + header_length
    data_size = size - data_start
    for key, entry in header.items():
        if not isinstance(entry, dict) or entry.get("dtype") not in SAFETENSORS_DTYPES:
            raise WeightsSourceError(f"{path}: corrupt safetensors header (entry {key!r})")
        begin, end = entry["data_offsets"]
        itemsize = torch.empty((), dtype=SAFETENSORS_DTYPES[entry["dtype"]]).element_size()
        expected = itemsize * TensorInfo(tuple(entry["shape"]), torch.float32).numel
        if end - begin != expected or begin < 0:
            raise WeightsSourceError(f"{path}: corrupt safetensors header (tensor {key!r} has {end - begin} bytes, "
                                     f"its shape needs {expected})")
        if end > data_size:
            raise WeightsSourceError(f"{path}: truncated safetensors file: tensor {key!r} ends at byte "
                                     f"{data_start + end}, the file has {size} bytes")
    return header, data_start


def open_safetensors_files(paths: list[Path], with_data: bool) -> tuple[dict[str, TensorInfo], Callable | None]:
    """Headers of one or more safetensors files; data through one private memory map per file."""
    infos: dict[str, TensorInfo] = {}
    locations: dict[str, tuple[Path, dict, int]] = {}
    for path in paths:
        header, data_start = parse_safetensors_header(path)
        for key, entry in header.items():
            infos[key] = TensorInfo(tuple(entry["shape"]), SAFETENSORS_DTYPES[entry["dtype"]])
            locations[key] = (path, entry, data_start)
    if not with_data:
        return infos, None
    storages: dict[Path, torch.UntypedStorage] = {}

    def fetch(key: str) -> torch.Tensor:
        path, entry, data_start = locations[key]
        if path not in storages:
            storages[path] = torch.UntypedStorage.from_file(str(path), shared=False, nbytes=path.stat().st_size)
        info = infos[key]
        begin, end = entry["data_offsets"]
        raw = torch.empty(0, dtype=torch.uint8).set_(storages[path], data_start + begin, (end - begin,))
        if (data_start + begin) % info.dtype.itemsize:
            raw = raw.clone()  # writers that do not align tensors: a view would be refused, so copy this one
        return raw.view(info.dtype).view(info.shape)

    return infos, fetch


def unwrap_state_dict(obj: object, path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    """Peel `{"model": ...}` / `{"state_dict": ...}` wrappers and a DDP `module.` prefix."""
    while isinstance(obj, dict):
        wrapper = next((key for key in WRAPPER_KEYS if key in obj and isinstance(obj[key], dict)), None)
        if wrapper is None:
            break
        notes.append(f"unwrapped the {wrapper!r} entry of the checkpoint dict")
        obj = obj[wrapper]
    if not isinstance(obj, dict) or not obj:
        raise WeightsSourceError(f"{path}: holds no state dict (found {type(obj).__name__})")
    tensors = {key: value for key, value in obj.items() if isinstance(value, torch.Tensor)}
    if not tensors:
        raise WeightsSourceError(f"{path}: holds no tensors")
    if all(key.startswith(DDP_PREFIX) for key in tensors):
        notes.append("stripped the 'module.' prefix of every key (a checkpoint saved from DataParallel/DDP)")
        tensors = {key[len(DDP_PREFIX):]: value for key, value in tensors.items()}
    return tensors


def open_torch_file(path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    """torch.load with weights_only (never runs pickled code) and mmap (no data read until used)."""
    try:
        use_mmap = zipfile.is_zipfile(path)
        if not use_mmap:
            notes.append("legacy (non-zip) torch file: read whole, cannot be memory-mapped")
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as error:
        raise WeightsSourceError(f"{path}: refused to unpickle: it contains objects other than tensors, and "
                                 f"loading it would run code ({first_line(error)})") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as error:
        raise WeightsSourceError(f"{path}: not a readable torch checkpoint ({first_line(error)})") from None
    return unwrap_state_dict(obj, path, notes)


def index_shards(index_path: Path) -> list[Path]:
    """Shard files named by a `model.safetensors.index.json`."""
    try:
        weight_map = json.loads(index_path.read_text())["weight_map"]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise WeightsSourceError(f"{index_path}: not a safetensors index ({error})") from None
    shards = [index_path.parent / name for name in sorted(set(weight_map.values()))]
    missing = [str(shard) for shard in shards if not shard.is_file()]
    if missing:
        raise WeightsSourceError(f"{index_path}: shard files missing: {', '.join(missing)}")
    return shards


def local_weight_files(path: Path) -> tuple[list[Path], str]:
    """The files and format behind a local file or directory."""
    if path.is_dir():
        for name in ("model.safetensors.index.json", "model.safetensors"):
            if (path / name).is_file():
                return local_weight_files(path / name)
        candidates = sorted(p for p in path.iterdir() if p.suffix in (".safetensors",) + TORCH_SUFFIXES)
        if len(candidates) == 1:
            return local_weight_files(candidates[0])
        raise WeightsSourceError(f"{path}: directory has no model.safetensors and {len(candidates)} weight files; "
                                 "name the file")
    if path.name.endswith(".index.json"):
        return index_shards(path), "safetensors"
    if path.suffix == ".safetensors":
        return [path], "safetensors"
    if path.suffix in TORCH_SUFFIXES:
        return [path], "torch"
    raise WeightsSourceError(f"{path}: unknown weights format (expected .safetensors, "
                             f"model.safetensors.index.json, {', '.join(TORCH_SUFFIXES)})")


def open_source(role: str, location: str | Path, with_data: bool = False) -> Source:
    """Open a local path or a Hub repo id (`hf://owner/name` forces the Hub); headers only unless `with_data`."""
    from vggt_mv.weights.hub import HUB_SCHEME, download_from_hub, looks_like_repo_id

    if str(location).startswith(HUB_SCHEME):
        path = download_from_hub(str(location)[len(HUB_SCHEME):])
    else:
        path = Path(location).expanduser()
    if not path.exists():
        if looks_like_repo_id(str(location)) and not str(location).endswith(LOCAL_ONLY_SUFFIXES):
            path = download_from_hub(str(location))
        else:
            raise WeightsSourceError(f"{role} weights not found: {location} (no such file, and not a Hub repo id)")
    files, file_format = local_weight_files(path)
    notes: list[str] = []
    if file_format == "safetensors":
        infos, fetch = open_safetensors_files(files, with_data)
    else:
        state = open_torch_file(files[0], notes)
        infos = {key: TensorInfo(tuple(value.shape), value.dtype) for key, value in state.items()}
        fetch = state.__getitem__ if with_data else None
    if file_format == "safetensors" and infos and all(key.startswith(DDP_PREFIX) for key in infos):
        notes.append("stripped the 'module.' prefix of every key (a checkpoint saved from DataParallel/DDP)")
        inner_fetch = fetch
        infos = {key[len(DDP_PREFIX):]: info for key, info in infos.items()}
        fetch = (lambda key: inner_fetch(DDP_PREFIX + key)) if inner_fetch else None
    if not infos:
        raise WeightsSourceError(f"{role} weights {location}: the file holds no tensors")
    return Source(role=role, location=str(location), files=files, format=file_format, tensors=infos,
                  notes=notes, _fetch=fetch)
