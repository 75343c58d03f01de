"""Video in: every edge case gives a result or one clear message."""

from pathlib import Path

import numpy as np
import pytest

from tests.support.videos import frame_index_seen, write_video
from vggt_mv.io import video as video_module
from vggt_mv.io.layout import plan_layouts, scaled_size
from vggt_mv.io.video import (VideoError, VideoInfo, decode_clip, decode_frames, distinct_time_steps,
                              iter_decoded_frames, load_multiview, plan_common_clock, plan_multiview, probe_video,
                              repeats_a_frame)


def test_cameras_with_different_fps_durations_and_sizes_share_one_clock(tmp_path):
    fast = write_video(tmp_path / "fast.mp4", frames=30, fps=15, width=96, height=54)      # 2.0 s
    slow = write_video(tmp_path / "slow.mp4", frames=12, fps=8, width=64, height=48)       # 1.5 s
    clip = load_multiview([fast, slow], num_steps=3)
    assert clip.images.shape == (3, 2, 3, 392, 518)
    assert clip.images.dtype == np.float32 and 0 <= clip.images.min() and clip.images.max() <= 1
    assert max(clip.times) < 1.5, "time steps must stay inside the range both videos cover"
    seen = [frame_index_seen(camera_pixels(clip, t, 1)) for t in range(3)]
    assert seen == [int(t * 8) for t in clip.times]


def camera_pixels(clip, time_step: int, camera: int) -> np.ndarray:
    """uint8 [h, w, 3]: the camera's own pixels at one time step, padding cut away."""
    rows, cols = np.nonzero(clip.valid_mask[camera])
    image = clip.images[time_step, camera][:, rows.min():rows.max() + 1, cols.min():cols.max() + 1]
    return np.round(image.transpose(1, 2, 0) * 255).astype(np.uint8)


def valid_aspect(mask: np.ndarray) -> float:
    """Width / height of the valid region of a [H, W] mask."""
    rows, cols = np.nonzero(mask)
    return (cols.max() - cols.min() + 1) / (rows.max() - rows.min() + 1)


def test_cameras_of_different_aspect_and_fps_keep_their_aspect_and_never_repeat_a_frame(tmp_path):
    wide = write_video(tmp_path / "wide.mp4", frames=12, fps=12, width=128, height=72)     # 16:9, 1 s
    boxy = write_video(tmp_path / "boxy.mp4", frames=6, fps=6, width=64, height=48)        # 4:3, 1 s
    clip = load_multiview([wide, boxy], num_steps=10)
    assert clip.grid == (6, 2), "T is capped at the 6 frames the slower camera has"
    assert any("T capped at 6 (asked for 10)" in note and "boxy.mp4" in note for note in clip.notes)
    assert clip.valid_mask.shape == (2, 392, 518)
    for camera, (width, height) in enumerate([(128, 72), (64, 48)]):
        assert valid_aspect(clip.valid_mask[camera]) == pytest.approx(width / height, rel=0.02)
        seen = [frame_index_seen(camera_pixels(clip, t, camera)) for t in range(6)]
        assert len(set(seen)) == 6, f"camera {camera} was fed frames {seen}"
    padding = ~clip.valid_mask[0]
    assert padding.any() and (clip.images[:, 0][:, :, padding] == 1.0).all(), "padding is white, as in VGGT"


def test_a_1_fps_video_asked_for_32_steps_gives_its_8_frames_once_each(tmp_path):
    room = write_video(tmp_path / "room.mp4", frames=8, fps=1, width=64, height=48)
    plan = plan_multiview([room], num_steps=32)
    assert plan.steps == 8 and "room.mp4 shows only 8 distinct frames" in " ".join(plan.notes)
    clip = decode_clip(plan)
    assert [frame_index_seen(camera_pixels(clip, t, 0)) for t in range(8)] == list(range(8))


def test_a_window_between_frames_never_repeats_one(tmp_path):
    video = write_video(tmp_path / "slow.mp4", frames=4, fps=1, width=64, height=48)
    clip = load_multiview([video], num_steps=3, window=(0.1, 0.6))   # 0.4 s .. 2.4 s: frames 0, 1, 2 are shown
    seen = [frame_index_seen(camera_pixels(clip, t, 0)) for t in range(clip.grid[0])]
    assert len(set(seen)) == len(seen)


def test_crop_mode_scales_each_camera_uniformly_then_pads_or_centre_crops_never_stretched():
    landscape, portrait = plan_layouts([(1008, 756), (364, 686)], resize="crop")
    assert landscape.scaled == (518, 392) and portrait.scaled == (518, 980)
    assert portrait.cropped and portrait.kept_height == 518 and portrait.crop_top == (980 - 518) // 2
    assert landscape.canvas == portrait.canvas == (518, 518)
    assert landscape.padded and landscape.pad_top == (518 - 392) // 2
    assert landscape.valid_mask().sum() == 518 * 392
    assert "1008x756 -> 518x392, padded to 518x518" == landscape.describe()
    assert "centre-cropped" in portrait.describe()
    first_portrait = plan_layouts([(364, 686), (1008, 756)], resize="crop")
    assert first_portrait[1].scaled == (518, 392), "a portrait first camera no longer drags the others along"


def test_single_video_one_camera(tmp_path):
    clip = load_multiview([write_video(tmp_path / "a.mp4")], num_steps=4)
    assert clip.grid == (4, 1)
    assert clip.valid_mask.all(), "one landscape camera fills its frame"


def test_in_crop_mode_a_tall_portrait_video_is_centre_cropped_like_vggt_and_the_plan_says_so(tmp_path):
    clip = load_multiview([write_video(tmp_path / "p.mp4", width=48, height=96)], num_steps=1, resize="crop")
    height, width = clip.images.shape[-2:]
    assert (width, height) == (518, 518)
    assert any("p.mp4 (48x96)" in note and "centre-cropped" in note for note in clip.notes)
    assert clip.images[0, 0, 0, :, :100].mean() < 0.5, "the crop is central: the top-left red marker is cut"


def test_rotation_metadata_is_honoured(tmp_path):
    path = write_video(tmp_path / "r.mp4", frames=3, width=64, height=48, rotation=90)
    info = probe_video(path)
    assert info.rotation == 90 and info.display_size == (48, 64)
    frames = decode_frames(path, [0.0], scaled_size(*info.display_size))
    assert frames.shape == (1, 686, 518, 3)
    marker = frames[0, -100:, :100, 0].mean() > 200  # the top-left marker turned 90 degrees counter-clockwise
    assert marker


def test_variable_frame_rate_picks_the_frame_shown_at_each_time(tmp_path):
    path = write_video(tmp_path / "vfr.mp4", frames=5, times=[0.0, 0.1, 0.5, 0.55, 1.2])
    frames = decode_frames(path, [0.05, 0.3, 0.52, 0.9, 1.25], (64, 48))
    assert [frame_index_seen(f) for f in frames] == [0, 1, 2, 3, 4]


def test_a_video_reporting_fps_zero_gets_its_rate_from_packet_times(tmp_path, monkeypatch):
    path = write_video(tmp_path / "nofps.mp4", frames=10, fps=10)
    monkeypatch.setattr(video_module, "reported_frame_rate", lambda stream: 0.0)
    info = probe_video(path)
    assert info.fps == pytest.approx(10.0, rel=0.01) and info.end == pytest.approx(1.0, abs=0.05)
    assert load_multiview([path], num_steps=2).grid == (2, 1)


def test_one_frame_video_gives_one_time_step(tmp_path):
    clip = load_multiview([write_video(tmp_path / "one.mp4", frames=1)], num_steps=3)
    assert clip.grid == (1, 1) and "T capped at 1" in clip.notes[0]


def test_not_a_video_and_truncated_and_missing_files_give_one_message(tmp_path):
    text = tmp_path / "notes.mp4"
    text.write_text("this is not a video")
    good = write_video(tmp_path / "good.mp4", frames=20).read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(good[:300])
    for path, phrase in ((text, "not a readable video"), (truncated, truncated.name),
                         (tmp_path / "missing.mp4", "not found")):
        with pytest.raises(VideoError) as raised:
            load_multiview([path], num_steps=2)
        assert phrase in str(raised.value) and "\n" not in str(raised.value)


def test_more_frames_than_the_cap_is_refused_before_decoding(tmp_path):
    path = write_video(tmp_path / "a.mp4")
    with pytest.raises(VideoError, match="over the limit of 8"):
        load_multiview([path, path, path], num_steps=4, max_total_frames=8)


def test_offsets_shift_a_camera_and_an_empty_overlap_is_explained(tmp_path):
    a = write_video(tmp_path / "a.mp4", frames=10, fps=10)
    infos = [probe_video(a), probe_video(a)]
    assert plan_common_clock(infos, 2, offsets=[0.0, 0.5]) == pytest.approx([0.125, 0.375])
    with pytest.raises(VideoError, match="no common time range"):
        plan_common_clock(infos, 2, offsets=[0.0, 2.0])


def test_videos_starting_at_different_times_use_only_the_time_all_of_them_cover(tmp_path):
    early = write_video(tmp_path / "early.mp4", frames=10, times=[i * 0.1 for i in range(10)])        # 0.0-1.0 s
    late = write_video(tmp_path / "late.mp4", frames=10, times=[0.5 + i * 0.1 for i in range(10)])    # 0.5-1.5 s
    clip = load_multiview([early, late], num_steps=2)
    assert min(clip.times) >= 0.5 and max(clip.times) <= 1.0
    seen_early = frame_index_seen((clip.images[0, 0].transpose(1, 2, 0) * 255).astype(np.uint8))
    seen_late = frame_index_seen((clip.images[0, 1].transpose(1, 2, 0) * 255).astype(np.uint8))
    assert seen_early == int(clip.times[0] * 10) and seen_late == int((clip.times[0] - 0.5) * 10)


def test_asking_for_far_more_steps_than_frames_costs_what_the_frames_do(tmp_path, monkeypatch):
    """`--frames 100000` on a 10-frame video used to try every T from 100000 down (it never finished)."""
    tried = []
    original = video_module.repeats_a_frame
    monkeypatch.setattr(video_module, "repeats_a_frame", lambda *args: tried.append(1) or original(*args))
    path = write_video(tmp_path / "ten.mp4", frames=10, fps=10)
    plan = plan_multiview([path], 100_000, max_total_frames=10 ** 6)
    assert plan.steps == 10 and len(tried) <= 10
    assert "T capped at 10 (asked for 100000): ten.mp4 shows only 10 distinct frames" in plan.notes[0]


def test_decode_clip_writes_into_a_provided_array_one_frame_at_a_time(tmp_path, monkeypatch):
    portrait = write_video(tmp_path / "portrait.mp4", frames=6, fps=6, width=72, height=128)
    landscape = write_video(tmp_path / "landscape.mp4", frames=6, fps=6, width=128, height=72)
    plan = plan_multiview([portrait, landscape], num_steps=4)
    expected = decode_clip(plan).images
    out = np.lib.format.open_memmap(tmp_path / "clip.npy", mode="w+", dtype=np.float32, shape=expected.shape)
    monkeypatch.setattr(video_module, "decode_frames", lambda *args: pytest.fail("built a whole-camera stack"))
    clip = decode_clip(plan, out=out)
    assert clip.images is out and np.array_equal(np.load(tmp_path / "clip.npy"), expected)
    with pytest.raises(ValueError, match="float32 array of shape"):
        decode_clip(plan, out=np.zeros(expected.shape, np.float64))


class FrameWriter:
    """Takes `writer[t, n] = frame` and nothing else, as a store that writes each frame to disk does."""

    def __init__(self, shape: tuple[int, ...]) -> None:
        self.shape, self.dtype, self.written = shape, np.dtype(np.float32), np.zeros(shape, np.float32)
        self.assignments = 0

    def __setitem__(self, index, frame) -> None:
        assert len(index) == 2 and frame.shape == self.shape[2:], "one frame per assignment"
        self.written[index] = frame
        self.assignments += 1


def test_decode_clip_writes_each_frame_into_a_writer_that_only_takes_assignments(tmp_path):
    path = write_video(tmp_path / "a.mp4", frames=6, fps=6, width=72, height=128)
    plan = plan_multiview([path, path], num_steps=3)
    writer = FrameWriter(video_module.clip_shape(plan))
    decode_clip(plan, out=writer)
    assert writer.assignments == 6 and np.array_equal(writer.written, decode_clip(plan).images)


def test_frames_stream_out_and_a_frame_chosen_for_several_times_is_converted_once(tmp_path, monkeypatch):
    path = write_video(tmp_path / "ten.mp4", frames=10, fps=10)
    times = [0.72, 0.05, 0.05, 0.06, 0.35, 9.0, -1.0]
    converted = []
    original = video_module._to_rgb
    monkeypatch.setattr(video_module, "_to_rgb", lambda frame, size: converted.append(1) or original(frame, size))
    pairs = list(iter_decoded_frames(path, times, (64, 48)))
    assert sorted(index for index, _ in pairs) == list(range(len(times)))
    assert {index: frame_index_seen(image) for index, image in pairs} == {0: 7, 1: 0, 2: 0, 3: 0, 4: 3, 5: 9, 6: 0}
    assert len(converted) == 4, "frames 0, 3, 7 and 9, once each"
    stacked = decode_frames(path, times, (64, 48))
    assert stacked.shape == (7, 48, 64, 3) and [frame_index_seen(f) for f in stacked] == [7, 0, 0, 0, 3, 9, 0]


def unprobed(name: str, frame_times: list[float], frame_count: int | None = None) -> VideoInfo:
    """A camera as probe_video describes it, from its frame times alone (no file)."""
    end = frame_times[-1] + 1 / 30 if frame_times else 10.0
    return VideoInfo(Path(name), frame_times[0] if frame_times else 0.0, end,
                     len(frame_times) if frame_count is None else frame_count, 30.0, 64, 48, 0, tuple(frame_times))


@pytest.mark.parametrize("requested", [10 ** 6, 10 ** 9])
def test_huge_frame_counts_are_capped_at_the_frames_shown_and_plan_only_that_many_steps(tmp_path, monkeypatch,
                                                                                         requested):
    planned = []
    original = video_module.plan_common_clock
    monkeypatch.setattr(video_module, "plan_common_clock",
                        lambda infos, steps, *args: planned.append(steps) or original(infos, steps, *args))
    path = write_video(tmp_path / "ten.mp4", frames=10, fps=10)
    plan = plan_multiview([path], requested, max_total_frames=10 ** 12)
    assert plan.steps == 10 and f"T capped at 10 (asked for {requested})" in plan.notes[0]
    assert max(planned) == 10 and len(planned) <= 3


def test_unknown_frame_times_cap_t_at_the_frame_count_without_trying_every_t(monkeypatch):
    planned, checked = [], []
    original = video_module.plan_common_clock
    monkeypatch.setattr(video_module, "plan_common_clock",
                        lambda infos, steps, *args: planned.append(steps) or original(infos, steps, *args))
    monkeypatch.setattr(video_module, "shows_a_frame_twice", lambda *args: checked.append(1) or True)
    camera = unprobed("unknown.mp4", [], frame_count=40)
    steps, limiting = distinct_time_steps([camera], 10 ** 9, (0.0, 1.0), [0.0])
    assert (steps, limiting) == (40, [camera]) and max(planned) <= 40 and not checked


def brute_force_steps(infos, requested, window, offsets):
    """The reference: try every T from the cap down, as distinct_time_steps' result must equal."""
    limiting = []
    for steps in range(requested, 0, -1):
        times = plan_common_clock(infos, steps, window, offsets)
        repeating = [info for info, offset in zip(infos, offsets) if repeats_a_frame(info, times, offset)]
        if not repeating:
            return steps, limiting
        limiting = repeating
    return 1, limiting


def test_the_fast_search_finds_what_trying_every_t_finds_for_variable_frame_rates():
    rng = np.random.default_rng(7)
    compared = 0
    while compared < 150:
        infos, offsets = [], []
        for camera in range(int(rng.integers(1, 4))):
            gaps = rng.choice([0.01, 0.033, 0.05, 0.2, 0.7], size=int(rng.integers(1, 40))) * rng.uniform(0.5, 1.5)
            times = np.cumsum(gaps) - gaps[0] + rng.uniform(0.0, 0.2)
            infos.append(unprobed(f"cam{camera}.mp4", [float(t) for t in times]))
            offsets.append(float(rng.uniform(-0.1, 0.1)) if camera else 0.0)
        window = (float(rng.uniform(0.0, 0.4)), float(rng.uniform(0.6, 1.0)))
        try:
            video_module.common_window(infos, offsets)
        except VideoError:
            continue
        cap = min(video_module.most_distinct_frames(info, video_module.window_span(infos, window, offsets), offset)
                  for info, offset in zip(infos, offsets))
        steps, limiting = distinct_time_steps(infos, cap, window, offsets)
        assert (steps, limiting) == brute_force_steps(infos, cap, window, offsets)
        compared += 1


def test_a_long_stall_in_a_long_video_is_searched_from_where_repeats_can_stop(monkeypatch):
    checked = []
    original = video_module.shows_a_frame_twice
    monkeypatch.setattr(video_module, "shows_a_frame_twice", lambda *args: checked.append(1) or original(*args))
    times = [index / 30 for index in range(30_000)]
    stalled = unprobed("stall.mp4", times[:300] + [time + 2.0 for time in times[300:]])   # a 2 s freeze
    steps, limiting = distinct_time_steps([stalled], 10 ** 9, (0.0, 1.0), [0.0])
    assert steps < 30_000 and limiting == [stalled]
    assert not repeats_a_frame(stalled, plan_common_clock([stalled], steps), 0.0)
    assert repeats_a_frame(stalled, plan_common_clock([stalled], steps + 1), 0.0)
    assert len(checked) < 500, "only T from 2 * span / stall (~985) down, never below span / stall (~490), are tried"
