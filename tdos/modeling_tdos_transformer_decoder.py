"""The transformer decoder of TDOS: Mask2Former's masked-attention decoder whose query contents are the refined
text embeddings (one query per class prompt and per OOD prompt)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from transformers import Mask2FormerConfig
from transformers.models.mask2former.modeling_mask2former import Mask2FormerMaskedAttentionDecoder

from .configuration_tdos import TDOSConfig
from .modeling_tdos_position import TDOSSinePositionEmbedding


class TDOSMaskedAttentionDecoder(Mask2FormerMaskedAttentionDecoder):
    """transformers' Mask2Former masked-attention decoder (same parameters and checkpoint keys) that can also compute
    the last prediction alone (`forward_last`)."""

    def forward_last(
        self,
        inputs_embeds: torch.Tensor,
        multi_stage_positional_embeddings: list[torch.Tensor],
        pixel_embeddings: torch.Tensor,
        encoder_hidden_states: list[torch.Tensor],
        query_position_embeddings: torch.Tensor,
        feature_size_list: list[torch.Size],
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """
        The last layer's normalised hidden states `(K, B, dim)` and mask logits `(B, K, H', W')`, as `forward`
        computes them (same arguments), without the full-resolution masks of the earlier predictions: each masked
        attention needs the earlier prediction's mask logits only at its level's size, and bilinear resizing is
        linear, so they are the mask embeddings against the mask features resized to that size (resized once per
        level) instead of the full-resolution logits resized (equal up to float rounding).
        """
        resized = {
            tuple(size): F.interpolate(pixel_embeddings, size=tuple(size), mode="bilinear", align_corners=False)
            for size in feature_size_list
        }
        hidden_states = inputs_embeds
        states = self.layernorm(hidden_states)
        for index, layer in enumerate(self.layers):
            level = index % self.num_feature_levels
            size = tuple(feature_size_list[level])
            # transformers' predictor on features already at the level's size (its resizing is then a copy)
            attention_mask = self.mask_predictor(states, resized[size], size)[1]
            # a query whose mask is empty attends everywhere, as in `forward`
            where = (attention_mask.sum(-1) != attention_mask.shape[-1]).to(attention_mask.dtype)
            hidden_states = layer(
                hidden_states,
                level,
                None,
                multi_stage_positional_embeddings,
                query_position_embeddings,
                encoder_hidden_states,
                encoder_attention_mask=attention_mask * where.unsqueeze(-1),
            )[0]
            states = self.layernorm(hidden_states)
        mask_embeddings = self.mask_predictor.mask_embedder(states.transpose(0, 1))
        return states, torch.einsum("bqc,bchw->bqhw", mask_embeddings, pixel_embeddings)


class TDOSTransformerDecoder(nn.Module):
    """Mask2Former masked-attention decoder whose query contents are the refined text embeddings."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        dim = config.hidden_dim
        self.query_proj = nn.Sequential(nn.Linear(config.projection_dim, dim), nn.ReLU(), nn.Linear(dim, dim))
        self.query_position_embeddings = nn.Embedding(config.num_queries, dim)
        self.level_embed = nn.Embedding(3, dim)
        self.position_embedding = TDOSSinePositionEmbedding(num_position_features=dim // 2)
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
        self.decoder = TDOSMaskedAttentionDecoder(mask2former_config)
        self.class_predictor = nn.Linear(dim, config.num_id_classes + 1)

    def forward(
        self,
        text_embeddings: torch.Tensor,
        multi_scale_features: tuple[torch.Tensor, ...],
        mask_features: torch.Tensor,
        every_prediction: bool = True,
    ) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        """Class logits `(B, K, K_id + 1)` and mask logits `(B, K, H', W')` of every prediction (initial + layers),
        or, with `every_prediction=False` outside training, of the last one only (one-element lists)."""
        memories, positions = [], []
        for index, feature in enumerate(multi_scale_features):
            position = self.position_embedding(feature.shape, feature.device, feature.dtype)
            positions.append(position.flatten(2).permute(2, 0, 1))
            memories.append((feature.flatten(2) + self.level_embed.weight[index][None, :, None]).permute(2, 0, 1))
        batch = text_embeddings.shape[0]
        inputs = {
            "inputs_embeds": self.query_proj(text_embeddings).transpose(0, 1),  # (K, B, dim)
            "multi_stage_positional_embeddings": positions,
            "pixel_embeddings": mask_features,
            "encoder_hidden_states": memories,
            "query_position_embeddings": self.query_position_embeddings.weight.unsqueeze(1).repeat(1, batch, 1),
            "feature_size_list": [feature.shape[-2:] for feature in multi_scale_features],
        }
        if not every_prediction and not self.training:
            states, mask_logits = self.decoder.forward_last(**inputs)
            return [self.class_predictor(states.transpose(0, 1))], [mask_logits]
        output = self.decoder(**inputs, return_dict=True)
        class_logits = [self.class_predictor(states.transpose(0, 1)) for states in output.intermediate_hidden_states]
        return class_logits, list(output.masks_queries_logits)



__all__ = ["TDOSMaskedAttentionDecoder", "TDOSTransformerDecoder"]
