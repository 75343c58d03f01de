"""benchmarks/gpu_check.py in its CPU smoke mode: one CSV holding every check kind with finite values, and an
explicit "skipped" row (not a crash) for each official-VGGT case when the --official folder is missing."""

from __future__ import annotations

import csv
import math
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "benchmarks" / "gpu_check.py"
COLUMNS = ["check", "metric", "preset", "implementation", "mode", "T", "N", "height", "width", "value", "unit", "note"]
OUTPUTS = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf")
MODES = ("multi", "global")
QUICK_SIZES = (("1", "1"), ("2", "2"))


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> tuple[list[str], list[dict[str, str]], Path]:
    """One --quick CPU run with a missing --official folder: the CSV's header, its rows, and that folder."""
    out = tmp_path_factory.mktemp("gpu-check")
    missing = out / "no-official-vggt-here"
    done = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out),
                           "--official", str(missing)], capture_output=True, text=True, timeout=150, cwd=REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    with (out / "gpu_check.csv").open(newline="") as file:
        reader = csv.DictReader(file)
        return list(reader.fieldnames or []), list(reader), missing


def finite(row: dict[str, str]) -> float:
    """The row's value as a finite number (fails the test otherwise)."""
    value = float(row["value"])
    assert math.isfinite(value), row
    return value


def pick(rows: list[dict[str, str]], **columns: str) -> list[dict[str, str]]:
    """The rows whose named columns hold these values."""
    return [row for row in rows if all(row[name] == value for name, value in columns.items())]


def test_one_flat_table_without_failed_cases(run):
    header, rows, _ = run
    assert header == COLUMNS
    assert {row["check"] for row in rows} >= {"environment", "precision", "forward", "example", "memory_estimate",
                                              "summary"}
    assert not [row for row in rows if row["note"].startswith(("error", "out of memory"))]
    assert finite(pick(rows, check="summary", metric="problem_rows")[0]) == 0
    assert pick(rows, check="environment", metric="torch")[0]["note"]


def test_precision_rows_per_output_and_mode(run):
    _, rows, _ = run
    for mode in MODES:
        for output in OUTPUTS:
            for metric in (f"max_rel_error[{output}]", f"mean_rel_error[{output}]"):
                found = pick(rows, check="precision", mode=mode, metric=metric)
                assert len(found) == 1, (mode, metric)
                assert 0 <= finite(found[0]) < 1, found[0]


def test_forward_rows_per_size_and_mode(run):
    _, rows, _ = run
    for steps, cameras in QUICK_SIZES:
        for mode in MODES:
            case = dict(check="forward", implementation="VGGT_MV", mode=mode, T=steps, N=cameras)
            for metric in ("first_call_s", "best_s", "median_s", "peak_memory"):
                found = pick(rows, metric=metric, **case)
                assert len(found) == 1, (case, metric)
                assert finite(found[0]) > 0, found[0]
            assert pick(rows, metric="peak_memory", **case)[0]["unit"].startswith("bytes")


def test_example_row_next_to_the_plain_forward(run):
    _, rows, _ = run
    assert finite(pick(rows, check="example", metric="decode_s")[0]) > 0
    for mode in MODES:
        function = pick(rows, check="example", implementation="predict_with_track_context", mode=mode)
        assert finite(pick(function, metric="best_s")[0]) > 0
        assert finite(pick(function, metric="function_over_forward")[0]) > 0
        plain = [row for row in pick(rows, check="example", mode=mode, metric="best_s")
                 if "forward" in row["implementation"]]
        assert len(plain) == 1 and finite(plain[0]) > 0
        assert function[0]["T"] == plain[0]["T"] and function[0]["N"] == plain[0]["N"] == "3"


def test_estimate_rows_for_every_measured_case(run):
    _, rows, _ = run
    cases = [(steps, cameras, mode, "VGGT_MV") for steps, cameras in QUICK_SIZES for mode in MODES]
    cases += [(row["T"], row["N"], row["mode"], "predict_with_track_context")
              for row in pick(rows, check="example", implementation="predict_with_track_context", metric="best_s")]
    for steps, cameras, mode, implementation in cases:
        found = pick(rows, check="memory_estimate", T=steps, N=cameras, mode=mode, implementation=implementation)
        values = {row["metric"]: finite(row) for row in found}
        assert {"estimate", "measured", "ratio"} <= set(values), (steps, cameras, mode, implementation)
        assert values["estimate"] > 0 and values["measured"] > 0
        assert values["ratio"] == pytest.approx(values["measured"] / values["estimate"])


def test_missing_official_folder_gives_skipped_rows(run):
    _, rows, missing = run
    assert pick(rows, check="environment", metric="official")[0]["note"].startswith("skipped")
    official = pick(rows, check="forward", implementation="official VGGT")
    assert {(row["T"], row["N"]) for row in official} == set(QUICK_SIZES)
    for row in official:
        assert row["value"] == "" and row["note"].startswith("skipped") and str(missing) in row["note"], row
