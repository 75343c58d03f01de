"""2D RoPE: cached tables, the row/column split, and identity for special tokens."""

import math

import torch

from vggt_mv.layers.rope import RotaryPositionEmbedding2D, apply_rotary


def rotate_by_hand(vector: torch.Tensor, row: int, col: int, base: float = 100.0) -> torch.Tensor:
    """Rotate one head vector pair by pair, straight from the RoPE definition."""
    dim = vector.shape[-1]
    half, quarter = dim // 2, dim // 4
    out = vector.clone()
    for offset, position in ((0, row), (half, col)):
        for i in range(quarter):
            angle = position / base ** (2 * i / half)
            a, b = vector[offset + i], vector[offset + quarter + i]
            out[offset + i] = a * math.cos(angle) - b * math.sin(angle)
            out[offset + quarter + i] = b * math.cos(angle) + a * math.sin(angle)
    return out


def test_tables_are_cached_per_grid_and_device():
    rope = RotaryPositionEmbedding2D(100)
    first = rope.tables(3, 4, 5, 16, "cpu")
    assert rope.tables(3, 4, 5, 16, "cpu") is first
    assert rope.tables(4, 3, 5, 16, "cpu") is not first
    assert first[0].shape == (5 + 12, 16) and first[0].dtype == torch.float32


def test_rotation_matches_the_definition_for_patches_and_leaves_special_tokens_alone():
    rope = RotaryPositionEmbedding2D(100)
    cos, sin = rope.tables(2, 3, 1, 8, "cpu")
    x = torch.randn(1, 1, 7, 8)
    rotated = apply_rotary(x, cos, sin)[0, 0]
    torch.testing.assert_close(rotated[0], x[0, 0, 0])
    for token in range(1, 7):
        row, col = divmod(token - 1, 3)
        torch.testing.assert_close(rotated[token], rotate_by_hand(x[0, 0, token], row + 1, col + 1),
                                   atol=1e-6, rtol=1e-5)


def test_rotation_preserves_norms_and_dtype():
    rope = RotaryPositionEmbedding2D(100)
    cos, sin = rope.tables(4, 4, 5, 16, "cpu")
    x = torch.randn(2, 3, 21, 16, dtype=torch.bfloat16)
    rotated = apply_rotary(x, cos, sin)
    assert rotated.dtype == torch.bfloat16
    torch.testing.assert_close(rotated.float().norm(dim=-1), x.float().norm(dim=-1), atol=0.05, rtol=0.02)
