"""A real load checks the loaded data: tensors that look like an initialisation are `suspect_untrained` in the
report (per tensor, per module, in the summary, one anomaly per source); a dry run claims nothing."""

import json

import pytest
import torch
import torch.nn as nn

from tests.support.checkpoints import tiny_source_model, write_safetensors
from vggt_mv import VGGTMVConfig
from vggt_mv.weights import build_and_load, load_weights
from vggt_mv.weights.meta_build import build_on_meta
from vggt_mv.weights.render_text import render_report

TINY = VGGTMVConfig.from_preset("tiny")
HEADS = ("camera_head", "point_head", "depth_head", "track_head")


def trained_looking(tensor: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """What training does to a tensor, roughly: its values move by a good fraction of their spread."""
    std = float(tensor.std()) if tensor.numel() > 1 else 0.0  # a constant's std is rounding noise: use its scale
    spread = max(std, 0.05 * float(tensor.abs().mean()), 1e-3)
    return tensor + 0.5 * spread * torch.randn(tensor.shape, generator=generator)


def saved_state(fresh_prefixes: tuple[str, ...], seed: int = 21) -> dict[str, torch.Tensor]:
    """A tiny model's state as a checkpoint would hold it: modules under `fresh_prefixes` still at their init
    (a model whose heads never loaded, saved as is), everything else trained-looking."""
    generator = torch.Generator().manual_seed(seed + 1)
    return {k: (v.detach().clone() if k.startswith(fresh_prefixes) else trained_looking(v.detach(), generator))
            for k, v in tiny_source_model(seed).state_dict().items()}


@pytest.fixture(scope="module")
def heads_untrained(tmp_path_factory):
    """Load a checkpoint whose heads are a fresh init and whose aggregator looks trained."""
    state = saved_state(tuple(f"{head}." for head in HEADS))
    path = write_safetensors(tmp_path_factory.mktemp("suspects") / "saved.safetensors", state)
    _, report = build_and_load(TINY, checkpoint=path)
    return state, path, report


def test_only_the_fresh_heads_are_flagged_with_per_module_counts(heads_untrained):
    state, _, report = heads_untrained
    flagged = {r["key"]: r["suspect_untrained"] for r in report.tensors if r["suspect_untrained"]}
    assert flagged and all(key.startswith(HEADS) for key in flagged)
    assert flagged["camera_head.trunk.0.ls1.gamma"] == {
        "init": "LayerScale init_values 0.01", "reason": "every value is 0.01: LayerScale init_values 0.01"}
    assert "kaiming-uniform" in flagged["camera_head.trunk.0.attn.qkv.weight"]["reason"]
    tree = report.tree()
    assert tree["aggregator"]["suspect_untrained"] == {"tensors": 0, "parameters": 0}
    for head in HEADS:
        expected = [k for k in flagged if k.startswith(head + ".")]
        assert tree[head]["suspect_untrained"] == {"tensors": len(expected),
                                                   "parameters": sum(state[k].numel() for k in expected)}, head
        assert len(expected) > 10, head
    summary = report.summary()
    assert summary["suspect_untrained"] == len(flagged) == tree[""]["suspect_untrained"]["tensors"]
    assert summary["parameters"]["suspect_untrained"] == sum(state[k].numel() for k in flagged)


def test_one_anomaly_names_the_heads_and_the_source(heads_untrained):
    _, _, report = heads_untrained
    anomaly, = [a for a in report.anomalies if a.kind == "suspect_untrained"]
    assert anomaly.modules == list(HEADS) and anomaly.source == "checkpoint"
    assert anomaly.message.startswith(f"{report.summary()['suspect_untrained']} tensors in camera_head (")
    assert "look untrained though loaded from checkpoint" in anomaly.message
    assert [a.kind for a in report.anomalies] == ["suspect_untrained"], "provenance itself is clean"


def test_the_json_is_schema_3_and_the_text_shows_counts_and_a_collapsed_section(heads_untrained):
    _, _, report = heads_untrained
    data = json.loads(report.to_json())
    assert data["schema_version"] == 3 and data["suspect_untrained_checked"] is True
    assert data["tree"]["camera_head"]["suspect_untrained"]["tensors"] > 0
    text = render_report(report)
    assert "SUSPECT untrained" in next(line for line in text.splitlines() if line.startswith("camera_head "))
    assert "SUSPECT" not in next(line for line in text.splitlines() if line.startswith("aggregator "))
    section = text.split("Look untrained")[1].split("\n\n")[0]
    assert "point_head.projects.{0..3}.* <- checkpoint: 4 tensors" in section
    assert len(section.splitlines()) < report.summary()["suspect_untrained"], "collapsed by module range"


def test_a_dry_run_or_an_unchecked_load_claims_nothing(heads_untrained):
    _, path, _ = heads_untrained
    _, dry = build_and_load(TINY, checkpoint=path, dry_run=True)
    _, unchecked = build_and_load(TINY, checkpoint=path, check_untrained=False)
    for report in (dry, unchecked):
        data = report.to_dict()
        assert data["suspect_untrained_checked"] is False and data["summary"]["suspect_untrained"] is None
        assert all(t["suspect_untrained"] is None for t in data["tensors"])
        assert data["tree"]["camera_head"]["suspect_untrained"] is None
        assert not any(a.kind == "suspect_untrained" for a in report.anomalies)
    assert "not checked (a dry run reads no data)" in render_report(dry)


def test_a_fully_trained_looking_checkpoint_has_no_suspects(tmp_path):
    path = write_safetensors(tmp_path / "trained.safetensors", saved_state(()))
    _, report = build_and_load(TINY, checkpoint=path)
    assert report.summary()["suspect_untrained"] == 0 and report.anomalies == []


def test_one_anomaly_per_source_and_random_tensors_are_not_suspects(tmp_path):
    base = saved_state(("depth_head.",))
    del base["point_head.norm.weight"]  # stays random: known from provenance, never a suspect
    finetune = {k: v for k, v in saved_state(("camera_head.",), seed=31).items() if k.startswith("camera_head.")}
    _, report = build_and_load(TINY, sources=[("checkpoint", write_safetensors(tmp_path / "b.safetensors", base)),
                                              ("finetune", write_safetensors(tmp_path / "f.safetensors", finetune))])
    suspects = {a.source: a.modules for a in report.anomalies if a.kind == "suspect_untrained"}
    assert suspects == {"checkpoint": ["depth_head"], "finetune": ["camera_head"]}
    random, = [r for r in report.tensors if r["status"] == "random"]
    assert random["key"] == "point_head.norm.weight" and random["suspect_untrained"] is None


def test_half_precision_inits_are_judged_as_stored_not_as_converted(tmp_path):
    """A bfloat16 0.01 is no float32 0.01: the check reads the source's values before the load converts them."""
    state = {k: v.to(torch.bfloat16) for k, v in saved_state(("camera_head.",)).items()}
    _, report = build_and_load(TINY, checkpoint=write_safetensors(tmp_path / "bf16.safetensors", state),
                               dtype=torch.float32)
    flagged = {r["key"] for r in report.tensors if r["suspect_untrained"]}
    assert "camera_head.trunk.0.ls1.gamma" in flagged and all(k.startswith("camera_head.") for k in flagged)


class Hostile(nn.Module):
    """A user's model (inspect --model) whose module names are markup."""

    def __init__(self):
        super().__init__()
        self.add_module("<img src=x onerror=alert(1)>", nn.LayerNorm(8))


def test_any_model_is_checked_and_its_names_stay_plain_text(tmp_path):
    path = write_safetensors(tmp_path / "hostile.safetensors", Hostile().state_dict())
    model = build_on_meta(Hostile)
    report = load_weights(model, checkpoint=path)
    assert report.summary()["suspect_untrained"] == 2
    anomaly, = report.anomalies
    assert anomaly.modules == ["<img src=x onerror=alert(1)>"]
