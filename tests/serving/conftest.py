"""Fixtures of the tab tests: one tiny served model per module, and an app state that starts empty per test."""

import pytest

from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.model_store import load_served_model
from vggt_mv.serving.settings import ServeSettings


@pytest.fixture(scope="module")
def served():
    """The app's model as the offline Space serves it (tiny preset, random weights)."""
    return load_served_model(ServeSettings(checkpoint=None, preset="tiny"))


@pytest.fixture
def state(served, tmp_path):
    """What the app keeps (runs, track contexts, session tracks), new for each test, with session folders under
    the test's tmp folder."""
    app_state = AppState(served, tmp_path / "sessions")
    yield app_state
    served.replaced.remove(app_state.forget_runs)
