"""Reconstruct-tab logic without a browser: inputs parsed once, session files forgotten, redraws from cache."""

import math
import os
from types import SimpleNamespace

import numpy as np
import pytest

from tests.support.videos import write_video
from vggt_mv.io.examples import list_examples
from vggt_mv.serving import reconstruct_tab
from vggt_mv.serving.app_state import AppState
from vggt_mv.serving.downloads import prepare_download
from vggt_mv.serving.reconstruct_tab import DisplayChoices, UserFacingError, parse_offsets, redraw, redraw_strip, run
from vggt_mv.viz.player import FRAMES_META_KEY


def test_offsets_are_parsed_per_camera():
    assert parse_offsets("0, 0.1; -0.2", 3) == (0.0, 0.1, -0.2)
    assert parse_offsets("  ", 2) == ()
    with pytest.raises(UserFacingError, match="2 offsets given for 3 cameras"):
        parse_offsets("0, 1", 3)
    with pytest.raises(UserFacingError, match="numbers"):
        parse_offsets("zero", 1)


def test_run_writes_into_the_session_folder_redraws_from_cache_and_the_folder_goes_with_the_session(state):
    example = list_examples()[0].name
    figure, strip, downloads, status, key = run(state, None, example, 2, 0.0, 1.0, "", "auto", DisplayChoices(),
                                                "session-a")
    assert downloads == []
    downloads, _ = prepare_download(state, key, "glb", DisplayChoices(), False, "session-a")
    folder = reconstruct_tab.session_folder(state, "session-a")
    assert folder.parent == state.sessions_root and all(path.startswith(str(folder)) for path in downloads)
    assert "2 time steps x 3 cameras" in status and "attention global" in status
    assert "- Attention: auto chose global for 3 cameras: random weights" in status, "auto says why"
    assert [caption for _, caption in strip] == [f"camera {n}: {p.name}" for n, p in
                                                 enumerate(list_examples()[0].video_paths)]
    assert all(image.shape == (294, 4 * 518, 3) for image, _ in strip), "input | depth | confidence | dynamic"
    assert len(figure.layout.meta[FRAMES_META_KEY]) == 2, "the player's frames travel in the layout for gr.Plot"
    strip_step, ground_truth = reconstruct_tab.display_control_updates(state, key)
    assert strip_step["maximum"] == 1 and strip_step["value"] == 0 and ground_truth["visible"] is True
    trail = redraw(state, key, DisplayChoices(player_mode="trail", color_by="camera"), "session-a")
    assert trail.layout.title.text.startswith("up to this step (trail): ")
    later = redraw_strip(state, key, 1, "session-a")
    assert [caption for _, caption in later] == [caption for _, caption in strip]
    assert not all(np.array_equal(a, b) for (a, _), (b, _) in zip(later, strip)), "the strip shows step 1 now"
    reconstruct_tab.remove_session_folder(state, "session-a")
    assert not folder.exists()
    with pytest.raises(UserFacingError, match="run a reconstruction first"):
        redraw(state, "unknown", DisplayChoices(), "session-a")
    with pytest.raises(UserFacingError, match="upload one video per camera"):
        run(state, None, None, 2, 0.0, 1.0, "", "auto", DisplayChoices(), "session-b")


def test_the_plan_is_shown_before_running_and_explains_refusals(state):
    example = list_examples()[0].name
    plan = reconstruct_tab.describe_plan(state, None, example, 8)
    assert "8 time steps x 3 cameras at 518x294" in plan and "tokens" in plan and "GiB" in plan
    assert "- Attention: auto chose global for 3 cameras" in plan
    long = reconstruct_tab.describe_plan(state, None, example, 30)
    assert "30 time steps x 3 cameras in 2 windows" in long and "- Windows: 2 windows of 21 time steps" in long
    assert "upload one video" in reconstruct_tab.describe_plan(state, None, None, 8)


def test_a_run_too_big_for_the_memory_is_refused_in_the_plan_naming_where_the_figure_comes_from(served, tmp_path):
    small = AppState(served, tmp_path, gpu_memory_bytes=1024)
    plan = reconstruct_tab.describe_plan(small, None, list_examples()[0].name, 2)
    assert plan.startswith("⚠️ this run needs about") and "available (the --gpu-memory setting)" in plan


HOSTILE_SESSION_IDS = ["..", ".", "../../x", "/abs/path", "a/../../..", "", None, "\x00", "..\\..", "~", "x" * 5000]


@pytest.fixture
def sessions_root(state, tmp_path):
    """The sessions root inside tmp_path, with a sentinel file and folder beside it that must survive everything."""
    root = state.sessions_root
    (tmp_path / "sentinel.txt").write_text("keep me")
    (tmp_path / "sentinel-folder").mkdir()
    (tmp_path / "sentinel-folder" / "inside.txt").write_text("keep me too")
    return root


def sentinels_intact(tmp_path) -> bool:
    """The files next to the sessions root are still there."""
    return (tmp_path / "sentinel.txt").read_text() == "keep me" and (
        tmp_path / "sentinel-folder" / "inside.txt").read_text() == "keep me too"


@pytest.mark.parametrize("session_id", HOSTILE_SESSION_IDS)
def test_no_session_id_names_a_folder_outside_the_sessions_root(session_id, state, sessions_root, tmp_path):
    folder = reconstruct_tab.session_folder(state, session_id)
    assert folder.resolve().parent == sessions_root.resolve()
    (folder / "predictions.npz").write_bytes(b"x")
    reconstruct_tab.remove_session_folder(state, session_id)
    assert not folder.exists() and sessions_root.is_dir() and sentinels_intact(tmp_path)


def test_removing_a_session_that_never_ran_touches_nothing(state, sessions_root, tmp_path):
    for session_id in HOSTILE_SESSION_IDS:
        reconstruct_tab.remove_session_folder(state, session_id)
    assert sentinels_intact(tmp_path) and tmp_path.exists()


def test_a_planted_link_in_the_sessions_root_is_not_followed_on_removal(state, sessions_root, tmp_path):
    sessions_root.mkdir()
    link = sessions_root / reconstruct_tab.session_folder_name("victim")
    link.symlink_to(tmp_path / "sentinel-folder", target_is_directory=True)
    reconstruct_tab.remove_session_folder(state, "victim")
    reconstruct_tab.forget_earlier_runs(state, "victim")
    assert sentinels_intact(tmp_path)


def test_a_session_keeps_only_its_latest_run_on_disk(state, sessions_root):
    first = reconstruct_tab.session_folder(state, "s") / "run-1"
    first.mkdir()
    (first / "scene.glb").write_bytes(b"x" * 100)
    other = reconstruct_tab.session_folder(state, "other") / "run-1"
    other.mkdir()
    reconstruct_tab.forget_earlier_runs(state, "s")
    assert not first.exists() and reconstruct_tab.session_folder(state, "s").is_dir() and other.is_dir()


@pytest.mark.parametrize("text", ["nan", "inf", "-inf", "1e308", "0, nan", "1e6"])
def test_non_finite_or_absurd_offsets_are_refused_in_one_short_line(text):
    cameras = len(text.split(","))
    with pytest.raises(UserFacingError, match="offsets must be seconds between") as refused:
        parse_offsets(text, cameras)
    assert len(str(refused.value)) < 100


def test_offset_messages_quote_long_text_briefly():
    with pytest.raises(UserFacingError, match="numbers separated by commas") as refused:
        parse_offsets("x" * 10_000, 1)
    assert len(str(refused.value)) < 120


GOOD_FIELDS = dict(frames_per_camera=2, window_start=0.0, window_end=1.0, mode="auto", color_by="rgb",
                   conf_percentile=25.0, point_budget=200_000, max_time_steps=64)


@pytest.mark.parametrize("field, value, phrase", [
    ("frames_per_camera", 0, "frames per camera must be a whole number from 1 to 64"),
    ("frames_per_camera", 10 ** 9, "frames per camera must be a whole number from 1 to 64"),
    ("frames_per_camera", math.nan, "frames per camera"),
    ("frames_per_camera", "many", "frames per camera"),
    ("frames_per_camera", 2.5, "frames per camera"),
    ("window_start", -0.5, "window start must be a number from 0 to 1"),
    ("window_end", 7, "window end must be a number from 0 to 1"),
    ("window_end", math.inf, "window end"),
    ("window_start", 0.9, "window start must be below window end"),
    ("mode", "bogus", "attention mode must be one of auto, multi, global"),
    ("mode", None, "attention mode"),
    ("color_by", "bogus", "colour must be one of rgb, camera, time, confidence"),
    ("conf_percentile", 500, "confidence percentile"),
    ("point_budget", -5, "point budget must be a whole number"),
    ("point_budget", 10 ** 12, "point budget"),
    ("resize", "stretch", "frame sizing must be one of fit, crop"),
    ("resize", None, "frame sizing"),
])
def test_every_request_field_out_of_range_gets_one_message(field, value, phrase):
    fields = {**GOOD_FIELDS, field: value}
    if field == "window_start" and value == 0.9:
        fields["window_end"] = 0.5
    with pytest.raises(UserFacingError, match=phrase) as refused:
        reconstruct_tab.check_request(**fields)
    assert "\n" not in str(refused.value)


def test_a_good_request_passes_the_checks_and_gives_t():
    assert reconstruct_tab.check_request(**GOOD_FIELDS) == 2


@pytest.mark.parametrize("files, phrase", [
    ("just-a-string.mp4", "list of uploaded files"),
    ([1, 2], "list of uploaded files"),
    ([{"path": "/etc/passwd"}], "list of uploaded files"),
    (["/definitely/not/here.mp4"], "here.mp4: not a file"),
    ([os.sep], "not a file"),
])
def test_videos_that_are_not_uploaded_files_are_refused(files, phrase):
    with pytest.raises(UserFacingError, match=phrase) as refused:
        reconstruct_tab.resolve_videos(files, None)
    assert "/definitely" not in str(refused.value)


def test_an_unknown_example_is_refused():
    with pytest.raises(UserFacingError, match="no example called"):
        reconstruct_tab.resolve_videos(None, "../../etc")


def test_user_facing_messages_are_always_one_line():
    assert str(UserFacingError("cam\nera.mp4: bad\r\nthing")) == "cam era.mp4: bad thing"


def test_display_controls_before_any_run_change_nothing_instead_of_showing_errors(state):
    assert redraw(state, None, DisplayChoices(player_mode="all"), "s") == {"__type__": "update"}
    assert redraw_strip(state, None, 3, "s") == {"__type__": "update"}
    assert reconstruct_tab.display_control_updates(state, None) == ({"__type__": "update"}, {"__type__": "update"})


@pytest.mark.parametrize("field, value, phrase", [
    ("player_mode", "bogus", "player mode must be one of step, trail, all"),
    ("player_mode", None, "player mode"),
    ("color_by", "<script>", "colour must be one of rgb, camera, time, confidence, dynamic"),
    ("max_dynamic", 2.0, "dynamic score limit must be a number from 0 to 1"),
    ("max_dynamic", math.nan, "dynamic score limit"),
    ("depth_edges", "yes", "toggles must be true or false"),
    ("conf_threshold", -1, "min confidence must be a number"),
    ("conf_threshold", None, "min confidence"),
    ("point_budget", 0, "point budget must be a whole number"),
    ("conf_percentile", math.inf, "confidence percentile"),
])
def test_every_display_field_out_of_range_gets_one_message(field, value, phrase):
    with pytest.raises(UserFacingError, match=phrase) as refused:
        DisplayChoices(**{field: value}).scene_options()
    assert "\n" not in str(refused.value)


def test_a_redraw_with_a_hostile_field_is_refused_in_one_line(state):
    *_, key = run(state, None, list_examples()[0].name, 1, 0.0, 1.0, "", "auto", DisplayChoices(point_budget=2000),
                  "hostile-redraw")
    with pytest.raises(UserFacingError, match="player mode must be one of"):
        redraw(state, key, DisplayChoices(player_mode="../../etc"), "hostile-redraw")
    with pytest.raises(UserFacingError, match="strip time step must be a whole number from 0 to 0"):
        redraw_strip(state, key, 5, "hostile-redraw")


def mask_head_report(status: str) -> SimpleNamespace:
    """A stand-in load report whose spatial mask head tensors have `status` (the rest loaded)."""
    return SimpleNamespace(tensors=[{"key": "aggregator.patch_embed.proj.weight", "status": "checkpoint"},
                                    {"key": "aggregator.spatial_mask_head.1.weight", "status": status}])


def test_the_status_says_the_dynamic_score_is_noise_while_the_mask_head_is_random(served, state):
    *_, status, _ = run(state, None, list_examples()[0].name, 1, 0.0, 1.0, "", "auto",
                        DisplayChoices(point_budget=2000), "noise")
    assert served.report is None and reconstruct_tab.RANDOM_MASK_NOTE in status
    assert reconstruct_tab.mask_head_is_random(SimpleNamespace(report=mask_head_report("random")))
    assert not reconstruct_tab.mask_head_is_random(SimpleNamespace(report=mask_head_report("checkpoint")))


def test_one_uploaded_camera_runs_single_attention_says_so_in_the_singular_and_hides_ground_truth(state, tmp_path):
    video = write_video(tmp_path / "solo.mp4", frames=3, width=64, height=48)
    _, strip, downloads, status, key = run(state, [str(video)], None, 1, 0.0, 1.0, "", "auto", DisplayChoices(),
                                           "solo")
    assert status.startswith("**1 time step x 1 camera** at ") and "attention single)" in status
    assert "auto chose single: one camera" in status
    assert [caption for _, caption in strip] == ["camera 0: solo.mp4"]
    downloads, _ = prepare_download(state, key, "zip", DisplayChoices(), False, "solo")
    assert [path.rsplit("/", 1)[-1] for path in downloads] == ["everything.zip"]
    strip_step, ground_truth = reconstruct_tab.display_control_updates(state, key)
    assert strip_step["interactive"] is False and ground_truth["visible"] is False


def test_uploads_win_over_a_chosen_example_and_the_plan_and_status_say_so(state, tmp_path):
    video = write_video(tmp_path / "mine.mp4", frames=3, width=64, height=48)
    example = list_examples()[0].name
    plan = reconstruct_tab.describe_plan(state, [str(video)], example, 1)
    assert "1 time step x 1 camera at" in plan and f"uploads are used; the example '{example}' is ignored" in plan
    assert "camera 0 (mine.mp4): 64x48 -> " in plan
    *_, status, _ = run(state, [str(video)], example, 1, 0.0, 1.0, "", "multi", DisplayChoices(), "mine")
    assert f"the example '{example}' is ignored" in status and "attention multi)" in status
    assert "multi, as chosen" in status
    assert "ignored" not in reconstruct_tab.describe_plan(state, None, example, 1)


def test_upload_previews_show_each_first_frame_upright_with_size_rate_and_frame_count(tmp_path):
    portrait = write_video(tmp_path / "tall.mp4", frames=4, fps=10, width=36, height=64)
    landscape = write_video(tmp_path / "wide.mp4", frames=1, fps=25, width=64, height=36)
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"not a video")
    previews = reconstruct_tab.upload_previews([str(portrait), str(landscape), str(broken)])
    assert [caption for _, caption in previews] == [
        "camera 0: tall.mp4 (36x64, 10 fps, 4 frames)", "camera 1: wide.mp4 (64x36, 25 fps, 1 frame)",
        "camera 2: broken.mp4: not a readable video (InvalidDataError: Invalid data found when processing input)"]
    assert previews[0][0].shape == (64, 36, 3) and previews[1][0].shape == (36, 64, 3)
    assert reconstruct_tab.upload_preview_update(None)["visible"] is False


def test_a_phone_video_with_rotation_metadata_previews_upright(tmp_path):
    phone = write_video(tmp_path / "phone.mp4", frames=2, width=64, height=36, rotation=90)
    ((image, caption),) = reconstruct_tab.upload_previews([str(phone)])
    assert caption.startswith("camera 0: phone.mp4 (36x64,") and image.shape == (64, 36, 3)
