"""Output names and shapes over [B, T, N], input forms, and fp32 invariances of the fast paths."""

import pytest
import torch

from tests.support.models import random_images, tiny_model


@pytest.fixture(scope="module")
def model():
    return tiny_model()


@pytest.mark.parametrize("batch, time_steps, cameras, height, width", [
    (1, 1, 1, 28, 28),
    (1, 3, 2, 28, 42),   # landscape
    (2, 2, 3, 42, 28),   # portrait, batch of two
    (1, 1, 4, 14, 56),   # very wide
])
def test_every_output_keeps_the_time_camera_prefix(model, batch, time_steps, cameras, height, width):
    images = random_images(time_steps, cameras, height, width, batch=batch)
    queries = torch.tensor([[[3.0, 5.0], [10.0, 7.0]]]).expand(batch, -1, -1)
    with torch.inference_mode():
        out = model(images, query_points=queries)
    prefix = (batch, time_steps, cameras)
    expected = {
        "pose_enc": (*prefix, 9),
        "depth": (*prefix, height, width, 1),
        "depth_conf": (*prefix, height, width),
        "world_points": (*prefix, height, width, 3),
        "world_points_conf": (*prefix, height, width),
        "dynamic_mask": (*prefix, height // 14, width // 14),
        "track": (*prefix, 2, 2),
        "vis": (*prefix, 2),
        "conf": (*prefix, 2),
    }
    assert {k: tuple(v.shape) for k, v in out.items()} == expected
    assert all(torch.isfinite(v).all() for v in out.values())
    assert ((out["dynamic_mask"] >= 0) & (out["dynamic_mask"] <= 1)).all()
    assert (out["depth"] > 0).all()


def test_tracks_are_absent_without_query_points(model):
    with torch.inference_mode():
        out = model(random_images(1, 2))
    assert not {"track", "vis", "conf"} & set(out)


def test_vggt_input_forms_are_one_cameras_frames(model):
    images = random_images(3, 1)
    with torch.inference_mode():
        grid = model(images)
        batched = model(images[:, :, 0])
        unbatched = model(images[0, :, 0])
    for key in grid:
        torch.testing.assert_close(batched[key], grid[key])
        torch.testing.assert_close(unbatched[key], grid[key])


def test_bad_image_sizes_are_refused_with_a_clear_message(model):
    with pytest.raises(ValueError, match="multiple of 14"):
        model(torch.rand(1, 1, 1, 3, 30, 28))
    with pytest.raises(ValueError, match="B, T, N, 3, H, W"):
        model(torch.rand(2, 2))


def test_head_chunk_size_does_not_change_results(model):
    images = random_images(3, 2)
    queries = torch.tensor([[[3.0, 5.0]]])
    with torch.inference_mode():
        one = model(images, query_points=queries, frames_chunk_size=1)
        many = model(images, query_points=queries, frames_chunk_size=64)
    for key in one:
        torch.testing.assert_close(one[key], many[key], atol=1e-6, rtol=1e-6)


def test_keeping_only_the_layers_heads_read_does_not_change_them(model):
    images = random_images(2, 2)
    everything = set(range(model.config.depth))
    with torch.inference_mode():
        lean = model.aggregator(images, keep_geometry_layers={1, 3})
        full = model.aggregator(images, keep_camera_layers=everything, keep_geometry_layers=everything)
    assert [t is not None for t in lean.geometry_layers] == [False, True, False, True]
    assert [t is not None for t in lean.camera_layers] == [False, False, False, True]
    for i in (1, 3):
        torch.testing.assert_close(lean.geometry_layers[i], full.geometry_layers[i], atol=0, rtol=0)
    torch.testing.assert_close(lean.camera_layers[3], full.camera_layers[3], atol=0, rtol=0)


def test_lean_forward_equals_a_forward_that_keeps_every_layer(model, monkeypatch):
    images = random_images(2, 2)
    with torch.inference_mode():
        lean = model(images)
        monkeypatch.setattr(model, "geometry_layers_needed", lambda with_tracks: set(range(model.config.depth)))
        full = model(images)
    for key in lean:
        torch.testing.assert_close(lean[key], full[key], atol=0, rtol=0)


class ScalarReads(torch.utils._python_dispatch.TorchDispatchMode):
    """Records every tensor-to-Python-scalar read (what .item() and int(tensor) do; a sync on a GPU)."""

    def __init__(self):
        super().__init__()
        self.count = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        if func is torch.ops.aten._local_scalar_dense.default:
            self.count += 1
        return func(*args, **(kwargs or {}))


def test_forward_never_reads_a_tensor_value_back_to_python(model):
    images = random_images(2, 2)
    queries = torch.tensor([[[3.0, 5.0]]])
    with torch.no_grad(), ScalarReads() as reads:
        model(images, query_points=queries)
    assert reads.count == 0
