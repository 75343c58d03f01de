"""The real checkpoints' layouts ship inside the package: usable offline, from any folder, with nothing beside a clone."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vggt_mv.weights.known_layouts import reference_layout, reference_parameter_count


@pytest.mark.parametrize("name, tensors, parameters", [("vggt-1b", 1797, 1_256_537_516), ("pi3", 1210, 958_696_738),
                                                      ("pi3x", 1873, 1_360_032_439)])
def test_packaged_layouts_hold_every_key_of_the_real_checkpoints(name, tensors, parameters):
    layout = reference_layout(name)
    assert len(layout) == tensors
    assert sum(torch.Size(shape).numel() for shape in layout.values()) == parameters == reference_parameter_count(name)


def test_pi3_register_token_is_the_shape_every_user_of_the_real_weights_sees():
    assert reference_layout("pi3")["register_token"] == (1, 1, 5, 1024)
    assert reference_layout("vggt-1b")["aggregator.register_token"] == (1, 2, 4, 1024)


def test_pi3x_keeps_pi3s_decoder_encoder_and_register_token_and_adds_its_own_modules():
    pi3, pi3x = reference_layout("pi3"), reference_layout("pi3x")
    shared = [key for key in pi3 if key.startswith(("decoder.", "encoder.", "register_token"))]
    assert len(shared) == 648 + 343 + 1 and all(pi3x[key] == pi3[key] for key in shared)
    own = {key.split(".")[0] for key in pi3x} - {key.split(".")[0] for key in pi3}
    assert own == {"metric_token", "metric_decoder", "metric_head", "depth_encoder", "depth_emb", "ray_embed",
                   "pose_inject_blk"}
    assert pi3x["depth_encoder.patch_embed.proj.weight"] == (1024, 2, 14, 14), "a 2-channel patch embed"
    assert {key.split(".")[1] for key in pi3x if key.startswith("point_head.")} == {"upsample_blocks", "output_block"}
    injected = {key.split(".", 2)[2] for key in pi3x if key.startswith("pose_inject_blk.")}
    assert injected == {key.split(".", 2)[2] for key in pi3x if key.startswith("decoder.0.")}, \
        "a pose injection block has a decoder block's sub-keys: only anchored rules keep them apart"


def test_an_unknown_layout_names_the_known_ones():
    with pytest.raises(KeyError, match="vggt-1b, pi3, pi3x"):
        reference_layout("vggt-2b")


def test_the_console_script_works_from_any_folder(tmp_path):
    script = Path(sys.executable).with_name("vggt-mv")
    assert script.is_file(), "the package is not installed: run the README's set-up (pip install -e .)"
    result = subprocess.run([str(script), "inspect", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0 and "--checkpoint" in result.stdout
    module = subprocess.run([sys.executable, "-m", "vggt_mv", "--help"], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert module.returncode == 0 and "reconstruct" in module.stdout
