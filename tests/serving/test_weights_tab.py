"""The Weights tab's logic: visitors cannot make the server read arbitrary paths; views come from the loader."""

import pytest

from tests.support.checkpoints import tiny_state, write_safetensors
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
