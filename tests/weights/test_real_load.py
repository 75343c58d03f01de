"""Real loads of tiny checkpoints: values land, nothing is copied twice, only random tensors get initialised."""

import json

import pytest
import torch

from tests.support.checkpoints import pi3_layout_state, tiny_source_model, tiny_state, write_safetensors
from tests.support.models import random_images
from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights import build_and_load, load_weights

TINY = VGGTMVConfig.from_preset("tiny")


def test_whole_model_checkpoint_loads_every_tensor_and_reproduces_the_model(tmp_path):
    source = tiny_source_model()
    path = write_safetensors(tmp_path / "tiny.safetensors", source.state_dict())
    model, report = build_and_load(TINY, checkpoint=path)
    assert report.summary()["checkpoint_loaded"] == len(source.state_dict())
    assert report.summary()["random"] == 0
    # The checkpoint is a freshly initialised model saved as is: provenance is clean, the data looks untrained.
    assert [a.kind for a in report.anomalies] == ["suspect_untrained"]
    assert not any(p.is_meta for p in model.parameters())
    images = random_images(2, 2)
    with torch.inference_mode():
        expected, got = source(images), model(images)
    for key in expected:
        torch.testing.assert_close(got[key], expected[key])


def test_loaded_tensors_are_memory_mapped_not_copied(tmp_path):
    path = write_safetensors(tmp_path / "tiny.safetensors", tiny_state())
    model, _ = build_and_load(TINY, checkpoint=path)
    file_size = path.stat().st_size
    storages = {p.untyped_storage().data_ptr() for name, p in model.named_parameters()}
    assert len(storages) == 1, "every loaded parameter should be a view of the one mapped file"
    assert next(model.parameters()).untyped_storage().nbytes() == file_size


def test_pi3_overrides_the_checkpoint_and_random_tensors_are_initialised(tmp_path):
    state = tiny_state()
    partial = {k: v for k, v in state.items() if not k.startswith("aggregator.spatial_mask_head.")}
    checkpoint = write_safetensors(tmp_path / "vggt.safetensors", partial)
    pi3 = write_safetensors(tmp_path / "pi3.safetensors", pi3_layout_state(state))
    model, report = build_and_load(TINY, checkpoint=checkpoint, pi3=pi3)
    summary = report.summary()
    per_block = 18
    assert summary["pi3_loaded"] == 2 * TINY.depth * per_block == summary["overridden"]
    assert summary["random"] == 6
    assert report.mismatched[0]["key"] == "aggregator.register_token"
    torch.testing.assert_close(model.aggregator.frame_blocks[1].attn.qkv.weight,
                               state["aggregator.frame_blocks.1.attn.qkv.weight"] + 1.0)
    torch.testing.assert_close(model.aggregator.register_token, state["aggregator.register_token"])
    mask_weight = model.aggregator.spatial_mask_head[1].weight
    assert torch.isfinite(mask_weight).all() and mask_weight.std() > 0
    torch.testing.assert_close(model.aggregator.spatial_mask_head[0].weight, torch.ones(64))


def test_dual_stream_blocks_are_derived_from_the_loaded_shared_blocks(tmp_path):
    state = tiny_state()
    path = write_safetensors(tmp_path / "vggt.safetensors", state)
    model, report = build_and_load(VGGTMVConfig.from_preset("tiny", enable_dual_stream=True), checkpoint=path)
    records = {t["key"]: t for t in report.tensors}
    derived = records["aggregator.geo_global_blocks.2.mlp.fc1.weight"]
    assert derived["status"] == "derived" and derived["source_key"] == "aggregator.global_blocks.2.mlp.fc1.weight"
    assert records["aggregator.lambda_pose_logit"]["status"] == "random"
    torch.testing.assert_close(model.aggregator.geo_global_blocks[2].mlp.fc1.weight,
                               state["aggregator.global_blocks.2.mlp.fc1.weight"])
    assert model.aggregator.lambda_pose_logit.item() == pytest.approx(-4.0)
    assert report.summary()["derived"] == 4 * TINY.depth * 18


def test_alias_keys_load_as_aliases_never_unexpected(tmp_path):
    state = tiny_state()
    renamed = {k.replace("aggregator.global_blocks.", "aggregator.view_blocks.")
                .replace("aggregator.frame_blocks.", "aggregator.time_blocks."): v for k, v in state.items()}
    both = {**state, **{k: v.clone() for k, v in renamed.items() if "view_blocks" in k}}
    for name, variant in (("aliases_only", renamed), ("both", both)):
        model, report = build_and_load(TINY, checkpoint=write_safetensors(tmp_path / f"{name}.safetensors", variant))
        summary = report.summary()
        assert summary["checkpoint_loaded"] == len(state) and summary["unexpected"]["checkpoint"] == 0, name
        torch.testing.assert_close(model.aggregator.view_blocks[0].attn.proj.weight,
                                   state["aggregator.global_blocks.0.attn.proj.weight"])
    assert report.aliases["aggregator.global_blocks.0.attn.proj.weight"] == [
        "aggregator.view_blocks.0.attn.proj.weight"]


def test_sharded_safetensors_with_an_index(tmp_path):
    state = tiny_state()
    keys = list(state)
    first = {k: state[k] for k in keys[: len(keys) // 2]}
    second = {k: state[k] for k in keys[len(keys) // 2:]}
    write_safetensors(tmp_path / "model-00001-of-00002.safetensors", first)
    write_safetensors(tmp_path / "model-00002-of-00002.safetensors", second)
    weight_map = {k: "model-00001-of-00002.safetensors" for k in first}
    weight_map.update({k: "model-00002-of-00002.safetensors" for k in second})
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    for location in (tmp_path, tmp_path / "model.safetensors.index.json"):
        model, report = build_and_load(TINY, checkpoint=location)
        assert report.summary()["checkpoint_loaded"] == len(state)
        assert len(report.sources["checkpoint"]["files"]) == 2
        torch.testing.assert_close(model.track_head.tracker.query_ref_token, state["track_head.tracker.query_ref_token"])


@pytest.mark.parametrize("suffix, wrapper", [(".pt", "model"), (".pth", "state_dict"), (".bin", None)])
def test_torch_files_with_wrappers_load(tmp_path, suffix, wrapper):
    state = tiny_state()
    path = tmp_path / f"ckpt{suffix}"
    torch.save({wrapper: state, "epoch": 3} if wrapper else state, path)
    model, report = build_and_load(TINY, checkpoint=path)
    assert report.summary()["checkpoint_loaded"] == len(state)
    torch.testing.assert_close(model.camera_head.empty_pose_tokens, state["camera_head.empty_pose_tokens"])
    if wrapper:
        assert any(wrapper in note for note in report.sources["checkpoint"]["notes"])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_checkpoints_load_and_say_so_per_tensor(tmp_path, dtype):
    state = {k: v.to(dtype) for k, v in tiny_state().items()}
    model, report = build_and_load(TINY, checkpoint=write_safetensors(tmp_path / "half.safetensors", state))
    assert {t["source_dtype"] for t in report.tensors} == {str(dtype).removeprefix("torch.")}
    assert {t["dtype"] for t in report.tensors} == {"float32"}
    assert model.aggregator.camera_token.dtype == torch.float32
    torch.testing.assert_close(model.aggregator.camera_token, state["aggregator.camera_token"].float())


def test_loading_into_an_already_built_model(tmp_path):
    state = tiny_state(seed=11)
    path = write_safetensors(tmp_path / "tiny.safetensors", state)
    model = tiny_source_model(seed=1)
    report = load_weights(model, checkpoint=path)
    assert report.summary()["checkpoint_loaded"] == len(state)
    torch.testing.assert_close(model.depth_head.norm.weight, state["depth_head.norm.weight"])
    dry = load_weights(model, checkpoint=path, dry_run=True)
    assert dry.dry_run and dry.summary()["checkpoint_loaded"] == len(state)


def test_decoder_plus_encoder_loads_pi3s_encoder_into_a_dinov2_patch_embed(tmp_path):
    config = VGGTMVConfig.from_preset("tiny", embed_dim=384, num_heads=6, patch_embed="dinov2_vits14_reg", depth=2,
                                      dpt_intermediate_layer_idx=[0, 1, 1, 1], enable_camera=False,
                                      enable_point=False, enable_depth=False, enable_track=False)
    torch.manual_seed(0)
    state = {k: v.contiguous() for k, v in VGGT_MV(config).state_dict().items()}
    prefix = "aggregator.patch_embed."
    encoder = {"encoder." + k[len(prefix):]: v + 1.0 for k, v in state.items()
               if k.startswith(prefix) and not k.endswith("mask_token")}  # Pi3's encoder has no mask_token
    checkpoint = write_safetensors(tmp_path / "vggt.safetensors", state)
    pi3 = write_safetensors(tmp_path / "pi3.safetensors", encoder)
    model, report = build_and_load(config, checkpoint=checkpoint, pi3=pi3, pi3_rules="decoder+encoder")
    assert report.summary()["pi3_loaded"] == len(encoder) == report.summary()["overridden"]
    torch.testing.assert_close(model.aggregator.patch_embed.blocks[11].mlp.fc2.weight,
                               encoder["encoder.blocks.11.mlp.fc2.weight"])
    torch.testing.assert_close(model.aggregator.patch_embed.pos_embed, encoder["encoder.pos_embed"])
    torch.testing.assert_close(model.aggregator.patch_embed.mask_token, state[prefix + "mask_token"])
    _, decoder_only = build_and_load(config, checkpoint=checkpoint, pi3=pi3, dry_run=True)
    assert decoder_only.summary()["unexpected"]["pi3"] == len(encoder)
    empty, = decoder_only.anomalies  # one cause: Pi3's decoder rules find nothing in an encoder-only file
    assert empty.kind == "source_contributed_nothing" and "pi3:decoder-even" in empty.message
