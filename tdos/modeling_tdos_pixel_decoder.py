"""The text-conditioned pixel decoder of TDOS: Mask2Former's multi-scale deformable-attention encoder with a
cross-attention to the refined text embeddings in every layer, and an FPN step to the finest level."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .configuration_tdos import TDOSConfig
from .deformable_attention import TDOSMultiscaleDeformableAttention
from .modeling_tdos_position import TDOSSinePositionEmbedding, is_eager_inference, reference_points


# Inference runs the FFN on chunks of this many tokens: its `(tokens, ffn_dim)` intermediates then stay below glibc's
# largest mmap threshold (32 MB), so they are reused from the heap instead of being mapped and page-faulted afresh in
# every layer (a 512x512 window has 5376 tokens: 44 MB in float32). Measured by benchmarks/bench_inference.py.
FEED_FORWARD_CHUNK_TOKENS = 1024


class TDOSPixelDecoderEncoderLayer(nn.Module):
    """Post-norm layer: multi-scale deformable self-attention, cross-attention to the text embeddings, FFN."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        dim = config.hidden_dim
        self.self_attn = TDOSMultiscaleDeformableAttention(
            embed_dim=dim,
            num_heads=config.pixel_decoder_num_heads,
            n_levels=3,
            n_points=config.pixel_decoder_num_points,
            kernel=config.deformable_attention_kernel,
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, config.pixel_decoder_num_heads, batch_first=True)
        self.cross_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.pixel_decoder_ffn_dim)
        self.fc2 = nn.Linear(config.pixel_decoder_ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, hidden_states, position_embeddings, reference_points, spatial_shapes_list, text, text_keys):
        attended = self.self_attn(hidden_states, position_embeddings, reference_points, spatial_shapes_list)
        hidden_states = self.self_attn_layer_norm(hidden_states + attended)
        attended, _ = self.cross_attn(hidden_states + position_embeddings, text_keys, text, need_weights=False)
        hidden_states = self.cross_attn_layer_norm(hidden_states + attended)
        if not is_eager_inference() or hidden_states.shape[1] <= FEED_FORWARD_CHUNK_TOKENS:
            hidden_states = hidden_states + self.feed_forward(hidden_states)
        else:  # inference: chunks of tokens (equal up to the rounding of products with fewer rows)
            chunks = hidden_states.split(FEED_FORWARD_CHUNK_TOKENS, 1)
            hidden_states = hidden_states + torch.cat([self.feed_forward(chunk) for chunk in chunks], 1)
        return self.final_layer_norm(hidden_states)

    def feed_forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        # ReLU in place: one (tokens, ffn_dim) buffer fewer (relu's backward needs only its output)
        return self.fc2(F.relu(self.fc1(hidden_states), inplace=True))


@dataclass
class TDOSPixelDecoderOutput(ModelOutput):
    """
    Args:
        mask_features (`torch.FloatTensor` of shape `(batch, hidden_dim, H', W')`): per-pixel embeddings.
        multi_scale_features (`tuple[torch.FloatTensor]`): encoder outputs at the three coarsest levels, low to high
            resolution, each `(batch, hidden_dim, h_l, w_l)`.
    """

    mask_features: torch.FloatTensor | None = None
    multi_scale_features: tuple[torch.FloatTensor, ...] | None = None


class TDOSPixelDecoder(nn.Module):
    """Text-conditioned multi-scale deformable-attention pixel decoder with an FPN step to the finest level."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        dim, width = config.hidden_dim, config.feature_pyramid_channels
        self.input_projections = nn.ModuleList(
            nn.Sequential(nn.Conv2d(width, dim, kernel_size=1), nn.GroupNorm(32, dim)) for _ in range(3)
        )
        self.level_embed = nn.Embedding(3, dim)
        self.position_embedding = TDOSSinePositionEmbedding(num_position_features=dim // 2)
        self.text_proj = nn.Linear(config.projection_dim, dim)
        self.text_position_embeddings = nn.Embedding(config.num_queries, dim)
        self.layers = nn.ModuleList(TDOSPixelDecoderEncoderLayer(config) for _ in range(config.pixel_decoder_layers))
        self.layer_norm = nn.LayerNorm(dim)
        self.lateral_convolution = nn.Sequential(nn.Conv2d(width, dim, kernel_size=1, bias=False), nn.GroupNorm(32, dim))
        self.output_convolution = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=False), nn.GroupNorm(32, dim), nn.ReLU()
        )
        self.mask_projection = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(
        self, features: list[torch.Tensor], text_embeddings: torch.Tensor, finest_projected: bool = False
    ) -> TDOSPixelDecoderOutput:
        """`features`: 4 maps, high to low resolution; `text_embeddings` `(B, K, C)`. `finest_projected`: the finest
        map comes already through `lateral_convolution[0]` (the ViT feature pyramid folds it in at inference)."""
        levels = features[:0:-1]  # the three coarsest, low to high resolution
        embeddings, positions = [], []
        for index, feature in enumerate(levels):
            projected = self.input_projections[index](feature)
            embeddings.append(projected.flatten(2).transpose(1, 2))
            position = self.position_embedding(projected.shape, projected.device, projected.dtype)
            positions.append(position.flatten(2).transpose(1, 2) + self.level_embed.weight[index])
        spatial_shapes_list = [tuple(feature.shape[-2:]) for feature in levels]
        hidden_states, position_embeddings = torch.cat(embeddings, 1), torch.cat(positions, 1)
        references = reference_points(spatial_shapes_list, hidden_states.shape[0], hidden_states.device, hidden_states.dtype)
        text = self.text_proj(text_embeddings)
        text_keys = text + self.text_position_embeddings.weight
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, references, spatial_shapes_list, text, text_keys)
        hidden_states = self.layer_norm(hidden_states)

        batch = hidden_states.shape[0]
        level_states = hidden_states.split([h * w for h, w in spatial_shapes_list], 1)
        outputs = [
            states.transpose(1, 2).reshape(batch, -1, *shape)
            for states, shape in zip(level_states, spatial_shapes_list)
        ]
        lateral = self.lateral_convolution[1:] if finest_projected else self.lateral_convolution
        finest = lateral(features[0])
        coarse = outputs[-1]
        if finest.is_contiguous(memory_format=torch.channels_last):
            # upsampled in the finest map's memory format (channels-last after the folded pyramid), from the same
            # values viewed channels-last without a copy: the CPU's channels-last upsampling and the addition vectorise
            coarse = level_states[-1].unflatten(1, spatial_shapes_list[-1]).permute(0, 3, 1, 2)
        finest = finest + F.interpolate(coarse, size=finest.shape[-2:], mode="bilinear", align_corners=False)
        mask_features = self.mask_projection(self.output_convolution(finest))
        return TDOSPixelDecoderOutput(mask_features=mask_features, multi_scale_features=tuple(outputs))



__all__ = ["TDOSPixelDecoder", "TDOSPixelDecoderOutput"]
