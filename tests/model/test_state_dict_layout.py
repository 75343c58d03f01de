"""The default config's state_dict is VGGT-1B's, key for key and shape for shape."""

import time

import pytest
import torch

from vggt_mv import VGGT_MV, VGGTMVConfig
from vggt_mv.weights import known_layouts

SPATIAL_MASK_HEAD = "aggregator.spatial_mask_head."


def reference_layout() -> dict[str, list[int]]:
    return {key: list(shape) for key, shape in known_layouts.reference_layout("vggt-1b").items()}


def meta_model(**overrides) -> VGGT_MV:
    with torch.device("meta"):
        return VGGT_MV(VGGTMVConfig(**overrides))


def test_default_model_holds_every_vggt_1b_key_with_its_shape_and_builds_fast():
    start = time.perf_counter()
    model = meta_model()
    elapsed = time.perf_counter() - start
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    reference = reference_layout()
    assert len(reference) == 1797
    missing = sorted(set(reference) - set(ours))
    assert missing == []
    wrong_shape = {k: (ours[k], reference[k]) for k in reference if ours[k] != reference[k]}
    assert wrong_shape == {}
    extra = sorted(set(ours) - set(reference))
    assert extra and all(k.startswith(SPATIAL_MASK_HEAD) for k in extra)
    assert sum(torch.Size(s).numel() for s in reference.values()) == 1_256_537_516
    assert all(p.is_meta for p in model.parameters())
    assert elapsed < 2.0, f"meta build took {elapsed:.2f} s"


def test_time_and_view_blocks_are_aliases_without_keys():
    model = meta_model()
    assert model.aggregator.time_blocks is model.aggregator.frame_blocks
    assert model.aggregator.view_blocks is model.aggregator.global_blocks
    keys = model.state_dict().keys()
    assert not [k for k in keys if k.startswith(("aggregator.time_blocks", "aggregator.view_blocks"))]
    assert "time_blocks" not in dict(model.named_modules()) and "view_blocks" not in dict(model.aggregator.named_children())


@pytest.mark.parametrize("flag, prefixes", [
    ("enable_sparse_global", ["aggregator.memory_tokens"]),
    ("enable_dual_stream", ["aggregator.pose_frame_blocks.", "aggregator.pose_global_blocks.",
                            "aggregator.geo_frame_blocks.", "aggregator.geo_global_blocks.",
                            "aggregator.lambda_pose_logit", "aggregator.lambda_geo_logit"]),
])
def test_optional_modules_only_add_their_own_keys(flag, prefixes):
    base = set(meta_model().state_dict())
    extended = set(meta_model(**{flag: True}).state_dict())
    added = extended - base
    assert base <= extended
    assert added and all(any(k.startswith(p) for p in prefixes) for k in added)
    assert all(any(k.startswith(p) for k in added) for p in prefixes)


def test_disabled_heads_leave_no_keys():
    keys = meta_model(enable_track=False, enable_point=False).state_dict()
    assert not [k for k in keys if k.startswith(("track_head.", "point_head."))]
