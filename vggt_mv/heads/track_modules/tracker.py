"""The iterative point tracker (CoTracker/VGGSfM style) behind VGGT's track head."""

from __future__ import annotations

import torch
import torch.nn as nn

from vggt_mv.heads.track_modules.correlation import CorrelationPyramid
from vggt_mv.heads.track_modules.embeddings import grid_position_embedding, motion_embedding
from vggt_mv.heads.track_modules.sampling import sample_point_features
from vggt_mv.heads.track_modules.update_transformer import EfficientUpdateFormer
from vggt_mv.layers.mlp import Mlp


class BaseTrackerPredictor(nn.Module):
    """Refines every query's position in every frame from feature correlations, `iters` times."""

    def __init__(self, stride: int = 1, corr_levels: int = 5, corr_radius: int = 4, latent_dim: int = 128,
                 hidden_size: int = 384, use_spaceatt: bool = True, depth: int = 6, max_scale: int = 518,
                 predict_conf: bool = True):
        super().__init__()
        self.stride = stride
        self.latent_dim = latent_dim
        self.corr_levels = corr_levels
        self.corr_radius = corr_radius
        self.max_scale = max_scale
        self.predict_conf = predict_conf
        self.flows_emb_dim = latent_dim // 2
        self.corr_mlp = Mlp(in_features=corr_levels * (corr_radius * 2 + 1) ** 2, hidden_features=hidden_size,
                            out_features=latent_dim)
        self.transformer_dim = 3 * latent_dim + 4
        self.query_ref_token = nn.Parameter(torch.empty(1, 2, self.transformer_dim))
        self.updateformer = EfficientUpdateFormer(
            space_depth=depth if use_spaceatt else 0, time_depth=depth, input_dim=self.transformer_dim,
            hidden_size=hidden_size, output_dim=latent_dim + 2, mlp_ratio=4.0, add_space_attn=use_spaceatt)
        self.fmap_norm = nn.LayerNorm(latent_dim)
        self.ffeat_norm = nn.GroupNorm(1, latent_dim)
        self.ffeat_updater = nn.Sequential(nn.Linear(latent_dim, latent_dim), nn.GELU())
        self.vis_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        if predict_conf:
            self.conf_predictor = nn.Sequential(nn.Linear(latent_dim, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Query/reference tokens start as unit Gaussians."""
        nn.init.normal_(self.query_ref_token)

    def forward(self, query_points: torch.Tensor, fmaps: torch.Tensor, iters: int = 6, down_ratio: int = 1,
                apply_sigmoid: bool = True):
        """query_points [B, N, 2] (pixels of frame 0), fmaps [B, S, C, h, w] -> (coords per iteration, vis, conf)."""
        batch, count, _ = query_points.shape
        _, frames, _, height, width = fmaps.shape
        fmaps = self.fmap_norm(fmaps.permute(0, 1, 3, 4, 2)).permute(0, 1, 4, 2, 3)
        query_points = query_points / float(down_ratio) / float(self.stride) if down_ratio > 1 \
            else query_points / float(self.stride)
        coords = query_points.clone().reshape(batch, 1, count, 2).repeat(1, frames, 1, 1)
        query_features = sample_point_features(fmaps[:, 0], coords[:, 0])
        track_features = query_features.unsqueeze(1).repeat(1, frames, 1, 1)
        query_coords = coords[:, 0].clone()
        pyramid = CorrelationPyramid(fmaps, num_levels=self.corr_levels, radius=self.corr_radius)
        grid_embedding = grid_position_embedding(self.transformer_dim, height, width, fmaps.device)
        query_position = sample_point_features(grid_embedding.expand(batch, -1, -1, -1), coords[:, 0])
        query_position = query_position.reshape(batch * count, 1, -1)
        reference_token = torch.cat([self.query_ref_token[:, :1],
                                     self.query_ref_token[:, 1:2].expand(-1, frames - 1, -1)], dim=1)
        predictions = []
        for _ in range(iters):
            coords = coords.detach()
            correlations = pyramid.sample(track_features, coords)
            correlations = self.corr_mlp(correlations.permute(0, 2, 1, 3).reshape(batch * count, frames, -1))
            flows = (coords - coords[:, :1]).permute(0, 2, 1, 3).reshape(batch * count, frames, 2)
            flow_features = torch.cat([motion_embedding(flows, self.flows_emb_dim),
                                       flows / self.max_scale, flows / self.max_scale], dim=-1)
            features_per_track = track_features.permute(0, 2, 1, 3).reshape(batch * count, frames, self.latent_dim)
            tokens = torch.cat([flow_features, correlations, features_per_track], dim=2) + query_position
            tokens = tokens + reference_token.to(tokens.dtype)
            delta = self.updateformer(tokens.reshape(batch, count, frames, -1)).reshape(batch * count, frames, -1)
            delta_coords, delta_features = delta[:, :, :2], delta[:, :, 2:]
            flat_features = features_per_track.reshape(-1, self.latent_dim)
            flat_features = self.ffeat_updater(self.ffeat_norm(delta_features.reshape(-1, self.latent_dim))) \
                + flat_features
            track_features = flat_features.reshape(batch, count, frames, self.latent_dim).permute(0, 2, 1, 3)
            coords = coords + delta_coords.reshape(batch, count, frames, 2).permute(0, 2, 1, 3)
            coords[:, 0] = query_coords
            predictions.append(coords * self.stride * (down_ratio if down_ratio > 1 else 1))
        flat = track_features.reshape(batch * frames * count, self.latent_dim)
        visibility = self.vis_predictor(flat).reshape(batch, frames, count)
        confidence = self.conf_predictor(flat).reshape(batch, frames, count) if self.predict_conf else None
        if apply_sigmoid:
            visibility = torch.sigmoid(visibility)
            confidence = torch.sigmoid(confidence) if confidence is not None else None
        return predictions, visibility, confidence
