"""What the Weights tab does, as plain functions: resolve sources safely, run the loader (or compare two
checkpoints), shape its views."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from vggt_mv.config import PRESETS, VGGTMVConfig
from vggt_mv.viz.weights_tree_html import (mismatched_rows, overridden_rows, render_tree_html, rule_rows,
                                           unexpected_rows)
from vggt_mv.viz.compare_treemap import build_compare_treemap
# The compare table's columns, for app.py's grid (re-exported: the app wires, the views decide).
from vggt_mv.viz.compare_views import TABLE_HEADERS as COMPARE_TABLE_HEADERS  # noqa: F401
from vggt_mv.viz.compare_views import TABLE_TYPES as COMPARE_TABLE_TYPES  # noqa: F401
from vggt_mv.viz.compare_views import TABLE_WIDTHS as COMPARE_TABLE_WIDTHS  # noqa: F401
from vggt_mv.viz.compare_views import change_table, summary_markdown, unchanged_markdown
from vggt_mv.viz.weights_treemap import build_treemap
from vggt_mv.serving.gpu import on_zerogpu
from vggt_mv.weights import PI3_RULE_SETS, WeightsSourceError, build_and_load, load_weights
from vggt_mv.weights.compare import Comparison, compare_checkpoints
from vggt_mv.weights.hub import HUB_SCHEME, looks_like_repo_id
from vggt_mv.weights.report import LoadReport
from vggt_mv.weights.rule_files import BUILTIN_RULE_SETS
from vggt_mv.weights.rules import pi3_rule_set_name
from vggt_mv.weights.source_specs import SourceSpec, check_source_name
from vggt_mv.weights.sources import TORCH_SUFFIXES, exists, has_control_characters, shown

WEIGHT_SUFFIXES = (".safetensors", ".json") + TORCH_SUFFIXES
MAX_SOURCE_CHARS = 1024
MAX_SOURCES = 4
DEFAULT_SOURCE_ROWS = (("checkpoint", "identity"), ("pi3", "pi3-decoder"), ("", "identity"), ("", "identity"))
SOURCE_LABELS = ("VGGT checkpoint", "Pi3", "Source 3", "Source 4")
SERVED_TITLE = "The served model"
# Every JSON report goes under one root, one folder per report content, the newest MAX_KEPT_REPORTS kept.
REPORTS_FOLDER = "vggt-mv-weight-reports"
REPORT_NAME = "weights_report.json"
COMPARISON_NAME = "weights_comparison.json"
MAX_KEPT_REPORTS = 32
# One load at a time: each holds a second copy of the model beside the served one until the swap.
LOADING = threading.Lock()


class WeightsTabError(ValueError):
    """A message for the person at the browser."""


@dataclass(frozen=True)
class SourceRequest:
    """One source row of the tab (or of the API): every field as the client sent it, unchecked."""

    name: object = ""
    text: object = ""
    upload: object = None
    rules: object = "identity"


@dataclass
class WeightsView:
    """Everything the tab shows for one report."""

    totals: str
    treemap: object
    tree_html: str
    mismatched: list[list]
    unexpected: list[list]
    overridden: list[list]
    rules: list[list]
    json_path: str
    report: dict


def allowed_files(weights_dir: Path | None) -> list[str]:
    """Weight files under the operator's --weights-dir, relative to it (for a dropdown)."""
    if weights_dir is None or not weights_dir.is_dir():
        return []
    return sorted(str(p.relative_to(weights_dir)) for p in weights_dir.rglob("*")
                  if p.is_file() and p.name.endswith(WEIGHT_SUFFIXES))


def check_source_text(text: object) -> str:
    """What a visitor typed (or an API client sent), refused unless it could name a file or a repo."""
    if text is None:
        return ""
    if not isinstance(text, str):
        raise WeightsTabError(f"a weights source must be text, got {type(text).__name__}")
    if len(text) > MAX_SOURCE_CHARS:
        raise WeightsTabError(f"the weights source is {len(text):,} characters long, over the limit of "
                              f"{MAX_SOURCE_CHARS:,}")
    if has_control_characters(text):
        raise WeightsTabError(f"the weights source {shown(text)} contains control characters (NUL, line breaks, "
                              "escapes); give a Hub repo id or a file name")
    return text.strip()


def file_under(weights_dir: Path, text: str) -> Path | None:
    """The existing file or folder `text` names under --weights-dir, symlinks followed; None if it is not one."""
    try:
        candidate = (weights_dir / text).resolve()
    except (OSError, RuntimeError, ValueError):
        return None
    return candidate if candidate.is_relative_to(weights_dir.resolve()) and exists(candidate) else None


def resolve_source(text: str | None, upload: str | None, weights_dir: Path | None) -> str | None:
    """An upload, a Hub repo id, or a file under --weights-dir; any other path is refused."""
    upload = check_source_text(upload)
    if upload:
        return upload
    text = check_source_text(text)
    if not text:
        return None
    if weights_dir is not None:
        candidate = file_under(weights_dir, text)
        if candidate is not None:
            return str(candidate)
    if text.endswith(WEIGHT_SUFFIXES) and weights_dir is not None:
        raise WeightsTabError(f"{text!r} is not a file under the server's weights folder")
    if looks_like_repo_id(text):
        return HUB_SCHEME + text  # never a local path, whatever the server's working directory holds
    allowed = f"files under {weights_dir}" if weights_dir else "uploads"
    raise WeightsTabError(f"{text!r} is not a Hub repo id (owner/name) or one of the {allowed}; "
                          "this server reads no other paths")


SUBJECT_WORDS = {"dry_run": "dry run: headers only", "load": "loaded into the served model",
                 "served_model": "the model this server runs, as loaded at start-up"}


def totals_markdown(report: LoadReport, title: str) -> str:
    """Totals in tensors and parameters per status, the other counts, and anomalies with their fixes."""
    summary = report.summary()
    parameters = summary["parameters"]
    rows = ["| status | tensors | parameters |", "|---|---|---|"]
    for name in summary["loaded"]:
        rows.append(f"| {name} | {summary['loaded'][name]:,} | {parameters['loaded'][name]:,} |")
    for key in ("derived", "random"):
        rows.append(f"| {key} | {summary[key]:,} | {parameters[key]:,} |")
    unexpected = ", ".join(f"{role} {count:,}" for role, count in summary["unexpected"].items()) or "none"
    subject = report.to_dict()["subject"] if report.subject is None else report.subject
    suspects = summary["suspect_untrained"]
    suspect_text = ("not checked (no data read)" if suspects is None else
                    f"**{suspects:,}** tensors ({parameters['suspect_untrained']:,} parameters) loaded but look "
                    "untrained" if suspects else "none (every loaded tensor's data checked)")
    lines = [f"### {title}", f"**{parameters['loaded_fraction']:.2%}** of {parameters['total']:,} parameters loaded "
             f"({SUBJECT_WORDS[subject]}).", "", *rows, "",
             f"Overridden: {summary['overridden']:,} · mismatched: {summary['mismatched']:,} · "
             f"unexpected: {unexpected}", "", f"Suspect untrained (values match their init): {suspect_text}"]
    for role, source in report.sources.items():
        lines.append(f"- {role}: `{source['location']}` ({source['format']}, {source['num_tensors']:,} tensors, "
                     f"rules {source.get('rules')})")
    if report.anomalies:
        lines += ["", "#### ⚠️ Anomalies"]
        lines += [f"- **{a.message}**  \n  Fix: {a.suggestion}" for a in report.anomalies]
    return "\n".join(lines)


def reports_root() -> Path:
    """The one folder, under the system's temp dir, holding every report this server offers for download."""
    return Path(tempfile.gettempdir()) / REPORTS_FOLDER


def modified_at(path: Path) -> float:
    """A file's mtime, or 0 when another process just removed it."""
    try:
        return path.stat().st_mtime
    except OSError:
        return 0.0


def prune_reports(root: Path, keep: Path) -> None:
    """Delete the report folders beyond the MAX_KEPT_REPORTS newest (never `keep`, the one just written)."""
    def newest(folder: Path) -> float:
        return max(modified_at(folder / name) for name in (REPORT_NAME, COMPARISON_NAME))

    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=newest, reverse=True)
    for folder in folders[MAX_KEPT_REPORTS:]:
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


def write_report_json(text: str, folder: Path | None, name: str = REPORT_NAME) -> Path:
    """The JSON for download: in `folder` if given, else in a folder named by the content's hash under one root
    that keeps the newest reports only, so repeated requests never accumulate files."""
    root = None
    if folder is None:
        root = reports_root()
        folder = root / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    with tempfile.NamedTemporaryFile("w", dir=folder, suffix=".part", delete=False) as part:
        part.write(text)
    os.replace(part.name, path)  # a download in progress never sees half a file
    if root is not None:
        prune_reports(root, keep=folder)
    return path


def make_view(report: LoadReport, title: str, folder: Path | None = None) -> WeightsView:
    """All views of one report, plus its JSON written for download."""
    data = report.to_dict()
    json_path = write_report_json(json.dumps(data, indent=1), folder)
    return WeightsView(totals_markdown(report, title), build_treemap(report), render_tree_html(report),
                       mismatched_rows(report), unexpected_rows(report), overridden_rows(report), rule_rows(report),
                       str(json_path), data)


def served_report(served) -> LoadReport:
    """The served model's report, labelled as such: its start-up load, or (no weights given) every tensor random."""
    import dataclasses

    report = served.report or load_weights(served.model, dry_run=True)
    return dataclasses.replace(report, subject="served_model", dry_run=False)


def served_view(served) -> WeightsView:
    """How the served model was loaded at start-up (all random when no weights could be had), and what its weights
    were trained for (which `auto` attention follows)."""
    return with_training_line(make_view(served_report(served), SERVED_TITLE), served)


def with_training_line(view: WeightsView, served) -> WeightsView:
    """The view with one line under the totals: the attention the served weights were trained for, and why."""
    mode = served.trained.mode
    trained_for = f"{mode} attention" if mode else "nothing (random weights)"
    line = (f"**Trained for:** {trained_for}: {served.trained.reason}. The Reconstruct tab's `auto` runs "
            f"{'multi' if mode == 'multi' else 'global'} attention for several cameras.")
    return replace(view, totals=f"{view.totals}\n\n{line}")


def without_server_folders(message: str, weights_dir: Path | None, uploads: list[str | None]) -> str:
    """A visitor sees files as named under the weights folder or as uploaded, never where the server keeps them."""
    folders = [str(Path(upload).parent) for upload in uploads if upload]
    if weights_dir is not None:
        folders += [str(weights_dir.resolve()), str(weights_dir)]
    for folder in (folder.rstrip(os.sep) for folder in folders):
        if folder:  # never the root folder itself: that would strip every separator
            message = message.replace(folder + os.sep, "")
    return message


def refuse_sources_that_gave_nothing(report: LoadReport) -> None:
    """Swapping in a model that a source contributed nothing to would only lose what the served model had."""
    contributed = report.contributed()
    empty = next((name for name in report.sources if contributed.get(name, 0) == 0), None)
    if empty is not None:
        anomaly = next((a for a in report.anomalies if a.source == empty), None)
        reason = anomaly.message if anomaly else f"The {empty} source loaded no tensor."
        raise WeightsTabError(f"{reason} The served model is unchanged.")


def load_into_served(served, specs: list[SourceSpec], mostly_random_share: float) -> LoadReport:
    """Load into a new model beside the served one (same config, device and dtype) and swap it in only once every
    tensor loaded: a failed or refused load leaves the served model, its report and its banner as they were."""
    with LOADING:
        try:
            # On ZeroGPU the main process must not touch CUDA (outside start-up, a handler thread would initialise
            # it): the new model stays on the CPU here, and each GPU worker moves it, or rebuilds it, on its GPU.
            device = "cpu" if on_zerogpu() else served.device
            model, report = build_and_load(served.config, sources=specs, device=device, dtype=served.dtype)
        except torch.OutOfMemoryError:
            raise WeightsTabError(f"not enough memory on {served.device} to load new weights beside the served "
                                  "model; the served model is unchanged") from None
        refuse_sources_that_gave_nothing(report)
        served.replace_model(model, report, mostly_random_share, tuple(specs))
    return report


def checked_rows(rows: object, weights_dir: Path | None) -> list[SourceSpec]:
    """The rows that name a source, as SourceSpecs: at most MAX_SOURCES, names unique and plain, rules built in
    (a client never names a rules file on the server), locations confined as resolve_source says."""
    if not isinstance(rows, (list, tuple)):
        raise WeightsTabError(f"sources must be a list, got {type(rows).__name__}")
    if len(rows) > 2 * MAX_SOURCES:
        raise WeightsTabError(f"{len(rows)} source rows; at most {MAX_SOURCES} sources")
    specs = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, SourceRequest):
            raise WeightsTabError(f"source row {number} is not a source")
        location = resolve_source(row.text, row.upload, weights_dir)
        if location is None:
            continue
        name = row.name.strip() if isinstance(row.name, str) else row.name
        try:
            check_source_name(name)
        except WeightsSourceError as error:
            raise WeightsTabError(f"source {number}: {error}") from None
        if not isinstance(row.rules, str) or row.rules not in BUILTIN_RULE_SETS:
            raise WeightsTabError(f"source {name}: unknown rule set {shown(row.rules)}; choose one of "
                                  f"{', '.join(BUILTIN_RULE_SETS)}")
        specs.append(SourceSpec(name, location, row.rules))
    if len(specs) > MAX_SOURCES:
        raise WeightsTabError(f"{len(specs)} sources; at most {MAX_SOURCES}")
    names = [spec.name for spec in specs]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise WeightsTabError(f"two sources are named {duplicate!r}; give each its own name")
    return specs


def inspect_sources(served, rows: list[SourceRequest], weights_dir: Path | None, apply: bool, allow_apply: bool,
                    preset: str | None = None, mostly_random_share: float = 0.5) -> WeightsView:
    """Dry run of up to MAX_SOURCES sources (in order, later ones override) against a preset's layout, or load them
    into the served model when the operator allows it; with no source at all, the served model's own report."""
    if preset and (not isinstance(preset, str) or preset not in PRESETS):
        raise WeightsTabError(f"unknown model layout {shown(preset)}; choose one of {', '.join(sorted(PRESETS))}")
    specs = checked_rows(rows, weights_dir)
    if not specs:
        if apply:
            raise WeightsTabError("choose at least one source to load into the served model")
        return served_view(served)
    if apply and preset and preset != served.preset:
        raise WeightsTabError(f"the served model is the {served.preset} preset; choose it to load into it")
    if apply and not allow_apply:
        raise WeightsTabError("loading into the served model is disabled on this server (start it with "
                              "--allow-weight-loading); a dry run works")
    uploads = [row.upload for row in rows if isinstance(row.upload, str)]
    try:
        if apply:
            report = load_into_served(served, specs, mostly_random_share)
        else:
            config = VGGTMVConfig.from_preset(preset) if preset else served.config
            _, report = build_and_load(config, sources=specs, dry_run=True)
    except (WeightsSourceError, WeightsTabError) as error:
        raise WeightsTabError(without_server_folders(str(error), weights_dir, uploads)) from None
    view = make_view(report, "Loaded into the served model" if apply else "Dry run")
    return with_training_line(view, served) if apply else view


def inspect(served, checkpoint_text, checkpoint_upload, pi3_text, pi3_upload, pi3_rules, weights_dir: Path | None,
            apply: bool, allow_apply: bool, preset: str | None = None, mostly_random_share: float = 0.5
            ) -> WeightsView:
    """The two default sources (a VGGT checkpoint, Pi3 by its rule set): inspect_sources with those rows."""
    if pi3_rules not in PI3_RULE_SETS:
        raise WeightsTabError(f"unknown Pi3 rule set {shown(pi3_rules)}")
    rows = [SourceRequest("checkpoint", checkpoint_text, checkpoint_upload, "identity"),
            SourceRequest("pi3", pi3_text, pi3_upload, pi3_rule_set_name(pi3_rules))]
    return inspect_sources(served, rows, weights_dir, apply, allow_apply, preset, mostly_random_share)


def api_source_requests(checkpoint: object, pi3: object, pi3_rules: object, sources: object) -> list[SourceRequest]:
    """The API's sources as rows: `checkpoint`, `pi3` (by `pi3_rules`), then `sources`, a list of
    {"name", "source", "rules"} objects; anything else is refused with one message."""
    if pi3_rules not in PI3_RULE_SETS:
        raise WeightsTabError(f"unknown Pi3 rule set {shown(pi3_rules)}")
    rows = [SourceRequest("checkpoint", checkpoint, None, "identity"),
            SourceRequest("pi3", pi3, None, pi3_rule_set_name(pi3_rules))]
    if sources in (None, ""):
        return rows
    if not isinstance(sources, list) or len(sources) > MAX_SOURCES:
        raise WeightsTabError(f"sources must be a list of at most {MAX_SOURCES} {{name, source, rules}} objects")
    for number, item in enumerate(sources, 1):
        if not isinstance(item, dict) or not set(item) <= {"name", "source", "rules"} or "source" not in item:
            raise WeightsTabError(f"source {number} must be an object with `name`, `source` and optional `rules`")
        rows.append(SourceRequest(item.get("name", ""), item["source"], None, item.get("rules", "identity")))
    return rows


COMPARE_DISABLED = ("comparing checkpoints reads every byte of both, so it is disabled on this server (start it with "
                    "--allow-weight-loading)")


@dataclass
class CompareView:
    """Everything the compare mode shows for one comparison (views in viz/compare_views.py and compare_treemap.py)."""

    summary: str
    treemap: object
    table: list[list]
    unchanged: str
    json_path: str
    comparison: dict


def compare_view(comparison: Comparison) -> CompareView:
    """The compare mode's views, plus the comparison's JSON written for download (the bounded reports folder)."""
    data = comparison.to_dict()
    json_path = write_report_json(json.dumps(data, indent=1, allow_nan=False), None, COMPARISON_NAME)
    return CompareView(summary_markdown(comparison), build_compare_treemap(comparison), change_table(comparison),
                       unchanged_markdown(comparison), str(json_path), data)


def visitor_name(text: object, upload: object) -> str:
    """How the visitor named a side: the upload's file name, or what they typed."""
    if isinstance(upload, str) and upload.strip():
        return Path(upload).name
    return text.strip() if isinstance(text, str) else ""


def compare_checkpoint_files(text_a: object, upload_a: object, text_b: object, upload_b: object,
                             weights_dir: Path | None, allow_loading: bool, on_tensor=None) -> CompareView:
    """Compare checkpoint a with b (each an upload, a Hub repo id or a file under --weights-dir, confined as
    resolve_source says), only where the operator allows reading whole checkpoints."""
    if not allow_loading:
        raise WeightsTabError(COMPARE_DISABLED)
    location_a = resolve_source(text_a, upload_a, weights_dir)
    location_b = resolve_source(text_b, upload_b, weights_dir)
    if location_a is None or location_b is None:
        raise WeightsTabError("choose two checkpoints to compare: a and b")
    uploads = [upload for upload in (upload_a, upload_b) if isinstance(upload, str)]
    try:
        comparison = compare_checkpoints(location_a, location_b, roles=("a", "b"), on_tensor=on_tensor)
    except WeightsSourceError as error:
        raise WeightsTabError(without_server_folders(str(error), weights_dir, uploads)) from None
    except MemoryError:
        raise WeightsTabError("not enough memory to compare these checkpoints") from None
    comparison.a = replace(comparison.a, location=visitor_name(text_a, upload_a))
    comparison.b = replace(comparison.b, location=visitor_name(text_b, upload_b))
    return compare_view(comparison)
