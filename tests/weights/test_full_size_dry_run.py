"""Dry runs against the real VGGT-1B and Pi3 layouts (sparse files: real headers, no data on disk)."""

import pytest
import torch

from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights import load_weights


@pytest.fixture(scope="module")
def sparse_sources(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse")
    return (write_sparse_safetensors(folder / "vggt-1b.safetensors", reference_layout("vggt-1b")),
            write_sparse_safetensors(folder / "pi3.safetensors", reference_layout("pi3")))


@pytest.fixture(scope="module")
def meta_model():
    with torch.device("meta"):
        return VGGT_MV(VGGTMVConfig())


def test_vggt_then_pi3_decoder_gives_the_expected_provenance(sparse_sources, meta_model):
    checkpoint, pi3 = sparse_sources
    report = load_weights(meta_model, checkpoint=checkpoint, pi3=pi3, dry_run=True)
    summary = report.summary()
    assert summary["checkpoint_loaded"] == 1149
    assert summary["pi3_loaded"] == 648
    assert summary["overridden"] == 648
    assert summary["unexpected"] == {"checkpoint": 0, "pi3": 561}
    assert summary["random"] == summary["missing"] == 6
    assert report.mismatched == [{"key": "aggregator.register_token", "source": "pi3", "source_key": "register_token",
                                  "model_shape": [1, 2, 4, 1024], "source_shape": [1, 1, 5, 1024],
                                  "reason": "shape", "model_dtype": "float32", "source_dtype": "float32"}]
    by_key = {t["key"]: t for t in report.tensors}
    assert by_key["aggregator.frame_blocks.17.attn.qkv.weight"]["source_key"] == "decoder.34.attn.qkv.weight"
    assert by_key["aggregator.global_blocks.0.mlp.fc2.bias"]["source_key"] == "decoder.1.mlp.fc2.bias"
    assert by_key["aggregator.frame_blocks.17.attn.qkv.weight"]["overrode"] == {
        "source": "checkpoint", "source_key": "aggregator.frame_blocks.17.attn.qkv.weight"}
    assert by_key["aggregator.frame_blocks.18.attn.qkv.weight"]["status"] == "checkpoint"
    assert by_key["aggregator.register_token"]["status"] == "checkpoint"
    assert {t["key"] for t in report.tensors if t["status"] == "random"} == {
        k for k in by_key if k.startswith("aggregator.spatial_mask_head.")}
    mappings = {r["name"]: r["mappings"] for r in report.rules}
    assert mappings["pi3:decoder-even"] == ["decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}"]
    assert mappings["pi3:decoder-odd"] == ["decoder.{1..35 odd} -> aggregator.global_blocks.{0..17}"]
    assert report.anomalies == []


def test_decoder_plus_encoder_brings_pi3s_encoder_into_the_patch_embed(sparse_sources, meta_model):
    checkpoint, pi3 = sparse_sources
    report = load_weights(meta_model, checkpoint=checkpoint, pi3=pi3, pi3_rules="decoder+encoder", dry_run=True)
    patch_embed = [t for t in report.tensors if t["key"].startswith("aggregator.patch_embed.")]
    from_pi3 = [t for t in patch_embed if t["status"] == "pi3"]
    assert len(from_pi3) == 343
    assert all(t["source_key"] == "encoder." + t["key"][len("aggregator.patch_embed."):] for t in from_pi3)
    mask_token = next(t for t in patch_embed if t["key"] == "aggregator.patch_embed.mask_token")
    assert mask_token["status"] == "checkpoint"
    assert report.summary()["unexpected"]["pi3"] == 561 - 343


def test_dry_run_reads_no_tensor_data(sparse_sources, meta_model, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("a dry run must not map or read tensor data")

    monkeypatch.setattr(torch.UntypedStorage, "from_file", refuse)
    checkpoint, pi3 = sparse_sources
    report = load_weights(meta_model, checkpoint=checkpoint, pi3=pi3, dry_run=True)
    assert report.dry_run and report.summary()["checkpoint_loaded"] == 1149
    assert all(p.is_meta for p in meta_model.parameters())


def test_report_json_follows_the_documented_schema(sparse_sources, meta_model):
    checkpoint, pi3 = sparse_sources
    data = load_weights(meta_model, checkpoint=checkpoint, pi3=pi3, dry_run=True).to_dict()
    assert data["schema_version"] == 3 and data["subject"] == "dry_run"
    assert set(data) == {"schema_version", "subject", "dry_run", "suspect_untrained_checked", "sources", "summary",
                         "tensors", "mismatched", "unexpected", "aliases", "rules", "anomalies", "tree"}
    assert set(data["tensors"][0]) == {"key", "shape", "dtype", "numel", "status", "source", "source_key",
                                       "source_dtype", "overrode", "suspect_untrained"}
    # A dry run reads no data, so it claims nothing about it: not checked, every verdict null.
    assert data["suspect_untrained_checked"] is False
    assert all(t["suspect_untrained"] is None for t in data["tensors"])
    assert data["summary"]["suspect_untrained"] is None and data["summary"]["parameters"]["suspect_untrained"] is None
    assert data["tree"]["camera_head"]["suspect_untrained"] is None
    assert set(data["mismatched"][0]) == {"key", "source", "source_key", "model_shape", "source_shape", "reason",
                                          "model_dtype", "source_dtype"}
    assert data["sources"]["checkpoint"]["rules"] == "identity" and data["sources"]["pi3"]["rules"] == "pi3-decoder"
    assert data["sources"]["checkpoint"]["config"]["preset"] == "vggt-1b" and data["sources"]["pi3"]["config"] is None
    assert data["summary"]["loaded"] == {"checkpoint": 1149, "pi3": 648}
    assert data["tree"]["aggregator.frame_blocks.3"]["tensors"] == {"pi3": 18}
    assert data["tree"]["aggregator.frame_blocks.20"]["tensors"] == {"checkpoint": 18}
    assert data["tree"][""]["parameters"]["random"] == data["summary"]["parameters"]["random"]
    assert sum(data["summary"]["parameters"][s] for s in ("checkpoint_loaded", "pi3_loaded", "derived", "random")) \
        == 1_256_537_516 + data["summary"]["parameters"]["random"]


@pytest.fixture(scope="module")
def sparse_pi3x(tmp_path_factory):
    return write_sparse_safetensors(tmp_path_factory.mktemp("sparse-pi3x") / "pi3x.safetensors",
                                    reference_layout("pi3x"))


PI3X_OWN_MODULES = ("Pi3X modules with no counterpart in VGGT_MV (metric, depth, ray, pose injection, conv heads): "
                    "not loaded, as expected (667 tensors of the pi3x source")


def test_vggt_then_pi3x_decoder_gives_the_stated_counts_and_one_anomaly_for_pi3xs_own_modules(
        sparse_sources, sparse_pi3x, meta_model):
    checkpoint, _ = sparse_sources
    report = load_weights(meta_model, checkpoint=checkpoint, sources=[("pi3x", sparse_pi3x, "pi3x-decoder")],
                          dry_run=True)
    summary = report.summary()
    assert summary["loaded"] == {"checkpoint": 1149, "pi3x": 648}
    assert summary["parameters"]["loaded"]["pi3x"] == 453_547_008
    assert summary["overridden"] == 648 and summary["random"] == 6
    assert summary["unexpected"] == {"checkpoint": 0, "pi3x": 557}, "Pi3's modules, as for Pi3; Pi3X's own are not"
    assert {key.split(".")[0] for key in report.unexpected["pi3x"]} == {
        "encoder", "point_decoder", "conf_decoder", "camera_decoder", "camera_head", "image_mean", "image_std"}
    assert [m["key"] for m in report.mismatched] == ["aggregator.register_token"]
    anomaly, = report.anomalies
    assert anomaly.kind == "not_loaded_as_expected" and anomaly.message.startswith(PI3X_OWN_MODULES)
    assert set(anomaly.modules) == {"metric_token", "metric_decoder", "metric_head", "depth_encoder", "depth_emb",
                                    "ray_embed", "pose_inject_blk", "point_head", "conf_head"}
    own = next(rule for rule in report.rules if rule["name"] == "pi3x:pi3x-own-modules")
    assert own["matched"] == 667 and own["not_loaded"]
    assert not any((t["source_key"] or "").startswith("pose_inject_blk.") for t in report.tensors)
    mappings = {r["name"]: r["mappings"] for r in report.rules}
    assert mappings["pi3x:decoder-even"] == ["decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}"]
    assert mappings["pi3x:decoder-odd"] == ["decoder.{1..35 odd} -> aggregator.global_blocks.{0..17}"]


def test_pi3x_decoder_plus_encoder_through_the_pi3_flag(sparse_sources, sparse_pi3x, meta_model):
    checkpoint, _ = sparse_sources
    report = load_weights(meta_model, checkpoint=checkpoint, pi3=sparse_pi3x, pi3_rules="pi3x-decoder+encoder",
                          dry_run=True)
    summary = report.summary()
    assert (summary["checkpoint_loaded"], summary["pi3_loaded"], summary["random"]) == (806, 991, 6)
    assert summary["parameters"]["pi3_loaded"] == 757_918_720
    assert summary["unexpected"] == {"checkpoint": 0, "pi3": 214}
    assert report.sources["pi3"]["rules"] == "pi3x-decoder+encoder"
    assert [a.kind for a in report.anomalies] == ["not_loaded_as_expected"]
    assert not any((t["source_key"] or "").startswith(("pose_inject_blk.", "depth_encoder.")) for t in report.tensors)
