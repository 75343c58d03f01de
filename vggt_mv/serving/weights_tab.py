"""What the Weights tab does, as plain functions: resolve sources safely, run the loader, shape its views."""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

from vggt_mv.viz.weights_tree_html import (mismatched_rows, overridden_rows, render_tree_html, rule_rows,
                                           unexpected_rows)
from vggt_mv.viz.weights_treemap import build_treemap
from vggt_mv.weights import PI3_RULE_SETS, WeightsSourceError, load_weights
from vggt_mv.weights.hub import HUB_SCHEME, looks_like_repo_id
from vggt_mv.weights.report import LoadReport
from vggt_mv.weights.sources import TORCH_SUFFIXES

WEIGHT_SUFFIXES = (".safetensors", ".json") + TORCH_SUFFIXES


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


def resolve_source(text: str | None, upload: str | None, weights_dir: Path | None) -> str | None:
    """An upload, a Hub repo id, or a file under --weights-dir; any other path is refused."""
    if upload:
        return str(upload)
    text = (text or "").strip()
    if not text:
        return None
    if weights_dir is not None:
        candidate = (weights_dir / text).resolve()
        if candidate.is_relative_to(weights_dir.resolve()) and candidate.exists():
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


def make_view(report: LoadReport, title: str, folder: Path | None = None) -> WeightsView:
    """All views of one report, plus its JSON written for download."""
    folder = folder or Path(tempfile.mkdtemp(prefix="vggt-mv-weights-"))
    folder.mkdir(parents=True, exist_ok=True)
    data = report.to_dict()
    json_path = folder / "weights_report.json"
    json_path.write_text(json.dumps(data, indent=1))
    return WeightsView(totals_markdown(report, title), build_treemap(report), render_tree_html(report),
                       mismatched_rows(report), unexpected_rows(report), overridden_rows(report), rule_rows(report),
                       str(json_path), data)


def served_view(served) -> WeightsView:
    """How the served model was loaded at start-up (all random when no weights could be had)."""
    report = served.report or load_weights(served.model, dry_run=True)
    return make_view(report, "The served model")


def inspect(served, checkpoint_text, checkpoint_upload, pi3_text, pi3_upload, pi3_rules, weights_dir: Path | None,
            apply: bool, allow_apply: bool, preset: str | None = None, mostly_random_share: float = 0.5
            ) -> WeightsView:
    """Dry run against a preset's layout (headers only), or load into the served model when the operator allows it."""
    if pi3_rules not in PI3_RULE_SETS:
        raise WeightsTabError(f"unknown Pi3 rule set {pi3_rules!r}")
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
            with served.lock:
                report = load_weights(served.model, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules,
                                      device=served.device)
                served.record_load(report, mostly_random_share)
        else:
            from vggt_mv.config import VGGTMVConfig
            from vggt_mv.weights import build_and_load

            config = VGGTMVConfig.from_preset(preset) if preset else served.config
            _, report = build_and_load(config, checkpoint=checkpoint, pi3=pi3, pi3_rules=pi3_rules, dry_run=True)
    except WeightsSourceError as error:
        raise WeightsTabError(str(error)) from None
    return make_view(report, "Loaded into the served model" if apply else "Dry run")
