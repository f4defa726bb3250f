"""The transformer decoder of TDOS: Mask2Former's masked-attention decoder whose query contents are the refined
text embeddings (one query per class prompt and per OOD prompt)."""

from __future__ import annotations

import torch
from torch import nn
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerMaskedAttentionDecoder,
    Mask2FormerSinePositionEmbedding,
)

from .configuration_tdos import TDOSConfig


class TDOSTransformerDecoder(nn.Module):
    """Mask2Former masked-attention decoder whose query contents are the refined text embeddings."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        dim = config.hidden_dim
        self.query_proj = nn.Sequential(nn.Linear(config.projection_dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.query_position_embeddings = nn.Embedding(config.num_queries, dim)
        self.level_embed = nn.Embedding(3, dim)
        self.position_embedding = Mask2FormerSinePositionEmbedding(num_position_features=dim // 2, normalize=True)
        mask2former_config = Mask2FormerConfig(
            hidden_dim=dim,
            mask_feature_size=dim,
            feature_size=dim,
            decoder_layers=config.decoder_layers + 1,  # Mask2Former counts the initial prediction as a layer
            num_attention_heads=config.decoder_num_heads,
            dim_feedforward=config.decoder_ffn_dim,
            dropout=0.0,
            pre_norm=False,
            activation_function="relu",
        )
        self.decoder = Mask2FormerMaskedAttentionDecoder(mask2former_config)
        self.class_predictor = nn.Linear(dim, config.num_id_classes + 1)

    def forward(
        self, text_embeddings: torch.Tensor, multi_scale_features: tuple[torch.Tensor, ...], mask_features: torch.Tensor
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Class logits `(B, K, K_id + 1)` and mask logits `(B, K, H', W')` of every prediction (initial + layers)."""
        memories, positions = [], []
        for index, feature in enumerate(multi_scale_features):
            position = self.position_embedding(feature.shape, feature.device, feature.dtype)
            positions.append(position.flatten(2).permute(2, 0, 1))
            memories.append((feature.flatten(2) + self.level_embed.weight[index][None, :, None]).permute(2, 0, 1))
        batch = text_embeddings.shape[0]
        output = self.decoder(
            inputs_embeds=self.query_proj(text_embeddings).transpose(0, 1),  # (K, B, dim)
            multi_stage_positional_embeddings=positions,
            pixel_embeddings=mask_features,
            encoder_hidden_states=memories,
            query_position_embeddings=self.query_position_embeddings.weight.unsqueeze(1).repeat(1, batch, 1),
            feature_size_list=[feature.shape[-2:] for feature in multi_scale_features],
            return_dict=True,
        )
        class_logits = [self.class_predictor(states.transpose(0, 1)) for states in output.intermediate_hidden_states]
        return class_logits, list(output.masks_queries_logits)



__all__ = ["TDOSTransformerDecoder"]
