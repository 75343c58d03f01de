"""The loader bug this project exists for, and every bad source: one clear message, model untouched."""

import os
import pickle

import pytest
import torch

from tests.support.checkpoints import pi3_layout_state, tiny_source_model, tiny_state, write_safetensors
from vggt_mv import VGGTMVConfig
from vggt_mv.weights import WeightsSourceError, build_and_load, load_weights

TINY = VGGTMVConfig.from_preset("tiny")


def kinds(report):
    return [a.kind for a in report.anomalies]


def test_aggregator_only_state_dict_is_flagged_with_the_fix(tmp_path):
    aggregator_only = {k.removeprefix("aggregator."): v for k, v in tiny_state().items() if k.startswith("aggregator.")}
    _, report = build_and_load(TINY, checkpoint=write_safetensors(tmp_path / "agg.safetensors", aggregator_only),
                               dry_run=True)
    assert report.summary()["checkpoint_loaded"] == 0
    prefix = next(a for a in report.anomalies if a.kind == "prefix_mismatch")
    assert "'aggregator.'" in prefix.message and "submodule" in prefix.message
    assert "whole model" in prefix.suggestion
    assert kinds(report) == ["prefix_mismatch"], "one cause, one anomaly (it was 8, 5 of them per module)"
    assert prefix.modules == ["aggregator", "camera_head", "depth_head", "point_head", "track_head"]
    assert "Modules left 0% loaded: aggregator, camera_head" in prefix.message
    assert report.loaded_fraction() == 0.0


def test_module_prefix_is_stripped_and_reported(tmp_path):
    state = {"module." + k: v for k, v in tiny_state().items()}
    path = tmp_path / "ddp.pt"
    torch.save({"model": state}, path)
    _, report = build_and_load(TINY, checkpoint=path, dry_run=True)
    assert report.summary()["checkpoint_loaded"] == len(state)
    stripped = next(a for a in report.anomalies if a.kind == "stripped_prefix")
    assert "module." in stripped.message and "model.module.state_dict()" in stripped.suggestion


def test_stray_prefix_is_flagged_with_the_prefix_to_strip(tmp_path):
    state = {"model." + k: v for k, v in tiny_state().items()}
    _, report = build_and_load(TINY, checkpoint=write_safetensors(tmp_path / "stray.safetensors", state), dry_run=True)
    prefix = next(a for a in report.anomalies if a.kind == "prefix_mismatch")
    assert "'model.'" in prefix.message and "Strip the 'model.' prefix" in prefix.suggestion


def test_checkpoint_of_another_model_gives_zero_coverage_anomalies(tmp_path):
    other = {f"resnet.layer{i}.conv.weight": torch.randn(4, 4, 3, 3) for i in range(12)}
    _, report = build_and_load(TINY, checkpoint=write_safetensors(tmp_path / "resnet.safetensors", other),
                               dry_run=True)
    assert report.loaded_fraction() == 0.0
    assert kinds(report) == ["source_contributed_nothing"]
    assert "loaded no tensor: rules checkpoint:identity matched none of its keys" in report.anomalies[0].message
    assert set(report.anomalies[0].modules) == {"aggregator", "camera_head", "depth_head", "point_head", "track_head"}


def test_a_vggt_checkpoint_given_as_pi3_matches_no_pi3_rule(tmp_path):
    path = write_safetensors(tmp_path / "vggt.safetensors", tiny_state())
    _, report = build_and_load(TINY, checkpoint=path, pi3=path, dry_run=True)
    empty, = report.anomalies
    assert empty.kind == "source_contributed_nothing" and empty.source == "pi3"
    assert "rules pi3:decoder-even, pi3:decoder-odd, pi3:register-token matched none of its keys" in empty.message


class RunsCode:
    """Unpickling this would create a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def bad_sources(tmp_path):
    good = write_safetensors(tmp_path / "good.safetensors", tiny_state())
    data = good.read_bytes()
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(data[: len(data) // 2])
    corrupt = tmp_path / "corrupt.safetensors"
    corrupt.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}" + b"\0" * 64)
    marker = tmp_path / "code-ran"
    malicious = tmp_path / "malicious.pt"
    with malicious.open("wb") as handle:
        pickle.dump({"model": {"w": RunsCode(marker)}}, handle, protocol=2)
    malicious_zip = tmp_path / "malicious-zip.pth"
    torch.save({"model": {"w": torch.ones(1), "payload": RunsCode(marker)}}, malicious_zip)
    return {
        "missing": (tmp_path / "nope.safetensors", "not found"),
        "truncated": (truncated, "truncated"),
        "corrupt": (corrupt, "corrupt"),
        "pickle": (malicious, "refused to unpickle"),
        "pickle in a torch zip": (malicious_zip, "refused to unpickle"),
        "not weights": (tmp_path / "notes.txt", "unknown weights format"),
    }, marker


def test_bad_sources_give_one_clear_error_and_leave_the_model_untouched(tmp_path):
    sources, marker = bad_sources(tmp_path)
    (tmp_path / "notes.txt").write_text("hello")
    model = tiny_source_model(seed=3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    for name, (path, phrase) in sources.items():
        with pytest.raises(WeightsSourceError) as raised:
            load_weights(model, checkpoint=path)
        message = str(raised.value)
        assert phrase in message and str(path) in message and "\n" not in message, name
    assert not marker.exists(), "unpickling must never run code"
    for key, value in model.state_dict().items():
        assert torch.equal(value, before[key]), key


def test_unknown_pi3_rule_set_is_refused_before_reading_anything(tmp_path):
    with pytest.raises(ValueError, match="decoder\\+encoder"):
        build_and_load(TINY, pi3=tmp_path / "missing.safetensors", pi3_rules="everything", dry_run=True)


def test_pi3_alone_leaves_the_heads_random_and_says_a_checkpoint_is_needed(tmp_path):
    pi3 = {**pi3_layout_state(tiny_state()), **{f"point_decoder.blocks.{i}.w": torch.ones(2) for i in range(10)}}
    _, report = build_and_load(TINY, pi3=write_safetensors(tmp_path / "pi3.safetensors", pi3), dry_run=True)
    not_loaded, = [a for a in report.anomalies if a.kind == "module_not_loaded"]
    assert set(not_loaded.modules) == {"camera_head", "point_head", "depth_head", "track_head"}
    assert "VGGT checkpoint" in not_loaded.suggestion
    assert report.summary()["pi3_loaded"] == 2 * TINY.depth * 18
