"""Windowed runs as the app serves them: one GPU call per window, the store in the sessions root's run folder
(gone with the run), redraws, tracks added later through every window, and the plan saying how it will go."""

from __future__ import annotations

import numpy as np
import pytest

from tests.support.videos import write_video
from vggt_mv.io.prediction_store import StoredArray
from vggt_mv.pipeline import ReconstructionError, ReconstructionSettings
from vggt_mv.serving.gpu import GpuFailure
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.app_state import RUNS_FOLDER, AppState
from vggt_mv.serving.reconstruct_tab import DisplayChoices
from vggt_mv.viz.player import FRAMES_META_KEY

STEPS = 9


def long_videos(folder):
    return [write_video(folder / f"camera{n}.mp4", frames=STEPS, fps=10, width=96, height=54) for n in range(2)]


def windowed_state(served, tmp_path) -> AppState:
    """An app whose passes hold 3 time steps of 2 cameras."""
    return AppState(served, tmp_path / "sessions", max_total_frames=6)


def test_each_window_is_one_gpu_call_and_the_run_is_stored_under_the_sessions_root(served, tmp_path):
    state = windowed_state(served, tmp_path)
    calls = []
    forward = state.gpu.reconstruct

    def counted(recipe, images, mode):
        calls.append(images.shape)
        yield from forward(recipe, images, mode)

    state.gpu.reconstruct = counted
    try:
        result = state.reconstruct(long_videos(tmp_path), ReconstructionSettings(frames_per_camera=STEPS,
                                                                                 max_total_frames=6))
        assert result.windows.count == len(calls) > 1
        assert all(shape[:2] == (3, 2) for shape in calls)  # a window's frames, never the whole run
        assert isinstance(result.predictions["depth"], StoredArray)
        assert result.store.folder.parent == tmp_path / "sessions" / RUNS_FOLDER
        assert state.runs.get(result.key) is result
        state.runs.clear()
        assert not result.store.folder.exists()  # the store leaves with its run
    finally:
        served.replaced.remove(state.forget_runs)


def test_a_windowed_run_redraws_and_gets_tracks_later_through_every_window(served, tmp_path):
    state = windowed_state(served, tmp_path)
    try:
        videos = long_videos(tmp_path)
        figure, strip, downloads, status, key = reconstruct_tab.run(
            state, videos, None, STEPS, 0.0, 1.0, "", "auto", DisplayChoices(), "session-a")
        assert len(figure.layout.meta[FRAMES_META_KEY]) == STEPS  # the player has every step
        assert "windows of 3 time steps" in status and "Seam 1 (" in status
        assert reconstruct_tab.redraw(state, key, DisplayChoices(color_by="time"), "session-a") is not None
        tracked = state.add_tracks(key, track_grid=4)
        steps, cameras, count, _ = tracked.predictions["track"].shape
        assert (steps, cameras) == (STEPS, 2) and count > 0
        assert np.isfinite(tracked.predictions["track"]).all()
    finally:
        served.replaced.remove(state.forget_runs)


def test_the_plan_says_how_many_windows_and_the_sizing(served, tmp_path):
    state = windowed_state(served, tmp_path)
    try:
        plan = reconstruct_tab.describe_plan(state, long_videos(tmp_path), None, STEPS)
        assert "in 4 windows" in plan and "fit: every pixel kept" in plan
        cropped = reconstruct_tab.describe_plan(state, long_videos(tmp_path), None, STEPS, "crop")
        assert "crop: width 518" in cropped
    finally:
        served.replaced.remove(state.forget_runs)


def test_a_window_that_fails_leaves_one_message_and_no_folder(served, tmp_path):
    state = windowed_state(served, tmp_path)
    forward = state.gpu.reconstruct
    calls = []

    def fails_second(recipe, images, mode):
        calls.append(1)
        if len(calls) == 2:
            yield GpuFailure("the device ran out of memory; try fewer frames per camera or fewer cameras")
            return
        yield from forward(recipe, images, mode)

    state.gpu.reconstruct = fails_second
    try:
        with pytest.raises(ReconstructionError, match="ran out of memory"):
            state.reconstruct(long_videos(tmp_path), ReconstructionSettings(frames_per_camera=STEPS,
                                                                            max_total_frames=6))
        assert list((tmp_path / "sessions" / RUNS_FOLDER).iterdir()) == []
    finally:
        served.replaced.remove(state.forget_runs)


def test_the_plan_shows_what_each_sizing_feeds_the_model_for_a_phone_video(served, tmp_path):
    state = windowed_state(served, tmp_path)
    try:
        portrait = write_video(tmp_path / "phone.mp4", frames=4, width=54, height=96)
        plan = reconstruct_tab.describe_plan(state, [portrait], None, 2)
        assert "Sizing: fit (chosen) 294x518, 782 tokens per frame, nothing cut; crop 518x518" in plan
        assert "406 rows cut" in plan  # crop: 518x924 cut to 518 rows
    finally:
        served.replaced.remove(state.forget_runs)
