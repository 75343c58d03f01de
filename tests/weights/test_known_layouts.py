"""The real checkpoints' layouts ship inside the package: usable offline, from any folder, with nothing beside a clone."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from vggt_mv.weights.known_layouts import reference_layout, reference_parameter_count


@pytest.mark.parametrize("name, tensors, parameters", [("vggt-1b", 1797, 1_256_537_516), ("pi3", 1210, 958_696_738)])
def test_packaged_layouts_hold_every_key_of_the_real_checkpoints(name, tensors, parameters):
    layout = reference_layout(name)
    assert len(layout) == tensors
    assert sum(torch.Size(shape).numel() for shape in layout.values()) == parameters == reference_parameter_count(name)


def test_pi3_register_token_is_the_shape_every_user_of_the_real_weights_sees():
    assert reference_layout("pi3")["register_token"] == (1, 1, 5, 1024)
    assert reference_layout("vggt-1b")["aggregator.register_token"] == (1, 2, 4, 1024)


def test_an_unknown_layout_names_the_known_ones():
    with pytest.raises(KeyError, match="vggt-1b, pi3"):
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
