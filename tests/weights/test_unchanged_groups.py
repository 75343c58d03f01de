"""Unchanged modules as a person reads them: the topmost ones, by finding, one line per module range."""

import math

from vggt_mv.weights.compare import SideInfo, TensorChange, build_comparison
from vggt_mv.weights.unchanged_groups import split_unit, topmost_unchanged, unchanged_groups

NORMS = ("norm1.weight", "norm1.bias", "ls1.gamma", "attn.q_norm.weight")


def change(key: str, status: str, at_init: bool | None = None, size: int = 8) -> TensorChange:
    shape = (size,)
    moved = status == "changed"
    return TensorChange(key, status, shape_a=shape, shape_b=shape, dtype_a="torch.float32", dtype_b="torch.float32",
                        diff_norm=0.1 if moved else 0.0, ref_norm=math.sqrt(size), at_init=at_init)


def comparison_of(changes):
    side = SideInfo("a", "a.safetensors", len(changes), sum(c.numel for c in changes))
    return build_comparison(side, SideInfo("b", "b.safetensors", len(changes), side.parameters), changes)


def random_init_pair():
    """Two random inits of 4 blocks: weights differ, every norm and LayerScale is the same constant init; and a
    frozen, trained head."""
    changes = []
    for stack in ("frame_blocks", "global_blocks"):
        for index in range(4):
            prefix = f"aggregator.{stack}.{index}."
            changes.append(change(prefix + "attn.qkv.weight", "changed"))
            changes += [change(prefix + part, "unchanged", at_init=True) for part in NORMS]
    changes += [change("camera_head.token_norm.weight", "unchanged", True),
                change("camera_head.fc.weight", "changed"),
                change("track_head.fc.weight", "unchanged", False), change("track_head.fc.bias", "unchanged", None)]
    return comparison_of(changes)


def test_units_are_cut_at_the_first_block_index_else_at_the_parent():
    assert split_unit("aggregator.frame_blocks.0.attn.q_norm") == ("aggregator.frame_blocks.0", "attn.q_norm")
    assert split_unit("camera_head.token_norm") == ("camera_head", "token_norm")
    assert split_unit("track_head") == ("track_head", "")
    assert split_unit("aggregator.spatial_mask_head.0") == ("aggregator.spatial_mask_head.0", "")


def test_blocks_with_the_same_unchanged_parts_collapse_into_one_line_per_range():
    comparison = random_init_pair()
    topmost = topmost_unchanged(comparison)
    assert "aggregator.frame_blocks.2.attn.q_norm" in topmost and "track_head" in topmost
    assert "track_head.fc" not in topmost, "a descendant of an unchanged module says the same"
    lines = [(group.kind, group.text(), group.modules) for group in unchanged_groups(comparison)]
    assert lines == [
        ("frozen", "track_head", 1),
        ("never_trained", "aggregator.frame_blocks.{0..3}: attn.q_norm, ls1, norm1", 12),
        ("never_trained", "aggregator.global_blocks.{0..3}: attn.q_norm, ls1, norm1", 12),
        ("never_trained", "camera_head: token_norm", 1)]
    assert comparison.modules["track_head"].unchanged_kind == "frozen", "trained values: one trained tensor is enough"


def test_a_block_with_other_unchanged_parts_gets_a_line_of_its_own():
    changes = list(random_init_pair().tensors)
    changes = [change(c.key, "changed") if c.key == "aggregator.frame_blocks.3.ls1.gamma" else c for c in changes]
    texts = [group.text() for group in unchanged_groups(comparison_of(changes))]
    assert "aggregator.frame_blocks.{0..2}: attn.q_norm, ls1, norm1" in texts
    assert "aggregator.frame_blocks.3: attn.q_norm, norm1" in texts


def test_a_wholly_unchanged_model_lists_its_top_level_modules_by_finding():
    comparison = comparison_of([change("a.w", "unchanged", True), change("b.w", "unchanged", False),
                                change("c.w", "unchanged", None)])
    assert [(g.kind, g.label) for g in unchanged_groups(comparison)] == [
        ("frozen", "b"), ("never_trained", "a"), ("unknown", "c")]
    assert comparison.totals.unchanged_kind == "frozen"
