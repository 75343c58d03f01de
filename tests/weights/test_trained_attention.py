"""What a load's weights were trained for, from headers only, and the mode `auto` picks from it."""

import json

import pytest
import torch
from safetensors.torch import save_file

from tests.support.checkpoints import pi3_layout_state, tiny_source_model, write_safetensors
from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors
from vggt_mv import VGGTMVConfig
from vggt_mv.weights import WeightsSourceError
from vggt_mv.weights.checkpoint_writer import (FORMAT_KEY, FORMAT_MARKER, TRAINED_ATTENTION_KEY, checkpoint_metadata,
                                               save_checkpoint)
from vggt_mv.weights.source_specs import SourceSpec
from vggt_mv.weights.trained_attention import (ModeChoice, TrainedAttention, choose_auto_mode,
                                               trained_attention_of)

MASK_HEAD = "aggregator.spatial_mask_head."
TINY = VGGTMVConfig.from_preset("tiny")


def state_of(**overrides) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone().contiguous() for k, v in tiny_source_model(**overrides).state_dict().items()}


def plain_vggt_state() -> dict[str, torch.Tensor]:
    """A tiny model's weights in VGGT's layout: every VGGT key, none of VGGT_MV's extension tensors."""
    return {k: v for k, v in state_of().items() if not k.startswith(MASK_HEAD)}


@pytest.fixture
def plain(tmp_path):
    return write_safetensors(tmp_path / "plain.safetensors", plain_vggt_state())


@pytest.fixture
def multi(tmp_path):
    return save_checkpoint(tiny_source_model(), tmp_path / "multi.safetensors", "multi")


@pytest.mark.parametrize("mode, training", [("multi", "multi-view"), ("global", "global-attention"),
                                            ("single", "single-view")])
def test_save_checkpoints_metadata_gives_the_recorded_mode_over_the_tensors(tmp_path, mode, training):
    path = save_checkpoint(tiny_source_model(), tmp_path / "last.safetensors", mode)  # carries the mask head too
    trained = trained_attention_of([path])
    assert trained == TrainedAttention(mode, f"{path} was saved by save_checkpoint with {training} training "
                                             "(metadata)")


def test_a_plain_vggt_checkpoint_was_trained_for_global_attention(plain):
    assert trained_attention_of([plain]) == TrainedAttention(
        "global", f"{plain} is a plain VGGT checkpoint (no VGGT_MV tensors or metadata): trained for global "
                  "attention over all frames")


@pytest.mark.parametrize("overrides, dropped, named", [
    ({}, (), "aggregator.spatial_mask_head.*"),
    ({"enable_sparse_global": True}, (MASK_HEAD,), "aggregator.memory_tokens"),
    ({"enable_dual_stream": True}, (MASK_HEAD,), "aggregator.pose_frame_blocks.*, aggregator.pose_global_blocks.*, "
                                                 "aggregator.geo_frame_blocks.* and 3 more"),
    ({"enable_dual_stream": True}, (MASK_HEAD, "aggregator.pose_", "aggregator.geo_"),
     "aggregator.lambda_pose_logit, aggregator.lambda_geo_logit"),
], ids=["mask-head", "memory-tokens", "dual-stream", "lambdas"])
def test_vggt_mvs_extension_tensors_without_metadata_mean_multi_view_training(tmp_path, overrides, dropped, named):
    state = {k: v for k, v in state_of(**overrides).items() if not k.startswith(dropped)}
    path = write_safetensors(tmp_path / "ext.safetensors", state)
    assert trained_attention_of([path]) == TrainedAttention(
        "multi", f"{path} carries VGGT_MV's extension tensors ({named}): trained as VGGT_MV, multi-view")


@pytest.mark.parametrize("with_extension, mode", [(False, "global"), (True, "multi")])
def test_a_torch_file_is_judged_by_its_keys(tmp_path, with_extension, mode):
    state = state_of() if with_extension else plain_vggt_state()
    path = tmp_path / "ckpt.pt"
    torch.save({"model": state}, path)
    assert trained_attention_of([path]).mode == mode


def test_the_real_vggt_and_pi3_layouts_were_trained_for_global_attention(tmp_path):
    vggt = write_sparse_safetensors(tmp_path / "vggt-1b.safetensors", reference_layout("vggt-1b"))
    pi3 = write_sparse_safetensors(tmp_path / "pi3.safetensors", reference_layout("pi3"))
    trained = trained_attention_of([vggt])
    assert trained.mode == "global" and trained.reason.startswith(f"{vggt} is a plain VGGT checkpoint")
    tiny_pi3 = write_safetensors(tmp_path / "tiny-pi3.safetensors", pi3_layout_state(state_of()))
    for path in (pi3, tiny_pi3):
        trained = trained_attention_of([path])
        assert trained.mode == "global" and trained.reason.startswith(f"{path} is a Pi3 checkpoint")


def test_a_folder_and_a_sharded_index_are_read_like_the_loader_reads_them(tmp_path):
    folder = tmp_path / "run"
    save_checkpoint(tiny_source_model(), folder / "model.safetensors", "single")
    assert trained_attention_of([folder]).mode == "single"

    state = state_of()
    blocks = {k: v for k, v in state.items() if k.startswith("aggregator.frame_blocks.")}
    rest = {k: v for k, v in state.items() if k not in blocks}
    sharded = tmp_path / "sharded"
    sharded.mkdir()
    write_safetensors(sharded / "part-1.safetensors", blocks)
    save_file(rest, str(sharded / "part-2.safetensors"), metadata=checkpoint_metadata(TINY, "global"))
    weight_map = {**{k: "part-1.safetensors" for k in blocks}, **{k: "part-2.safetensors" for k in rest}}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert trained_attention_of([sharded / "model.safetensors.index.json"]).mode == "global"


def test_the_last_source_that_decides_wins_and_says_so(tmp_path, plain, multi):
    heads_only = write_safetensors(tmp_path / "heads.safetensors",
                                   {k: v for k, v in plain_vggt_state().items() if k.startswith("camera_head.")})
    assert trained_attention_of([multi, plain]) == TrainedAttention(
        "global", f"{plain} is a plain VGGT checkpoint (no VGGT_MV tensors or metadata): trained for global "
                  "attention over all frames; the last of the 2 sources, so it overrides the earlier ones")
    assert trained_attention_of([plain, multi, heads_only]) == TrainedAttention(
        "multi", f"{multi} was saved by save_checkpoint with multi-view training (metadata); the last of the 2 of 3 "
                 "sources that decide, so it overrides the earlier ones")
    assert trained_attention_of([heads_only, plain]).reason.endswith("the only one of the 2 sources that decides")


def test_sources_are_taken_as_the_loader_takes_them(plain, multi):
    assert trained_attention_of([("base", plain), SourceSpec("ft", multi)]).mode == "multi"
    assert trained_attention_of([SourceSpec("ft", multi), ("base", plain, "identity")]).mode == "global"
    with pytest.raises(TypeError, match="a list of sources"):
        trained_attention_of(str(plain))


def test_no_source_or_no_attention_weights_means_random_weights(tmp_path):
    assert trained_attention_of([]) == TrainedAttention(None, "random weights: trained for nothing")
    heads_only = write_safetensors(tmp_path / "heads.safetensors",
                                   {k: v for k, v in state_of().items() if k.startswith("depth_head.")})
    assert trained_attention_of([heads_only]) == TrainedAttention(
        None, f"{heads_only} carries no attention weights: the attention blocks stay random, trained for nothing")
    assert trained_attention_of([heads_only, heads_only]).reason.startswith("none of the 2 sources carries")


def test_a_hub_repo_is_resolved_through_the_cache(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub"))
    repo = tmp_path / "hub" / "models--owner--tiny-vggt"
    snapshot = repo / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("b" * 40)
    write_safetensors(snapshot / "model.safetensors", plain_vggt_state())
    trained = trained_attention_of(["owner/tiny-vggt"])
    assert trained.mode == "global" and trained.reason.startswith("owner/tiny-vggt is a plain VGGT checkpoint")
    with pytest.raises(WeightsSourceError, match="'owner/missing'.*offline"):
        trained_attention_of(["owner/missing"])


def test_a_bad_source_raises_the_loaders_error(tmp_path, multi):
    with pytest.raises(WeightsSourceError, match="not found: .*nothing.safetensors"):
        trained_attention_of([multi, tmp_path / "nothing.safetensors"])
    garbage = tmp_path / "garbage.safetensors"
    garbage.write_bytes(b"\xff" * 64)
    with pytest.raises(WeightsSourceError, match="corrupt or truncated"):
        trained_attention_of([garbage])
    forged = tmp_path / "forged.safetensors"
    save_file(plain_vggt_state(), str(forged), metadata={FORMAT_KEY: FORMAT_MARKER, TRAINED_ATTENTION_KEY: "auto"})
    with pytest.raises(WeightsSourceError, match=f"{TRAINED_ATTENTION_KEY} is 'auto', not one of multi, global"):
        trained_attention_of([forged])


@pytest.mark.parametrize("trained_mode", ["multi", "global", "single", None])
def test_one_camera_runs_single_view_whatever_the_weights(trained_mode):
    choice = choose_auto_mode(TrainedAttention(trained_mode, "whatever"), cameras=1)
    assert choice == ModeChoice("single", "auto chose single: one camera, so the model runs exactly as VGGT, "
                                          "whatever the weights")


def test_several_cameras_run_multi_view_only_with_weights_trained_for_it(multi):
    trained = trained_attention_of([multi])
    assert choose_auto_mode(trained, cameras=3) == ModeChoice("multi", f"auto chose multi for 3 cameras: "
                                                                       f"{trained.reason}")


@pytest.mark.parametrize("trained", [
    TrainedAttention("global", "facebook/VGGT-1B is a plain VGGT checkpoint"),
    TrainedAttention("single", "runs/one-camera.safetensors was saved by save_checkpoint"),
    TrainedAttention(None, "random weights: trained for nothing"),
], ids=["global", "single", "random"])
def test_several_cameras_run_global_attention_with_any_other_weights(trained):
    assert choose_auto_mode(trained, cameras=2) == ModeChoice(
        "global", f"auto chose global for 2 cameras: {trained.reason} (multi-view attention needs VGGT_MV-trained "
                  "weights)")


@pytest.mark.parametrize("cameras", [0, -1, True, 2.0])
def test_a_camera_count_must_be_a_positive_integer(cameras):
    with pytest.raises(ValueError, match="cameras must be a positive integer"):
        choose_auto_mode(TrainedAttention("multi", "x"), cameras)


def test_a_trained_mode_is_one_a_model_can_be_trained_with():
    with pytest.raises(ValueError, match="mode must be one of multi, global, single or None"):
        TrainedAttention("auto", "auto is chosen at run time, never trained")
