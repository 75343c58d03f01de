"""Attention through SDPA equals the textbook formula; the bias can silence keys; blocks keep shapes."""

import torch

from vggt_mv.layers import Attention, Block


def test_attention_equals_explicit_softmax():
    torch.manual_seed(0)
    attention = Attention(32, num_heads=4, qk_norm=True).eval()
    x = torch.randn(2, 9, 32)
    q, k, v = attention.qkv(x).reshape(2, 9, 3, 4, 8).permute(2, 0, 3, 1, 4)
    q, k = attention.q_norm(q), attention.k_norm(k)
    weights = torch.softmax(q @ k.transpose(-1, -2) / 8 ** 0.5, dim=-1)
    expected = attention.proj((weights @ v).transpose(1, 2).reshape(2, 9, 32))
    torch.testing.assert_close(attention(x), expected, atol=1e-5, rtol=1e-5)


def test_minus_infinity_bias_on_a_key_equals_dropping_that_key_for_other_tokens():
    torch.manual_seed(0)
    attention = Attention(16, num_heads=2).eval()
    x = torch.randn(1, 6, 16)
    bias = torch.zeros(1, 1, 1, 6)
    bias[..., 5] = float("-inf")
    with_bias = attention(x, attn_bias=bias)[:, :5]
    without = attention(x[:, :5])
    torch.testing.assert_close(with_bias, without, atol=1e-5, rtol=1e-5)


def test_block_keeps_shape_and_layer_scale_starts_small():
    block = Block(dim=32, num_heads=4, init_values=0.01, qk_norm=True).eval()
    x = torch.randn(3, 7, 32)
    out = block(x)
    assert out.shape == x.shape
    assert (out - x).abs().max() < 0.5
