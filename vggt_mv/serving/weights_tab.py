"""What the Weights tab does, as plain functions: resolve sources safely, run the loader, shape its views."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import torch

from vggt_mv.config import PRESETS, VGGTMVConfig
from vggt_mv.viz.weights_tree_html import (mismatched_rows, overridden_rows, render_tree_html, rule_rows,
                                           unexpected_rows)
from vggt_mv.viz.weights_treemap import build_treemap
from vggt_mv.weights import PI3_RULE_SETS, WeightsSourceError, build_and_load, load_weights
from vggt_mv.weights.hub import HUB_SCHEME, looks_like_repo_id
from vggt_mv.weights.report import LoadReport
from vggt_mv.weights.sources import TORCH_SUFFIXES, exists, has_control_characters, shown

WEIGHT_SUFFIXES = (".safetensors", ".json") + TORCH_SUFFIXES
MAX_SOURCE_CHARS = 1024
# Every JSON report goes under one root, one folder per report content, the newest MAX_KEPT_REPORTS kept.
REPORTS_FOLDER = "vggt-mv-weight-reports"
REPORT_NAME = "weights_report.json"
MAX_KEPT_REPORTS = 32
# One load at a time: each holds a second copy of the model beside the served one until the swap.
LOADING = threading.Lock()


class WeightsTabError(ValueError):
    """A message for the person at the browser."""


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


def totals_markdown(report: LoadReport, title: str) -> str:
    """Totals in tensors and parameters per status, the other counts, and anomalies with their fixes."""
    summary = report.summary()
    parameters = summary["parameters"]
    rows = ["| status | tensors | parameters |", "|---|---|---|"]
    for key, label in (("checkpoint_loaded", "checkpoint"), ("pi3_loaded", "Pi3"), ("derived", "derived"),
                       ("random", "random")):
        rows.append(f"| {label} | {summary[key]:,} | {parameters[key]:,} |")
    unexpected = ", ".join(f"{role} {count:,}" for role, count in summary["unexpected"].items()) or "none"
    lines = [f"### {title}", f"**{parameters['loaded_fraction']:.2%}** of {parameters['total']:,} parameters loaded "
             f"({'dry run: headers only' if report.dry_run else 'loaded'}).", "", *rows, "",
             f"Overridden: {summary['overridden']:,} · mismatched: {summary['mismatched']:,} · "
             f"unexpected: {unexpected}"]
    for role, source in report.sources.items():
        lines.append(f"- {role}: `{source['location']}` ({source['format']}, {source['num_tensors']:,} tensors)")
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
    folders = sorted((p for p in root.iterdir() if p.is_dir()), key=lambda p: modified_at(p / REPORT_NAME),
                     reverse=True)
    for folder in folders[MAX_KEPT_REPORTS:]:
        if folder != keep:
            shutil.rmtree(folder, ignore_errors=True)


def write_report_json(text: str, folder: Path | None) -> Path:
    """The JSON for download: in `folder` if given, else in a folder named by the content's hash under one root
    that keeps the newest reports only, so repeated requests never accumulate files."""
    root = None
    if folder is None:
        root = reports_root()
        folder = root / hashlib.sha256(text.encode()).hexdigest()[:16]
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / REPORT_NAME
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


def served_view(served) -> WeightsView:
    """How the served model was loaded at start-up (all random when no weights could be had)."""
    report = served.report or load_weights(served.model, dry_run=True)
    return make_view(report, "The served model")


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
    empty = next((a for a in report.anomalies if a.kind == "source_contributed_nothing"), None)
    if empty is not None:
        raise WeightsTabError(f"{empty.message} The served model is unchanged.")


def load_into_served(served, checkpoint: str | None, pi3: str | None, pi3_rules: str,
                     mostly_random_share: float) -> LoadReport:
    """Load into a new model beside the served one (same config, device and dtype) and swap it in only once every
    tensor loaded: a failed or refused load leaves the served model, its report and its banner as they were."""
    with LOADING:
        try:
            model, report = build_and_load(served.config, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules,
                                           device=served.device, dtype=served.dtype)
        except torch.OutOfMemoryError:
            raise WeightsTabError(f"not enough memory on {served.device} to load new weights beside the served "
                                  "model; the served model is unchanged") from None
        refuse_sources_that_gave_nothing(report)
        served.replace_model(model, report, mostly_random_share)
    return report


def inspect(served, checkpoint_text, checkpoint_upload, pi3_text, pi3_upload, pi3_rules, weights_dir: Path | None,
            apply: bool, allow_apply: bool, preset: str | None = None, mostly_random_share: float = 0.5
            ) -> WeightsView:
    """Dry run against a preset's layout (headers only), or load into the served model when the operator allows it."""
    if pi3_rules not in PI3_RULE_SETS:
        raise WeightsTabError(f"unknown Pi3 rule set {shown(pi3_rules)}")
    if preset and (not isinstance(preset, str) or preset not in PRESETS):
        raise WeightsTabError(f"unknown model layout {shown(preset)}; choose one of {', '.join(sorted(PRESETS))}")
    checkpoint = resolve_source(checkpoint_text, checkpoint_upload, weights_dir)
    pi3 = resolve_source(pi3_text, pi3_upload, weights_dir)
    if checkpoint is None and pi3 is None:
        raise WeightsTabError("choose a checkpoint and/or a Pi3 source")
    if apply and preset and preset != served.preset:
        raise WeightsTabError(f"the served model is the {served.preset} preset; choose it to load into it")
    if apply and not allow_apply:
        raise WeightsTabError("loading into the served model is disabled on this server (start it with "
                              "--allow-weight-loading); a dry run works")
    try:
        if apply:
            report = load_into_served(served, checkpoint, pi3, pi3_rules, mostly_random_share)
        else:
            config = VGGTMVConfig.from_preset(preset) if preset else served.config
            _, report = build_and_load(config, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules, dry_run=True)
    except (WeightsSourceError, WeightsTabError) as error:
        raise WeightsTabError(without_server_folders(str(error), weights_dir, [checkpoint_upload, pi3_upload])) \
            from None
    return make_view(report, "Loaded into the served model" if apply else "Dry run")
