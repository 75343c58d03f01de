"""`vggt-mv reconstruct --query-points "x,y;x,y"` / `--track-grid K`: tracks in a headless run, bad points in one line."""

import re

import pytest

from tests.support.videos import write_video
from vggt_mv.cli import main, parse_query_points


def run_cli(capsys, *arguments) -> tuple[int, str]:
    """The CLI in this process with random tiny weights: exit code and stderr."""
    code = main(["reconstruct", *map(str, arguments), "--checkpoint", "none", "--preset", "tiny"])
    return code, capsys.readouterr().err


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.replace("\r", "\n").splitlines() if line.startswith("error:")]


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    return write_video(tmp_path_factory.mktemp("cli") / "cam0.mp4", frames=4, width=56, height=28)


def test_query_points_are_parsed_from_x_comma_y_separated_by_semicolons():
    assert parse_query_points("10,20; 3.5 ,7") == ((10.0, 20.0), (3.5, 7.0))
    assert parse_query_points(None) == ()
    for bad in ("10", "1,2,3", "a,b", "1,2;", ""):
        with pytest.raises(ValueError, match="is not 'x,y'"):
            parse_query_points(bad)


def test_a_run_with_query_points_reports_its_tracks(video, tmp_path, capsys):
    code, stderr = run_cli(capsys, video, "--out", tmp_path / "out", "--frames", "2", "--query-points", "10,20;300,100")
    assert code == 0, stderr
    assert "tracks: 2 points through 2 x 1 frames" in stderr
    code, stderr = run_cli(capsys, video, "--out", tmp_path / "grid", "--frames", "2", "--track-grid", "9")
    assert code == 0 and re.search(r"tracks: [2-9] points through 2 x 1 frames", stderr), stderr


@pytest.mark.parametrize("flags, message", [
    (("--query-points", "10;20"), "'10' is not 'x,y'"),
    (("--query-points", "nan,3"), "query point 0 is not finite"),
    (("--query-points", "9999,3"), "outside the 518x"),
    (("--track-grid", "300"), "whole number of points from 1 to 256"),
    (("--query-points", "1,1", "--track-grid", "4"), "not both"),
])
def test_bad_query_points_are_one_error_line_and_write_nothing(video, tmp_path, capsys, flags, message):
    code, stderr = run_cli(capsys, video, "--out", tmp_path / "out", "--frames", "1", *flags)
    assert code == 2 and len(error_lines(stderr)) == 1 and message in error_lines(stderr)[0], stderr
    assert not (tmp_path / "out").exists()
