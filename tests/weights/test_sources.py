"""Opening sources: every file format, the safe torch reader, and one clear message for each way a file is wrong."""

import json
import struct

import pytest
import torch

from tests.support.checkpoints import write_safetensors
from vggt_mv.weights import WeightsSourceError
from vggt_mv.weights.errors import first_line
from vggt_mv.weights.sources import open_source

STATE = {"aggregator.camera_token": torch.arange(8.0).reshape(1, 2, 1, 4), "camera_head.fc.bias": torch.ones(3)}


def write_unaligned_safetensors(path, state):
    """safetensors as a writer that does not pad would write it: the data region starts at an odd offset."""
    header, offset, blobs = {}, 0, []
    for key, value in state.items():
        data = value.numpy().tobytes()
        header[key] = {"dtype": "F32", "shape": list(value.shape), "data_offsets": [offset, offset + len(data)]}
        offset += len(data)
        blobs.append(data)
    encoded = json.dumps(header).encode()
    encoded += b" " * (1 - len(encoded) % 2)  # odd length: tensors are misaligned for float32
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + b"".join(blobs))
    return path


def with_header(header: dict, data_bytes: int) -> bytes:
    """A safetensors file with this (possibly lying) header and this many data bytes."""
    encoded = json.dumps(header).encode()
    return struct.pack("<Q", len(encoded)) + encoded + b"\0" * data_bytes


def assert_same(source, state):
    assert {key: info.shape for key, info in source.tensors.items()} == {k: tuple(v.shape) for k, v in state.items()}
    for key, value in state.items():
        torch.testing.assert_close(source.tensor(key), value)


def test_safetensors_headers_only_until_data_is_asked_for(tmp_path):
    path = write_safetensors(tmp_path / "model.safetensors", STATE)
    headers_only = open_source("checkpoint", path)
    assert headers_only.tensors["camera_head.fc.bias"].shape == (3,)
    with pytest.raises(RuntimeError, match="headers only"):
        headers_only.tensor("camera_head.fc.bias")
    assert_same(open_source("checkpoint", path, with_data=True), STATE)


def test_a_folder_with_one_weights_file_is_that_file(tmp_path):
    write_safetensors(tmp_path / "weights.safetensors", STATE)
    assert_same(open_source("checkpoint", tmp_path, with_data=True), STATE)


def test_a_folder_with_several_weights_files_asks_which(tmp_path):
    write_safetensors(tmp_path / "a.safetensors", STATE)
    torch.save(STATE, tmp_path / "b.pt")
    with pytest.raises(WeightsSourceError, match="name the file"):
        open_source("checkpoint", tmp_path)


def test_unaligned_safetensors_are_read_correctly(tmp_path):
    assert_same(open_source("checkpoint", write_unaligned_safetensors(tmp_path / "odd.safetensors", STATE),
                            with_data=True), STATE)


def test_legacy_torch_files_load_and_say_they_cannot_be_memory_mapped(tmp_path):
    path = tmp_path / "legacy.pth"
    torch.save({"state_dict": STATE}, path, _use_new_zipfile_serialization=False)
    source = open_source("checkpoint", path, with_data=True)
    assert_same(source, STATE)
    assert any("legacy" in note for note in source.notes) and any("state_dict" in note for note in source.notes)


def test_a_module_prefix_on_safetensors_keys_is_stripped(tmp_path):
    path = write_safetensors(tmp_path / "ddp.safetensors", {"module." + k: v for k, v in STATE.items()})
    source = open_source("checkpoint", path, with_data=True)
    assert_same(source, STATE)
    assert any("module." in note for note in source.notes)


@pytest.mark.parametrize("content, phrase", [
    (b"", "not a safetensors file"),
    (struct.pack("<Q", 10 ** 12) + b"{}", "corrupt or truncated"),
    (struct.pack("<Q", 2) + b"[]", "not a JSON object"),
    (with_header({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 8]}}, 8), "has 8 bytes, its shape needs 16"),
    (with_header({"w": {"dtype": "Q99", "shape": [1], "data_offsets": [0, 4]}}, 4), "entry 'w'"),
    (with_header({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, 4), "truncated safetensors file"),
])
def test_corrupt_safetensors_headers_are_named(tmp_path, content, phrase):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(WeightsSourceError, match=phrase):
        open_source("checkpoint", path)


def test_truncated_torch_file_and_a_file_without_tensors(tmp_path):
    good = tmp_path / "good.pt"
    torch.save(STATE, good)
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:200])
    with pytest.raises(WeightsSourceError, match="not a readable torch checkpoint"):
        open_source("checkpoint", truncated)
    empty = tmp_path / "empty.pt"
    torch.save({"epoch": 3, "lr": 0.1}, empty)
    with pytest.raises(WeightsSourceError, match="holds no tensors"):
        open_source("checkpoint", empty)


def test_an_index_naming_missing_shards_says_which(tmp_path):
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"w": "shard-2.safetensors"}}))
    with pytest.raises(WeightsSourceError, match="shard-2.safetensors"):
        open_source("checkpoint", tmp_path)


def test_a_missing_local_file_is_not_looked_up_on_the_hub(tmp_path, monkeypatch):
    def no_hub(repo_id):
        raise AssertionError(f"went to the Hub for {repo_id}")

    monkeypatch.setattr("vggt_mv.weights.hub.download_from_hub", no_hub)
    monkeypatch.chdir(tmp_path)
    for location in ("ckpts/model.safetensors", "runs/last.pt", "missing.safetensors"):
        with pytest.raises(WeightsSourceError, match="not found"):
            open_source("checkpoint", location)


def test_the_limits_that_bound_opening_a_file_are_enforced(tmp_path, monkeypatch):
    path = write_safetensors(tmp_path / "two.safetensors", STATE)
    torch.save(STATE, tmp_path / "two.pt")
    monkeypatch.setattr("vggt_mv.weights.sources.MAX_TENSORS", 1)
    with pytest.raises(WeightsSourceError, match="lists 2 tensors, over the limit of 1"):
        open_source("checkpoint", path)
    monkeypatch.setattr("vggt_mv.weights.sources.MAX_PICKLE_BYTES", 100)
    with pytest.raises(WeightsSourceError, match="its pickle is [0-9,]+ bytes, over the limit of 100"):
        open_source("checkpoint", tmp_path / "two.pt")


class Unprintable(Exception):
    def __str__(self):
        raise RuntimeError("no text")


@pytest.mark.parametrize("error, line", [
    (Unprintable(), "Unprintable"),
    (EOFError(), "EOFError"),
    (ValueError("\n\n  second line first\nthird"), "second line first"),
    (ValueError("x" * 1000), "x" * 300 + "…"),
])
def test_formatting_an_error_never_raises_and_stays_one_short_line(error, line):
    assert first_line(error) == line


def test_control_characters_in_a_source_are_refused_and_a_file_name_with_one_keeps_messages_one_line(tmp_path):
    with pytest.raises(WeightsSourceError, match="contains control characters"):
        open_source("checkpoint", "model\x00.safetensors")
    (tmp_path / "two\nlines.pt").write_bytes(b"")  # found by listing the folder, not typed by anyone
    with pytest.raises(WeightsSourceError) as raised:
        open_source("checkpoint", tmp_path)
    assert "\n" not in str(raised.value) and "empty file" in str(raised.value)
