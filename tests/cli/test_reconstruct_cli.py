"""`python -m vggt_mv reconstruct V1 V2 V3 --out DIR` writes what the app offers, plus scene.html."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from vggt_mv.io.examples import list_examples

ROOT = Path(__file__).resolve().parents[2]


def test_reconstruct_writes_every_output(tmp_path):
    videos = [str(p) for p in list_examples()[0].video_paths]
    result = subprocess.run([sys.executable, "-m", "vggt_mv", "reconstruct", *videos, "--out", str(tmp_path),
                             "--frames", "2", "--checkpoint", "none", "--preset", "tiny"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("scene.glb", "predictions.npz", "cameras.json", "scene.html", "ply/points_t001.ply",
                 "colmap/t001/sparse/0/images.bin", "colmap/t001/images/camera0.png", "recording.rrd"):
        assert (tmp_path / name).is_file(), name
    assert not (tmp_path / "everything.zip").exists(), "the bundle only when asked for (--formats ...,zip)"


def test_reconstruct_reports_a_bad_video_in_one_line(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    result = subprocess.run([sys.executable, "-m", "vggt_mv", "reconstruct", str(bad), "--out", str(tmp_path / "o"),
                             "--checkpoint", "none", "--preset", "tiny"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "error: bad.mp4: not a readable video" in result.stderr


def run_cli(capsys, *arguments) -> tuple[int, str, str]:
    """`python -m vggt_mv reconstruct ...` in this process (fast), random tiny weights unless told: code, out, err."""
    from vggt_mv.cli import main

    arguments = [str(argument) for argument in arguments]
    defaults = [flag for flag, value in (("--checkpoint", "none"), ("--preset", "tiny")) if flag not in arguments
                for flag in (flag, value)]
    code = main(["reconstruct", *arguments, *defaults])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]


def test_a_missing_or_folder_video_is_one_line_and_writes_nothing(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, stderr = run_cli(capsys, tmp_path / "missing.mp4", "--out", out)
    assert code == 2 and error_lines(stderr) == [f"error: {tmp_path / 'missing.mp4'}: no such file"]
    (tmp_path / "folder.mp4").mkdir()
    code, _, stderr = run_cli(capsys, tmp_path / "folder.mp4", "--out", out)
    assert code == 2 and "is a folder" in stderr and len(stderr.strip().splitlines()) == 1
    assert not out.exists()


def test_single_mode_with_two_cameras_is_refused_before_anything_runs(tmp_path, capsys):
    videos = list_examples()[0].video_paths[:2]
    code, _, stderr = run_cli(capsys, *videos, "--mode", "single", "--out", tmp_path / "out")
    assert code == 2 and len(stderr.strip().splitlines()) == 1 and "mode 'single'" in stderr
    assert not (tmp_path / "out").exists()


def test_an_out_path_that_is_a_file_is_refused_and_left_alone(tmp_path, capsys):
    taken = tmp_path / "taken.txt"
    taken.write_text("keep me")
    code, _, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--out", taken)
    assert code == 2 and "is a file" in stderr and len(stderr.strip().splitlines()) == 1
    assert taken.read_text() == "keep me"


def test_weights_that_predict_nan_leave_no_output_folder(tmp_path, capsys):
    import torch
    from safetensors.torch import save_file

    from vggt_mv import VGGT_MV, VGGTMVConfig

    state = VGGT_MV(VGGTMVConfig.from_preset("tiny")).state_dict()
    save_file({key: torch.full_like(value, float("nan")) for key, value in state.items()}, tmp_path / "nan.safetensors")
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--frames", "1", "--out", out,
                                   "--checkpoint", tmp_path / "nan.safetensors", "--preset", "tiny")
    assert code == 2 and len(error_lines(stderr)) == 1 and "NaN" in error_lines(stderr)[0]
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["nan.safetensors"]
    assert stdout == ""


def test_outputs_replace_those_of_an_earlier_run_and_stages_and_progress_are_shown(tmp_path, capsys):
    out = tmp_path / "out"
    (out / "ply").mkdir(parents=True)
    (out / "ply" / "points_t007.ply").write_text("stale")
    code, stdout, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--frames", "2", "--out", out)
    assert code == 0, stderr
    assert sorted(p.name for p in (out / "ply").iterdir()) == ["points_t000.ply", "points_t001.ply"]
    assert (out / "colmap" / "t001" / "sparse" / "0" / "points3D.bin").is_file()
    assert stdout.splitlines()[0] == f"glb: {out / 'scene.glb'}"
    assert "VGGT_MV: aggregator layer" in stderr and "] 100%" not in stderr.split("stages:")[1]
    assert "stages: decode" in stderr and "files" in stderr
    assert [p.name for p in tmp_path.iterdir()] == ["out"], "no staging folder is left behind"


def test_auto_says_which_attention_it_chose_and_why_global_for_plain_vggt_and_multi_for_a_vggt_mv_checkpoint(
        tmp_path, capsys):
    from tests.support.checkpoints import tiny_state, write_safetensors
    from vggt_mv.weights import build_and_load
    from vggt_mv.weights.checkpoint_writer import save_checkpoint

    videos = list_examples()[0].video_paths[:2]
    plain = write_safetensors(tmp_path / "vggt.safetensors", {k: v for k, v in tiny_state().items()
                                                              if not k.startswith("aggregator.spatial_mask_head.")})
    code, _, stderr = run_cli(capsys, *videos, "--frames", "1", "--checkpoint", plain, "--out", tmp_path / "a")
    attention = [line for line in stderr.splitlines() if line.startswith("attention:")]
    assert code == 0 and len(attention) == 1 and "auto chose global for 2 cameras" in attention[0]
    model, _ = build_and_load(model_config(), checkpoint=plain)
    trained = save_checkpoint(model, tmp_path / "mv.safetensors", "multi")
    code, _, stderr = run_cli(capsys, *videos, "--frames", "1", "--checkpoint", trained, "--out", tmp_path / "b")
    assert code == 0 and "attention: auto chose multi for 2 cameras" in stderr


def model_config():
    from vggt_mv.config import VGGTMVConfig

    return VGGTMVConfig.from_preset("tiny")


def test_formats_writes_only_what_is_asked_and_ba_reports_on_every_time_step(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, *list_examples()[0].video_paths[:2], "--frames", "2", "--out", out,
                                   "--formats", "npz,colmap,zip", "--ba", "--float16")
    assert code == 0, stderr
    assert sorted(p.name for p in out.iterdir()) == ["colmap", "everything.zip", "predictions.npz", "scene.html"]
    assert np.load(out / "predictions.npz")["depth"].dtype == np.float16
    # random weights: the cameras share no point, so the line says why no step was adjusted (the error before and
    # after on a scene that can be adjusted: tests/exports/test_colmap.py)
    assert "note: COLMAP bundle adjustment, mean reprojection error per time step: t000 " in stderr


def test_an_unknown_format_is_one_line_before_any_model_loads(tmp_path, capsys):
    code, stdout, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--out", tmp_path / "o",
                                   "--formats", "glb,../../etc/passwd")
    assert code == 2 and stderr.strip().splitlines() == [
        "error: --formats: unknown format '../../etc/passwd'; choose from glb, npz, cameras, ply, colmap, rerun, zip"]
    assert not (tmp_path / "o").exists()


def test_a_long_run_goes_in_windows_and_leaves_no_store_behind(tmp_path, capsys):
    out = tmp_path / "out"
    code, stdout, stderr = run_cli(capsys, *list_examples()[0].video_paths[:2], "--frames", "8", "--window", "4",
                                   "--out", out, "--formats", "npz,cameras")
    assert code == 0, stderr
    assert "frames: 8 time steps x 2 cameras at 518x294 (fit), 3 windows" in stderr
    assert "note: Windows: 3 windows of 4 time steps, overlapping by 1 (steps 0-3, 3-6, 4-7)" in stderr
    assert stderr.count("note: Seam ") == 2
    assert sorted(p.name for p in out.iterdir()) == ["cameras.json", "predictions.npz", "scene.html"]
    with np.load(out / "predictions.npz") as npz:
        assert npz["depth"].shape[:2] == (8, 2) and npz["window_ranges"].tolist() == [[0, 4], [3, 7], [4, 8]]
    assert not any(path.name.startswith(".") for path in tmp_path.rglob("*"))  # the store is gone


def test_crop_mode_is_still_there(tmp_path, capsys):
    code, _, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--frames", "1", "--resize", "crop",
                              "--out", tmp_path / "o", "--formats", "cameras")
    assert code == 0, stderr
    assert "(crop)" in stderr


@pytest.mark.parametrize("flags, message", [
    (["--frames", "-3"], "error: --frames must be at least 1, got -3"),
    (["--window", "0.1", "0.9"], "error: --window N takes the time steps per window; the part of the time range is "
                                 "now --span START END"),
    (["--window", "1"], "error: --window must be a whole number of time steps, at least 2, got 1"),
    (["--window", "nan"], "error: --window must be a whole number of time steps, at least 2, got nan"),
])
def test_hostile_frames_and_windows_get_one_line(tmp_path, capsys, flags, message):
    code, _, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--out", tmp_path / "o", *flags)
    assert code == 2 and stderr.strip().splitlines() == [message]
    assert not (tmp_path / "o").exists()


def test_millions_of_frames_are_capped_at_what_the_video_shows(tmp_path, capsys):
    code, _, stderr = run_cli(capsys, list_examples()[0].video_paths[0], "--frames", "3000000", "--out",
                              tmp_path / "o", "--formats", "cameras", "--max-total-frames", "30")
    assert code == 0, stderr
    assert "T capped at 30 (asked for 3000000)" in stderr and "frames: 30 time steps x 1 camera at" in stderr
