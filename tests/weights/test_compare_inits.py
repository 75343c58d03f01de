"""Which inits a comparison checks equal tensors against: the VGGT_MV config the headers were saved from."""

import torch

from tests.support.checkpoints import tiny_state
from tests.support.sparse_checkpoints import reference_layout
from vggt_mv.weights.compare_inits import header_config, init_reference
from vggt_mv.weights.sources import TensorInfo


def header(state_or_layout: dict) -> dict:
    return {key: TensorInfo(tuple(getattr(value, "shape", value)), torch.float32) for key, value in
            state_or_layout.items()}


def test_the_reference_is_the_preset_bs_header_fits_with_its_heads_and_optional_modules():
    tiny = header(tiny_state())
    config, name = header_config(tiny)
    assert name == "the `tiny` preset" and config.embed_dim == 64
    assert (config.enable_sparse_global, config.enable_dual_stream) == (False, False)
    extended = {**tiny, "aggregator.memory_tokens": TensorInfo((1, 8, 64), torch.float32),
                "aggregator.pose_frame_blocks.0.norm1.weight": TensorInfo((64,), torch.float32)}
    config, _ = header_config(extended)
    assert config.enable_sparse_global and config.num_memory_tokens == 8 and config.enable_dual_stream
    headless = {k: v for k, v in tiny.items() if not k.startswith("track_head.")}
    assert header_config(headless)[0].enable_track is False
    assert header_config(header(reference_layout("vggt-1b")))[1] == "the `vggt-1b` preset"


def test_b_is_read_first_then_a_and_other_models_have_no_reference():
    tiny, pi3x = header(tiny_state()), header(reference_layout("pi3x"))
    assert init_reference(tiny, pi3x).description == "VGGT_MV, the `tiny` preset (read off a's header)"
    reference = init_reference(pi3x, tiny, roles=("new", "old"))
    assert reference.description == "VGGT_MV, the `tiny` preset (read off old's header)"
    assert init_reference(pi3x, pi3x) is None
    specs = reference.specs_for("aggregator.frame_blocks.0.norm1.weight", (64,))
    assert [spec.kind for spec in specs] == ["constant"]
    assert reference.specs_for("aggregator.frame_blocks.0.norm1.weight", (65,)) == [], "another tensor"
    assert reference.specs_for("not.a.key", (64,)) == []
