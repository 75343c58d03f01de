"""Sizing: "fit" keeps every pixel of any camera shape; "crop" stays VGGT's crop preprocessing."""

from pathlib import Path

import numpy as np
import pytest

from tests.support.videos import frame_index_seen, write_video
from vggt_mv.io.layout import (DEFAULT_RESIZE, PAD_VALUE, RESIZE_MODES, fitted_size, place_frame, place_on_canvas,
                               plan_layouts)
from vggt_mv.io.video import VideoError, VideoInfo, load_multiview, plan_clip, plan_multiview

PORTRAIT, LANDSCAPE = (1080, 1920), (1920, 1080)


def content_box(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(top, bottom, left, right), ends exclusive, of the True pixels of a [H, W] mask."""
    rows, cols = np.nonzero(mask)
    return rows.min(), rows.max() + 1, cols.min(), cols.max() + 1


def content(clip, time_step: int, camera: int) -> np.ndarray:
    """float [h, w, 3]: a camera's own pixels at one time step, padding cut away."""
    top, bottom, left, right = content_box(clip.valid_mask[camera])
    return clip.images[time_step, camera][:, top:bottom, left:right].transpose(1, 2, 0)


def test_fit_is_the_default_and_the_modes_are_named():
    assert DEFAULT_RESIZE == "fit" and RESIZE_MODES == ("fit", "crop")


@pytest.mark.parametrize("source, expected", [
    ((1920, 1080), (518, 294)), ((1080, 1920), (294, 518)), ((288, 360), (420, 518)), ((360, 288), (518, 420)),
    ((640, 640), (518, 518)), ((4000, 10), (518, 14)), ((10, 4000), (14, 518)),
])
def test_fit_puts_the_longer_side_at_518_and_rounds_the_other_to_whole_patches(source, expected):
    assert fitted_size(*source) == expected
    layout, = plan_layouts([source])
    assert layout.scaled == layout.canvas == expected and not layout.cropped and not layout.padded


@pytest.mark.parametrize("source", [PORTRAIT, LANDSCAPE, (48, 96), (72, 128), (3024, 4032)])
def test_fit_keeps_a_camera_whole_with_its_aspect(source):
    layout, = plan_layouts([source])
    top, bottom, left, right = content_box(layout.valid_mask())
    assert (right - left, bottom - top) == layout.scaled, "no row or column is cut"
    assert (right - left) / (bottom - top) == pytest.approx(source[0] / source[1], rel=0.03)
    assert max(layout.scaled) == 518 and all(side % 14 == 0 for side in layout.scaled)


def test_an_all_portrait_rig_runs_at_its_portrait_size_without_padding():
    layouts = plan_layouts([PORTRAIT] * 3)
    for layout in layouts:
        assert layout.canvas == (294, 518) and (layout.pad_left, layout.pad_top) == (0, 0) and not layout.padded
        assert layout.valid_mask().all()
        assert layout.describe() == "1080x1920 -> 294x518"


def test_a_mixed_rig_pads_the_portrait_left_and_right_and_the_landscape_top_and_bottom():
    portrait, landscape = plan_layouts([PORTRAIT, LANDSCAPE])
    assert portrait.canvas == landscape.canvas == (518, 518)
    assert (portrait.pad_left, portrait.pad_top) == ((518 - 294) // 2, 0)
    assert (landscape.pad_left, landscape.pad_top) == (0, (518 - 294) // 2)
    assert content_box(portrait.valid_mask()) == (0, 518, 112, 406)
    assert content_box(landscape.valid_mask()) == (112, 406, 0, 518)
    assert portrait.describe() == "1080x1920 -> 294x518, padded to 518x518"
    frame = np.full((518, 294, 3), 51, np.uint8)
    placed = place_frame(frame, portrait)
    mask = portrait.valid_mask()
    assert placed.shape == (3, 518, 518) and (placed[:, ~mask] == PAD_VALUE).all()
    assert np.allclose(placed[:, mask], 51 / 255)
    assert np.array_equal(place_on_canvas(frame[None], portrait)[0], placed)


def test_place_frame_refuses_a_frame_of_another_size():
    layout, = plan_layouts([PORTRAIT])
    with pytest.raises(ValueError, match="294x518"):
        place_frame(np.zeros((294, 518, 3), np.uint8), layout)


def vggt_crop_size(width: int, height: int) -> tuple[int, int, int]:
    """VGGT's load_and_preprocess_images, mode "crop": (width, height after resize, rows kept after the crop)."""
    new_height = round(height * (518 / width) / 14) * 14
    return 518, new_height, min(new_height, 518)


@pytest.mark.parametrize("source", [(1920, 1080), (1280, 720), (640, 480), (1008, 756), (364, 686), (1080, 1920),
                                    (3024, 4032), (518, 518), (48, 96), (128, 72)])
def test_crop_mode_is_vggts_crop_preprocessing(source):
    layout, = plan_layouts([source], resize="crop")
    width, height, kept = vggt_crop_size(*source)
    assert layout.scaled == (width, height) and layout.kept_height == kept
    assert layout.crop_top == (height - kept) // 2 and layout.canvas == (518, kept)


def test_crop_mode_pads_shorter_cameras_like_vggt():
    tall, short = plan_layouts([(364, 686), (1920, 1080)], resize="crop")
    assert tall.canvas == short.canvas == (518, 518) and tall.cropped
    assert (short.pad_top, short.pad_left) == ((518 - 294) // 2, 0)


def info(name: str, size: tuple[int, int]) -> VideoInfo:
    """A probed 10-frame, 1 s camera of that displayed size (no file needed to plan)."""
    return VideoInfo(Path(name), 0.0, 1.0, 10, 10.0, size[0], size[1], 0, tuple(i / 10 for i in range(10)))


def test_the_plan_carries_the_mode_and_says_what_it_kept():
    fit = plan_clip([info("phone.mp4", PORTRAIT), info("tripod.mp4", LANDSCAPE)], 2)
    assert fit.resize == "fit" and fit.canvas == (518, 518)
    assert "fit: every pixel kept, longer side 518; model input 518x518" in fit.notes
    assert "camera 0 (phone.mp4): 1080x1920 -> 294x518, padded to 518x518" in fit.camera_lines()
    assert not any("cropped" in note for note in fit.notes)
    crop = plan_clip([info("phone.mp4", PORTRAIT), info("tripod.mp4", LANDSCAPE)], 2, resize="crop")
    assert crop.resize == "crop" and any("phone.mp4 (1080x1920)" in note and "centre-cropped" in note
                                         for note in crop.notes)
    assert all("\n" not in note for note in fit.notes + crop.notes)


@pytest.mark.parametrize("bad", ["stretch", "", "FIT", None])
def test_an_unknown_resize_mode_is_one_clear_line(bad, tmp_path):
    with pytest.raises(VideoError) as raised:
        plan_multiview([tmp_path / "never-probed.mp4"], 2, resize=bad)
    message = str(raised.value)
    assert "fit" in message and "crop" in message and "\n" not in message
    with pytest.raises(ValueError, match="fit, crop"):
        plan_layouts([PORTRAIT], resize=bad)


def red_marker_share(image: np.ndarray) -> tuple[float, float]:
    """(share of rows, share of columns) of the image that the top-left red marker covers."""
    red = (image[..., 0] > 0.8) & (image[..., 1] < 0.3)
    rows, cols = np.nonzero(red)
    return (rows.max() + 1) / image.shape[0], (cols.max() + 1) / image.shape[1]


def test_decoded_portrait_and_landscape_cameras_keep_every_pixel_on_a_shared_canvas(tmp_path):
    portrait = write_video(tmp_path / "portrait.mp4", frames=6, fps=6, width=72, height=128)
    landscape = write_video(tmp_path / "landscape.mp4", frames=6, fps=6, width=128, height=72)
    clip = load_multiview([portrait, landscape], num_steps=2)
    assert clip.images.shape == (2, 2, 3, 518, 518)
    for camera, (width, height) in enumerate([(72, 128), (128, 72)]):
        layout = clip.plan.layouts[camera]
        top, bottom, left, right = content_box(clip.valid_mask[camera])
        assert (right - left, bottom - top) == layout.scaled
        assert (right - left) / (bottom - top) == pytest.approx(width / height, rel=0.02)
        image = content(clip, 0, camera)
        assert red_marker_share(image) == pytest.approx((0.25, 0.25), abs=0.03), "the top-left marker is whole"
        assert [frame_index_seen(np.round(content(clip, t, camera) * 255).astype(np.uint8)) for t in range(2)] == [1, 4]
        padding = ~clip.valid_mask[camera]
        assert padding.any() and (clip.images[:, camera][:, :, padding] == 1.0).all(), "padding is white"
    assert content_box(clip.valid_mask[0])[2:] == (112, 406), "the portrait camera is padded left and right"
    assert content_box(clip.valid_mask[1])[:2] == (112, 406), "the landscape camera is padded top and bottom"


def test_a_decoded_all_portrait_rig_has_no_padding(tmp_path):
    paths = [write_video(tmp_path / f"p{n}.mp4", frames=4, fps=4, width=72, height=128) for n in range(2)]
    clip = load_multiview(paths, num_steps=2)
    assert clip.images.shape == (2, 2, 3, 518, 294) and clip.valid_mask.all()
    assert red_marker_share(content(clip, 0, 0)) == pytest.approx((0.25, 0.25), abs=0.03)


def test_a_decoded_tall_portrait_is_cut_in_crop_mode_and_whole_in_fit_mode(tmp_path):
    path = write_video(tmp_path / "p.mp4", frames=2, width=48, height=96)
    fit = load_multiview([path], num_steps=1)
    crop = load_multiview([path], num_steps=1, resize="crop")
    assert fit.images.shape[-2:] == (518, 252) and crop.images.shape[-2:] == (518, 518)
    assert red_marker_share(content(fit, 0, 0)) == pytest.approx((0.25, 0.25), abs=0.03)
    assert crop.images[0, 0, 0, :, :100].mean() < 0.5, "crop cuts the top-left marker away"
