"""The attention modes of DESIGN.md: which frames attend to which, and the equivalences that follow."""

import pytest
import torch

from tests.support.models import random_images, tiny_model
from vggt_mv.aggregator import reference_slot_tokens
from vggt_mv.attention_layout import FrameGrid, resolve_mode

COMPARED = ("pose_enc", "depth", "depth_conf", "world_points", "world_points_conf", "dynamic_mask")


@pytest.fixture(scope="module")
def model():
    return tiny_model()


def run(model, images, mode=None, **kwargs):
    with torch.inference_mode():
        return model(images, mode=mode, **kwargs)


def assert_same(a, b, keys=COMPARED, atol=1e-5):
    for key in keys:
        assert a[key].shape == b[key].shape, key
        torch.testing.assert_close(a[key], b[key], atol=atol, rtol=1e-5, msg=lambda m: f"{key}: {m}")


def test_auto_mode_is_single_view_for_one_camera_and_multi_view_otherwise():
    assert resolve_mode("auto", 1) == "single"
    assert resolve_mode("auto", 3) == "multi"
    with pytest.raises(ValueError, match="single"):
        resolve_mode("single", 2)


def test_multi_view_with_one_time_step_equals_global(model):
    images = random_images(1, 3)
    assert_same(run(model, images, "multi"), run(model, images, "global"))


def test_single_view_equals_global(model):
    images = random_images(3, 1)
    assert_same(run(model, images, "single"), run(model, images, "global"))


def test_forced_global_equals_vggt_on_all_frames_in_time_major_order(model):
    images = random_images(2, 3)
    grid_out = run(model, images, "global")
    flat = images.reshape(1, 6, 1, *images.shape[3:])
    flat_out = run(model, flat, "single")
    for key in COMPARED:
        torch.testing.assert_close(grid_out[key].reshape(flat_out[key].shape), flat_out[key], atol=1e-5, rtol=1e-5)


def test_multi_view_attention_differs_from_global_when_both_axes_are_longer_than_one(model):
    images = random_images(2, 3)
    multi, global_ = run(model, images, "multi"), run(model, images, "global")
    assert not torch.allclose(multi["depth"], global_["depth"], atol=1e-4)


def test_time_groups_hold_one_camera_and_view_groups_one_time_step():
    grid = FrameGrid(batch=1, time_steps=2, cameras=3, tokens_per_frame=1)
    frame_ids = torch.arange(6.0).view(6, 1, 1)  # t-major: id = t * 3 + n
    assert grid.group(frame_ids, "time").squeeze(-1).tolist() == [[0, 3], [1, 4], [2, 5]]
    assert grid.group(frame_ids, "view").squeeze(-1).tolist() == [[0, 1, 2], [3, 4, 5]]
    for grouping in ("image", "time", "view", "all"):
        assert torch.equal(grid.ungroup(grid.group(frame_ids, grouping), grouping), frame_ids)


def test_only_frame_t0_n0_gets_the_reference_token_slot():
    token = torch.stack([torch.zeros(1, 1), torch.ones(1, 1)]).view(1, 2, 1, 1)
    slots = reference_slot_tokens(token, batch=2, time_steps=2, cameras=3).view(2, 6)
    assert slots.tolist() == [[0, 1, 1, 1, 1, 1]] * 2


def test_swapping_two_non_reference_cameras_swaps_their_predictions(model):
    images = random_images(2, 3)
    swapped = images[:, :, [0, 2, 1]]
    out, out_swapped = run(model, images), run(model, swapped)
    for key in COMPARED:
        torch.testing.assert_close(out_swapped[key], out[key][:, :, [0, 2, 1]], atol=1e-5, rtol=1e-5)


def test_changing_the_reference_camera_changes_the_predictions(model):
    images = random_images(2, 3)
    out, out_swapped = run(model, images), run(model, images[:, :, [1, 0, 2]])
    assert not torch.allclose(out_swapped["depth"], out["depth"][:, :, [1, 0, 2]], atol=1e-4)
