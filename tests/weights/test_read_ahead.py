"""Read-ahead hints for streamed memory-mapped tensors: the right bytes, before they are read, never too far."""

import os

import torch

from tests.support.checkpoints import write_safetensors
from vggt_mv.weights.read_ahead import ReadAhead, file_order, tensor_ranges
from vggt_mv.weights.sources import open_source


def sample_file(tmp_path, prefix: str = ""):
    state = {f"{prefix}layer{i}.weight": torch.full((256, 256), float(i)) for i in range(8)}  # 256 KiB each
    return state, write_safetensors(tmp_path / "m.safetensors", state)


def test_ranges_point_at_each_tensors_bytes(tmp_path):
    state, path = sample_file(tmp_path)
    ranges = tensor_ranges(open_source("a", path))
    data = path.read_bytes()
    for key, value in state.items():
        file, offset, length = ranges[key]
        assert file == path and data[offset:offset + length] == value.numpy().tobytes()


def test_ddp_prefixed_files_map_to_the_stripped_keys(tmp_path):
    state, path = sample_file(tmp_path, prefix="module.")
    source = open_source("a", path)
    assert set(tensor_ranges(source)) == set(source.tensors) == {k[len("module."):] for k in state}


def test_keys_are_hinted_before_they_are_visited_and_no_further_than_the_window(tmp_path, monkeypatch):
    _, path = sample_file(tmp_path)
    source = open_source("a", path)
    keys = file_order(source, list(source.tensors))
    ranges = tensor_ranges(source)
    hinted: list[int] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: hinted.append(offset))
    tensor_bytes = 256 * 256 * 4
    with ReadAhead([source], keys, window_bytes=2 * tensor_bytes) as read_ahead:
        for index, key in enumerate(keys):
            read_ahead.visit(index)
            assert ranges[key][1] in hinted, "the tensor about to be read was hinted"
            assert len(hinted) <= index + 2, "never more than the window ahead"
    assert sorted(hinted) == sorted(r[1] for r in ranges.values()) and len(hinted) == len(keys)


def test_first_bytes_only_and_sources_without_ranges(tmp_path, monkeypatch):
    _, path = sample_file(tmp_path)
    source = open_source("a", path)
    lengths: list[int] = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, offset, length, advice: lengths.append(length))
    with ReadAhead([source], list(source.tensors), bytes_per_key=4096) as read_ahead:
        read_ahead.visit(0)
    assert lengths and set(lengths) == {4096}
    torch.save({"w": torch.ones(4)}, tmp_path / "m.pt")
    pickle_source = open_source("b", tmp_path / "m.pt")
    assert tensor_ranges(pickle_source) == {}
    with ReadAhead([pickle_source], ["w"]) as read_ahead:
        read_ahead.visit(0)  # nothing to hint, nothing fails
    assert file_order(pickle_source, ["w"]) == ["w"]


def test_file_order_follows_the_data(tmp_path):
    _, path = sample_file(tmp_path)
    source = open_source("a", path)
    ranges = tensor_ranges(source)
    ordered = file_order(source, sorted(source.tensors, reverse=True))
    assert [ranges[k][1] for k in ordered] == sorted(r[1] for r in ranges.values())
