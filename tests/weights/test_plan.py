"""Pure planning from headers: which rule wins, who overrides whom, what is derived, what stays random."""

import torch

from vggt_mv.weights.plan import plan_load
from vggt_mv.weights.report import LoadReport
from vggt_mv.weights.rules import canonical_key, checkpoint_rules, pi3_rules
from vggt_mv.weights.sources import Source, TensorInfo

BLOCK = (4, 4)


def info(*shape: int, dtype: torch.dtype = torch.float32) -> TensorInfo:
    return TensorInfo(tuple(shape), dtype)


def header_source(role: str, shapes: dict[str, tuple[int, ...]]) -> Source:
    """A source known only by its header, as in a dry run."""
    return Source(role=role, location=f"{role}.safetensors", files=[], format="safetensors",
                  tensors={key: info(*shape) for key, shape in shapes.items()})


def layout_of(keys: dict[str, tuple[int, ...]]) -> dict[str, TensorInfo]:
    return {key: info(*shape) for key, shape in keys.items()}


LAYOUT = layout_of({
    "aggregator.frame_blocks.0.attn.weight": BLOCK,
    "aggregator.frame_blocks.1.attn.weight": BLOCK,
    "aggregator.global_blocks.0.attn.weight": BLOCK,
    "aggregator.global_blocks.1.attn.weight": BLOCK,
    "aggregator.register_token": (1, 2, 4, 4),
    "aggregator.patch_embed.blocks.0.weight": BLOCK,
    "aggregator.patch_embed.mask_token": (1, 4),
    "track_head.tracker.updateformer.time_blocks.0.weight": BLOCK,
    "camera_head.fc.weight": BLOCK,
})


def statuses(plan) -> dict[str, tuple[str, str | None]]:
    return {key: (a.status, a.source_key) for key, a in plan.assignments.items()}


def test_checkpoint_maps_key_for_key_onto_the_whole_model():
    checkpoint = header_source("checkpoint", {key: value.shape for key, value in LAYOUT.items()})
    plan = plan_load(LAYOUT, [(checkpoint, checkpoint_rules())])
    assert statuses(plan) == {key: ("checkpoint", key) for key in LAYOUT}
    assert plan.unexpected == {"checkpoint": []}


def test_pi3_decoder_rules_interleave_blocks_and_override_the_checkpoint():
    checkpoint = header_source("checkpoint", {key: value.shape for key, value in LAYOUT.items()})
    pi3 = header_source("pi3", {"decoder.0.attn.weight": BLOCK, "decoder.1.attn.weight": BLOCK,
                                "decoder.2.attn.weight": BLOCK, "decoder.3.attn.weight": BLOCK,
                                "decoder.4.attn.weight": BLOCK, "register_token": (1, 1, 5, 4),
                                "encoder.blocks.0.weight": BLOCK, "point_head.proj.weight": BLOCK})
    plan = plan_load(LAYOUT, [(checkpoint, checkpoint_rules()), (pi3, pi3_rules("decoder"))])
    result = statuses(plan)
    assert result["aggregator.frame_blocks.1.attn.weight"] == ("pi3", "decoder.2.attn.weight")
    assert result["aggregator.global_blocks.1.attn.weight"] == ("pi3", "decoder.3.attn.weight")
    assert plan.assignments["aggregator.global_blocks.0.attn.weight"].overrode == {
        "source": "checkpoint", "source_key": "aggregator.global_blocks.0.attn.weight"}
    assert result["aggregator.register_token"] == ("checkpoint", "aggregator.register_token")
    assert [(m.key, m.model_shape, m.source_shape) for m in plan.mismatched] == [
        ("aggregator.register_token", (1, 2, 4, 4), (1, 1, 5, 4))]
    # decoder.4 would be frame block 2, which this model does not have; the encoder needs decoder+encoder
    assert sorted(plan.unexpected["pi3"]) == ["decoder.4.attn.weight", "encoder.blocks.0.weight",
                                              "point_head.proj.weight"]


def test_decoder_plus_encoder_adds_the_encoder_into_the_patch_embed():
    pi3 = header_source("pi3", {"encoder.blocks.0.weight": BLOCK, "decoder.0.attn.weight": BLOCK})
    plan = plan_load(LAYOUT, [(pi3, pi3_rules("decoder+encoder"))])
    assert statuses(plan)["aggregator.patch_embed.blocks.0.weight"] == ("pi3", "encoder.blocks.0.weight")
    assert statuses(plan)["aggregator.patch_embed.mask_token"] == ("random", None)
    assert plan.unexpected == {"pi3": []}


def test_a_mismatched_later_source_leaves_what_the_earlier_one_loaded():
    checkpoint = header_source("checkpoint", {"camera_head.fc.weight": BLOCK})
    pi3 = header_source("pi3", {"decoder.0.attn.weight": (8, 4)})
    plan = plan_load(LAYOUT, [(checkpoint, checkpoint_rules()), (pi3, pi3_rules())])
    assert statuses(plan)["aggregator.frame_blocks.0.attn.weight"] == ("random", None)
    assert plan.mismatched[0].source_shape == (8, 4) and plan.mismatched[0].model_shape == BLOCK


def test_alias_keys_load_under_their_canonical_names_and_the_canonical_spelling_wins():
    shapes = {"aggregator.view_blocks.1.attn.weight": BLOCK, "aggregator.time_blocks.0.attn.weight": BLOCK,
              "aggregator.global_blocks.1.attn.weight": BLOCK}  # alias first in file order
    plan = plan_load(LAYOUT, [(header_source("checkpoint", shapes), checkpoint_rules())])
    result = statuses(plan)
    assert result["aggregator.global_blocks.1.attn.weight"] == ("checkpoint", "aggregator.global_blocks.1.attn.weight")
    assert result["aggregator.frame_blocks.0.attn.weight"] == ("checkpoint", "aggregator.time_blocks.0.attn.weight")
    assert plan.aliases == {"aggregator.global_blocks.1.attn.weight": ["aggregator.view_blocks.1.attn.weight"]}
    assert plan.unexpected == {"checkpoint": []}
    alias_rule = next(r for r in LoadReport.from_plan(plan, dry_run=True).rules if r["name"] == "checkpoint:alias")
    assert alias_rule["matched"] == 2
    assert sorted(alias_rule["mappings"]) == ["aggregator.time_blocks.{0} -> aggregator.frame_blocks.{0}",
                                              "aggregator.view_blocks.{1} -> aggregator.global_blocks.{1}"]


def test_real_time_blocks_of_the_track_head_are_never_taken_for_aliases():
    key = "track_head.tracker.updateformer.time_blocks.0.weight"
    plan = plan_load(LAYOUT, [(header_source("checkpoint", {key: BLOCK}), checkpoint_rules())])
    assert statuses(plan)[key] == ("checkpoint", key)
    assert canonical_key("view_blocks.3.norm.bias") == "global_blocks.3.norm.bias"
    assert canonical_key("module.aggregator.time_blocks.0.x") == "module.aggregator.frame_blocks.0.x"


def test_dual_stream_blocks_are_derived_only_from_loaded_shared_blocks():
    layout = layout_of({"aggregator.frame_blocks.0.w": BLOCK, "aggregator.global_blocks.0.w": BLOCK,
                        "aggregator.pose_frame_blocks.0.w": BLOCK, "aggregator.geo_global_blocks.0.w": BLOCK,
                        "aggregator.pose_global_blocks.0.w": (2, 2), "aggregator.lambda_pose_logit": ()})
    shapes = {"aggregator.frame_blocks.0.w": BLOCK, "aggregator.global_blocks.0.w": BLOCK}
    plan = plan_load(layout, [(header_source("checkpoint", shapes), checkpoint_rules())])
    result = statuses(plan)
    assert result["aggregator.pose_frame_blocks.0.w"] == ("derived", "aggregator.frame_blocks.0.w")
    assert result["aggregator.geo_global_blocks.0.w"] == ("derived", "aggregator.global_blocks.0.w")
    assert result["aggregator.pose_global_blocks.0.w"] == ("random", None)  # shape differs from its origin
    assert result["aggregator.lambda_pose_logit"] == ("random", None)
    unloaded = plan_load(layout, [])
    assert {status for status, _ in statuses(unloaded).values()} == {"random"}


def test_a_source_listing_a_stream_block_itself_loads_it_instead_of_deriving():
    layout = layout_of({"aggregator.frame_blocks.0.w": BLOCK, "aggregator.pose_frame_blocks.0.w": BLOCK})
    plan = plan_load(layout, [(header_source("checkpoint", {key: BLOCK for key in layout}), checkpoint_rules())])
    assert statuses(plan)["aggregator.pose_frame_blocks.0.w"] == ("checkpoint", "aggregator.pose_frame_blocks.0.w")


def test_only_floating_point_sources_fill_floating_point_tensors_and_the_rest_are_dtype_mismatches():
    layout = {**LAYOUT, "aggregator.step": info(dtype=torch.int64)}
    offered = {"aggregator.frame_blocks.0.attn.weight": info(*BLOCK, dtype=torch.float16),
               "aggregator.frame_blocks.1.attn.weight": info(*BLOCK, dtype=torch.int8),
               "aggregator.global_blocks.0.attn.weight": info(*BLOCK, dtype=torch.bool),
               "aggregator.global_blocks.1.attn.weight": info(*BLOCK, dtype=torch.complex64),
               "camera_head.fc.weight": info(2, 2, dtype=torch.int8),
               "aggregator.step": info(dtype=torch.int64)}
    source = Source(role="checkpoint", location="c.safetensors", files=[], format="safetensors", tensors=offered)
    plan = plan_load(layout, [(source, checkpoint_rules())])
    assert statuses(plan)["aggregator.frame_blocks.0.attn.weight"] == ("checkpoint",
                                                                        "aggregator.frame_blocks.0.attn.weight")
    assert statuses(plan)["aggregator.step"] == ("checkpoint", "aggregator.step")
    report = LoadReport.from_plan(plan, dry_run=True)
    assert {row["key"]: (row["reason"], row["source_dtype"]) for row in report.mismatched} == {
        "aggregator.frame_blocks.1.attn.weight": ("dtype", "int8"),
        "aggregator.global_blocks.0.attn.weight": ("dtype", "bool"),
        "aggregator.global_blocks.1.attn.weight": ("dtype", "complex64"),
        "camera_head.fc.weight": ("dtype", "int8")}  # a wrong dtype is named before a wrong shape
    assert report.summary()["mismatched"] == 4
    assert [a.kind for a in report.anomalies].count("dtype_mismatch") == 1
