"""What a person must look at after a load, one anomaly per cause, each naming the modules it explains.

A state dict taken from a submodule makes its source contribute nothing, its rules match nothing and every
module stay at 0%: that is one cause, so one anomaly (prefix_mismatch) listing those modules. Likewise a
checkpoint of another size is one config_mismatch naming the config it fits, not hundreds of shape rows.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from vggt_mv.weights.config_inference import (HEAD_FIELDS, config_difference, describe_fields, infer_config,
                                              suggested_config)
from vggt_mv.weights.rules import canonical_key
from vggt_mv.weights.sources import shown
from vggt_mv.weights.tree import loaded_share

if TYPE_CHECKING:
    from vggt_mv.weights.plan import LoadPlan
    from vggt_mv.weights.report import LoadReport

MANY_UNUSED_KEYS = 10
MANY_MISMATCHES = 10
MAX_LISTED_MODULES = 12


@dataclass
class Anomaly:
    """Something about a load a person must look at, with what to do about it, and the modules it explains."""

    kind: str
    message: str
    suggestion: str
    modules: list[str] = field(default_factory=list)
    source: str | None = None


def listed(names: list[str]) -> str:
    """'a, b, c' (and N more)."""
    shown = ", ".join(names[:MAX_LISTED_MODULES])
    return shown + (f" and {len(names) - MAX_LISTED_MODULES} more" if len(names) > MAX_LISTED_MODULES else "")


def is_model_key(key: str, layout: dict) -> bool:
    """A model key as spelled, or through an alias (`view_blocks` for `global_blocks`)."""
    return key in layout or canonical_key(key) in layout


def prefix_fix(unused: list[str], layout: dict) -> tuple[str, float] | None:
    """The prefix edit that makes most unused keys model keys: ("+aggregator.", share) or ("-model.", share)."""
    if not unused:
        return None
    candidates: Counter = Counter()
    top_modules = {key.split(".", 1)[0] for key in layout}
    for key in unused:
        for module in top_modules:
            if is_model_key(f"{module}.{key}", layout):
                candidates[f"+{module}."] += 1
        head = key.split(".", 1)
        if len(head) == 2 and is_model_key(head[1], layout):
            candidates[f"-{head[0]}."] += 1
    if not candidates:
        return None
    fix, count = candidates.most_common(1)[0]
    return fix, count / len(unused)


def modules_note(modules: list[str]) -> str:
    """' Modules left 0% loaded: a, b.' (empty without modules)."""
    return f" Modules left 0% loaded: {listed(modules)}." if modules else ""


def prefix_anomaly(name: str, unused: list[str], fix: tuple[str, float], modules: list[str]) -> Anomaly:
    """A submodule's state dict, or keys with a stray prefix."""
    prefix_edit, share = fix
    if prefix_edit.startswith("+"):
        module = prefix_edit[1:-1]
        message = (f"{len(unused)} keys of the {name} source went unused, and {share:.0%} of them are model keys once "
                   f"prefixed with '{prefix_edit[1:]}': this state dict was taken from the '{module}' submodule only "
                   f"(e.g. model.{module}.state_dict()).")
        suggestion = (f"Save and load the whole model's state_dict (keys starting '{prefix_edit[1:]}', "
                      "'camera_head.', ...), never a submodule's; or add the prefix when converting.")
    else:
        prefix = prefix_edit[1:]
        message = (f"{len(unused)} keys of the {name} source went unused, and {share:.0%} of them are model keys once "
                   f"the stray prefix '{prefix}' is removed.")
        suggestion = f"Strip the '{prefix}' prefix from the checkpoint's keys (or save model.state_dict() itself)."
    return Anomaly("prefix_mismatch", message + modules_note(modules), suggestion, modules, name)


def mismatched_modules(keys: list[str]) -> list[str]:
    """The top-level modules holding these tensors, in model order."""
    return list(dict.fromkeys(key.split(".", 1)[0] for key in keys))


def config_anomaly(name: str, source_fields: dict, difference: dict, shape_keys: list[str],
                   absent_heads: list[str]) -> Anomaly:
    """A checkpoint saved from another configuration: which one, and the modules it leaves unloaded."""
    preset, build = suggested_config(source_fields, difference)
    sizes = {f: v[0] for f, v in difference.items() if f not in HEAD_FIELDS}
    fits = f"this is the `{preset}` preset" if preset else f"it fits {describe_fields(sizes) or 'another config'}"
    compared = ", ".join(f"{f} {v[0]} (model {v[1]})" for f, v in difference.items() if f not in HEAD_FIELDS)
    parts = [f"The {name} source was saved from another configuration: {fits}" + (f": {compared}" if compared and preset
                                                                                  else "") + "."]
    if shape_keys:
        parts.append(f"{len(shape_keys)} of its tensors have other shapes and were not loaded, in "
                     f"{listed(mismatched_modules(shape_keys))}.")
    if absent_heads:
        parts.append(f"It has no {', '.join(absent_heads)}, left 0% loaded.")
    flag = f"--preset {preset}" if preset else "--model with that config"
    return Anomaly("config_mismatch", " ".join(parts),
                   f"Build the model as {build} to load this checkpoint (inspect: {flag}); or give a source of this "
                   "model's own size.", mismatched_modules(shape_keys) + absent_heads, name)


def dtype_anomalies(report: "LoadReport") -> list[Anomaly]:
    """Per source, the tensors that are not floating point: a dry run shows them, a real load refuses them."""
    by_source: dict[str, list[dict]] = defaultdict(list)
    for row in report.mismatched:
        if row["reason"] == "dtype":
            by_source[row["source"]].append(row)
    return [Anomaly(
        "dtype_mismatch",
        f"{len(rows)} tensors of the {role} source have a dtype the model cannot take (e.g. "
        f"'{rows[0]['source_key']}' is {rows[0]['source_dtype']}, the model's is {rows[0]['model_dtype']}): "
        "a real load refuses this source.",
        "Weights must be floating point (float32, float16, bfloat16): re-export the checkpoint, or check it is "
        "the file you meant (a corrupt or foreign file holds integers, bools or complex numbers).",
        mismatched_modules([row["key"] for row in rows]), role)
        for role, rows in by_source.items()]


def not_loaded_anomalies(plan: "LoadPlan") -> list[Anomaly]:
    """One per not_loaded rule that named keys (Pi3X's own modules): what they are, in the rule's words, and the
    source's modules holding them, so hundreds of known keys read as one finding rather than as unexpected."""
    anomalies = []
    for use in plan.rule_uses:
        if not use.rule.not_loaded or not use.not_loaded_keys:
            continue
        modules = mismatched_modules(use.not_loaded_keys)
        anomalies.append(Anomaly(
            "not_loaded_as_expected",
            f"{use.rule.description} ({len(use.not_loaded_keys)} tensors of the {use.source} source, in "
            f"{listed(modules)}).",
            f"Nothing to fix: rule {use.rule.name} declares these keys as having no counterpart in the model. "
            "Choose another rule set if you meant to load them.", modules, use.source))
    return anomalies


def find_anomalies(report: "LoadReport", plan: "LoadPlan") -> list[Anomaly]:
    """One anomaly per cause: per source a prefix, config or empty-source cause (claiming the 0%-loaded modules it
    explains), silent rules, dtypes, keys a rule set declares not loaded; then one for the 0%-loaded modules no
    cause explains."""
    anomalies: list[Anomaly] = []
    tree = report.tree()
    empty = [path for path in tree if path and "." not in path and loaded_share(tree[path]) == 0.0]
    unexplained = list(empty)
    contributed = report.contributed()
    model_fields = infer_config(plan.layout)

    def claim(modules: list[str] | None = None) -> list[str]:
        taken = [m for m in unexplained if modules is None or m in modules]
        unexplained[:] = [m for m in unexplained if m not in taken]
        return taken

    for source in plan.sources:
        name = source.role
        unused = report.unexpected.get(name, [])
        silent = [use.rule.name for use in plan.rule_uses
                  if use.source == name and use.matched == 0 and not use.rule.optional]
        for note in source.notes:
            if "module." in note:
                anomalies.append(Anomaly(
                    "stripped_prefix", f"{name} source: {note}.",
                    "Save model.module.state_dict() (the unwrapped model) so checkpoints load without fix-ups.",
                    source=name))
        fix = prefix_fix(unused, plan.layout) if len(unused) >= MANY_UNUSED_KEYS else None
        source_fields = infer_config(source.tensors) if model_fields else None
        difference = config_difference(source_fields, model_fields, empty)
        shape_keys = [m.key for m in plan.mismatched if m.source == name and m.reason == "shape"]
        if fix and fix[1] >= 0.5:
            anomalies.append(prefix_anomaly(name, unused, fix, claim()))
        elif difference:
            absent = [HEAD_FIELDS[f] for f in difference if f in HEAD_FIELDS]
            claim(absent)
            anomalies.append(config_anomaly(name, source_fields, difference, shape_keys, absent))
        elif contributed.get(name, 0) == 0:
            rules = f": rules {', '.join(silent)} matched none of its keys" if silent else ""
            anomalies.append(Anomaly(
                "source_contributed_nothing",
                f"The {name} source ({source.location}, {len(source.tensors)} tensors) loaded no tensor{rules}."
                + modules_note(modules := claim()),
                "Check it is a checkpoint of this model (VGGT for --checkpoint, Pi3 for --pi3) with the right rule "
                "set, and that its keys are not prefixed or taken from a submodule.", modules, name))
        else:
            if silent:
                anomalies.append(Anomaly(
                    "rule_matched_nothing", f"Rules {', '.join(silent)} matched no key of the {name} source.",
                    "Check the source is what this rule set expects, or choose another rule set.", source=name))
            if len(shape_keys) >= MANY_MISMATCHES:
                anomalies.append(Anomaly(
                    "shape_mismatch", f"{len(shape_keys)} tensors of the {name} source have other shapes than the "
                    f"model's and were not loaded, in {listed(mismatched_modules(shape_keys))}.",
                    "Check the model is built with the configuration this source was trained with.",
                    mismatched_modules(shape_keys), name))
    anomalies += dtype_anomalies(report)
    anomalies += not_loaded_anomalies(plan)
    unused_total = sum(len(keys) for keys in report.unexpected.values())
    if unexplained and unused_total >= MANY_UNUSED_KEYS:
        has_identity = any(use.rule.name.endswith(":identity") for use in plan.rule_uses)
        suggestion = ("Compare the unused keys with these modules' keys (a missing or stray prefix is the usual "
                      "cause)." if has_identity else
                      "Pi3 rules only fill the aggregator: also give a VGGT checkpoint (e.g. facebook/VGGT-1B) "
                      "for these modules, or list them with --expect-random if they are meant to stay random.")
        anomalies.append(Anomaly(
            "module_not_loaded", f"Modules {listed(unexplained)} are 0% loaded while the sources have "
            f"{unused_total} unused keys.", suggestion, list(unexplained)))
    return anomalies


MAX_NAMED_SUSPECTS = 3


def suspect_anomalies(report: "LoadReport") -> list[Anomaly]:
    """Per source, the tensors it loaded whose values look like an initialisation: one anomaly naming the
    top-level modules that hold them and how many of each module's loaded tensors that is."""
    by_source: dict[str, list[dict]] = defaultdict(list)
    for record in report.suspect_records():
        by_source[record["source"]].append(record)
    anomalies = []
    for role, records in by_source.items():
        modules = mismatched_modules([r["key"] for r in records])
        loaded = Counter(r["key"].split(".", 1)[0] for r in report.tensors if r["source"] == role)
        flagged = Counter(r["key"].split(".", 1)[0] for r in records)
        where = listed([f"{m} ({flagged[m]} of {loaded[m]})" for m in modules])
        example = records[0]
        named = (f": {', '.join(shown(r['key']) for r in records)}" if len(records) <= MAX_NAMED_SUSPECTS
                 else f", e.g. {shown(example['key'])}")
        many = len(records) > 1
        anomalies.append(Anomaly(
            "suspect_untrained",
            f"{len(records)} tensor{'s' if many else ''} in {where} look{'' if many else 's'} untrained though "
            f"loaded from {role}{named} ({example['suspect_untrained']['reason']}).",
            "A checkpoint saved from a model whose modules never loaded (or never trained) carries their "
            "initialisation: check how this checkpoint was saved, or give the one those modules were trained in. "
            "If they are meant to be untrained (a head not trained yet), ignore this.",
            modules, role))
    return anomalies
