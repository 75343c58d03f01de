"""Hostile checkpoints against a server that allows loading: each is refused with one clear line, the served
model stays bit-identical (same object, every tensor equal), and no file is left behind."""

from __future__ import annotations

import json
import os
import pickle
import struct
import tempfile
import zipfile
from pathlib import Path
from typing import Callable

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.serving.weights_tab import WeightsTabError, inspect

TOKEN = "aggregator.camera_token"  # [1, 2, 1, 64] in the tiny preset
BIAS = "aggregator.patch_embed.proj.bias"  # [64]
BIAS_BYTES = 64 * 4
GIB = 1024 ** 3

Builder = Callable[[Path, dict], tuple[str, str]]
UNREADABLE: dict[str, Builder] = {}
UNLOADABLE: dict[str, Builder] = {}


def unreadable(name: str):
    """A file no dry run and no load may get past: the phrase its message must contain."""
    def register(builder: Builder) -> Builder:
        UNREADABLE[name] = builder
        return builder
    return register


def unloadable(name: str):
    """A file whose headers are fine but whose tensors must never reach the served model."""
    def register(builder: Builder) -> Builder:
        UNLOADABLE[name] = builder
        return builder
    return register


def safetensors_file(path: Path, header: dict | bytes, data: bytes) -> Path:
    """A safetensors file with exactly this (possibly lying) header and data region."""
    encoded = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def one_bias(folder: Path, entry: dict, data_bytes: int = BIAS_BYTES) -> str:
    """A one-tensor safetensors file naming a real model key with this header entry."""
    safetensors_file(folder / "bad.safetensors", {BIAS: entry}, b"\0" * data_bytes)
    return "bad.safetensors"


def rezip(source: Path, target: Path, compress: Callable[[str], int]) -> Path:
    """Copy a torch zip entry by entry, choosing each entry's compression."""
    with zipfile.ZipFile(source) as original, zipfile.ZipFile(target, "w") as copy:
        for info in original.infolist():
            copy.writestr(info.filename, original.read(info.filename), compress_type=compress(info.filename))
    return target


def declare_uncompressed_size(path: Path, entry_name: str, size: int) -> None:
    """Make the zip's local header and central directory promise `size` bytes once inflated."""
    data = bytearray(path.read_bytes())
    name = entry_name.encode()
    for signature, size_offset in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        name_offset = 30 if signature == b"PK\x03\x04" else 46
        start = 0
        while (start := data.find(signature, start)) != -1:
            if data[start + name_offset:start + name_offset + len(name)] == name:
                data[start + size_offset:start + size_offset + 4] = struct.pack("<I", size)
            start += 4
    path.write_bytes(bytes(data))


class RunsCode:
    """Unpickling this would create the marker file."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@unreadable("safetensors header nested 100000 deep")
def deep_header(folder, state):
    header = b'{"w": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    safetensors_file(folder / "deep.safetensors", header, b"")
    return "deep.safetensors", "nested too deeply"


@unreadable("tensor without data_offsets")
def no_offsets(folder, state):
    return one_bias(folder, {"dtype": "F32", "shape": [64]}), "'data_offsets'"


@unreadable("three data_offsets")
def three_offsets(folder, state):
    return one_bias(folder, {"dtype": "F32", "shape": [64], "data_offsets": [0, BIAS_BYTES, BIAS_BYTES]}), \
        "data_offsets must be [begin, end]"


@unreadable("shape given as a string")
def string_shape(folder, state):
    return one_bias(folder, {"dtype": "F32", "shape": "64", "data_offsets": [0, BIAS_BYTES]}), \
        "shape must be a list of non-negative integers"


@unreadable("shape given as floats")
def float_shape(folder, state):
    return one_bias(folder, {"dtype": "F32", "shape": [64.0], "data_offsets": [0, BIAS_BYTES]}), \
        "shape must be a list of non-negative integers"


@unreadable("negative sizes whose product looks right")
def negative_shape(folder, state):
    return one_bias(folder, {"dtype": "F32", "shape": [-1, -64], "data_offsets": [0, BIAS_BYTES]}), \
        "shape must be a list of non-negative integers"


@unreadable("dtype given as a list")
def list_dtype(folder, state):
    return one_bias(folder, {"dtype": ["F32"], "shape": [64], "data_offsets": [0, BIAS_BYTES]}), "dtype"


@unreadable("__metadata__ that is not a string map")
def bad_metadata(folder, state):
    header = {"__metadata__": [1, 2], BIAS: {"dtype": "F32", "shape": [64], "data_offsets": [0, BIAS_BYTES]}}
    safetensors_file(folder / "meta.safetensors", header, b"\0" * BIAS_BYTES)
    return "meta.safetensors", "__metadata__ must map strings to strings"


@unreadable("two tensors over the same bytes")
def overlapping(folder, state):
    entry = {"dtype": "F32", "shape": [64], "data_offsets": [0, BIAS_BYTES]}
    safetensors_file(folder / "overlap.safetensors", {BIAS: entry, "aggregator.patch_embed.norm.bias": entry},
                     b"\0" * BIAS_BYTES)
    return "overlap.safetensors", "overlap"


@unreadable("offsets before the data region")
def negative_offsets(folder, state):
    return one_bias(folder, {"dtype": "F32", "shape": [64], "data_offsets": [-BIAS_BYTES, 0]}), \
        "outside the data region"


@unreadable("header length larger than the file")
def long_header(folder, state):
    (folder / "long.safetensors").write_bytes(struct.pack("<Q", 10 ** 6) + b"{}")
    return "long.safetensors", "corrupt or truncated"


@unreadable("safetensors cut in half")
def truncated(folder, state):
    data = write_safetensors(folder / "whole.safetensors", state).read_bytes()
    (folder / "whole.safetensors").unlink()
    (folder / "cut.safetensors").write_bytes(data[: len(data) // 2])
    return "cut.safetensors", "truncated"


def index_folder(folder: Path, weight_map: object) -> str:
    """A folder holding only a model.safetensors.index.json with this weight_map."""
    sharded = folder / "sharded"
    sharded.mkdir()
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    return "sharded"


def secret(folder: Path, state: dict) -> Path:
    """A valid checkpoint outside the weights folder, which the server must never read."""
    return write_safetensors(folder.parent / "secret.safetensors", state)


@unreadable("index weight_map given as a list")
def list_weight_map(folder, state):
    return index_folder(folder, ["model-1.safetensors"]), "weight_map must map tensor names to shard files"


@unreadable("index naming ../../ a file outside the weights folder")
def escaping_index(folder, state):
    secret(folder, state)
    return index_folder(folder, {key: "../../secret.safetensors" for key in state}), "outside the index's folder"


@unreadable("index naming an absolute path")
def absolute_shard(folder, state):
    path = secret(folder, state)
    return index_folder(folder, {key: str(path) for key in state}), "outside the index's folder"


@unreadable("shard that is a symlink to a file outside")
def symlinked_shard(folder, state):
    path = secret(folder, state)
    name = index_folder(folder, {key: "model-1.safetensors" for key in state})
    (folder / name / "model-1.safetensors").symlink_to(path)
    return name, "outside the index's folder"


@unreadable("index nested 100000 deep")
def deep_index(folder, state):
    sharded = folder / "sharded"
    sharded.mkdir()
    (sharded / "model.safetensors.index.json").write_text("[" * 100_000 + "]" * 100_000)
    return "sharded", "nested too deeply"


@unreadable("0-byte .pt")
def empty_pt(folder, state):
    (folder / "empty.pt").write_bytes(b"")
    return "empty.pt", "empty file"


@unreadable("random bytes as .bin")
def random_bin(folder, state):
    (folder / "random.bin").write_bytes(torch.randint(0, 256, (4096,), dtype=torch.uint8,
                                                      generator=torch.Generator().manual_seed(1)).numpy().tobytes())
    return "random.bin", "not a torch checkpoint"


@unreadable("pickle that would run code")
def code_pickle(folder, state):
    with (folder / "code.pt").open("wb") as handle:
        pickle.dump({"model": {TOKEN: RunsCode(folder / "code-ran")}}, handle, protocol=2)
    return "code.pt", "refused to unpickle"


@unreadable("zip bomb: a few kB whose pickle declares 1.5 GiB once inflated")
def zip_bomb(folder, state):
    torch.save({TOKEN: state[TOKEN]}, folder / "plain.pt")
    rezip(folder / "plain.pt", folder / "bomb.pt",
          lambda name: zipfile.ZIP_DEFLATED if name.endswith("data.pkl") else zipfile.ZIP_STORED)
    with zipfile.ZipFile(folder / "bomb.pt") as archive:
        pickle_entry = next(name for name in archive.namelist() if name.endswith("data.pkl"))
    declare_uncompressed_size(folder / "bomb.pt", pickle_entry, 3 * GIB // 2)
    (folder / "plain.pt").unlink()
    return "bomb.pt", "inflating the file would take 1,6"


@unreadable("torch zip whose directory declares more than the file holds")
def lying_zip_directory(folder, state):
    torch.save({TOKEN: state[TOKEN]}, folder / "lying.pt")
    with zipfile.ZipFile(folder / "lying.pt") as archive:
        pickle_entry = next(name for name in archive.namelist() if name.endswith("data.pkl"))
    declare_uncompressed_size(folder / "lying.pt", pickle_entry, 3 * GIB // 2)
    return "lying.pt", "its zip directory declares 1,6"


@unreadable("torch zip with compressed entries")
def compressed_pt(folder, state):
    torch.save({TOKEN: state[TOKEN]}, folder / "plain.pt")
    rezip(folder / "plain.pt", folder / "deflated.pt", lambda name: zipfile.ZIP_DEFLATED)
    (folder / "plain.pt").unlink()
    return "deflated.pt", "' is compressed"


@unreadable("sparse tensor")
def sparse_pt(folder, state):
    torch.save({**state, BIAS: state[BIAS].to_sparse()}, folder / "sparse.pt")
    return "sparse.pt", "weights must be dense"


@unreadable("meta tensor (no data)")
def meta_pt(folder, state):
    torch.save({**state, BIAS: state[BIAS].to("meta")}, folder / "meta.pt")
    return "meta.pt", "holds no data"


@unreadable("non-string key")
def int_key_pt(folder, state):
    torch.save({**state, 7: torch.ones(2)}, folder / "intkey.pt")
    return "intkey.pt", "non-string key 7"


@unloadable("complex .pt")
def complex_pt(folder, state):
    torch.save({key: value.to(torch.complex64) for key, value in state.items()}, folder / "complex.pt")
    return "complex.pt", f"tensor {TOKEN!r} has dtype complex64; weights must be floating point"


@unloadable("safetensors whose last tensor is int8")
def int8_last(folder, state):
    last = list(state)[-1]
    write_safetensors(folder / "int8.safetensors", {**state, last: state[last].to(torch.int8)})
    return "int8.safetensors", f"tensor {last!r} has dtype int8; weights must be floating point"


@unloadable("bool tensor")
def bool_tensor(folder, state):
    write_safetensors(folder / "bool.safetensors", {**state, BIAS: state[BIAS] > 0})
    return "bool.safetensors", f"tensor {BIAS!r} has dtype bool; weights must be floating point"


@unloadable("complex safetensors")
def complex_safetensors(folder, state):
    write_safetensors(folder / "complex.safetensors", {**state, TOKEN: state[TOKEN].to(torch.complex64)})
    return "complex.safetensors", f"tensor {TOKEN!r} has dtype complex64; weights must be floating point"


@unloadable("NaN weights")
def nan_weights(folder, state):
    poisoned = state[TOKEN].clone()
    poisoned[0, 0, 0, 3] = float("nan")
    write_safetensors(folder / "nan.safetensors", {**state, TOKEN: poisoned})
    return "nan.safetensors", f"1 tensor holds NaN or Inf values: {TOKEN!r}"


@unloadable("+Inf weights")
def inf_weights(folder, state):
    write_safetensors(folder / "inf.safetensors", {**state, BIAS: torch.full_like(state[BIAS], float("inf"))})
    return "inf.safetensors", f"1 tensor holds NaN or Inf values: {BIAS!r}"


@unloadable("every tensor of the wrong shape")
def wrong_shapes(folder, state):
    write_safetensors(folder / "shapes.safetensors", {key: value[None] for key, value in state.items()})
    return "shapes.safetensors", "loaded no tensor"


@pytest.fixture(scope="module")
def state():
    return tiny_state()


@pytest.fixture
def weights_dir(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    return folder


@pytest.fixture
def temp_root(tmp_path, monkeypatch):
    """Every temporary file of the code under test lands here, so leftovers can be counted."""
    root = tmp_path / "tmp"
    root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(root))
    return root


@pytest.fixture
def served():
    """A served tiny model whose every tensor is remembered; the test fails if any changed."""
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    model, report, banner = served.model, served.report, served.banner
    before = {key: value.detach().clone() for key, value in model.state_dict().items()}
    yield served
    assert served.model is model and served.report is report and served.banner == banner
    after = served.model.state_dict()
    assert list(after) == list(before)
    for key, value in after.items():
        assert value.dtype == before[key].dtype and torch.equal(value, before[key]), key


def attempt(served, weights_dir: Path, source: str, apply: bool, preset: str | None = None):
    """What the Weights tab (and /inspect_weights) does for a visitor on a server allowing loads."""
    return inspect(served, source, None, "", None, "decoder", weights_dir, apply=apply, allow_apply=True,
                   preset=preset)


def refusal(served, weights_dir: Path, source: str, apply: bool, preset: str | None = None) -> str:
    """The one-line message the visitor gets."""
    with pytest.raises(WeightsTabError) as raised:
        attempt(served, weights_dir, source, apply, preset)
    message = str(raised.value)
    assert message and "\n" not in message and "Traceback" not in message
    return message


def files_under(root: Path) -> list[Path]:
    return [path for path in root.rglob("*") if path.is_file()]


@pytest.mark.parametrize("case", list(UNREADABLE))
def test_unreadable_checkpoints_are_refused_by_dry_run_and_load(case, served, weights_dir, temp_root, state):
    source, phrase = UNREADABLE[case](weights_dir, state)
    for apply in (False, True):
        message = refusal(served, weights_dir, source, apply)
        assert phrase in message, message
    assert "would run code" not in message or case == "pickle that would run code"
    assert not (weights_dir / "code-ran").exists(), "unpickling must never run code"
    assert files_under(temp_root) == []


@pytest.mark.parametrize("case", list(UNLOADABLE))
def test_unloadable_checkpoints_are_refused_by_a_load_and_shown_by_a_dry_run(case, served, weights_dir, temp_root,
                                                                              state):
    source, phrase = UNLOADABLE[case](weights_dir, state)
    dry_run = attempt(served, weights_dir, source, apply=False)
    assert phrase in refusal(served, weights_dir, source, apply=True)
    assert len(files_under(temp_root)) == 1, "one JSON report for the one dry run, nothing for the refused load"
    if "has dtype" in phrase:
        bad_key = phrase.split("'")[1]
        row = next(row for row in dry_run.report["mismatched"] if row["source_key"] == bad_key)
        assert row["reason"] == "dtype" and row["source_dtype"] == phrase.split("has dtype ")[1].split(";")[0]
        assert any(anomaly["kind"] == "dtype_mismatch" for anomaly in dry_run.report["anomalies"])


def test_an_unknown_preset_is_one_clear_message(served, weights_dir, temp_root, state):
    write_safetensors(weights_dir / "tiny.safetensors", state)
    assert "unknown model layout 'huge'" in refusal(served, weights_dir, "tiny.safetensors", False, preset="huge")
    assert files_under(temp_root) == []


@pytest.mark.parametrize("source", ["\x00", "tiny.safetensors\x00.txt", "owner/na\x1bme", "x" * 5000])
def test_sources_with_control_characters_or_absurd_length_are_one_clear_message(source, served, weights_dir,
                                                                                temp_root):
    for apply in (False, True):
        assert "source" in refusal(served, weights_dir, source, apply)
    assert files_under(temp_root) == []


def test_after_every_refusal_good_weights_still_load(weights_dir, temp_root, state):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    for builder in UNLOADABLE.values():
        source, _ = builder(weights_dir, state)
        refusal(served, weights_dir, source, apply=True)
    model = served.model
    write_safetensors(weights_dir / "good.safetensors", state)
    view = attempt(served, weights_dir, "good.safetensors", apply=True)
    assert view.report["summary"]["checkpoint_loaded"] == len(state) and served.model is not model
    assert served.banner is None and served.report is not None
    for key, value in served.model.state_dict().items():
        assert value.dtype == torch.float32 and torch.equal(value, state[key]), key
