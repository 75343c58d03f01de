"""50 reconstructions against the real app: server memory plateaus, and Gradio's cache and the session folders stay
bounded (each run uploads new videos, so nothing is served from the prediction cache)."""

import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file

from tests.support.app_server import launched_app
from tests.support.videos import write_video

pytestmark = pytest.mark.slow

RUNS = 50
CACHE_MAX_AGE_S = 20


def folder_bytes(folder: Path) -> int:
    """Total size of the files below a folder."""
    return sum(path.stat().st_size for path in folder.rglob("*") if path.is_file()) if folder.exists() else 0


def camera_videos(folder: Path, run: int) -> list[Path]:
    """Two small cameras whose content differs per run (a new upload, a new model run, new downloads)."""
    folder.mkdir()
    return [write_video(folder / f"cam{camera}.mp4", frames=4, fps=10 + run % 7 + camera, width=64, height=48)
            for camera in range(2)]


def test_fifty_runs_memory_plateaus_and_caches_stay_bounded(tmp_path):
    served = tmp_path / "served"
    environment = {"VGGT_MV_SESSIONS_DIR": str(served / "sessions"), "GRADIO_TEMP_DIR": str(served / "gradio")}
    with launched_app("--preset", "tiny", "--checkpoint", "none", "--cache-max-age", str(CACHE_MAX_AGE_S),
                      env=environment) as app:
        client = Client(app.url, verbose=False)
        rss, cache, started = [], [], time.monotonic()
        for run in range(RUNS):
            videos = [handle_file(str(path)) for path in camera_videos(tmp_path / f"run{run}", run)]
            *_, status = client.predict(videos=videos, frames_per_camera=2, point_budget=10_000,
                                        api_name="/reconstruct")
            assert "2 time steps x 2 cameras" in status
            files, _ = client.predict(name="npz", point_budget=10_000, api_name="/download")  # as a visitor does
            assert [path.rsplit("/", 1)[-1] for path in files] == ["predictions.npz"]
            rss.append(app.rss_bytes())
            cache.append(folder_bytes(served / "gradio"))
        seconds = time.monotonic() - started
        sessions = list((served / "sessions").iterdir())
    mib = np.array(rss) / 2 ** 20
    report = (f"RSS MiB at runs 1/10/25/50: {mib[0]:.0f}/{mib[9]:.0f}/{mib[24]:.0f}/{mib[49]:.0f}; "
              f"cache MiB max {max(cache) / 2 ** 20:.1f}, last {cache[-1] / 2 ** 20:.1f}; {seconds:.0f} s")
    print(report)
    # After warm-up (runs 10-20) the last 20 runs may not climb: their median at most 10% above the warm-up
    # median (measured: +3% to +5% with the heap trimmed after each run, +16% without). Medians, not maxima: one
    # sample taken while a cleaning thread runs is not a leak, while a leak of even 3 MiB a run moves the median.
    assert np.median(mib[-20:]) <= 1.10 * np.median(mib[9:20]), report
    # Gradio's cache holds only what the last CACHE_MAX_AGE_S seconds (plus one cleaning period) produced.
    per_run = max(cache[0], 1)
    runs_per_window = 1.5 * CACHE_MAX_AGE_S / (seconds / RUNS) + 2
    assert cache[-1] <= per_run * runs_per_window, report
    # One session, one run folder on disk.
    assert len(sessions) == 1 and len(list(sessions[0].iterdir())) <= 1
