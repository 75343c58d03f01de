"""Reconstruct-tab logic without a browser: inputs parsed once, session files forgotten, redraws from cache."""

import pytest

from vggt_mv.io.examples import list_examples
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.reconstruct_tab import DisplayChoices, UserFacingError, parse_offsets, redraw, run
from vggt_mv.serving.settings import ServeSettings


def test_offsets_are_parsed_per_camera():
    assert parse_offsets("0, 0.1; -0.2", 3) == (0.0, 0.1, -0.2)
    assert parse_offsets("  ", 2) == ()
    with pytest.raises(UserFacingError, match="2 offsets given for 3 cameras"):
        parse_offsets("0, 1", 3)
    with pytest.raises(UserFacingError, match="numbers"):
        parse_offsets("zero", 1)


def test_run_writes_into_the_session_folder_redraws_from_cache_and_the_folder_goes_with_the_session(
        tmp_path, monkeypatch):
    monkeypatch.setattr(reconstruct_tab, "SESSIONS_ROOT", tmp_path)
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    example = list_examples()[0].name
    figure, strip, downloads, status, key = run(served, None, example, 2, 0.0, 1.0, "", "auto", DisplayChoices(),
                                                "session-a", 64)
    assert all(path.startswith(str(tmp_path / "session-a")) for path in downloads)
    assert "2 time steps x 3 cameras" in status and strip.shape[0] == 3 * 294
    one_step, _ = redraw(key, DisplayChoices(time_step=1, color_by="camera"))
    assert one_step.layout.title.text == "time step 1"
    reconstruct_tab.remove_session_folder("session-a")
    assert not (tmp_path / "session-a").exists()
    with pytest.raises(UserFacingError, match="run a reconstruction first"):
        redraw("unknown", DisplayChoices())
    with pytest.raises(UserFacingError, match="upload one video per camera"):
        run(served, None, None, 2, 0.0, 1.0, "", "auto", DisplayChoices(), "session-b", 64)


def test_the_plan_is_shown_before_running_and_explains_refusals():
    served = load_served_model(ServeSettings(checkpoint=None, preset="tiny"))
    example = list_examples()[0].name
    plan = reconstruct_tab.describe_plan(served, None, example, 8, 64)
    assert "8 time steps x 3 cameras at 518x294" in plan and "tokens" in plan and "GiB" in plan
    assert "over the limit" in reconstruct_tab.describe_plan(served, None, example, 30, 64)
    assert "upload one video" in reconstruct_tab.describe_plan(served, None, None, 8, 64)
