"""Fixtures of the tab tests: one tiny served model per module, and tab state that starts and ends empty."""

import pytest

from vggt_mv import pipeline
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings


@pytest.fixture(scope="module")
def served():
    """The app's model as the offline Space serves it (tiny preset, random weights)."""
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


@pytest.fixture
def empty_tab_state(tmp_path, monkeypatch):
    """Session folders under the test's tmp folder; no cached run and no session's tracks before or after."""
    monkeypatch.setattr(reconstruct_tab, "SESSIONS_ROOT", tmp_path / "sessions")
    pipeline.clear_cache()
    reconstruct_tab.SESSION_TRACKS.clear()
    yield
    pipeline.clear_cache()
    reconstruct_tab.SESSION_TRACKS.clear()
