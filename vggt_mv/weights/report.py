"""LoadReport: the provenance of every model tensor as plain data; text, JSON, treemap and tree are views.

JSON schema of `LoadReport.to_dict()`, schema_version 3. Every count is an int; new keys may be added within
a version, existing ones keep their meaning; a change of meaning bumps schema_version.

    schema_version: 3
    subject: "dry_run" | "load" | "served_model"   what the report describes: headers only; a real load; the
             model a server runs (as it was loaded at start-up, or all random when no weights were given)
    dry_run: bool                               true: computed from headers only, no tensor data read
    suspect_untrained_checked: bool             true: the data of every loaded tensor was checked against its
             module's initialisation (a real load); false: not checked (a dry run, or a served model that
             loaded no weights), and every `suspect_untrained` below is null, claiming nothing
    sources: {name: {location, format, files: [str], num_tensors, rules, notes: [str], config}}
             in loading order (later sources override earlier ones). name: "checkpoint" and "pi3" for the
             default sources, else the caller's (1..32 of [A-Za-z0-9_-], never "derived" or "random");
             format: "safetensors" | "torch"; rules: the rule set's name; notes: what was unwrapped or stripped
             (wrapper dict, `module.` prefix, legacy torch file) and dtype conversions ("1797 tensors stored as
             float16, loaded as float32"); config: VGGTMVConfig fields inferred from the header (embed_dim,
             depth, num_heads, mlp_ratio, num_register_tokens, patch_embed, camera_trunk_depth, enable_camera,
             enable_point, enable_depth, enable_track, and `preset` when a named preset fits), or null when the
             source is not a whole VGGT/VGGT_MV state dict
    summary: {checkpoint_loaded, pi3_loaded, loaded: {name: n}, derived, random, missing (= random), overridden,
              mismatched, unexpected: {name: n}, suspect_untrained, total, loaded_fraction,
              parameters: {checkpoint_loaded, pi3_loaded, loaded: {name: n}, derived, random, missing,
                           overridden, mismatched, suspect_untrained, total, loaded_fraction}}
             counts of model tensors by final status (each counted once; `parameters` counts elements);
             checkpoint_loaded / pi3_loaded: the seed's vocabulary (0 without such a source); loaded: per source;
             overridden: loaded by a later source over an earlier one; mismatched: model tensors some source
             offered with the wrong shape; unexpected: source keys no rule used (counted in source tensors);
             loaded_fraction: share not random; suspect_untrained: loaded tensors (parameters) whose values look
             like an initialisation (null when not checked)
    tensors: [{key, shape: [int], dtype, numel, status, source, source_key, source_dtype, overrode,
               suspect_untrained}]
             one per model state_dict entry, in model order; dtype: the model's (final) dtype;
             status: a source's name (loaded from that source) | "derived" (copied from the loaded model tensor
             `source_key`: dual-stream blocks) | "random" (no source: initialised by its module after a meta
             build, or kept as it was in an already built model);
             source: the source's name or null; source_dtype: dtype stored in the source (null if random);
             overrode: null or {source, source_key} of what an earlier source had put there;
             suspect_untrained: null (not suspect, not loaded, or not checked) or {init, reason} when the loaded
             values match their module's init (untrained.py): init names it ("LayerScale init_values 0.01"),
             reason gives the evidence ("every value is 0.01: ...", or the std/kurtosis/range that matched).
             Only tensors loaded from a source are checked; derived and random ones are null
    mismatched: [{key, source, source_key, model_shape, source_shape, reason, model_dtype, source_dtype}]
             never loaded; the target keeps what it had. reason: "shape" (e.g. Pi3 register_token
             [1, 1, 5, 1024] vs [1, 2, 4, 1024]) or "dtype" (a source tensor that is not floating point, such as
             int8, bool or complex64, offered for a floating point model tensor; a real load refuses such a
             source, so only dry runs report these rows)
    unexpected: {name: [source_key]}            keys of a source that no rule used: none mapped it onto a model
                                                key, and no not_loaded rule declared it (rule_files.py)
    aliases: {model_key: [source_key]}          further source keys naming an already-loaded tensor
                                                (`view_blocks.*` next to `global_blocks.*`)
    rules: [{source, name, description, matched, mappings: [str], not_loaded}]   name: "<source>:<rule>";
             matched: source keys mapped onto model keys (for a not_loaded rule: the keys it declared not loaded);
             mappings: block index moves, one per (source stack, target stack), e.g.
             "decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}"; not_loaded: true for a rule that maps
             nothing and names keys with no counterpart in the model (Pi3X's own modules)
    anomalies: [{kind, message, suggestion, modules: [str], source}]   one per cause; modules: the modules it
             explains (0% loaded, or holding its mismatches); source: the source's name or null. kind:
             "prefix_mismatch" (a submodule's state dict or a stray prefix) | "config_mismatch" (saved from
             another configuration: the message names the preset or fields it fits) | "source_contributed_nothing"
             | "rule_matched_nothing" | "shape_mismatch" (many shapes differ, config unknown) | "module_not_loaded"
             (0%-loaded modules no other cause explains) | "stripped_prefix" | "dtype_mismatch" |
             "suspect_untrained" (one per source: tensors it loaded whose values look like an initialisation;
             modules: the top-level modules holding them) | "not_loaded_as_expected" (one per not_loaded rule
             that named keys, in that rule's words; modules: the source's top-level modules holding them)
    tree: {module_path: {tensors: {status: n}, parameters: {status: n}, suspect_untrained: {tensors: n,
             parameters: n} | null}}   every module above a tensor ("" is the whole model); only statuses
             present; suspect_untrained: null when not checked; `tree.group_children` collapses numbered
             siblings with the same status mix and suspect count into ranges such as
             "aggregator.frame_blocks.{0..17}"

Changes within version 3: `rules[].not_loaded` and anomaly kind "not_loaded_as_expected" (rule sets
`pi3x-decoder`, `pi3x-decoder+encoder`); keys a not_loaded rule names are not `unexpected`.
Version 3 (`suspect_untrained_checked`; per tensor, per tree node and in the summary
`suspect_untrained`; anomaly kind "suspect_untrained"). Version 2 (statuses are source names; N sources; `subject`; per-source `rules` and `config`;
`summary.loaded`; anomalies grouped by cause with `modules` and `source`; kind "module_not_loaded" is one
anomaly listing every module; kinds "config_mismatch" and "shape_mismatch" are new). Version 1: the two
sources `checkpoint` and `pi3` only, one "module_not_loaded" anomaly per module.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field

from vggt_mv.weights.anomalies import Anomaly, find_anomalies, suspect_anomalies
from vggt_mv.weights.config_inference import infer_config, matching_preset
from vggt_mv.weights.plan import UNLOADED_STATUSES, LoadPlan
from vggt_mv.weights.tree import build_tree, collapse_indices, collapse_keys, status_order

SCHEMA_VERSION = 3
SUBJECTS = ("dry_run", "load", "served_model")
SEED_SUMMARY = {"checkpoint": "checkpoint_loaded", "pi3": "pi3_loaded"}

__all__ = ["Anomaly", "LoadReport", "SCHEMA_VERSION", "dtype_name", "mismatch_groups", "suspect_groups"]


class CoverageError(AssertionError):
    """Tensors stayed random that the caller did not expect to (raised by LoadReport.assert_coverage)."""


def dtype_name(dtype) -> str | None:
    """'float32' rather than 'torch.float32'."""
    return None if dtype is None else str(dtype).removeprefix("torch.")


def source_config(tensors) -> dict | None:
    """The config a source's header fits, with the matching preset's name (or null)."""
    fields = infer_config(tensors)
    return None if fields is None else {**fields, "preset": matching_preset(fields)}


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
    subject: str | None = None  # None: "dry_run" or "load" from dry_run
    suspects_checked: bool = False  # True once record_suspects ran over the loaded data

    @classmethod
    def from_plan(cls, plan: LoadPlan, dry_run: bool, rule_set_names: dict[str, str] | None = None) -> "LoadReport":
        """Turn planner decisions into records a person (or a UI) can read."""
        names = {source.role for source in plan.sources}
        tensors = []
        for key, assignment in plan.assignments.items():
            info = plan.layout[key]
            tensors.append({
                "key": key, "shape": list(info.shape), "dtype": dtype_name(info.dtype), "numel": info.numel,
                "status": assignment.status,
                "source": assignment.status if assignment.status in names else None,
                "source_key": assignment.source_key, "source_dtype": dtype_name(assignment.source_dtype),
                "overrode": assignment.overrode, "suspect_untrained": None,
            })
        mismatched = [{"key": m.key, "source": m.source, "source_key": m.source_key,
                       "model_shape": list(m.model_shape), "source_shape": list(m.source_shape), "reason": m.reason,
                       "model_dtype": dtype_name(m.model_dtype), "source_dtype": dtype_name(m.source_dtype)}
                      for m in plan.mismatched]
        rules = [{"source": use.source, "name": use.rule.name, "description": use.rule.description,
                  "matched": use.matched, "mappings": rule_mappings(use), "not_loaded": use.rule.not_loaded}
                 for use in plan.rule_uses]
        rule_set_names = rule_set_names or {}
        sources = {source.role: {"location": source.location, "format": source.format,
                                 "files": [str(path) for path in source.files], "num_tensors": len(source.tensors),
                                 "rules": rule_set_names.get(source.role),
                                 "notes": list(source.notes) + dtype_notes(plan, source.role),
                                 "config": source_config(source.tensors)}
                   for source in plan.sources}
        report = cls(dry_run, tensors, mismatched, plan.unexpected, plan.aliases, rules, sources)
        report.anomalies = find_anomalies(report, plan)
        return report

    def record_suspects(self, suspicions) -> None:
        """Mark the loaded tensors whose data looks like an initialisation (untrained.Suspicion list; the data of
        every loaded tensor was checked), and add one anomaly per source that loaded such tensors."""
        by_key = {suspicion.key: suspicion for suspicion in suspicions}
        for record in self.tensors:
            suspicion = by_key.get(record["key"]) if record["source"] else None
            record["suspect_untrained"] = (None if suspicion is None
                                           else {"init": suspicion.init, "reason": suspicion.reason})
        self.suspects_checked = True
        self.anomalies = [a for a in self.anomalies if a.kind != "suspect_untrained"] + suspect_anomalies(self)

    def suspect_records(self) -> list[dict]:
        """Tensor records flagged as looking untrained (none when not checked)."""
        return [r for r in self.tensors if r.get("suspect_untrained")] if self.suspects_checked else []

    def contributed(self) -> Counter:
        """Tensors each source put into the model, those a later source overrode included."""
        counts = Counter(r["source"] for r in self.tensors if r["source"])
        counts.update(r["overrode"]["source"] for r in self.tensors if r["overrode"])
        return counts

    def statuses(self) -> list[str]:
        """Every status in display order: the sources in loading order, then derived, then random."""
        return status_order([r["status"] for r in self.tensors], list(self.sources))

    def summary(self) -> dict:
        """Counts per final status in tensors and in parameters, plus overridden/mismatched/unexpected."""
        counts = Counter(record["status"] for record in self.tensors)
        parameters = Counter()
        for record in self.tensors:
            parameters[record["status"]] += record["numel"]
        mismatched_keys = {m["key"] for m in self.mismatched}
        overridden = [r for r in self.tensors if r["overrode"]]
        total, total_parameters = len(self.tensors), sum(parameters.values())
        loaded_names = list(dict.fromkeys([*self.sources, *(s for s in self.statuses() if s not in UNLOADED_STATUSES)]))

        def by_status(table: Counter) -> dict:
            result = {label: table.get(status, 0) for status, label in SEED_SUMMARY.items()}
            result["loaded"] = {name: table.get(name, 0) for name in loaded_names}
            result.update(derived=table.get("derived", 0), random=table.get("random", 0),
                          missing=table.get("random", 0))
            return result

        result = by_status(counts)
        suspects = self.suspect_records()
        result.update(overridden=len(overridden), mismatched=len(mismatched_keys),
                      unexpected={role: len(keys) for role, keys in self.unexpected.items()},
                      suspect_untrained=len(suspects) if self.suspects_checked else None, total=total,
                      loaded_fraction=(total - counts.get("random", 0)) / total if total else 0.0)
        parameter_summary = by_status(parameters)
        parameter_summary.update(
            overridden=sum(r["numel"] for r in overridden),
            mismatched=sum(r["numel"] for r in self.tensors if r["key"] in mismatched_keys),
            suspect_untrained=sum(r["numel"] for r in suspects) if self.suspects_checked else None,
            total=total_parameters,
            loaded_fraction=(total_parameters - parameters.get("random", 0)) / total_parameters
            if total_parameters else 0.0)
        result["parameters"] = parameter_summary
        return result

    def tree(self) -> dict[str, dict]:
        """Per module node: tensors and parameters per status ("" is the whole model)."""
        return build_tree(self.tensors, self.suspects_checked)

    def loaded_fraction(self, expect_random: list[str] | None = None) -> float:
        """Share of parameters loaded (any source or derived), ignoring keys matching `expect_random` regexes."""
        patterns = [re.compile(p) for p in expect_random or []]
        counted = [r for r in self.tensors if not any(p.search(r["key"]) for p in patterns)]
        total = sum(r["numel"] for r in counted)
        loaded = sum(r["numel"] for r in counted if r["status"] != "random")
        return loaded / total if total else 1.0

    def random_keys(self, expect_random: list[str] | None = None) -> list[str]:
        """Tensors that stayed random, except those matching an `expect_random` regex (`re.search`)."""
        patterns = [re.compile(p) for p in expect_random or []]
        return [r["key"] for r in self.tensors
                if r["status"] == "random" and not any(p.search(r["key"]) for p in patterns)]

    def assert_coverage(self, expect_random: list[str] | None = None, fail_under: float = 1.0) -> None:
        """Raise CoverageError, naming the unexpected random tensors by collapsed ranges, when less than
        `fail_under` of the parameters outside `expect_random` loaded: the line to keep in a training script."""
        share = self.loaded_fraction(expect_random)
        if share >= fail_under:
            return
        groups = [label for label, _ in collapse_keys(self.random_keys(expect_random))]
        shown = ", ".join(groups[:8]) + (f" and {len(groups) - 8} more groups" if len(groups) > 8 else "")
        anomalies = "; ".join(a.message for a in self.anomalies[:3])
        raise CoverageError(f"{share:.2%} of parameters loaded (need {fail_under:.2%}); random: {shown}"
                            + (f". Anomalies: {anomalies}" if anomalies else ""))

    def to_dict(self) -> dict:
        """The documented JSON schema (see the module docstring)."""
        return {
            "schema_version": SCHEMA_VERSION, "subject": self.subject or ("dry_run" if self.dry_run else "load"),
            "dry_run": self.dry_run, "suspect_untrained_checked": self.suspects_checked, "sources": self.sources,
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


def mismatch_unit(key: str) -> str:
    """The module a mismatch is listed under: up to the first block index ("aggregator.frame_blocks.3"), else the
    first two name parts ("point_head.scratch")."""
    parts = key.split(".")
    index = next((i for i, part in enumerate(parts[:-1]) if part.isdigit()), None)
    return ".".join(parts[:index + 1] if index is not None else parts[:2])


def mismatch_groups(rows: list[dict]) -> list[dict]:
    """Mismatch rows collapsed like the tree: one group per source, reason and module range
    ("aggregator.frame_blocks.{0..3}"): {key (the tensor's key for a single row, else "<range>.*"), source,
    source_key, count, row (the first one, as an example)}."""
    by_kind: dict[tuple, list[dict]] = {}
    for row in rows:
        by_kind.setdefault((row["source"], row["reason"]), []).append(row)
    return unit_groups(by_kind)


def suspect_groups(records: list[dict]) -> list[dict]:
    """Tensor records that look untrained, collapsed like mismatch_groups: per source and module range."""
    by_source: dict[tuple, list[dict]] = {}
    for record in records:
        by_source.setdefault((record["source"],), []).append(record)
    return unit_groups(by_source)


def unit_groups(by_kind: dict[tuple, list[dict]]) -> list[dict]:
    """Rows of each kind grouped by mismatch_unit, units differing only in block indices merged."""
    groups = []
    for members in by_kind.values():
        by_unit: dict[str, list[dict]] = {}
        for row in members:
            by_unit.setdefault(mismatch_unit(row["key"]), []).append(row)
        for label, units in collapse_keys(list(by_unit)):
            chosen = [row for unit in units for row in by_unit[unit]]
            single = len(chosen) == 1
            groups.append({"key": chosen[0]["key"] if single else f"{label}.*", "source": chosen[0]["source"],
                           "source_key": chosen[0]["source_key"], "count": len(chosen), "row": chosen[0]})
    return groups
