"""From a header alone: the config a checkpoint fits, suggested where it does not fit the model."""

import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from tests.support.sparse_checkpoints import reference_layout
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights import build_and_load, load_weights
from vggt_mv.weights.config_inference import infer_config, matching_preset
from vggt_mv.weights.loader import model_layout
from vggt_mv.weights.meta_build import build_on_meta
from vggt_mv.weights.render_text import render_report
from vggt_mv.weights.sources import TensorInfo


def layout_of(config: VGGTMVConfig) -> dict:
    return model_layout(build_on_meta(lambda: VGGT_MV(config)))


def test_each_preset_is_recognised_from_its_layout():
    for name in ("tiny", "vggt-1b"):
        fields = infer_config(layout_of(VGGTMVConfig.from_preset(name)))
        assert matching_preset(fields) == name
    assert infer_config(reference_layout_infos("vggt-1b")) == infer_config(layout_of(VGGTMVConfig()))
    assert infer_config(reference_layout_infos("pi3")) is None, "Pi3 is not a VGGT state dict"


def reference_layout_infos(name: str) -> dict:
    return {key: TensorInfo(tuple(shape), torch.float32) for key, shape in reference_layout(name).items()}


def test_inferred_fields_are_the_configs_own():
    config = VGGTMVConfig(embed_dim=768, depth=12, num_heads=12, patch_embed="dinov2_vitb14_reg", enable_track=False,
                          camera_trunk_depth=2, dpt_intermediate_layer_idx=[2, 5, 8, 11])
    fields = infer_config(layout_of(config))
    assert {k: fields[k] for k in ("embed_dim", "depth", "num_heads", "patch_embed", "enable_track", "enable_camera",
                                   "camera_trunk_depth", "num_register_tokens", "mlp_ratio")} == {
        "embed_dim": 768, "depth": 12, "num_heads": 12, "patch_embed": "dinov2_vitb14_reg", "enable_track": False,
        "enable_camera": True, "camera_trunk_depth": 2, "num_register_tokens": 4, "mlp_ratio": 4.0}
    assert matching_preset(fields) is None


def test_a_tiny_checkpoint_against_vggt_1b_is_one_anomaly_naming_the_preset(tmp_path):
    path = write_safetensors(tmp_path / "tiny.safetensors", tiny_state())
    model = build_on_meta(lambda: VGGT_MV(VGGTMVConfig()))
    report = load_weights(model, checkpoint=path, dry_run=True)
    assert len(report.mismatched) == 686
    anomaly, = report.anomalies
    assert anomaly.kind == "config_mismatch" and "this is the `tiny` preset" in anomaly.message
    assert "embed_dim 64 (model 1024)" in anomaly.message and "686 of its tensors" in anomaly.message
    assert "from_preset('tiny')" in anomaly.suggestion and "--preset tiny" in anomaly.suggestion
    assert anomaly.modules == ["aggregator", "camera_head", "depth_head", "point_head", "track_head"]
    assert report.sources["checkpoint"]["config"]["preset"] == "tiny"
    text = render_report(report)
    mismatch_lines = [line for line in text.splitlines() if " <- checkpoint" in line]
    assert len(mismatch_lines) < 40, "collapsed by module range, not one line per tensor (was 686)"
    assert any(line.startswith("  aggregator.frame_blocks.{0..3}.* <- checkpoint: 72 tensors") for line in mismatch_lines)


def test_a_checkpoint_of_another_width_suggests_its_fields(tmp_path):
    wide = VGGTMVConfig.from_preset("tiny", embed_dim=96, num_heads=4, camera_num_heads=4)
    torch_state = {k: v.contiguous() for k, v in build_and_load(wide)[0].state_dict().items()}
    path = write_safetensors(tmp_path / "wide.safetensors", torch_state)
    _, report = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint=path, dry_run=True)
    anomaly, = report.anomalies
    assert anomaly.kind == "config_mismatch" and "it fits embed_dim 96" in anomaly.message
    assert "VGGTMVConfig(embed_dim=96)" in anomaly.suggestion


def test_a_checkpoint_without_a_head_the_model_has_says_so(tmp_path):
    state = {k: v for k, v in tiny_state().items() if not k.startswith("track_head.")}
    _, report = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint=write_safetensors(
        tmp_path / "no_track.safetensors", state), dry_run=True)
    anomaly, = report.anomalies
    assert anomaly.kind == "config_mismatch" and "It has no track_head" in anomaly.message
    assert "from_preset('tiny', enable_track=False)" in anomaly.suggestion and anomaly.modules == ["track_head"]


def test_a_header_of_odd_ranks_infers_nothing_rather_than_nonsense():
    layout = layout_of(VGGTMVConfig.from_preset("tiny"))
    odd = {key: TensorInfo((1, *info.shape), info.dtype) for key, info in layout.items()}
    assert infer_config(odd) is None
    zero = dict(layout, **{"aggregator.frame_blocks.0.attn.q_norm.weight": TensorInfo((0,), torch.float32)})
    assert "num_heads" not in infer_config(zero)
