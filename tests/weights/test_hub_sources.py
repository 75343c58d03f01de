"""Hub repo ids go through huggingface_hub's cache; offline without a cached copy fails fast and says what it tried."""

import time

import pytest

from tests.support.checkpoints import tiny_state, write_safetensors
from vggt_mv import VGGTMVConfig
from vggt_mv.weights import WeightsSourceError, build_and_load


@pytest.fixture
def offline_cache(tmp_path, monkeypatch):
    cache = tmp_path / "hub"
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_without_a_cached_copy_fails_fast_naming_repo_and_files(offline_cache):
    start = time.perf_counter()
    with pytest.raises(WeightsSourceError) as raised:
        build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="facebook/VGGT-1B", dry_run=True)
    assert time.perf_counter() - start < 5
    message = str(raised.value)
    assert "facebook/VGGT-1B" in message and "model.safetensors" in message and "offline" in message


def test_a_cached_repo_loads_offline(offline_cache):
    snapshot = offline_cache / "models--owner--tiny-vggt" / "snapshots" / ("a" * 40)
    snapshot.mkdir(parents=True)
    (offline_cache / "models--owner--tiny-vggt" / "refs").mkdir()
    (offline_cache / "models--owner--tiny-vggt" / "refs" / "main").write_text("a" * 40)
    state = tiny_state()
    write_safetensors(snapshot / "model.safetensors", state)
    model, report = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="owner/tiny-vggt")
    assert report.summary()["checkpoint_loaded"] == len(state)
    assert report.sources["checkpoint"]["location"] == "owner/tiny-vggt"


def test_an_unreachable_hub_uses_the_cache_only_and_fails_in_seconds(tmp_path, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr("vggt_mv.weights.hub.hub_reachable", lambda endpoint: False)
    start = time.perf_counter()
    with pytest.raises(WeightsSourceError, match="unreachable, cache only"):
        build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="yyfz233/Pi3", dry_run=True)
    assert time.perf_counter() - start < 5
