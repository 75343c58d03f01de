"""Meta builds skip random inits: the same layout as a plain meta build, without torch's one-second first meta init."""

import subprocess
import sys
from pathlib import Path

import torch

from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights.meta_build import build_on_meta

ROOT = Path(__file__).resolve().parents[2]


def test_layout_and_trainability_match_a_plain_meta_build():
    config = VGGTMVConfig.from_preset("tiny", enable_dual_stream=True, enable_sparse_global=True)
    with torch.device("meta"):
        plain = VGGT_MV(config)
    skipped = build_on_meta(lambda: VGGT_MV(config))
    def describe(model):
        return [(k, v.shape, v.dtype, v.requires_grad) for k, v in model.state_dict(keep_vars=True).items()]

    assert describe(skipped) == describe(plain)
    assert all(t.is_meta for t in list(skipped.parameters()) + list(skipped.buffers()))


def test_nothing_leaks_out_of_the_build():
    build_on_meta(lambda: VGGT_MV(VGGTMVConfig.from_preset("tiny")))
    model = VGGT_MV(VGGTMVConfig.from_preset("tiny"))
    assert model.aggregator.camera_token.device.type == "cpu"
    assert model.aggregator.camera_token.abs().sum() > 0 and model.camera_head.trunk[0].attn.qkv.weight.std() > 0


def test_a_full_size_meta_build_does_not_pull_in_torch_dynamo():
    code = ("import sys; from vggt_mv import VGGT_MV, VGGTMVConfig; import vggt_mv.model; "
            "from vggt_mv.weights.meta_build import build_on_meta; build_on_meta(lambda: VGGT_MV(VGGTMVConfig())); "
            "print('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "False", result.stderr
