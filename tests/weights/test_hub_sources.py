"""Hub repo ids go through huggingface_hub's cache; offline without a cached copy fails fast and says what it tried."""

import json
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


def cached_snapshot(cache, repo_id: str):
    """The folder huggingface_hub's cache keeps a repo's files in (what a previous download left)."""
    repo_folder = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo_folder / "snapshots" / ("b" * 40)
    snapshot.mkdir(parents=True)
    (repo_folder / "refs").mkdir()
    (repo_folder / "refs" / "main").write_text("b" * 40)
    return snapshot


def test_offline_without_a_cached_copy_fails_fast_naming_repo_and_files(offline_cache):
    start = time.perf_counter()
    with pytest.raises(WeightsSourceError) as raised:
        build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="facebook/VGGT-1B", dry_run=True)
    assert time.perf_counter() - start < 5
    message = str(raised.value)
    assert "facebook/VGGT-1B" in message and "model.safetensors" in message and "offline" in message


def test_a_cached_repo_loads_offline(offline_cache):
    snapshot = cached_snapshot(offline_cache, "owner/tiny-vggt")
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


def cache_as_blob(snapshot, name: str, write) -> None:
    """Store a file as huggingface_hub does: the data in `<repo>/blobs/`, a relative symlink in the snapshot."""
    blobs = snapshot.parent.parent / "blobs"
    blobs.mkdir(exist_ok=True)
    write(blobs / f"blob-{name}")
    (snapshot / name).symlink_to(f"../../blobs/blob-{name}")


def test_a_cached_sharded_repo_loads_offline_through_its_index(offline_cache):
    snapshot = cached_snapshot(offline_cache, "owner/sharded-vggt")
    state = tiny_state()
    keys = list(state)
    weight_map = {}
    for number, part in enumerate((keys[:300], keys[300:]), start=1):
        name = f"model-0000{number}-of-00002.safetensors"
        cache_as_blob(snapshot, name, lambda path, part=part: write_safetensors(path, {k: state[k] for k in part}))
        weight_map.update({k: name for k in part})
    cache_as_blob(snapshot, "model.safetensors.index.json",
                  lambda path: path.write_text(json.dumps({"weight_map": weight_map})))
    _, report = build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="owner/sharded-vggt", dry_run=True)
    assert report.summary()["checkpoint_loaded"] == len(state)
    assert len(report.sources["checkpoint"]["files"]) == 2


def test_a_cached_shard_linking_outside_its_repo_is_refused(offline_cache, tmp_path):
    snapshot = cached_snapshot(offline_cache, "owner/escaping-vggt")
    state = tiny_state()
    (snapshot / "model-1.safetensors").symlink_to(write_safetensors(tmp_path / "elsewhere.safetensors", state))
    (snapshot / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": {key: "model-1.safetensors" for key in state}}))
    with pytest.raises(WeightsSourceError, match="'model-1.safetensors' lies outside the index's folder"):
        build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="owner/escaping-vggt", dry_run=True)


def test_a_gated_repo_says_to_accept_its_terms(monkeypatch):
    from huggingface_hub.errors import GatedRepoError

    class Gated(GatedRepoError):
        def __init__(self):
            Exception.__init__(self, "403 gated")

    def refuse(*args, **kwargs):
        raise Gated()

    monkeypatch.setattr("huggingface_hub.hf_hub_download", refuse)
    monkeypatch.setattr("vggt_mv.weights.hub.hub_reachable", lambda endpoint: True)
    with pytest.raises(WeightsSourceError, match="gated: accept its terms"):
        build_and_load(VGGTMVConfig.from_preset("tiny"), checkpoint="owner/gated-model", dry_run=True)
