"""DINOv2 patch embed: VGGT-1B's key names, and position embeddings for any multiple-of-14 size."""

import pytest
import torch

from vggt_mv.layers import vit_large, vit_small
from vggt_mv.weights.known_layouts import reference_layout

def test_vit_large_has_the_keys_and_shapes_of_vggt_1b_patch_embed():
    with torch.device("meta"):
        vit = vit_large(img_size=518, patch_size=14, num_register_tokens=4, interpolate_antialias=True,
                        interpolate_offset=0.0, block_chunks=0, init_values=1.0)
    ours = {k: list(v.shape) for k, v in vit.state_dict().items()}
    prefix = "aggregator.patch_embed."
    reference = {k[len(prefix):]: list(v) for k, v in reference_layout("vggt-1b").items()
                 if k.startswith(prefix)}
    assert ours == reference


@pytest.mark.parametrize("height, width", [(70, 70), (42, 70), (70, 42), (28, 126)])
def test_position_embeddings_follow_the_image_grid(height, width):
    torch.manual_seed(0)
    vit = vit_small(img_size=70, patch_size=14, num_register_tokens=4, interpolate_antialias=True,
                    interpolate_offset=0.0, block_chunks=0, init_values=1.0).eval()
    with torch.no_grad():
        out = vit(torch.rand(2, 3, height, width))
        grid = vit.interpolate_pos_encoding((height // 14) * (width // 14), height, width, torch.float32)
    assert out["x_norm_patchtokens"].shape == (2, (height // 14) * (width // 14), 384)
    assert grid.shape == (1, 1 + (height // 14) * (width // 14), 384)
    if (height, width) == (70, 70):
        assert torch.equal(grid, vit.pos_embed)
