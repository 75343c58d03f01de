"""`python -m vggt_mv inspect`: the report people read in a terminal, and exit codes CI can rely on."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.checkpoints import tiny_state, write_safetensors
from tests.support.sparse_checkpoints import reference_layout, write_sparse_safetensors

ROOT = Path(__file__).resolve().parents[2]


def inspect(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "vggt_mv", "inspect", *map(str, args)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def full_size(tmp_path_factory):
    folder = tmp_path_factory.mktemp("sparse")
    return (write_sparse_safetensors(folder / "vggt.safetensors", reference_layout("vggt-1b")),
            write_sparse_safetensors(folder / "pi3.safetensors", reference_layout("pi3")))


def test_full_size_dry_run_prints_tree_ranges_mismatch_and_unexpected(full_size, tmp_path):
    checkpoint, pi3 = full_size
    result = inspect("--checkpoint", checkpoint, "--pi3", pi3, "--dry-run", "--json", tmp_path / "r.json")
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "checkpoint_loaded    1149" in out and "pi3_loaded            648" in out
    assert "aggregator.frame_blocks.{0..17}" in out and "aggregator.frame_blocks.{18..23}" in out
    assert "model [1, 2, 4, 1024] vs source [1, 1, 5, 1024]" in out
    assert "encoder.blocks.* (336)" in out
    assert "decoder.{0..34 even} -> aggregator.frame_blocks.{0..17}" in out
    data = json.loads((tmp_path / "r.json").read_text())
    assert data["summary"]["pi3_loaded"] == 648 and data["dry_run"] is True


def test_fail_under_catches_a_submodule_checkpoint(tmp_path):
    aggregator_only = {k.removeprefix("aggregator."): v for k, v in tiny_state().items() if k.startswith("aggregator.")}
    path = write_safetensors(tmp_path / "agg.safetensors", aggregator_only)
    result = inspect("--checkpoint", path, "--preset", "tiny", "--fail-under", "0.9")
    assert result.returncode == 1
    assert "ANOMALIES" in result.stdout and "prefixed with 'aggregator.'" in result.stdout
    assert "FAIL" in result.stderr


def test_fail_under_passes_a_whole_model_checkpoint_and_expect_random_excludes_modules(tmp_path):
    state = tiny_state()
    whole = write_safetensors(tmp_path / "whole.safetensors", state)
    assert inspect("--checkpoint", whole, "--preset", "tiny", "--fail-under", "0.99").returncode == 0
    no_tracks = write_safetensors(tmp_path / "no_tracks.safetensors",
                                  {k: v for k, v in state.items() if not k.startswith("track_head.")})
    assert inspect("--checkpoint", no_tracks, "--preset", "tiny", "--fail-under", "0.99").returncode == 1
    assert inspect("--checkpoint", no_tracks, "--preset", "tiny", "--fail-under", "0.99",
                   "--expect-random", "^track_head\\.").returncode == 0


def test_bad_source_is_one_line_and_exit_code_two(tmp_path):
    result = inspect("--checkpoint", tmp_path / "missing.safetensors", "--preset", "tiny")
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error:") and len(result.stderr.strip().splitlines()) == 1
    assert "Traceback" not in result.stderr
