"""N named sources in order: statuses are their names, later ones override, names are checked; coverage asserts."""

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv import VGGTMVConfig
from vggt_mv.weights import WeightsSourceError, build_and_load
from vggt_mv.weights.report import CoverageError

TINY = VGGTMVConfig.from_preset("tiny")


@pytest.fixture
def three_sources(tmp_path):
    base = tiny_state(seed=1)
    heads = {k: v for k, v in tiny_state(seed=2).items() if k.startswith(("camera_head.", "depth_head."))}
    last = {k: v for k, v in tiny_state(seed=3).items() if k.startswith("camera_head.")}
    return (write_safetensors(tmp_path / "base.safetensors", base), write_safetensors(tmp_path / "heads.safetensors", heads),
            write_safetensors(tmp_path / "last.safetensors", last), base, heads, last)


def test_three_sources_load_in_order_and_each_tensor_is_named_by_its_source(three_sources):
    base_path, heads_path, last_path, base, heads, last = three_sources
    model, report = build_and_load(TINY, sources=[("base", base_path), ("heads", heads_path), ("ft-3", last_path)])
    summary = report.summary()
    assert list(report.sources) == ["base", "heads", "ft-3"]
    depth_only = len(heads) - len(last)
    assert summary["loaded"] == {"base": len(base) - len(heads), "heads": depth_only, "ft-3": len(last)}
    assert summary["checkpoint_loaded"] == summary["pi3_loaded"] == 0 and summary["random"] == 0
    assert summary["overridden"] == len(heads)
    record = next(t for t in report.tensors if t["key"] == "camera_head.token_norm.weight")
    assert record["status"] == "ft-3" and record["overrode"] == {"source": "heads",
                                                                   "source_key": "camera_head.token_norm.weight"}
    assert torch.equal(model.camera_head.token_norm.weight, last["camera_head.token_norm.weight"])
    assert torch.equal(model.depth_head.projects[0].weight, heads["depth_head.projects.0.weight"])
    assert report.statuses() == ["base", "heads", "ft-3"]


@pytest.mark.parametrize("name, phrase", [
    ("../etc/passwd", "1 to 32"), ("random", "status of its own"), ("derived", "status of its own"),
    ("a" * 33, "1 to 32"), ("", "1 to 32"), ("<script>", "1 to 32"), (7, "1 to 32"),
])
def test_source_names_are_plain_short_words_and_never_a_status(tmp_path, name, phrase):
    path = write_safetensors(tmp_path / "t.safetensors", tiny_state())
    with pytest.raises(WeightsSourceError, match=phrase):
        build_and_load(TINY, sources=[(name, path)], dry_run=True)


def test_two_sources_of_one_name_are_refused(tmp_path):
    path = write_safetensors(tmp_path / "t.safetensors", tiny_state())
    with pytest.raises(WeightsSourceError, match="two sources are named 'checkpoint'"):
        build_and_load(TINY, checkpoint=path, sources=[("checkpoint", path)], dry_run=True)


def test_assert_coverage_names_the_unexpected_random_tensors_by_range(tmp_path):
    state = {k: v for k, v in tiny_state().items() if not k.startswith(("track_head.", "aggregator.frame_blocks.2."))}
    _, report = build_and_load(TINY, sources=[("ckpt", write_safetensors(tmp_path / "t.safetensors", state))],
                               dry_run=True)
    with pytest.raises(CoverageError) as raised:
        report.assert_coverage(expect_random=[r"^track_head\."])
    message = str(raised.value)
    assert "aggregator.frame_blocks.2.attn.qkv.weight" in message and "track_head" not in message.split("Anomalies")[0]
    report.assert_coverage(expect_random=[r"^track_head\.", r"^aggregator\.frame_blocks\.2\."])
    assert report.random_keys([r"^track_head\."]) == [k for k in report.random_keys() if not k.startswith("track_head.")]
