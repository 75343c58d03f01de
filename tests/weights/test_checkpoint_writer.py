"""save_checkpoint: every tensor, the config and the trained attention mode in one safetensors file the loaders take."""

import json

import pytest
import torch
from safetensors import safe_open

from tests.support.checkpoints import tiny_source_model
from tests.support.models import random_images, tiny_model
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights import build_and_load, load_weights
from vggt_mv.weights.checkpoint_writer import (CONFIG_KEY, FORMAT_KEY, FORMAT_MARKER, TRAINED_ATTENTION_KEY,
                                               config_from_metadata, save_checkpoint, tensors_to_save)


def file_metadata(path) -> dict[str, str]:
    with safe_open(str(path), framework="pt") as handle:
        return handle.metadata()


def file_tensors(path) -> dict[str, torch.Tensor]:
    with safe_open(str(path), framework="pt") as handle:
        return {key: handle.get_tensor(key) for key in handle.keys()}


def assert_same_outputs(expected_model, model) -> None:
    images = random_images(2, 2)
    with torch.inference_mode():
        expected, got = expected_model(images), model(images)
    assert set(got) == set(expected)
    for key in expected:
        assert torch.equal(got[key], expected[key]), key


@pytest.mark.parametrize("overrides", [{}, {"enable_sparse_global": True, "enable_dual_stream": True}],
                         ids=["tiny", "tiny-with-every-extension"])
def test_a_saved_checkpoint_reloads_every_tensor_and_the_same_model(tmp_path, overrides):
    model = tiny_model(**overrides)
    path = save_checkpoint(model, tmp_path / "runs" / "last.safetensors", "multi", extra_metadata={"step": "5000"})
    assert path == tmp_path / "runs" / "last.safetensors"
    assert [p.name for p in path.parent.iterdir()] == ["last.safetensors"]  # no partial file left behind

    metadata = file_metadata(path)
    assert metadata[FORMAT_KEY] == FORMAT_MARKER and metadata[TRAINED_ATTENTION_KEY] == "multi"
    assert metadata["step"] == "5000" and metadata["format"] == "pt"
    assert json.loads(metadata[CONFIG_KEY]) == model.config.to_dict()
    config = config_from_metadata(metadata)
    assert config == model.config

    reloaded, report = build_and_load(config, checkpoint=path)
    assert {record["status"] for record in report.tensors} == {"checkpoint"}
    assert report.summary()["checkpoint_loaded"] == len(model.state_dict()) and report.random_keys() == []
    assert_same_outputs(model, reloaded)


def test_load_weights_takes_the_file_into_a_model_built_from_its_config(tmp_path):
    model = tiny_model(seed=3)
    path = save_checkpoint(model, tmp_path / "ckpt.safetensors", "global")
    fresh = VGGT_MV(config_from_metadata(file_metadata(path))).eval()
    report = load_weights(fresh, checkpoint=path)
    assert report.summary()["checkpoint_loaded"] == len(model.state_dict()) and report.random_keys() == []
    assert_same_outputs(model, fresh)


@pytest.mark.parametrize("mode", ["auto", "Multi", "multi-view", "", None, 1])
def test_a_mode_no_model_is_trained_with_is_refused_before_anything_is_written(tmp_path, mode):
    with pytest.raises(ValueError, match="trained_attention must be one of multi, global, single"):
        save_checkpoint(tiny_source_model(), tmp_path / "ckpt.safetensors", mode)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("extra, phrase", [
    ({FORMAT_KEY: "forged"}, "written by save_checkpoint itself"),
    ({TRAINED_ATTENTION_KEY: "global"}, "written by save_checkpoint itself"),
    ({"step": 5000}, "strings to strings"),
])
def test_extra_metadata_adds_strings_and_never_replaces_what_the_file_records(tmp_path, extra, phrase):
    with pytest.raises(ValueError, match=phrase):
        save_checkpoint(tiny_source_model(), tmp_path / "ckpt.safetensors", "multi", extra_metadata=extra)


def test_tied_weights_are_stored_under_each_name_and_load_everywhere(tmp_path):
    model = tiny_model()
    aggregator = model.aggregator
    aggregator.global_blocks[0].norm1.weight = aggregator.frame_blocks[0].norm1.weight  # one tensor, two keys
    path = save_checkpoint(model, tmp_path / "tied.safetensors", "multi")
    stored = file_tensors(path)
    assert set(stored) == set(model.state_dict())
    assert torch.equal(stored["aggregator.global_blocks.0.norm1.weight"],
                       model.aggregator.frame_blocks[0].norm1.weight.detach())
    _, report = build_and_load(model.config, checkpoint=path)
    assert {record["status"] for record in report.tensors} == {"checkpoint"}


def test_a_model_loaded_from_a_memory_mapped_file_saves_again_unchanged(tmp_path):
    original = tiny_model()
    first = save_checkpoint(original, tmp_path / "first.safetensors", "multi")
    loaded, _ = build_and_load(original.config, checkpoint=first)
    # Every tensor is a view of the one mapped file; none overlaps another, so none is copied to be saved.
    views = {key: value.data_ptr() for key, value in loaded.state_dict().items()}
    assert {key: value.data_ptr() for key, value in tensors_to_save(loaded).items()} == views
    second = save_checkpoint(loaded, tmp_path / "second.safetensors", "multi")
    expected, got = file_tensors(first), file_tensors(second)
    assert set(got) == set(expected)
    assert all(torch.equal(got[key], expected[key]) for key in expected)


def test_only_vggt_mv_models_with_data_are_saved_as_safetensors_files(tmp_path):
    with pytest.raises(TypeError, match="model.config must be a VGGTMVConfig"):
        save_checkpoint(torch.nn.Linear(2, 2), tmp_path / "linear.safetensors", "multi")
    with pytest.raises(ValueError, match="is a .safetensors file"):
        save_checkpoint(tiny_source_model(), tmp_path / "ckpt.pt", "multi")
    with torch.device("meta"):
        on_meta = VGGT_MV(VGGTMVConfig.from_preset("tiny"))
    with pytest.raises(ValueError, match="without data"):
        save_checkpoint(on_meta, tmp_path / "meta.safetensors", "multi")
    assert list(tmp_path.iterdir()) == []


def test_a_config_that_is_not_save_checkpoints_is_refused():
    with pytest.raises(ValueError, match="not a checkpoint written by save_checkpoint"):
        config_from_metadata({"format": "pt"})
    with pytest.raises(ValueError, match="not a usable VGGTMVConfig"):
        config_from_metadata({FORMAT_KEY: FORMAT_MARKER, CONFIG_KEY: json.dumps({"embed_dim": 64, "colour": "red"})})
