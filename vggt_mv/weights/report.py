"""LoadReport: the provenance of every model tensor as plain data; text, JSON, treemap and tree are views.

JSON schema of `LoadReport.to_dict()` (schema_version 1; every count is an int; new keys may be added,
existing ones keep their meaning):

    schema_version: 1
    dry_run: bool                               true: computed from headers only, no tensor data read
    sources: {role: {location, format, files: [str], num_tensors, notes: [str]}}
             role: "checkpoint" | "pi3"; format: "safetensors" | "torch"; notes: what was unwrapped or stripped
             (wrapper dict, `module.` prefix, legacy torch file) and dtype conversions
             ("1797 tensors stored as float16, loaded as float32")
    summary: {checkpoint_loaded, pi3_loaded, derived, random, missing (= random), overridden, mismatched,
              unexpected: {role: n}, total, loaded_fraction,
              parameters: {checkpoint_loaded, pi3_loaded, derived, random, missing, overridden, mismatched,
                           total, loaded_fraction}}
             counts of model tensors by final status (each counted once; `parameters` counts elements);
             overridden: loaded by a later source over an earlier one; mismatched: model tensors some source
             offered with the wrong shape; unexpected: source keys no rule used (counted in source tensors);
             loaded_fraction: share not random
    tensors: [{key, shape: [int], dtype, numel, status, source, source_key, source_dtype, overrode}]
             one per model state_dict entry, in model order; dtype: the model's (final) dtype;
             status: "checkpoint" | "pi3" (loaded from that source) | "derived" (copied from the loaded
             model tensor `source_key`: dual-stream blocks) | "random" (no source: initialised by its module
             after a meta build, or kept as it was in an already built model);
             source: role or null; source_dtype: dtype stored in the source (null if random);
             overrode: null or {source, source_key} of what an earlier source had put there
    mismatched: [{key, source, source_key, model_shape, source_shape, reason, model_dtype, source_dtype}]
             never loaded; the target keeps what it had. reason: "shape" (e.g. Pi3 register_token
             [1, 1, 5, 1024] vs [1, 2, 4, 1024]) or "dtype" (a source tensor that is not floating point, such as
             int8, bool or complex64, offered for a floating point model tensor; a real load refuses such a
             source, so only dry runs report these rows)
    unexpected: {role: [source_key]}            keys of a source that no rule mapped onto a model key
    aliases: {model_key: [source_key]}          further source keys naming an already-loaded tensor
                                                (`view_blocks.*` next to `global_blocks.*`)
    rules: [{source, name, description, matched, mappings: [str]}]   matched: source keys mapped onto model
             keys; mappings: block index moves, one per (source stack, target stack), e.g.
             "decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}"
    anomalies: [{kind, message, suggestion}]    kind: "prefix_mismatch" | "stripped_prefix" |
             "source_contributed_nothing" | "rule_matched_nothing" | "module_not_loaded" | "dtype_mismatch"
    tree: {module_path: {tensors: {status: n}, parameters: {status: n}}}   every module above a tensor
             ("" is the whole model); only statuses present; `tree.group_children` collapses numbered
             siblings with the same status mix into ranges such as "aggregator.frame_blocks.{0..17}"
"""

from __future__ import annotations

import json
import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field

from vggt_mv.weights.plan import LoadPlan
from vggt_mv.weights.rules import canonical_key
from vggt_mv.weights.tree import build_tree, collapse_indices, loaded_share

SCHEMA_VERSION = 1
STATUS_TO_SUMMARY = {"checkpoint": "checkpoint_loaded", "pi3": "pi3_loaded", "derived": "derived", "random": "random"}
MANY_UNUSED_KEYS = 10


def dtype_name(dtype) -> str | None:
    """'float32' rather than 'torch.float32'."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


@dataclass
class Anomaly:
    """Something about a load a person must look at, with what to do about it."""

    kind: str
    message: str
    suggestion: str


@dataclass
class LoadReport:
    """Provenance of one load (or dry run); plain data built from a LoadPlan."""

    dry_run: bool
    tensors: list[dict]
    mismatched: list[dict]
    unexpected: dict[str, list[str]]
    aliases: dict[str, list[str]]
    rules: list[dict]
    sources: dict[str, dict]
    anomalies: list[Anomaly] = field(default_factory=list)

    @classmethod
    def from_plan(cls, plan: LoadPlan, dry_run: bool) -> "LoadReport":
        """Turn planner decisions into records a person (or a UI) can read."""
        tensors = []
        for key, assignment in plan.assignments.items():
            info = plan.layout[key]
            tensors.append({
                "key": key, "shape": list(info.shape), "dtype": dtype_name(info.dtype), "numel": info.numel,
                "status": assignment.status,
                "source": assignment.status if assignment.status in ("checkpoint", "pi3") else None,
                "source_key": assignment.source_key, "source_dtype": dtype_name(assignment.source_dtype),
                "overrode": assignment.overrode,
            })
        mismatched = [{"key": m.key, "source": m.source, "source_key": m.source_key,
                       "model_shape": list(m.model_shape), "source_shape": list(m.source_shape), "reason": m.reason,
                       "model_dtype": dtype_name(m.model_dtype), "source_dtype": dtype_name(m.source_dtype)}
                      for m in plan.mismatched]
        rules = [{"source": use.source, "name": use.rule.name, "description": use.rule.description,
                  "matched": use.matched, "mappings": rule_mappings(use)} for use in plan.rule_uses]
        sources = {source.role: {"location": source.location, "format": source.format,
                                 "files": [str(path) for path in source.files], "num_tensors": len(source.tensors),
                                 "notes": list(source.notes) + dtype_notes(plan, source.role)}
                   for source in plan.sources}
        report = cls(dry_run, tensors, mismatched, plan.unexpected, plan.aliases, rules, sources)
        report.anomalies = find_anomalies(report, plan)
        return report

    def summary(self) -> dict:
        """Counts per final status in tensors and in parameters, plus overridden/mismatched/unexpected."""
        counts = Counter(record["status"] for record in self.tensors)
        parameters = Counter()
        for record in self.tensors:
            parameters[record["status"]] += record["numel"]
        mismatched_keys = {m["key"] for m in self.mismatched}
        overridden = [r for r in self.tensors if r["overrode"]]
        total, total_parameters = len(self.tensors), sum(parameters.values())
        result = {STATUS_TO_SUMMARY[s]: counts.get(s, 0) for s in STATUS_TO_SUMMARY}
        result.update(missing=counts.get("random", 0), overridden=len(overridden), mismatched=len(mismatched_keys),
                      unexpected={role: len(keys) for role, keys in self.unexpected.items()}, total=total,
                      loaded_fraction=(total - counts.get("random", 0)) / total if total else 0.0)
        parameter_summary = {STATUS_TO_SUMMARY[s]: parameters.get(s, 0) for s in STATUS_TO_SUMMARY}
        parameter_summary.update(
            missing=parameters.get("random", 0), overridden=sum(r["numel"] for r in overridden),
            mismatched=sum(r["numel"] for r in self.tensors if r["key"] in mismatched_keys),
            total=total_parameters,
            loaded_fraction=(total_parameters - parameters.get("random", 0)) / total_parameters
            if total_parameters else 0.0)
        result["parameters"] = parameter_summary
        return result

    def tree(self) -> dict[str, dict]:
        """Per module node: tensors and parameters per status ("" is the whole model)."""
        return build_tree(self.tensors)

    def loaded_fraction(self, expect_random: list[str] | None = None) -> float:
        """Share of parameters loaded (any source or derived), ignoring keys matching `expect_random` regexes."""
        patterns = [re.compile(p) for p in expect_random or []]
        counted = [r for r in self.tensors if not any(p.search(r["key"]) for p in patterns)]
        total = sum(r["numel"] for r in counted)
        loaded = sum(r["numel"] for r in counted if r["status"] != "random")
        return loaded / total if total else 1.0

    def to_dict(self) -> dict:
        """The documented JSON schema (see the module docstring)."""
        return {
            "schema_version": SCHEMA_VERSION, "dry_run": self.dry_run, "sources": self.sources,
            "summary": self.summary(), "tensors": self.tensors, "mismatched": self.mismatched,
            "unexpected": self.unexpected, "aliases": self.aliases, "rules": self.rules,
            "anomalies": [vars(a) for a in self.anomalies], "tree": self.tree(),
        }

    def to_json(self, indent: int | None = 1) -> str:
        """to_dict() as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)


def dtype_notes(plan: LoadPlan, role: str) -> list[str]:
    """'1797 tensors stored as float16, loaded as float32': precision a user would otherwise not notice."""
    conversions = Counter((dtype_name(a.source_dtype), dtype_name(plan.layout[key].dtype))
                          for key, a in plan.assignments.items()
                          if a.status == role and a.source_dtype != plan.layout[key].dtype)
    return [f"{count} tensors stored as {stored}, loaded as {loaded}"
            for (stored, loaded), count in sorted(conversions.items())]


def rule_mappings(use) -> list[str]:
    """'decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}', one line per (source stack, target stack)."""
    moves: dict[tuple[str, str], tuple[list[int], list[int]]] = {}
    for source_stack, source_index, target_stack, target_index in use.index_moves:
        sources, targets = moves.setdefault((source_stack, target_stack), ([], []))
        sources.append(source_index)
        targets.append(target_index)
    return [f"{source_stack}.{collapse_indices(sources)} -> {target_stack}.{collapse_indices(targets)}"
            for (source_stack, target_stack), (sources, targets) in moves.items()]


def is_model_key(key: str, layout: dict) -> bool:
    """A model key as spelled, or through an alias (`view_blocks` for `global_blocks`)."""
    return key in layout or canonical_key(key) in layout


def _prefix_fixes(unused: list[str], layout: dict) -> tuple[str, float] | None:
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


def dtype_anomalies(report: LoadReport) -> list[Anomaly]:
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
        "the file you meant (a corrupt or foreign file holds integers, bools or complex numbers).")
        for role, rows in by_source.items()]


def find_anomalies(report: LoadReport, plan: LoadPlan) -> list[Anomaly]:
    """Zero-coverage modules next to unused keys, rules that matched nothing, sources that gave nothing."""
    anomalies: list[Anomaly] = []
    tree = report.tree()
    top_level = [path for path in tree if path and "." not in path]
    empty_modules = [path for path in top_level if loaded_share(tree[path]) == 0.0]
    contributed = Counter(r["source"] for r in report.tensors if r["source"])
    for source in plan.sources:
        unused = report.unexpected.get(source.role, [])
        fix = _prefix_fixes(unused, plan.layout) if len(unused) >= MANY_UNUSED_KEYS else None
        if fix and fix[1] >= 0.5:
            prefix_edit, share = fix
            if prefix_edit.startswith("+"):
                module = prefix_edit[1:-1]
                message = (f"{len(unused)} keys of the {source.role} source went unused, and {share:.0%} of them are "
                           f"model keys once prefixed with '{prefix_edit[1:]}': this state dict was taken from the "
                           f"'{module}' submodule only (e.g. model.{module}.state_dict()).")
                suggestion = (f"Save and load the whole model's state_dict (keys starting '{prefix_edit[1:]}', "
                              "'camera_head.', ...), never a submodule's; or add the prefix when converting.")
            else:
                prefix = prefix_edit[1:]
                message = (f"{len(unused)} keys of the {source.role} source went unused, and {share:.0%} of them are "
                           f"model keys once the stray prefix '{prefix}' is removed.")
                suggestion = f"Strip the '{prefix}' prefix from the checkpoint's keys (or save model.state_dict() itself)."
            anomalies.append(Anomaly("prefix_mismatch", message, suggestion))
        for note in source.notes:
            if "module." in note:
                anomalies.append(Anomaly(
                    "stripped_prefix", f"{source.role} source: {note}.",
                    "Save model.module.state_dict() (the unwrapped model) so checkpoints load without fix-ups."))
        if contributed.get(source.role, 0) == 0:
            anomalies.append(Anomaly(
                "source_contributed_nothing",
                f"The {source.role} source ({source.location}, {len(source.tensors)} tensors) loaded no tensor.",
                "Check it is a checkpoint of this model (VGGT for --checkpoint, Pi3 for --pi3) and that its keys "
                "are not prefixed or taken from a submodule."))
    anomalies += dtype_anomalies(report)
    for use in plan.rule_uses:
        if use.matched == 0 and not use.rule.optional:
            anomalies.append(Anomaly(
                "rule_matched_nothing", f"Rule {use.rule.name} ({use.rule.description}) matched no key of the "
                f"{use.source} source.", "Check the source is what this rule set expects, or choose another rule set."))
    unused_total = sum(len(keys) for keys in report.unexpected.values())
    has_checkpoint = any(source.role == "checkpoint" for source in plan.sources)
    for module in empty_modules:
        if unused_total >= MANY_UNUSED_KEYS:
            suggestion = ("Compare the unused keys with this module's keys (a missing or stray prefix is the usual "
                          "cause)." if has_checkpoint else
                          "Pi3 rules only fill the aggregator: also give a VGGT checkpoint (e.g. facebook/VGGT-1B) "
                          "for this module, or list it with --expect-random if it is meant to stay random.")
            anomalies.append(Anomaly(
                "module_not_loaded",
                f"Module '{module}' is 0% loaded while the sources have {unused_total} unused keys.", suggestion))
    return anomalies
