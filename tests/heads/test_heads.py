"""Heads: VGGT-1B key layout, activations users rely on, chunking invariance, small-image tracking."""

import pytest
import torch

from vggt_mv.heads import CameraHead, DPTHead, TrackHead
from vggt_mv.heads.activations import activate_head, inverse_log_transform
from vggt_mv.weights.known_layouts import reference_layout

def reference_section(prefix: str) -> dict[str, list[int]]:
    tensors = reference_layout("vggt-1b")
    return {k[len(prefix) + 1:]: list(v) for k, v in tensors.items() if k.startswith(prefix + ".")}


@pytest.mark.parametrize("prefix, build", [
    ("camera_head", lambda: CameraHead(dim_in=2048)),
    ("point_head", lambda: DPTHead(dim_in=2048, output_dim=4, activation="inv_log", conf_activation="expp1")),
    ("depth_head", lambda: DPTHead(dim_in=2048, output_dim=2, activation="exp", conf_activation="expp1")),
    ("track_head", lambda: TrackHead(dim_in=2048, patch_size=14)),
])
def test_full_size_heads_have_vggt_1b_keys_and_shapes(prefix, build):
    with torch.device("meta"):
        head = build()
    assert {k: list(v.shape) for k, v in head.state_dict().items()} == reference_section(prefix)


def tokens(frames=3, grid=(2, 3), dim=32, layers=4, keep=None):
    torch.manual_seed(0)
    count = 5 + grid[0] * grid[1]
    return [torch.randn(1, frames, count, dim) if keep is None or i in keep else None for i in range(layers)]


def small_dpt(**kwargs):
    torch.manual_seed(0)
    return DPTHead(dim_in=32, features=16, out_channels=[8, 16, 32, 32], intermediate_layer_idx=[0, 1, 2, 3],
                   **kwargs).eval()


def test_depth_is_positive_and_confidence_at_least_one():
    head = small_dpt(output_dim=2, activation="exp", conf_activation="expp1")
    images = torch.rand(1, 3, 3, 28, 42)
    with torch.no_grad():
        depth, confidence = head(tokens(), images, patch_start_idx=5)
    assert depth.shape == (1, 3, 28, 42, 1) and confidence.shape == (1, 3, 28, 42)
    assert (depth > 0).all() and (confidence >= 1).all()


def test_chunking_frames_does_not_change_dense_predictions():
    head = small_dpt(output_dim=4, activation="inv_log")
    images = torch.rand(1, 5, 3, 28, 42)
    layers = tokens(frames=5)
    with torch.no_grad():
        whole = head(layers, images, patch_start_idx=5, frames_chunk_size=None)
        chunked = head(layers, images, patch_start_idx=5, frames_chunk_size=2)
    for a, b in zip(whole, chunked):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-6)


def test_dpt_reads_only_its_layers_and_names_a_missing_one():
    head = small_dpt(output_dim=2, activation="exp")
    images = torch.rand(1, 3, 3, 28, 42)
    with torch.no_grad():
        head(tokens(keep={0, 1, 2, 3}, layers=6), images, patch_start_idx=5)
        with pytest.raises(ValueError, match="layer 2"):
            head(tokens(keep={0, 1, 3}), images, patch_start_idx=5)


def test_inverse_log_transform_is_odd_and_grows_exponentially():
    values = torch.tensor([-2.0, 0.0, 1.0, 3.0])
    out = inverse_log_transform(values)
    torch.testing.assert_close(out, torch.sign(values) * (torch.exp(values.abs()) - 1))
    points, confidence = activate_head(torch.zeros(1, 4, 2, 2), activation="inv_log", conf_activation="expp1")
    assert torch.equal(points, torch.zeros(1, 2, 2, 3)) and torch.equal(confidence, torch.full((1, 2, 2), 2.0))


def test_camera_head_refines_over_iterations_with_positive_field_of_view():
    torch.manual_seed(0)
    head = CameraHead(dim_in=32, trunk_depth=1, num_heads=4).eval()
    with torch.no_grad():
        encodings = head(tokens(), num_iterations=3)
    assert len(encodings) == 3 and encodings[-1].shape == (1, 3, 9)
    assert (encodings[-1][..., 7:] >= 0).all()
    assert not torch.equal(encodings[0], encodings[-1])


def test_track_head_keeps_query_frame_fixed_and_works_on_images_smaller_than_its_pyramid():
    torch.manual_seed(0)
    head = TrackHead(dim_in=32, features=16, iters=2, hidden_size=32, dpt_out_channels=[8, 16, 32, 32],
                     dpt_intermediate_layer_idx=[0, 1, 2, 3]).eval()
    queries = torch.tensor([[[5.0, 7.0], [30.0, 20.0]]])
    with torch.no_grad():
        tracks, visibility, confidence = head(tokens(), torch.rand(1, 3, 3, 28, 42), 5, query_points=queries)
    assert len(tracks) == 2 and tracks[-1].shape == (1, 3, 2, 2)
    torch.testing.assert_close(tracks[-1][:, 0], queries)
    assert ((visibility >= 0) & (visibility <= 1)).all() and confidence.shape == (1, 3, 2)
