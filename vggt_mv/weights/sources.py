"""Weights sources: local safetensors (single or sharded), torch pickles read safely, or Hub repos.

Opening a source reads headers only (safetensors JSON header, or `torch.load(mmap=True)` which maps
the file without reading tensor data); tensors are materialised only when a real load asks for them.

Files may be hostile. Everything a file says is checked before it is used, and the work of opening one is
bounded by these limits rather than by what the file claims: a safetensors header of at most MAX_HEADER_BYTES
describing at most MAX_TENSORS tensors, each of a known dtype and a shape of non-negative integers, lying inside
the data region without overlapping another; a torch zip whose directory declares no more bytes than the file
holds and no compressed entry (torch.save stores entries; a compressed one is how a zip bomb inflates), with a
pickle of at most MAX_PICKLE_BYTES (unpickling is the slow part); a sharded index of at most MAX_INDEX_BYTES
whose shards resolve inside the index's folder. A legacy (non-zip) torch file is read whole: its cost is
bounded by its size. Every refusal is one WeightsSourceError line naming the file and what is wrong.
"""

from __future__ import annotations

import json
import math
import pickle
import re
import struct
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from vggt_mv.weights.errors import WeightsSourceError, first_line, first_text_line

SAFETENSORS_DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8,
    "U64": torch.uint64, "U32": torch.uint32, "U16": torch.uint16, "U8": torch.uint8,
    "BOOL": torch.bool, "C64": torch.complex64,
}
TORCH_SUFFIXES = (".pt", ".pth", ".bin")
WRAPPER_KEYS = ("model", "state_dict")
DDP_PREFIX = "module."
# Limits that bound the work of opening any file, however hostile (see the module docstring).
MAX_HEADER_BYTES = 100 * 1024 * 1024  # safetensors' own limit
MAX_TENSORS = 100_000  # VGGT-1B has 1,797 tensors
MAX_PICKLE_BYTES = 32 * 1024 * 1024  # VGGT-1B's data.pkl is far under 1 MiB; unpickling is the slow part of a dry run
MAX_INDEX_BYTES = 16 * 1024 * 1024
MAX_SHOWN_CHARS = 160  # the longest real key (VGGT-1B) is 87 characters
# A missing `dir/file.safetensors` is a typo'd local path, not a Hub repo id: say "not found", never go online.
LOCAL_ONLY_SUFFIXES = (".safetensors", ".json") + TORCH_SUFFIXES
HUB_SNAPSHOTS_FOLDER = "snapshots"
UNSAFE_GLOBAL = re.compile(r"GLOBAL (\S+) (?:was not an allowed global|whose module)")
BROKEN_ZIP_ERRORS = (zipfile.BadZipFile, zipfile.LargeZipFile, OSError, ValueError, EOFError, struct.error,
                     NotImplementedError)


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


def shown(value: object) -> str:
    """repr of something a file said, short enough for a one-line message."""
    text = repr(value)
    return text if len(text) <= MAX_SHOWN_CHARS else text[:MAX_SHOWN_CHARS] + "…"


def has_control_characters(text: str) -> bool:
    """NUL, newlines, escapes: never part of a real path or repo id."""
    return any(ord(char) < 32 or ord(char) == 127 for char in text)


def decode_json(raw: bytes, what: str, path: Path) -> object:
    """Parsed JSON, or one line saying why not (nesting deep enough to exhaust the parser included)."""
    try:
        return json.loads(raw)
    except RecursionError:
        raise WeightsSourceError(f"{path}: corrupt {what} (JSON nested too deeply)") from None
    except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
        raise WeightsSourceError(f"{path}: corrupt {what} ({first_line(error)})") from None


def read_header_bytes(path: Path) -> tuple[bytes, int]:
    """The raw JSON header of a safetensors file and the file's size, refusing a header the file cannot hold."""
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
            return handle.read(header_length), size
    except OSError as error:
        raise WeightsSourceError(f"{path}: cannot read ({error.strerror})") from None


def is_int_list(value: object) -> bool:
    """A JSON list of integers (booleans and floats excluded)."""
    return isinstance(value, list) and all(type(item) is int for item in value)


def entry_problem(entry: object, data_size: int) -> str | None:
    """What is wrong with one tensor's header entry (checked in this order), or None."""
    if not isinstance(entry, dict):
        return f"is a JSON {type(entry).__name__}, not an object"
    missing = next((name for name in ("dtype", "shape", "data_offsets") if name not in entry), None)
    if missing:
        return f"lacks {missing!r}"
    dtype, shape, offsets = entry["dtype"], entry["shape"], entry["data_offsets"]
    if not isinstance(dtype, str) or dtype not in SAFETENSORS_DTYPES:
        return f"has unknown dtype {shown(dtype)}"
    if not is_int_list(shape) or any(size < 0 for size in shape):
        return f"has a bad shape {shown(shape)}: shape must be a list of non-negative integers"
    if not is_int_list(offsets) or len(offsets) != 2:
        return f"has bad data_offsets {shown(offsets)}: data_offsets must be [begin, end] byte offsets"
    begin, end = offsets
    if not 0 <= begin <= end:
        return f"has data_offsets [{begin}, {end}] outside the data region"
    expected = math.prod(shape) * SAFETENSORS_DTYPES[dtype].itemsize
    if end - begin != expected:
        return f"has {end - begin} bytes, its shape needs {expected}"
    return None


def first_overlap(header: dict[str, dict]) -> tuple[str, str] | None:
    """Two tensors whose bytes overlap (a loaded view of one would alias the other), or None."""
    spans = sorted((entry["data_offsets"][0], entry["data_offsets"][1], key) for key, entry in header.items()
                   if entry["data_offsets"][0] < entry["data_offsets"][1])
    reach, reaching_key = 0, None
    for begin, end, key in spans:
        if begin < reach:
            return reaching_key, key
        reach, reaching_key = end, key
    return None


def check_metadata(path: Path, metadata: object) -> None:
    """`__metadata__` is optional, and a map of strings to strings when present (as safetensors requires)."""
    if metadata is None:
        return
    if not isinstance(metadata, dict) or not all(isinstance(value, str) for value in metadata.values()):
        raise WeightsSourceError(f"{path}: corrupt safetensors header: __metadata__ must map strings to strings, "
                                 f"got {shown(metadata)}")


def parse_safetensors_header(path: Path) -> tuple[dict[str, dict], int]:
    """The header's tensor entries and where the data region starts; every entry is checked: known dtype,
    integer shape, [begin, end] offsets inside the file matching the shape, no two tensors overlapping."""
    raw, size = read_header_bytes(path)
    header = decode_json(raw, "safetensors header", path)
    if not isinstance(header, dict):
        raise WeightsSourceError(f"{path}: corrupt safetensors header (not a JSON object)")
    check_metadata(path, header.pop("__metadata__", None))
    if len(header) > MAX_TENSORS:
        raise WeightsSourceError(f"{path}: header lists {len(header):,} tensors, over the limit of {MAX_TENSORS:,}")
    data_start = 8 + len(raw)
    data_size = size - data_start
    for key, entry in header.items():
        problem = entry_problem(entry, data_size)
        if problem:
            raise WeightsSourceError(f"{path}: corrupt safetensors header: entry {shown(key)} {problem}")
        if entry["data_offsets"][1] > data_size:
            raise WeightsSourceError(f"{path}: truncated safetensors file: tensor {shown(key)} ends at byte "
                                     f"{data_start + entry['data_offsets'][1]}, the file has {size} bytes")
    overlap = first_overlap(header)
    if overlap:
        raise WeightsSourceError(f"{path}: corrupt safetensors header: tensors {shown(overlap[0])} and "
                                 f"{shown(overlap[1])} overlap in the data region")
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


def tensor_problem(tensor: torch.Tensor) -> str | None:
    """Why a tensor from a torch file can never be a weight (sparse, or without data), or None."""
    if tensor.layout != torch.strided:
        return f"is stored as {tensor.layout}; weights must be dense"
    if tensor.is_meta:
        return "holds no data (a meta tensor)"
    return None


def unwrap_state_dict(obj: object, path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    """Peel `{"model": ...}` / `{"state_dict": ...}` wrappers and a DDP `module.` prefix; refuse tensors named
    by something else than a string, and tensors no model could hold."""
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
    if len(tensors) > MAX_TENSORS:
        raise WeightsSourceError(f"{path}: holds {len(tensors):,} tensors, over the limit of {MAX_TENSORS:,}")
    for key, value in tensors.items():
        if not isinstance(key, str):
            raise WeightsSourceError(f"{path}: the state dict has a non-string key {shown(key)}; "
                                     "tensor names must be strings")
        problem = tensor_problem(value)
        if problem:
            raise WeightsSourceError(f"{path}: tensor {shown(key)} {problem}")
    if all(key.startswith(DDP_PREFIX) for key in tensors):
        notes.append("stripped the 'module.' prefix of every key (a checkpoint saved from DataParallel/DDP)")
        tensors = {key[len(DDP_PREFIX):]: value for key, value in tensors.items()}
    return tensors


def check_torch_zip(path: Path, size: int) -> None:
    """From the zip directory alone, before torch reads anything: refuse entries that would inflate (torch.save
    stores them), a directory promising more bytes than the file holds, or a pickle too big to unpickle quickly."""
    try:
        with zipfile.ZipFile(path) as archive:
            entries = archive.infolist()
    except BROKEN_ZIP_ERRORS as error:
        raise WeightsSourceError(f"{path}: not a readable torch checkpoint (broken zip: {first_line(error)})") from None
    declared = sum(entry.file_size for entry in entries)
    compressed = next((entry.filename for entry in entries if entry.compress_type != zipfile.ZIP_STORED), None)
    if compressed is not None:
        raise WeightsSourceError(f"{path}: refused: zip entry {shown(compressed)} is compressed (torch.save stores "
                                 f"entries uncompressed), and inflating the file would take {declared:,} bytes "
                                 f"from {size:,}")
    if declared > size:
        raise WeightsSourceError(f"{path}: refused: its zip directory declares {declared:,} bytes of stored entries "
                                 f"in a {size:,}-byte file")
    pickle_bytes = max((entry.file_size for entry in entries if entry.filename.endswith("data.pkl")), default=0)
    if pickle_bytes > MAX_PICKLE_BYTES:
        raise WeightsSourceError(f"{path}: refused: its pickle is {pickle_bytes:,} bytes, over the limit of "
                                 f"{MAX_PICKLE_BYTES:,} (a real checkpoint's is under 1 MiB)")


def unpickling_refusal(path: Path, error: pickle.UnpicklingError) -> WeightsSourceError:
    """Code in the pickle is refused as such; anything else the safe unpickler rejects is a malformed file."""
    text = str(error)
    unsafe = UNSAFE_GLOBAL.search(text)
    if unsafe or "allowlisted" in text or "unrecognized function" in text:
        what = f"it references {unsafe.group(1)}" if unsafe else "it builds objects other than tensors"
        return WeightsSourceError(f"{path}: refused to unpickle: {what}, and loading it would run code")
    detail = first_text_line(text.split("WeightsUnpickler error:")[-1], "unreadable")
    return WeightsSourceError(f"{path}: not a torch checkpoint (malformed pickle: {detail})")


def open_torch_file(path: Path, notes: list[str]) -> dict[str, torch.Tensor]:
    """torch.load with weights_only (never runs pickled code) and mmap (no data read until used), after the
    zip directory showed it cannot inflate beyond the file."""
    try:
        size = path.stat().st_size
        use_mmap = zipfile.is_zipfile(path)
    except OSError as error:
        raise WeightsSourceError(f"{path}: cannot read ({error.strerror})") from None
    if size == 0:
        raise WeightsSourceError(f"{path}: empty file (0 bytes), not a torch checkpoint")
    if use_mmap:
        check_torch_zip(path, size)
    else:
        notes.append("legacy (non-zip) torch file: read whole, cannot be memory-mapped")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True, mmap=use_mmap)
    except pickle.UnpicklingError as error:
        raise unpickling_refusal(path, error) from None
    except Exception as error:  # noqa: BLE001 - a hostile file makes torch.load raise anything; all mean unreadable
        raise WeightsSourceError(f"{path}: not a readable torch checkpoint ({type(error).__name__}: "
                                 f"{first_line(error)})") from None
    return unwrap_state_dict(obj, path, notes)


def read_weight_map(index_path: Path) -> dict[str, str]:
    """The `weight_map` of a `model.safetensors.index.json`: tensor name -> shard file name."""
    try:
        size = index_path.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise WeightsSourceError(f"{index_path}: index of {size:,} bytes, over the limit of {MAX_INDEX_BYTES:,}")
        raw = index_path.read_bytes()
    except OSError as error:
        raise WeightsSourceError(f"{index_path}: cannot read ({error.strerror})") from None
    index = decode_json(raw, "safetensors index", index_path)
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(name, str) and name for name in weight_map.values()):
        raise WeightsSourceError(f"{index_path}: not a safetensors index: weight_map must map tensor names to shard "
                                 f"files, got {shown(weight_map)}")
    return weight_map


def shard_root(folder: Path) -> Path:
    """Where shards may resolve: the index's folder; for a huggingface_hub snapshot, its repo's cache folder
    (the hub keeps snapshot files as symlinks into `<repo>/blobs`)."""
    folder = folder.resolve()
    return folder.parent.parent if folder.parent.name == HUB_SNAPSHOTS_FOLDER else folder


def inside(path: Path, root: Path) -> bool:
    """Whether `path`, symlinks followed, lies under `root`."""
    try:
        return path.resolve().is_relative_to(root)
    except (OSError, RuntimeError, ValueError):  # a symlink loop, or a name no file system accepts
        return False


def index_shards(index_path: Path) -> list[Path]:
    """Shard files named by a `model.safetensors.index.json`, refusing any that resolve outside its folder."""
    weight_map = read_weight_map(index_path)
    root = shard_root(index_path.parent)
    shards = []
    for name in sorted(set(weight_map.values())):
        shard = index_path.parent / name
        if has_control_characters(name) or not inside(shard, root):
            raise WeightsSourceError(f"{index_path}: shard {shown(name)} lies outside the index's folder; "
                                     "refusing to read it")
        shards.append(shard)
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


def exists(path: Path) -> bool:
    """Path.exists, with a name the file system refuses (too long) counted as missing."""
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def open_source(role: str, location: str | Path, with_data: bool = False) -> Source:
    """Open a local path or a Hub repo id (`hf://owner/name` forces the Hub); headers only unless `with_data`."""
    from vggt_mv.weights.hub import HUB_SCHEME, download_from_hub, looks_like_repo_id

    if has_control_characters(str(location)):
        raise WeightsSourceError(f"{role} weights source {shown(str(location))} contains control characters")
    if str(location).startswith(HUB_SCHEME):
        path = download_from_hub(str(location)[len(HUB_SCHEME):])
    else:
        path = Path(location).expanduser()
    if not exists(path):
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
    if len(infos) > MAX_TENSORS:
        raise WeightsSourceError(f"{role} weights {location}: {len(infos):,} tensors, over the limit of "
                                 f"{MAX_TENSORS:,}")
    return Source(role=role, location=str(location), files=files, format=file_format, tensors=infos,
                  notes=notes, _fetch=fetch)
