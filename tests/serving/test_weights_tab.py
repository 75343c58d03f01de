"""The Weights tab's logic: visitors cannot make the server read arbitrary paths; views come from the loader."""

import json
import tempfile
from pathlib import Path

import pytest
import torch

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv.serving import weights_tab
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings
from vggt_mv.serving.weights_tab import WeightsTabError, allowed_files, inspect, resolve_source, served_view


@pytest.fixture
def weights_dir(tmp_path):
    folder = tmp_path / "weights"
    folder.mkdir()
    write_safetensors(folder / "tiny.safetensors", tiny_state())
    (tmp_path / "secret.safetensors").write_text("outside")
    return folder


def test_only_uploads_hub_ids_and_files_under_the_weights_dir_are_accepted(weights_dir):
    assert allowed_files(weights_dir) == ["tiny.safetensors"]
    assert resolve_source("tiny.safetensors", None, weights_dir) == str(weights_dir / "tiny.safetensors")
    assert resolve_source("facebook/VGGT-1B", None, weights_dir) == "hf://facebook/VGGT-1B"
    assert resolve_source("", "/uploads/x.pt", weights_dir) == "/uploads/x.pt"
    for outside in ("../secret.safetensors", str(weights_dir.parent / "secret.safetensors"), "/etc/passwd",
                    "missing.safetensors"):
        with pytest.raises(WeightsTabError):
            resolve_source(outside, None, weights_dir)


def test_served_view_and_a_dry_run_render_every_view(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    start = served_view(served)
    assert "**0.00%**" in start.totals and start.report["summary"]["random"] == start.report["summary"]["total"]
    view = inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=False,
                   allow_apply=False)
    assert view.report["summary"]["checkpoint_loaded"] == len(tiny_state())
    assert "**100.00%**" in view.totals and view.treemap.data[0].type == "treemap"


def test_loading_into_the_served_model_needs_the_operator(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    with pytest.raises(WeightsTabError, match="allow-weight-loading"):
        inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=True, allow_apply=False)
    view = inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=True, allow_apply=True)
    assert not view.report["dry_run"] and served.report is not None


def test_loading_good_weights_clears_the_mostly_random_banner(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    assert served.banner and served.random_share == 1.0
    inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=True, allow_apply=True)
    assert served.banner is None and served.random_share == 0.0


def test_loading_swaps_in_a_new_model_on_the_served_dtype_and_device(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    served.model.to(torch.bfloat16)
    old_model = served.model
    inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=True, allow_apply=True)
    assert served.model is not old_model and not served.model.training
    assert {p.dtype for p in served.model.parameters()} == {torch.bfloat16}
    assert {p.device for p in served.model.parameters()} == {served.device}
    state = tiny_state()
    for key, value in served.model.state_dict().items():
        assert torch.equal(value, state[key].to(torch.bfloat16)), key


def test_dry_run_reports_go_to_one_bounded_folder_whatever_the_number_of_requests(weights_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    paths = {inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=False,
                     allow_apply=False).json_path for _ in range(3)}
    assert len(paths) == 1 and [p.name for p in (tmp_path / "tmp").iterdir()] == [weights_tab.REPORTS_FOLDER]
    monkeypatch.setattr(weights_tab, "MAX_KEPT_REPORTS", 2)
    state = tiny_state()
    for count in (1, 2, 3):
        write_safetensors(weights_dir / f"part{count}.safetensors", dict(list(state.items())[:count]))
        newest = inspect(served, f"part{count}.safetensors", None, "", None, "decoder", weights_dir, apply=False,
                         allow_apply=False).json_path
    reports = sorted((tmp_path / "tmp").rglob("*.json"))
    assert len(reports) == 2 and newest in map(str, reports)
    assert not list((tmp_path / "tmp").rglob("*.part")), "no half-written report stays behind"


@pytest.mark.parametrize("field", ["upload", "text"])
def test_an_upload_or_text_with_a_nul_is_one_clear_message(weights_dir, field):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    text, upload = ("", "/tmp/up\x00.pt") if field == "upload" else ("tiny\x00.safetensors", None)
    with pytest.raises(WeightsTabError, match="contains control characters"):
        inspect(served, text, upload, "", None, "decoder", weights_dir, apply=False, allow_apply=False)


def test_errors_name_files_as_the_visitor_gave_them_not_where_the_server_keeps_them(weights_dir, tmp_path):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    uploads = tmp_path / "server-upload-cache" / "a1b2"
    uploads.mkdir(parents=True)
    (uploads / "mine.pt").write_bytes(b"")
    (weights_dir / "sub").mkdir()
    (weights_dir / "sub" / "empty.pt").write_bytes(b"")
    for text, upload, shown in (("", str(uploads / "mine.pt"), "mine.pt"), ("sub/empty.pt", None, "sub/empty.pt")):
        for apply in (False, True):
            with pytest.raises(WeightsTabError) as raised:
                inspect(served, text, upload, "", None, "decoder", weights_dir, apply=apply, allow_apply=True)
            assert str(raised.value).startswith(f"{shown}: empty file") and str(tmp_path) not in str(raised.value)


def test_no_source_shows_the_served_model_labelled_as_the_loaded_model(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    view = weights_tab.inspect_sources(served, [weights_tab.SourceRequest("checkpoint", "", None, "identity")],
                                       weights_dir, apply=False, allow_apply=False)
    assert view.report["subject"] == "served_model" and view.report["dry_run"] is False
    assert "the model this server runs" in view.totals and "dry run" not in view.totals
    with pytest.raises(WeightsTabError, match="choose at least one source"):
        weights_tab.inspect_sources(served, [], weights_dir, apply=True, allow_apply=True)


def test_four_named_sources_and_every_row_keeps_the_weights_dir_confinement(weights_dir, tmp_path):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    state = tiny_state()
    write_safetensors(weights_dir / "heads.safetensors", {k: v for k, v in state.items() if k.startswith("camera_head.")})
    rows = [weights_tab.SourceRequest("base", "tiny.safetensors", None, "identity"),
            weights_tab.SourceRequest("heads", "heads.safetensors", None, "identity"),
            weights_tab.SourceRequest("", "", None, "identity"),
            weights_tab.SourceRequest("again", "tiny.safetensors", None, "identity")]
    view = weights_tab.inspect_sources(served, rows, weights_dir, apply=False, allow_apply=False)
    assert list(view.report["sources"]) == ["base", "heads", "again"]
    assert view.report["summary"]["loaded"] == {"base": 0, "heads": 0, "again": len(state)}
    assert "| again |" in view.totals
    assert view.report["anomalies"] == [], "sources a later one overrode did contribute"
    for row, phrase in ((weights_tab.SourceRequest("evil", "../secret.safetensors", None, "identity"), "weights folder"),
                        (weights_tab.SourceRequest("evil", "/etc/passwd", None, "identity"), "reads no other paths"),
                        (weights_tab.SourceRequest("a/b", "tiny.safetensors", None, "identity"), "source 1"),
                        (weights_tab.SourceRequest("ok", "tiny.safetensors", None, str(tmp_path / "r.toml")),
                         "unknown rule set"),
                        (weights_tab.SourceRequest(["x"], "tiny.safetensors", None, "identity"), "1 to 32")):
        with pytest.raises(WeightsTabError, match=phrase):
            weights_tab.inspect_sources(served, [row], weights_dir, apply=False, allow_apply=False)
    with pytest.raises(WeightsTabError, match="at most 4"):
        weights_tab.inspect_sources(served, [weights_tab.SourceRequest(f"s{i}", "tiny.safetensors", None, "identity")
                                             for i in range(5)], weights_dir, apply=False, allow_apply=False)


def test_loading_refuses_a_named_source_that_gave_nothing(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    write_safetensors(weights_dir / "other.safetensors", {"resnet.fc.weight": torch.ones(2, 2)})
    rows = [weights_tab.SourceRequest("base", "tiny.safetensors", None, "identity"),
            weights_tab.SourceRequest("other", "other.safetensors", None, "identity")]
    old_model = served.model
    with pytest.raises(WeightsTabError, match="other source .* loaded no tensor.*The served model is unchanged"):
        weights_tab.inspect_sources(served, rows, weights_dir, apply=True, allow_apply=True)
    assert served.model is old_model


@pytest.fixture
def compare_dir(weights_dir):
    a = tiny_state()
    b = {k: (v * 1.5 if k.startswith("camera_head.") else v) for k, v in a.items() if k != "point_head.norm.bias"}
    write_safetensors(weights_dir / "b.safetensors", b)
    return weights_dir


def test_comparing_needs_the_operator_because_it_reads_both_files_whole(compare_dir):
    with pytest.raises(WeightsTabError, match="allow-weight-loading"):
        weights_tab.compare_checkpoint_files("tiny.safetensors", None, "b.safetensors", None, compare_dir,
                                             allow_loading=False)


@pytest.mark.parametrize("hostile, phrase", [
    ("../secret.safetensors", "not a file under the server's weights folder"),
    ("/etc/passwd", "this server reads no other paths"),
    ("tiny\x00.safetensors", "contains control characters"),
    ("x" * 5000, "over the limit"),
    (7, "must be text"),
    ("", "choose two checkpoints"),
])
def test_comparing_refuses_any_other_server_path_on_either_side(compare_dir, hostile, phrase):
    for sides in ((hostile, "b.safetensors"), ("tiny.safetensors", hostile)):
        with pytest.raises(WeightsTabError, match=phrase):
            weights_tab.compare_checkpoint_files(sides[0], None, sides[1], None, compare_dir, allow_loading=True)


def test_a_comparison_shows_findings_a_table_one_sided_keys_a_treemap_and_a_json(compare_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    progress = []
    view = weights_tab.compare_checkpoint_files("tiny.safetensors", None, "b.safetensors", None, compare_dir,
                                                allow_loading=True, on_tensor=lambda done, total: progress.append(
                                                    (done, total)))
    assert progress[-1] == (len(tiny_state()) - 1,) * 2, "one step per key both sides have"
    assert "still at init in both (never trained)" in view.summary, "tiny_state() is a fresh init on both sides"
    assert "#### Unchanged, still at init in both (never trained)" in view.unchanged
    assert "- `aggregator` (1 module" in view.unchanged
    rows = {row[0]: row for row in view.table}
    assert rows["camera_head"][1:3] == ["changed", 0.333]
    assert rows["aggregator"][1:3] == ["still at init in both (never trained)", 0.0]
    assert "**Only in a** (1 key)" in view.summary and "`point_head.norm`" in view.summary
    assert view.treemap.data[0].type == "treemap"
    saved = json.loads(Path(view.json_path).read_text())
    assert saved == view.comparison and saved["schema_version"] == 2 and saved["only_a"] == ["point_head.norm.bias"]
    assert saved["modules"]["aggregator"]["unchanged_kind"] == "never_trained"
    assert Path(view.json_path).parent.parent == tmp_path / "tmp" / weights_tab.REPORTS_FOLDER
    assert saved["a"]["location"] == "tiny.safetensors", "sides are named as the visitor gave them"
    assert str(compare_dir) not in view.summary and str(compare_dir) not in Path(view.json_path).read_text()


def test_a_bad_upload_in_a_comparison_is_named_as_uploaded(compare_dir, tmp_path):
    uploads = tmp_path / "server-upload-cache" / "c3d4"
    uploads.mkdir(parents=True)
    (uploads / "mine.pt").write_bytes(b"")
    with pytest.raises(WeightsTabError) as raised:
        weights_tab.compare_checkpoint_files("", str(uploads / "mine.pt"), "b.safetensors", None, compare_dir,
                                             allow_loading=True)
    assert str(raised.value).startswith("mine.pt: empty file") and str(tmp_path) not in str(raised.value)


def test_a_load_shows_how_many_loaded_tensors_look_untrained(weights_dir):
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    dry = inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=False, allow_apply=False)
    assert "Suspect untrained (values match their init): not checked" in dry.totals
    loaded = inspect(served, "tiny.safetensors", None, "", None, "decoder", weights_dir, apply=True, allow_apply=True)
    assert loaded.report["summary"]["suspect_untrained"] > 0, "tiny_state() is a model saved right after its init"
    assert f"**{loaded.report['summary']['suspect_untrained']:,}** tensors" in loaded.totals
    assert "look untrained though loaded from checkpoint" in loaded.totals
    assert "look untrained" in loaded.tree_html


def test_the_tab_offers_the_pi3x_rule_sets_and_names_pi3xs_own_modules_once(weights_dir):
    from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors

    assert {"pi3x-decoder", "pi3x-decoder+encoder"} <= set(weights_tab.BUILTIN_RULE_SETS)
    write_sparse_safetensors(weights_dir / "vggt-1b.safetensors", reference_layout("vggt-1b"))
    write_sparse_safetensors(weights_dir / "pi3x.safetensors", reference_layout("pi3x"))
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    view = inspect(served, "vggt-1b.safetensors", None, "pi3x.safetensors", None, "pi3x-decoder", weights_dir,
                   apply=False, allow_apply=False, preset="vggt-1b")
    summary = view.report["summary"]
    assert (summary["checkpoint_loaded"], summary["pi3_loaded"], summary["unexpected"]["pi3"]) == (1149, 648, 557)
    assert view.totals.count("Pi3X modules with no counterpart in VGGT_MV") == 1
    assert not any(row[1].startswith("pose_inject_blk") for row in view.unexpected)
    rows = [weights_tab.SourceRequest("checkpoint", "vggt-1b.safetensors", None, "identity"),
            weights_tab.SourceRequest("pi3x", "pi3x.safetensors", None, "pi3x-decoder+encoder")]
    by_rows = weights_tab.inspect_sources(served, rows, weights_dir, apply=False, allow_apply=False,
                                          preset="vggt-1b")
    assert by_rows.report["summary"]["loaded"] == {"checkpoint": 806, "pi3x": 991}
    assert weights_tab.api_source_requests("", "x", "pi3x-decoder", None)[1].rules == "pi3x-decoder"


def test_a_fine_tune_that_kept_its_trained_aggregator_shows_it_frozen_not_never_trained(weights_dir):
    generator = torch.Generator().manual_seed(21)
    trained = {k: v + 0.05 * torch.randn(v.shape, generator=generator) for k, v in tiny_state(seed=9).items()}
    write_safetensors(weights_dir / "trained.safetensors", trained)
    write_safetensors(weights_dir / "tuned.safetensors",
                      {k: (v if k.startswith("aggregator.") else v * 1.1) for k, v in trained.items()})
    view = weights_tab.compare_checkpoint_files("tuned.safetensors", None, "trained.safetensors", None, weights_dir,
                                                allow_loading=True)
    rows = {row[0]: row for row in view.table}
    assert rows["aggregator"][1] == "frozen (equal, trained)" and rows["camera_head"][1] == "changed"
    assert "**1** frozen (equal, trained)" in view.summary and "still at init in both" not in view.summary
    assert view.unchanged.startswith("#### Unchanged, frozen (equal, trained): 1 module in 1 group\n- `aggregator`")
    assert view.comparison["modules"]["aggregator"]["unchanged_kind"] == "frozen"
