"""`python -m vggt_mv reconstruct V1 V2 V3 --out DIR` writes what the app offers, plus scene.html."""

import subprocess
import sys
from pathlib import Path

from vggt_mv.io.examples import list_examples

ROOT = Path(__file__).resolve().parents[2]


def test_reconstruct_writes_every_output(tmp_path):
    videos = [str(p) for p in list_examples()[0].video_paths]
    result = subprocess.run([sys.executable, "-m", "vggt_mv", "reconstruct", *videos, "--out", str(tmp_path),
                             "--frames", "2", "--checkpoint", "none", "--preset", "tiny"],
                            cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    for name in ("scene.glb", "predictions.npz", "cameras.json", "scene.html", "ply/points_t001.ply"):
        assert (tmp_path / name).is_file(), name


def test_reconstruct_reports_a_bad_video_in_one_line(tmp_path):
    bad = tmp_path / "bad.mp4"
    bad.write_text("nope")
    result = subprocess.run([sys.executable, "-m", "vggt_mv", "reconstruct", str(bad), "--out", str(tmp_path / "o"),
                             "--checkpoint", "none", "--preset", "tiny"], cwd=ROOT, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2 and "error: bad.mp4: not a readable video" in result.stderr
