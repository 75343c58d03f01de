"""The Weights tab of the real app, through gradio_client: dry runs, the JSON schema, bad sources."""

import json

import pytest
from gradio_client import Client, handle_file

from tests.support.app_server import running_app
from tests.support.checkpoints import pi3_layout_state, tiny_state, write_safetensors
from vggt_mv.viz.weights_treemap import STATUS_COLORS

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("weights")
    allowed = root / "allowed"
    allowed.mkdir()
    state = tiny_state()
    write_safetensors(allowed / "vggt-tiny.safetensors", state)
    write_safetensors(allowed / "pi3-tiny.safetensors", pi3_layout_state(state))
    (allowed / "corrupt.safetensors").write_bytes(b"\x20\x00\x00\x00\x00\x00\x00\x00{broken")
    write_safetensors(root / "outside.safetensors", state)
    return root, allowed


@pytest.fixture(scope="module")
def client(folders):
    _, allowed = folders
    with running_app("--weights-dir", str(allowed)) as (url, _):
        yield Client(url, verbose=False)


def test_dry_run_of_vggt_and_pi3_layouts_returns_the_documented_json(client):
    report = client.predict(checkpoint="vggt-tiny.safetensors", pi3="pi3-tiny.safetensors", preset="tiny",
                            api_name="/inspect_weights")
    assert set(report) >= {"schema_version", "summary", "tensors", "mismatched", "unexpected", "rules", "tree"}
    assert report["summary"]["pi3_loaded"] == 2 * 4 * 18 and report["summary"]["random"] == 0
    assert report["mismatched"][0]["key"] == "aggregator.register_token"


def test_dry_run_button_with_uploads_shows_a_treemap_coloured_by_status(client, folders):
    _, allowed = folders
    rows = [("checkpoint", None, handle_file(str(allowed / "vggt-tiny.safetensors")), "identity"),
            ("pi3", None, handle_file(str(allowed / "pi3-tiny.safetensors")), "pi3-decoder"),
            ("", None, None, "identity"), ("", None, None, "identity")]
    outputs = client.predict(*[field for row in rows for field in row], "tiny", api_name="/weights_dry_run")
    totals, treemap = outputs[0], outputs[1]
    assert "Dry run" in totals
    trace = json.loads(treemap["plot"])["data"][0]
    colors = dict(zip(trace["ids"], trace["marker"]["colors"]))
    report = json.loads(open(outputs[7]).read())
    assert "RANDOM" in outputs[8], "the banner stays while the served model is the random fallback"
    for record in report["tensors"]:
        assert colors[record["key"]] == STATUS_COLORS[record["status"]]


@pytest.mark.parametrize("source, phrase", [
    ("../outside.safetensors", "weights folder"),
    ("/etc/passwd", "reads no other paths"),
    ("missing.safetensors", "weights folder"),
    ("corrupt.safetensors", "corrupt"),
])
def test_bad_sources_give_one_message_and_the_app_keeps_serving(client, source, phrase):
    with pytest.raises(Exception) as raised:
        client.predict(checkpoint=source, preset="tiny", api_name="/inspect_weights")
    assert phrase in str(raised.value)
    assert client.predict(checkpoint="vggt-tiny.safetensors", preset="tiny",
                          api_name="/inspect_weights")["summary"]["random"] == 0


def test_no_sources_returns_the_served_models_report_labelled_as_such(client):
    report = client.predict(api_name="/inspect_weights")
    assert report["subject"] == "served_model" and report["dry_run"] is False
    assert report["summary"]["random"] == report["summary"]["total"], "the offline fallback is all random"


def test_a_third_named_source_overrides_and_names_its_tensors(client):
    report = client.predict(sources=[{"name": "checkpoint", "source": "vggt-tiny.safetensors"},
                                     {"name": "finetune", "source": "pi3-tiny.safetensors", "rules": "pi3-decoder"}],
                            preset="tiny", api_name="/inspect_sources")
    assert list(report["sources"]) == ["checkpoint", "finetune"]
    assert report["summary"]["loaded"] == {"checkpoint": report["summary"]["total"] - 2 * 4 * 18, "finetune": 2 * 4 * 18}
    assert report["summary"]["overridden"] == 2 * 4 * 18


@pytest.mark.parametrize("sources, phrase", [
    ([{"name": "../../etc", "source": "vggt-tiny.safetensors"}], "source name"),
    ([{"name": "random", "source": "vggt-tiny.safetensors"}], "status of its own"),
    ([{"name": "x" * 100, "source": "vggt-tiny.safetensors"}], "1 to 32"),
    ([{"name": "ok", "source": "vggt-tiny.safetensors", "rules": "/etc/rules.toml"}], "unknown rule set"),
    ([{"name": "ok", "source": "../outside.safetensors"}], "weights folder"),
    ([{"name": f"s{i}", "source": "vggt-tiny.safetensors"} for i in range(5)], "at most 4"),
    ([{"name": "a", "source": "vggt-tiny.safetensors"}] * 2, "two sources are named 'a'"),
    ("not a list", "must be a list"),
    ([{"name": "a", "source": "vggt-tiny.safetensors", "path": "/etc"}], "must be an object"),
])
def test_hostile_source_names_rules_and_counts_are_one_message(client, sources, phrase):
    with pytest.raises(Exception) as raised:
        client.predict(sources=sources, preset="tiny", api_name="/inspect_sources")
    assert phrase in str(raised.value)
    assert client.predict(api_name="/inspect_weights")["subject"] == "served_model"


def test_comparing_is_refused_unless_the_operator_allows_reading_whole_files(client):
    with pytest.raises(Exception) as raised:
        client.predict(a="vggt-tiny.safetensors", b="vggt-tiny.safetensors", api_name="/compare_weights")
    assert "allow-weight-loading" in str(raised.value)


@pytest.fixture(scope="module")
def loading_client(folders):
    _, allowed = folders
    state = tiny_state()
    write_safetensors(allowed / "vggt-tiny-tuned.safetensors",
                      {k: (v * 1.5 if k.startswith("camera_head.") else v) for k, v in state.items()})
    with running_app("--weights-dir", str(allowed), "--allow-weight-loading") as (url, _):
        yield Client(url, verbose=False)


def test_compare_weights_returns_the_comparison_and_refuses_other_paths(loading_client):
    comparison = loading_client.predict(a="vggt-tiny-tuned.safetensors", b="vggt-tiny.safetensors",
                                        api_name="/compare_weights")
    assert comparison["schema_version"] == 2 and comparison["a"]["location"] == "vggt-tiny-tuned.safetensors"
    assert comparison["modules"]["aggregator"]["unchanged"] is True
    assert comparison["modules"]["aggregator"]["unchanged_kind"] == "never_trained", "a fresh init in both"
    assert comparison["modules"]["camera_head"]["relative_change"] == pytest.approx(0.5)  # ||1.5b - b|| / ||b||
    for hostile, phrase in (("../outside.safetensors", "weights folder"), ("/etc/passwd", "reads no other paths"),
                            ("corrupt.safetensors", "corrupt")):
        with pytest.raises(Exception) as raised:
            loading_client.predict(a=hostile, b="vggt-tiny.safetensors", api_name="/compare_weights")
        assert phrase in str(raised.value)
    report = loading_client.predict(api_name="/inspect_weights")
    assert report["schema_version"] == 3, "the app keeps serving"
