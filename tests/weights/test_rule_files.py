"""Rules as data: TOML/JSON rule sets, index arithmetic without eval, named transforms, and bad rules files."""

import json

import pytest
import torch

from tests.support.checkpoints import pi3_layout_state, tiny_state, write_safetensors
from tests.support.sparse_checkpoints import reference_layout
from vggt_mv import VGGTMVConfig
from vggt_mv.weights import build_and_load
from vggt_mv.weights.index_expressions import ExpressionError, compile_expression
from vggt_mv.weights.rule_files import BUILTIN_RULE_SETS, RuleFileError, builtin_rule_set, load_rule_set
from vggt_mv.weights.transforms import register_transform, unregister_transform

TINY = VGGTMVConfig.from_preset("tiny")


def test_the_builtins_are_rule_files_of_the_same_format_shipped_in_the_package():
    assert BUILTIN_RULE_SETS == ("identity", "pi3-decoder", "pi3-decoder+encoder", "pi3x-decoder",
                                 "pi3x-decoder+encoder")
    even = builtin_rule_set("pi3-decoder").for_source("pi3")[0]
    assert even.name == "pi3:decoder-even"
    assert even.map_key("decoder.34.attn.qkv.weight") == "aggregator.frame_blocks.17.attn.qkv.weight"
    assert even.map_key("decoder.35.attn.qkv.weight") is None, "odd blocks are the next rule's"
    assert [r.name for r in builtin_rule_set("pi3-decoder+encoder").rules][-1] == "encoder"
    alias = builtin_rule_set("identity").rules[1]
    assert alias.map_key("aggregator.view_blocks.3.mlp.fc1.weight") == "aggregator.global_blocks.3.mlp.fc1.weight"


@pytest.mark.parametrize("text, env, value", [
    ("i // 2", {"i": 35}, 17), ("i % 2 == 0", {"i": 4}, True), ("(i - 1) * 3 + 2", {"i": 2}, 5),
    ("i >= 6 and not i > 11", {"i": 7}, True), ("-i + 10", {"i": 3}, 7), ("0 <= i < 3", {"i": 3}, False),
])
def test_index_expressions_compute_what_they_say(text, env, value):
    assert compile_expression(text, {"i"})(env) == value


@pytest.mark.parametrize("text, phrase", [
    ("__import__('os').system('touch x')", "only integers"), ("i ** 1000", "only integers"),
    ("j + 1", "does not define"), ("i.real", "only integers"), ("'a' * 9", "only integers"),
    ("i +", "cannot parse"), ("(" * 150 + "i" + ")" * 150, "over the limit"), ("lambda: 1", "only integers"),
])
def test_anything_outside_the_expression_language_is_refused(text, phrase):
    with pytest.raises(ExpressionError, match=phrase):
        compile_expression(text, {"i"})


def write_rules(path, text):
    path.write_text(text)
    return path


def test_a_toml_rules_file_maps_an_offset_layout_and_a_json_one_is_the_same(tmp_path):
    """A source whose blocks are numbered from 10 and kept under `trunk.`: index arithmetic puts them back."""
    state = tiny_state()
    shifted = {f"trunk.{int(k.split('.')[2]) + 10}.{k.split('.', 3)[3]}": v
               for k, v in state.items() if k.startswith("aggregator.frame_blocks.")}
    source = write_safetensors(tmp_path / "shifted.safetensors", shifted)
    toml = write_rules(tmp_path / "shifted.toml", '''
name = "shifted"
[[rules]]
name = "trunk"
from = "trunk.{n}.*"
when = "n >= 10"
to = "aggregator.frame_blocks.{n - 10}.*"
''')
    as_json = tmp_path / "shifted.json"
    as_json.write_text(json.dumps({"name": "shifted", "rules": [
        {"name": "trunk", "from": "trunk.{n}.*", "when": "n >= 10", "to": "aggregator.frame_blocks.{n - 10}.*"}]}))
    for rules in (toml, as_json):
        _, report = build_and_load(TINY, sources=[("mine", source, rules)], dry_run=True)
        assert report.summary()["loaded"] == {"mine": len(shifted)}
        record = next(t for t in report.tensors if t["key"] == "aggregator.frame_blocks.3.attn.qkv.weight")
        assert record["status"] == "mine" and record["source_key"] == "trunk.13.attn.qkv.weight"
        rule, = report.rules
        assert rule["name"] == "mine:trunk" and rule["mappings"] == ["trunk.{10..13} -> aggregator.frame_blocks.{0..3}"]
        assert report.sources["mine"]["rules"] == "shifted"


def test_a_named_transform_from_the_registry_changes_values_and_shapes(tmp_path):
    state = tiny_state()
    key = "aggregator.frame_blocks.0.attn.proj.weight"
    source = write_safetensors(tmp_path / "t.safetensors", {"proj_t": state[key].t().contiguous()})
    rules = write_rules(tmp_path / "t.toml", '[[rules]]\nname = "proj"\nfrom = "proj_t"\n'
                                             f'to = "{key}"\ntransform = "test-transpose"\n')
    register_transform("test-transpose", lambda t: t.t().contiguous(), lambda shape: tuple(reversed(shape)))
    try:
        model, report = build_and_load(TINY, sources=[("t", source, rules)])
    finally:
        unregister_transform("test-transpose")
    assert report.summary()["loaded"] == {"t": 1}
    assert torch.equal(model.aggregator.frame_blocks[0].attn.proj.weight, state[key])
    with pytest.raises(RuleFileError, match="unknown transform 'test-transpose'"):
        load_rule_set(rules)


@pytest.mark.parametrize("text, phrase", [
    ("[[rules]]\nname = 'a'\nfrom = 'x.*'\n", "needs `to`"),
    ("[[rules]]\nname = 'a'\nfrom = 'x.*'\nto = 'y'\n", "`to` uses 0 `*` but `from` has 1"),
    ("[[rules]]\nname = 'a'\nfrom = 'x.{i}'\nto = 'y.{__import__(\"os\")}'\n", "only integers"),
    ("[[rules]]\nname = 'a'\nfrom = 'x.{i}'\nto = 'y.{i}'\nwhen = 'k > 1'\n", "does not define"),
    ("[[rules]]\nname = 'a'\nfrom = 'x'\nto = 'y'\nregex = '.*'\n", "unknown field 'regex'"),
    ("[[rules]]\nname = 'a'\nfrom = 'x'\nto = 'y'\n[[rules]]\nname = 'a'\nfrom = 'z'\nto = 'y'\n", "two rules"),
    ("rules = []\n", "non-empty `rules`"),
    ("[[rules]\n", "not a valid TOML"),
    ("[[rules]]\nname = 'a'\nfrom = 'x'\nto = 'y'\noptional = 'yes'\n", "true or false"),
    ("[[rules]]\nname = 'a'\nfrom = ['x.*']\nto = 'y.*'\nnot_loaded = true\n", "takes no 'to'"),
    ("[[rules]]\nname = 'a'\nfrom = []\nnot_loaded = true\n", "a list of 1 to 100 patterns"),
    ("[[rules]]\nname = 'a'\nfrom = ['x', 7]\nnot_loaded = true\n", "`from` must be non-empty text"),
    ("[[rules]]\nname = 'a'\nfrom = 'x'\nnot_loaded = 'yes'\n", "true or false"),
])
def test_bad_rules_files_are_one_line_naming_the_file_and_the_rule(tmp_path, text, phrase):
    path = write_rules(tmp_path / "bad.toml", text)
    with pytest.raises(RuleFileError) as raised:
        load_rule_set(path)
    message = str(raised.value)
    assert phrase in message and str(path) in message and "\n" not in message


def test_unknown_rule_sets_and_oversized_files_are_refused_before_any_source_is_read(tmp_path):
    big = tmp_path / "big.json"
    big.write_text(" " * (1024 * 1024 + 1))
    for rules, phrase in (("everything", "unknown rule set"), (big, "over the limit")):
        with pytest.raises(RuleFileError, match=phrase):
            build_and_load(TINY, sources=[("x", tmp_path / "missing.safetensors", rules)], dry_run=True)


def test_pi3_rules_from_the_builtin_file_give_the_seeds_results(tmp_path):
    state = tiny_state()
    checkpoint = write_safetensors(tmp_path / "vggt.safetensors", state)
    pi3 = write_safetensors(tmp_path / "pi3.safetensors", pi3_layout_state(state))
    _, by_flags = build_and_load(TINY, checkpoint=checkpoint, pi3=pi3, dry_run=True)
    _, by_specs = build_and_load(TINY, sources=["checkpoint=" + str(checkpoint),
                                                f"pi3={pi3}@pi3-decoder"], dry_run=True)
    assert by_flags.to_dict() == by_specs.to_dict()
    assert by_flags.summary()["pi3_loaded"] == 2 * TINY.depth * 18


@pytest.mark.parametrize("rule_set", ["pi3x-decoder", "pi3x-decoder+encoder"])
def test_pi3x_rules_are_anchored_so_the_pose_injection_blocks_are_never_mapped(rule_set):
    """Pi3X's pose_inject_blk.{0..4} have a decoder block's sub-keys: only `decoder.` itself may match."""
    rules = builtin_rule_set(rule_set).for_source("pi3x")
    layout_keys = list(reference_layout("pi3x"))
    for key in layout_keys:
        targets = [rule.map_key(key) for rule in rules]
        if key.startswith(("pose_inject_blk.", "depth_encoder.", "metric_decoder.")):
            assert targets == [None] * len(rules), key
    even, odd = rules[0], rules[1]
    assert even.map_key("decoder.34.attn.qkv.weight") == "aggregator.frame_blocks.17.attn.qkv.weight"
    assert odd.map_key("decoder.35.ls2.gamma") == "aggregator.global_blocks.17.ls2.gamma"
    assert even.map_key("pose_inject_blk.0.attn.qkv.weight") is None
    assert even.map_key("x.decoder.0.attn.qkv.weight") is None, "anchored at the start of the key"
    own = next(rule for rule in rules if rule.not_loaded)
    assert own.name == "pi3x:pi3x-own-modules" and own.map_key("metric_token") is None
    assert own.pattern.fullmatch("pose_inject_blk.4.mlp.fc2.bias") and own.pattern.fullmatch("depth_emb")
    assert not own.pattern.fullmatch("point_head.proj.weight"), "only Pi3X's conv head keys, not any point_head"


def test_a_not_loaded_rule_keeps_its_keys_out_of_unexpected_and_makes_one_anomaly(tmp_path):
    state = tiny_state()
    source = {**{k: v for k, v in state.items() if k.startswith("camera_head.")},
              **{f"extra_{n}.weight": torch.ones(2) for n in range(20)}, "stray.weight": torch.ones(1)}
    path = write_safetensors(tmp_path / "x.safetensors", source)
    rules = write_rules(tmp_path / "x.toml", '''
[[rules]]
name = "same"
from = "*"
to = "*"
[[rules]]
name = "extras"
from = ["extra_{n}.*", "camera_head.*"]
not_loaded = true
description = "The extra modules have no counterpart here: not loaded, as expected"
''')
    _, report = build_and_load(TINY, sources=[("x", path, rules)], dry_run=True)
    assert report.unexpected == {"x": ["stray.weight"]}
    extras = next(rule for rule in report.rules if rule["name"] == "x:extras")
    assert extras["matched"] == 20 and extras["not_loaded"] is True and extras["mappings"] == [], \
        "keys another rule maps load: a not_loaded rule only names what no rule maps"
    anomaly, = [a for a in report.anomalies if a.kind == "not_loaded_as_expected"]
    assert anomaly.message.startswith("The extra modules have no counterpart here: not loaded, as expected (20 "
                                      "tensors of the x source, in extra_0, extra_1")
    assert anomaly.source == "x" and len(anomaly.modules) == 20
    assert report.summary()["loaded"] == {"x": sum(k.startswith("camera_head.") for k in source)}
