"""Transformer building blocks shared by the aggregator, the DINOv2 patch embed and the heads."""

from vggt_mv.layers.attention import Attention
from vggt_mv.layers.block import Block
from vggt_mv.layers.layer_scale import LayerScale
from vggt_mv.layers.mlp import Mlp
from vggt_mv.layers.patch_embed import PatchEmbed
from vggt_mv.layers.rope import RotaryPositionEmbedding2D, apply_rotary
from vggt_mv.layers.vision_transformer import DinoVisionTransformer, vit_base, vit_giant2, vit_large, vit_small

__all__ = ["Attention", "Block", "LayerScale", "Mlp", "PatchEmbed", "RotaryPositionEmbedding2D", "apply_rotary",
           "DinoVisionTransformer", "vit_small", "vit_base", "vit_large", "vit_giant2"]
