"""PyTorch TDOS: text-driven OOD segmentation with a frozen CLIP pair and a text-query Mask2Former decoder.

Imports only torch, transformers, `.configuration_tdos` and `.modeling_tdos_rn50` (the CLIP RN50 tower; timm is
imported there only if installed), so a saved model loads with `trust_remote_code=True` where the `tdos` package is
not installed.
"""

from __future__ import annotations

import importlib
import math
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPModel, CLIPTextModel, CLIPTokenizer, CLIPVisionModel, Mask2FormerConfig, PreTrainedModel
from transformers import initialization as init
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerMaskedAttentionDecoder,
    Mask2FormerMaskedAttentionDecoderLayer,
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
    Mask2FormerPixelDecoderEncoderOnly,
    Mask2FormerSinePositionEmbedding,
    dice_loss,
    sample_point,
    sigmoid_cross_entropy_loss,
)
from transformers.utils import ModelOutput, logging

from .configuration_tdos import ANOMALY_SCORES, INFERENCE_MODES, TDOSConfig
from .modeling_tdos_rn50 import (
    CLIPResNetTowers,
    TDOSResNetFeaturePyramid,
    TDOSResNetImageEncoder,
    resize_position_grid,
)


logger = logging.get_logger(__name__)

IGNORE_INDEX = 255


@dataclass
class TDOSImageEncoderOutput(ModelOutput):
    """
    Args:
        feature_maps (`tuple[torch.FloatTensor]`):
            Residual-stream patch tokens after the `vision_feature_layers`, each `(batch, width, h, w)`.
        global_embedding (`torch.FloatTensor` of shape `(batch, 1, projection_dim)`):
            Projected class token `g`.
        dense_embeddings (`torch.FloatTensor` of shape `(batch, projection_dim, h, w)`):
            Projected patch tokens `V`.
    """

    feature_maps: tuple[torch.FloatTensor, ...] | None = None
    global_embedding: torch.FloatTensor | None = None
    dense_embeddings: torch.FloatTensor | None = None


@dataclass
class TDOSOutput(ModelOutput):
    """
    Output of [`TDOSForOODSegmentation`]. `K_id` is the number of classes of `config.id2label` (the OOD class last),
    `K = K_id + num_ood_prompts`, and `(H', W')` is the mask resolution (a quarter of the patch grid's stride).

    Args:
        loss (`torch.FloatTensor`, *optional*):
            Weighted sum of all loss terms, when `labels` are given.
        loss_dict (`dict[str, torch.FloatTensor]`, *optional*):
            Every weighted loss term (`loss_cls`, `loss_mask`, `loss_dice` and their `d{i}.` deep-supervision
            copies, `loss_identity`, `loss_textual`, `loss_visual`), when `labels` are given.
        class_queries_logits (`torch.FloatTensor` of shape `(batch, K_id, K_id + 1)`):
            Class logits of the last decoder prediction after the OOD-slot merge (last column: no object).
        masks_queries_logits (`torch.FloatTensor` of shape `(batch, K_id, H', W')`):
            Mask logits of the last decoder prediction after the OOD-slot merge.
        semantic_map (`torch.FloatTensor` of shape `(batch, K_id, H', W')`):
            Mask-classification scores `sum_q softmax(class_q)[c] * sigmoid(mask_q)`.
        anomaly_score (`torch.FloatTensor` of shape `(batch, H', W')`):
            Per-pixel anomaly score (`config.anomaly_score`) at mask resolution.
        score_map (`torch.FloatTensor` of shape `(batch, K, h, w)`):
            Cosine similarities between the dense image embeddings and the refined text embeddings.
        text_embeddings (`torch.FloatTensor` of shape `(batch, K, projection_dim)`):
            Text embeddings refined by the context decoder (`T'`).
        auxiliary_logits (`list[dict[str, torch.FloatTensor]]`, *optional*):
            The merged class and mask logits of the earlier decoder predictions.
    """

    loss: torch.FloatTensor | None = None
    loss_dict: dict[str, torch.FloatTensor] | None = None
    class_queries_logits: torch.FloatTensor | None = None
    masks_queries_logits: torch.FloatTensor | None = None
    semantic_map: torch.FloatTensor | None = None
    anomaly_score: torch.FloatTensor | None = None
    score_map: torch.FloatTensor | None = None
    text_embeddings: torch.FloatTensor | None = None
    auxiliary_logits: list[dict[str, torch.FloatTensor]] | None = None


def merge_ood_slot(
    class_logits: torch.Tensor, mask_logits: torch.Tensor, ood_label_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Merges the OOD slot (queries `ood_label_id..K-1`) into one query: mean of class logits, max of mask logits."""
    merged_class = torch.cat([class_logits[:, :ood_label_id], class_logits[:, ood_label_id:].mean(1, keepdim=True)], 1)
    merged_mask = torch.cat([mask_logits[:, :ood_label_id], mask_logits[:, ood_label_id:].amax(1, keepdim=True)], 1)
    return merged_class, merged_mask


def semantic_map_from_queries(class_logits: torch.Tensor, mask_logits: torch.Tensor) -> torch.Tensor:
    """`sum_q softmax(class_q)[c] * sigmoid(mask_q)` with the no-object column dropped: `(batch, classes, H, W)`."""
    class_probabilities = class_logits.softmax(-1)[..., :-1]
    return torch.einsum("bqc,bqhw->bchw", class_probabilities, mask_logits.sigmoid())


def anomaly_score_from_semantic(semantic_map: torch.Tensor, method: str, ood_label_id: int) -> torch.Tensor:
    """Per-pixel anomaly score from a semantic map `(batch, K_id, H, W)`; higher means more anomalous."""
    if method == "ood_probability":
        return semantic_map.softmax(1)[:, ood_label_id]
    if method == "ood_logit":
        return semantic_map[:, ood_label_id]
    if method == "rba":
        return -torch.tanh(semantic_map[:, :ood_label_id]).sum(1)
    raise ValueError(f"unknown anomaly score {method!r}; expected ood_probability, ood_logit or rba")


def sliding_window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window starts along one side, as mmseg's `slide_inference`: every `stride` pixels, the last one shifted back so
    that it ends at the border; one window at 0 when the side is not longer than `crop`."""
    count = max(length - crop + stride - 1, 0) // stride + 1
    return [max(min(index * stride + crop, length) - crop, 0) for index in range(count)]


def reduce_score_map(score_map: torch.Tensor, ood_label_id: int) -> torch.Tensor:
    """The `K`-channel score map with the OOD slot reduced by max to one channel: `(batch, K_id, h, w)`."""
    return torch.cat([score_map[:, :ood_label_id], score_map[:, ood_label_id:].amax(1, keepdim=True)], 1)


def sample_uncertain_points(
    logits: torch.Tensor, num_points: int, oversample_ratio: float, importance_sample_ratio: float
) -> torch.Tensor:
    """Point coordinates in [0, 1]^2, `(N, num_points, 2)`: the most uncertain (|logit| smallest) of an oversampled
    uniform draw, plus uniform points (Mask2Former / PointRend importance sampling)."""
    num_masks = logits.shape[0]
    num_sampled = int(num_points * oversample_ratio)
    coordinates = torch.rand(num_masks, num_sampled, 2, device=logits.device)
    uncertainty = -sample_point(logits, coordinates, align_corners=False).squeeze(1).abs()
    num_uncertain = int(importance_sample_ratio * num_points)
    index = uncertainty.topk(num_uncertain, dim=1).indices
    uncertain = torch.gather(coordinates, 1, index[..., None].expand(-1, -1, 2))
    uniform = torch.rand(num_masks, num_points - num_uncertain, 2, device=logits.device)
    return torch.cat([uncertain, uniform], 1)


def _scaled_dot_product_attention(attention: nn.Module, queries: torch.Tensor, keys_values: torch.Tensor) -> torch.Tensor:
    """A CLIP attention block applied with queries and keys/values from different inputs, `(batch, tokens, width)`."""
    batch, num_queries, width = queries.shape
    heads = attention.num_heads

    def split(states: torch.Tensor) -> torch.Tensor:
        return states.view(batch, -1, heads, width // heads).transpose(1, 2)

    output = F.scaled_dot_product_attention(
        split(attention.q_proj(queries)),
        split(attention.k_proj(keys_values)),
        split(attention.v_proj(keys_values)),
        scale=attention.scale,
    )
    return attention.out_proj(output.transpose(1, 2).reshape(batch, num_queries, width))


class TDOSImageEncoder(nn.Module):
    """The CLIP image tower with multi-scale taps, dense and global embeddings, and OOD semantic augmentation."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        self.config = config
        vision_config = config.clip_config.vision_config
        self.vision_model = CLIPVisionModel(vision_config)
        self.visual_projection = nn.Linear(vision_config.hidden_size, config.projection_dim, bias=False)
        self.patch_size = vision_config.patch_size

    def embed(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Patch + class tokens with position embeddings bilinearly resized to the token grid: `(batch, 1 + hw, D)`."""
        embeddings = self.vision_model.embeddings
        weight = embeddings.patch_embedding.weight
        patches = embeddings.patch_embedding(pixel_values.to(weight.dtype))  # (B, D, h, w)
        batch, width, height, grid_width = patches.shape
        positions = embeddings.position_embedding.weight
        side = math.isqrt(positions.shape[0] - 1)
        grid = positions[1:].reshape(1, side, side, width).permute(0, 3, 1, 2)
        if (side, side) != (height, grid_width):
            grid = F.interpolate(grid, size=(height, grid_width), mode="bilinear", align_corners=False)
        patches = patches + grid
        # As in DenseCLIP/the release, the class embedding is added twice (token and position term).
        class_token = (2 * embeddings.class_embedding + positions[0]).expand(batch, 1, width)
        return torch.cat([class_token, patches.flatten(2).transpose(1, 2)], 1)

    def augmented_layer(self, layer: nn.Module, hidden_states: torch.Tensor, token_mask: torch.Tensor) -> torch.Tensor:
        """One CLIP encoder layer whose attention queries of OOD tokens get noise `alpha * (eps * sigma_t + mu_t)`
        (per-token channel statistics); outputs are mixed by `token_mask` `(batch, tokens, 1)` (0 for the class
        token), so in-distribution tokens are computed exactly as without augmentation."""
        residual = hidden_states
        normed = layer.layer_norm1(hidden_states)
        mean, std = normed.mean(-1, keepdim=True), normed.std(-1, keepdim=True)
        noisy = normed + self.config.ood_augmentation_strength * (torch.randn_like(normed) * std + mean)
        clean_attention = _scaled_dot_product_attention(layer.self_attn, normed, normed)
        noisy_attention = _scaled_dot_product_attention(layer.self_attn, noisy, normed)
        hidden_states = residual + token_mask * noisy_attention + (1 - token_mask) * clean_attention
        return hidden_states + layer.mlp(layer.layer_norm2(hidden_states))

    def forward(self, pixel_values: torch.Tensor, ood_mask: torch.Tensor | None = None) -> TDOSImageEncoderOutput:
        """
        Args:
            pixel_values: `(batch, 3, H, W)`, H and W multiples of the patch size.
            ood_mask: optional `(batch, H, W)` float mask of OOD pixels; when given, the last layer is augmented.
        """
        batch, _, height, width = pixel_values.shape
        grid = (height // self.patch_size, width // self.patch_size)
        hidden_states = self.vision_model.pre_layrnorm(self.embed(pixel_values))
        token_mask = None
        if ood_mask is not None:
            token_mask = F.interpolate(ood_mask[:, None].to(hidden_states.dtype), size=grid, mode="bilinear")
            token_mask = F.pad(token_mask.flatten(1), (1, 0))[..., None]  # class token: no augmentation
        layers = self.vision_model.encoder.layers
        taps = {}
        for index, layer in enumerate(layers):
            if token_mask is not None and index == len(layers) - 1:
                hidden_states = self.augmented_layer(layer, hidden_states, token_mask)
            else:
                hidden_states = layer(hidden_states, None)
            if index in self.config.vision_feature_layers:
                taps[index] = hidden_states[:, 1:].transpose(1, 2).reshape(batch, -1, *grid)
        tokens = self.visual_projection(self.vision_model.post_layernorm(hidden_states))
        return TDOSImageEncoderOutput(
            feature_maps=tuple(taps[index] for index in self.config.vision_feature_layers),
            global_embedding=tokens[:, :1],
            dense_embeddings=tokens[:, 1:].transpose(1, 2).reshape(batch, -1, *grid),
        )


class TDOSSimpleFeaturePyramid(nn.Module):
    """ViTDet-style simple FPN on the four taps: strides patch/4, patch/2, patch, 2*patch (trainable)."""

    def __init__(self, width: int):
        super().__init__()
        self.fpn1 = nn.Sequential(
            nn.ConvTranspose2d(width, width, kernel_size=2, stride=2),
            nn.BatchNorm2d(width),
            nn.GELU(),
            nn.ConvTranspose2d(width, width, kernel_size=2, stride=2),
        )
        self.fpn2 = nn.ConvTranspose2d(width, width, kernel_size=2, stride=2)
        self.fpn4 = nn.MaxPool2d(kernel_size=2, stride=2)

    def forward(self, feature_maps: tuple[torch.Tensor, ...]) -> list[torch.Tensor]:
        first, second, third, fourth = feature_maps
        return [self.fpn1(first), self.fpn2(second), third, self.fpn4(fourth)]


class TDOSTextEncoder(nn.Module):
    """The frozen CLIP text tower run on assembled prompt embeddings (causal, positions `0..L-1`, end-token pooling)."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        text_config = config.clip_config.text_config
        self.text_model = CLIPTextModel(text_config)
        self.text_projection = nn.Linear(text_config.hidden_size, config.projection_dim, bias=False)

    @property
    def token_embedding(self) -> nn.Embedding:
        return self.text_model.embeddings.token_embedding

    def forward(self, inputs_embeds: torch.Tensor, eos_positions: torch.Tensor) -> torch.Tensor:
        """`inputs_embeds` `(N, L, D)` without positions, `eos_positions` `(N,)` → projected embeddings `(N, C)`."""
        length = inputs_embeds.shape[1]
        hidden_states = inputs_embeds + self.text_model.embeddings.position_embedding.weight[:length]
        causal_mask = torch.full((length, length), torch.finfo(hidden_states.dtype).min, device=hidden_states.device)
        causal_mask = causal_mask.triu(1).to(hidden_states.dtype)[None, None]
        hidden_states = self.text_model.encoder(inputs_embeds=hidden_states, attention_mask=causal_mask)
        hidden_states = self.text_model.final_layer_norm(hidden_states.last_hidden_state)
        pooled = hidden_states[torch.arange(hidden_states.shape[0], device=hidden_states.device), eos_positions]
        return self.text_projection(pooled)

    def encode_input_ids(self, input_ids: torch.Tensor, eos_token_id: int) -> torch.Tensor:
        """Plain CLIP text features of tokenized prompts `(N, L)` (pooled at the first end token)."""
        eos_positions = (input_ids == eos_token_id).int().argmax(-1)
        return self(self.token_embedding(input_ids), eos_positions)


class TDOSPromptLearner(nn.Module):
    """Learnable prompts: CoOp contexts shared by the class prompts and `M` learnable OOD prompts.

    Class prompt `c`: `[SOT, ctx_1..ctx_P, name tokens.., EOT, pad..]`, pooled at its end token (index shifted by
    `P`). OOD prompt `i`: `[SOT, neg_i,1..neg_i,P, EOT, pad..]`, pooled at index `P + 1`. Both have length
    `text_context_length`; positions are added by the text encoder (the corrected assembly of the paper).
    """

    def __init__(self, config: TDOSConfig):
        super().__init__()
        width = config.clip_config.text_config.hidden_size
        self.context_length = config.prompt_context_length
        self.contexts = nn.Parameter(torch.empty(1, config.prompt_context_length, width))
        self.negative_prompts = nn.Parameter(torch.empty(config.num_ood_prompts, config.prompt_context_length, width))
        # Token ids come from the tokenizer when the model is created from CLIP (`set_prompt_tokens`).
        self.register_buffer("class_input_ids", torch.zeros(config.num_id_classes, config.class_name_length, dtype=torch.long))
        self.register_buffer("class_eos_positions", torch.full((config.num_id_classes,), 1, dtype=torch.long))
        self.register_buffer("negative_input_ids", torch.zeros(config.text_context_length, dtype=torch.long))

    def set_prompt_tokens(self, class_input_ids: torch.Tensor, bos_token_id: int, eos_token_id: int, pad_token_id: int):
        """Stores the tokenized class names `(K_id, class_name_length)` and the OOD prompt template."""
        if class_input_ids.shape != self.class_input_ids.shape:
            raise ValueError(f"class_input_ids has shape {tuple(class_input_ids.shape)}, expected {tuple(self.class_input_ids.shape)}")
        is_eos = class_input_ids == eos_token_id
        if not is_eos.any(-1).all():
            raise ValueError("every tokenized class name must contain the end-of-text token")
        self.class_input_ids.copy_(class_input_ids)
        self.class_eos_positions.copy_(is_eos.int().argmax(-1) + self.context_length)
        template = torch.full_like(self.negative_input_ids, pad_token_id)
        template[0], template[self.context_length + 1] = bos_token_id, eos_token_id
        self.negative_input_ids.copy_(template)

    def forward(self, token_embedding: nn.Embedding) -> tuple[torch.Tensor, torch.Tensor]:
        """Assembled prompts `(K, L, D)` (class prompts, then OOD prompts) and their end-token positions `(K,)`."""
        names = token_embedding(self.class_input_ids)  # (K_id, L - P, D)
        contexts = self.contexts.expand(names.shape[0], -1, -1).to(names.dtype)
        class_prompts = torch.cat([names[:, :1], contexts, names[:, 1:]], 1)
        template = token_embedding(self.negative_input_ids)  # (L, D)
        num_negatives = self.negative_prompts.shape[0]
        negative_prompts = torch.cat(
            [
                template[None, :1].expand(num_negatives, -1, -1),
                self.negative_prompts.to(names.dtype),
                template[None, self.context_length + 1 :].expand(num_negatives, -1, -1),
            ],
            1,
        )
        negative_eos = self.class_eos_positions.new_full((num_negatives,), self.context_length + 1)
        return torch.cat([class_prompts, negative_prompts]), torch.cat([self.class_eos_positions, negative_eos])


class TDOSContextAttention(nn.Module):
    """Multi-head attention with bias-free q/k/v projections (DenseCLIP context decoder)."""

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.q_proj = nn.Linear(width, width, bias=False)
        self.k_proj = nn.Linear(width, width, bias=False)
        self.v_proj = nn.Linear(width, width, bias=False)
        self.out_proj = nn.Linear(width, width)
        self.dropout = nn.Dropout(dropout)

    def forward(self, queries: torch.Tensor, keys_values: torch.Tensor) -> torch.Tensor:
        batch, num_queries, width = queries.shape

        def split(states: torch.Tensor) -> torch.Tensor:
            return states.view(batch, -1, self.num_heads, width // self.num_heads).transpose(1, 2)

        output = F.scaled_dot_product_attention(
            split(self.q_proj(queries)), split(self.k_proj(keys_values)), split(self.v_proj(keys_values))
        )
        return self.dropout(self.out_proj(output.transpose(1, 2).reshape(batch, num_queries, width)))


class TDOSContextDecoderLayer(nn.Module):
    """Pre-norm layer: self-attention over text, cross-attention to the visual context, MLP."""

    def __init__(self, width: int, num_heads: int, dropout: float):
        super().__init__()
        self.self_attn_layer_norm = nn.LayerNorm(width)
        self.self_attn = TDOSContextAttention(width, num_heads, dropout)
        self.cross_attn_layer_norm = nn.LayerNorm(width)
        self.cross_attn = TDOSContextAttention(width, num_heads, dropout)
        self.final_layer_norm = nn.LayerNorm(width)
        self.mlp = nn.Sequential(
            nn.Linear(width, 4 * width), nn.GELU(), nn.Dropout(dropout), nn.Linear(4 * width, width)
        )
        self.dropout = nn.Dropout(dropout)

    def forward(self, text: torch.Tensor, memory: torch.Tensor) -> torch.Tensor:
        normed = self.self_attn_layer_norm(text)
        text = text + self.self_attn(normed, normed)
        text = text + self.cross_attn(self.cross_attn_layer_norm(text), memory)
        return text + self.dropout(self.mlp(self.final_layer_norm(text)))


class TDOSContextDecoder(nn.Module):
    """Refines the text embeddings with the image's global and dense embeddings: returns `Delta T` `(B, K, C)`."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        width, dim = config.context_decoder_hidden_size, config.projection_dim
        self.memory_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width), nn.LayerNorm(width))
        self.text_proj = nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, width))
        self.layers = nn.ModuleList(
            TDOSContextDecoderLayer(width, config.context_decoder_num_heads, config.context_decoder_dropout)
            for _ in range(config.context_decoder_num_layers)
        )
        self.out_proj = nn.Sequential(nn.LayerNorm(width), nn.Linear(width, dim))

    def forward(self, text: torch.Tensor, visual: torch.Tensor) -> torch.Tensor:
        memory = self.memory_proj(visual)
        text = self.text_proj(text)
        for layer in self.layers:
            text = layer(text, memory)
        return self.out_proj(text)


class TDOSPixelDecoderEncoderLayer(nn.Module):
    """Post-norm layer: multi-scale deformable self-attention, cross-attention to the text embeddings, FFN."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        dim = config.hidden_dim
        self.self_attn = Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(
            embed_dim=dim, num_heads=config.pixel_decoder_num_heads, n_levels=3, n_points=config.pixel_decoder_num_points
        )
        self.self_attn_layer_norm = nn.LayerNorm(dim)
        self.cross_attn = nn.MultiheadAttention(dim, config.pixel_decoder_num_heads, batch_first=True)
        self.cross_attn_layer_norm = nn.LayerNorm(dim)
        self.fc1 = nn.Linear(dim, config.pixel_decoder_ffn_dim)
        self.fc2 = nn.Linear(config.pixel_decoder_ffn_dim, dim)
        self.final_layer_norm = nn.LayerNorm(dim)

    def forward(self, hidden_states, position_embeddings, reference_points, spatial_shapes_list, text, text_keys):
        attended, _ = self.self_attn(
            hidden_states=hidden_states,
            encoder_hidden_states=hidden_states,
            position_embeddings=position_embeddings,
            reference_points=reference_points,
            spatial_shapes_list=spatial_shapes_list,
        )
        hidden_states = self.self_attn_layer_norm(hidden_states + attended)
        attended, _ = self.cross_attn(hidden_states + position_embeddings, text_keys, text, need_weights=False)
        hidden_states = self.cross_attn_layer_norm(hidden_states + attended)
        hidden_states = hidden_states + self.fc2(F.relu(self.fc1(hidden_states)))
        return self.final_layer_norm(hidden_states)


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
        self.position_embedding = Mask2FormerSinePositionEmbedding(num_position_features=dim // 2, normalize=True)
        self.text_proj = nn.Linear(config.projection_dim, dim)
        self.text_position_embeddings = nn.Embedding(config.num_queries, dim)
        self.layers = nn.ModuleList(TDOSPixelDecoderEncoderLayer(config) for _ in range(config.pixel_decoder_layers))
        self.layer_norm = nn.LayerNorm(dim)
        self.lateral_convolution = nn.Sequential(nn.Conv2d(width, dim, kernel_size=1, bias=False), nn.GroupNorm(32, dim))
        self.output_convolution = nn.Sequential(
            nn.Conv2d(dim, dim, kernel_size=3, padding=1, bias=False), nn.GroupNorm(32, dim), nn.ReLU()
        )
        self.mask_projection = nn.Conv2d(dim, dim, kernel_size=1)

    def forward(self, features: list[torch.Tensor], text_embeddings: torch.Tensor) -> TDOSPixelDecoderOutput:
        """`features`: 4 maps, high to low resolution; `text_embeddings` `(B, K, C)`."""
        levels = features[:0:-1]  # the three coarsest, low to high resolution
        embeddings, positions = [], []
        for index, feature in enumerate(levels):
            projected = self.input_projections[index](feature)
            embeddings.append(projected.flatten(2).transpose(1, 2))
            position = self.position_embedding(projected.shape, projected.device, projected.dtype)
            positions.append(position.flatten(2).transpose(1, 2) + self.level_embed.weight[index])
        spatial_shapes_list = [tuple(feature.shape[-2:]) for feature in levels]
        hidden_states, position_embeddings = torch.cat(embeddings, 1), torch.cat(positions, 1)
        valid_ratios = hidden_states.new_ones(hidden_states.shape[0], 3, 2)
        reference_points = Mask2FormerPixelDecoderEncoderOnly.get_reference_points(
            spatial_shapes_list, valid_ratios, hidden_states.device
        )
        text = self.text_proj(text_embeddings)
        text_keys = text + self.text_position_embeddings.weight
        for layer in self.layers:
            hidden_states = layer(hidden_states, position_embeddings, reference_points, spatial_shapes_list, text, text_keys)
        hidden_states = self.layer_norm(hidden_states)

        batch = hidden_states.shape[0]
        outputs = [
            states.transpose(1, 2).reshape(batch, -1, *shape)
            for states, shape in zip(hidden_states.split([h * w for h, w in spatial_shapes_list], 1), spatial_shapes_list)
        ]
        finest = self.lateral_convolution(features[0])
        finest = finest + F.interpolate(outputs[-1], size=finest.shape[-2:], mode="bilinear", align_corners=False)
        mask_features = self.mask_projection(self.output_convolution(finest))
        return TDOSPixelDecoderOutput(mask_features=mask_features, multi_scale_features=tuple(outputs))


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


class TDOSPreTrainedModel(PreTrainedModel):
    config_class = TDOSConfig
    config: TDOSConfig
    base_model_prefix = "tdos"
    main_input_name = "pixel_values"
    input_modalities = ("image",)
    _supports_sdpa = True
    _no_split_modules = ["CLIPEncoderLayer", "TDOSPixelDecoderEncoderLayer", "Mask2FormerMaskedAttentionDecoderLayer"]

    def _init_weights(self, module: nn.Module):
        std = self.config.initializer_range
        if isinstance(module, Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention):
            init.constant_(module.sampling_offsets.weight, 0.0)
            thetas = torch.arange(module.n_heads, dtype=torch.float32) * (2.0 * math.pi / module.n_heads)
            grid = torch.stack([thetas.cos(), thetas.sin()], -1)
            grid = (grid / grid.abs().max(-1, keepdim=True)[0]).view(module.n_heads, 1, 1, 2)
            grid = grid.repeat(1, module.n_levels, module.n_points, 1)
            grid = grid * torch.arange(1, module.n_points + 1, dtype=torch.float32).view(1, 1, -1, 1)
            init.copy_(module.sampling_offsets.bias, grid.flatten())
            init.constant_(module.attention_weights.weight, 0.0)
            init.constant_(module.attention_weights.bias, 0.0)
            init.xavier_uniform_(module.value_proj.weight)
            init.constant_(module.value_proj.bias, 0.0)
            init.xavier_uniform_(module.output_proj.weight)
            init.constant_(module.output_proj.bias, 0.0)
        elif isinstance(module, Mask2FormerMaskedAttentionDecoderLayer):
            for parameter in module.parameters():
                if parameter.dim() > 1:
                    init.xavier_uniform_(parameter)
            init.zeros_(module.cross_attn.in_proj_bias)
        elif isinstance(module, TDOSPromptLearner):
            # As released: contexts truncated-normal (std 1, [-2, 2]), OOD prompts standard normal.
            init.trunc_normal_(module.contexts, std=1.0, a=-2.0, b=2.0)
            init.normal_(module.negative_prompts, std=1.0)
        elif isinstance(module, TDOSForOODSegmentation):
            init.trunc_normal_(module.context_gamma, std=1.0, a=-2.0, b=2.0)
        elif isinstance(module, nn.MultiheadAttention):
            init.xavier_uniform_(module.in_proj_weight)
            init.zeros_(module.in_proj_bias)
        elif isinstance(module, nn.Linear):
            init.trunc_normal_(module.weight, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.Conv2d, nn.ConvTranspose2d)):
            init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)):
            init.ones_(module.weight)
            init.zeros_(module.bias)
            if isinstance(module, nn.BatchNorm2d):
                init.zeros_(module.running_mean)
                init.ones_(module.running_var)
                init.zeros_(module.num_batches_tracked)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, std=1.0)


class TDOSForOODSegmentation(TDOSPreTrainedModel):
    """
    TDOS for semantic and out-of-distribution segmentation of road scenes.

    Create it from CLIP weights with [`TDOSForOODSegmentation.from_clip`] (this also tokenizes the class names and
    computes the frozen text anchors), or load a trained model with `from_pretrained`. A model built directly from a
    config has placeholder prompt tokens and anchors: fine for timing, not for training.

    `forward(pixel_values, labels=None)` returns a [`TDOSOutput`]; with `labels` (trainIds `0..K_id-2`, `K_id-1` =
    OOD, 255 = ignore; shape `(batch, H, W)` matching the images) it also returns the loss.
    """

    def __init__(self, config: TDOSConfig):
        super().__init__(config)
        image_encoder_class = TDOSResNetImageEncoder if config.backbone == "clip-rn50" else TDOSImageEncoder
        self.image_encoder = image_encoder_class(config)
        self.reference_image_encoder = image_encoder_class(config) if config.train_image_tower else None
        self.text_encoder = TDOSTextEncoder(config)
        self.prompt_learner = TDOSPromptLearner(config)
        self.context_decoder = TDOSContextDecoder(config)
        self.context_gamma = nn.Parameter(torch.empty(config.projection_dim))
        if config.backbone == "clip-rn50":
            self.feature_pyramid = TDOSResNetFeaturePyramid(config)
        else:
            self.feature_pyramid = TDOSSimpleFeaturePyramid(config.clip_config.vision_config.hidden_size)
        self.pixel_decoder = TDOSPixelDecoder(config)
        self.transformer_decoder = TDOSTransformerDecoder(config)
        self.register_buffer("text_anchors", torch.zeros(config.num_queries, config.projection_dim))
        self._text_cache = None
        self.post_init()
        self._freeze_clip()

    # ------------------------------------------------------------------ frozen parts and modes
    def _frozen_modules(self) -> list[nn.Module]:
        frozen = [self.text_encoder]
        frozen.append(self.reference_image_encoder if self.config.train_image_tower else self.image_encoder)
        return frozen

    def _freeze_clip(self):
        for module in self._frozen_modules():
            module.requires_grad_(False)
            module.eval()

    def train(self, mode: bool = True):
        super().train(mode)
        for module in self._frozen_modules():
            module.eval()
        self._text_cache = None
        return self

    # ------------------------------------------------------------------ text branch
    def compute_text_embeddings(self) -> torch.Tensor:
        """The `K` prompt embeddings `T` `(K, C)` from the text tower. Computed once per forward (never per image or
        window); in eval mode the result is cached until the prompt parameters change (in-place updates bump their
        version counters) or the mode, device or dtype changes."""
        tensors = list(self.prompt_learner.parameters()) + list(self.prompt_learner.buffers())
        device = tensors[0].device
        autocast = torch.is_autocast_enabled(device.type)
        dtype = torch.get_autocast_dtype(device.type) if autocast else tensors[0].dtype
        key = tuple(t._version for t in tensors) + (device, dtype, autocast)
        if not self.training and self._text_cache is not None and self._text_cache[0] == key:
            return self._text_cache[1]
        prompts, eos_positions = self.prompt_learner(self.text_encoder.token_embedding)
        text_embeddings = self.text_encoder(prompts, eos_positions)
        if not self.training:
            self._text_cache = (key, text_embeddings.detach())
        return text_embeddings

    # ------------------------------------------------------------------ checks
    def _check_inputs(self, pixel_values: torch.Tensor, labels: torch.Tensor | None):
        channels = self.config.clip_config.vision_config.num_channels
        if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
            raise ValueError(f"pixel_values must have shape (batch, {channels}, H, W), got {tuple(pixel_values.shape)}")
        stride = self.config.input_stride
        name = "ResNet stride" if self.config.backbone == "clip-rn50" else "patch size"
        height, width = pixel_values.shape[-2:]
        if height % stride or width % stride or height < 2 * stride or width < 2 * stride:
            raise ValueError(
                f"image size {height}x{width} is not supported: height and width must be multiples of the {name} "
                f"{stride} and at least {2 * stride} (resize or pad with TDOSImageProcessor)"
            )
        if labels is None:
            return
        if labels.dim() != 3 or labels.shape[0] != pixel_values.shape[0] or labels.shape[1:] != (height, width):
            raise ValueError(
                f"labels must have the images' shape (batch, H, W) = ({pixel_values.shape[0]}, {height}, {width}), "
                f"got {tuple(labels.shape)}"
            )
        if labels.dtype.is_floating_point:
            raise ValueError(f"labels must be an integer tensor of class ids, got dtype {labels.dtype}")
        values = labels.unique()
        bad = values[(values >= self.config.num_id_classes) & (values != IGNORE_INDEX) | (values < 0)]
        if bad.numel():
            raise ValueError(
                f"labels contain values {bad.tolist()}; expected class ids 0..{self.config.num_id_classes - 1} "
                f"({self.config.id2label[self.config.ood_label_id]!r} = {self.config.ood_label_id}) or {IGNORE_INDEX} (ignore)"
            )

    # ------------------------------------------------------------------ forward
    def forward(
        self,
        pixel_values: torch.Tensor,
        labels: torch.Tensor | None = None,
        return_dict: bool | None = None,
        prompt_embeddings: torch.Tensor | None = None,
        **kwargs,
    ) -> TDOSOutput | tuple:
        r"""
        pixel_values (`torch.FloatTensor` of shape `(batch, 3, H, W)`):
            Normalised images ([`TDOSImageProcessor`]); H and W multiples of the patch size.
        labels (`torch.LongTensor` of shape `(batch, H, W)`, *optional*):
            Training targets: class ids `0..K_id-1` (the last is OOD) or 255 (ignored).
        prompt_embeddings (`torch.FloatTensor` of shape `(K, projection_dim)`, *optional*):
            The text branch's output `T` from [`~TDOSForOODSegmentation.compute_text_embeddings`], when the caller
            has computed it already (sliding-window inference passes it to every window batch); computed here
            otherwise.
        """
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        self._check_inputs(pixel_values, labels)
        config = self.config
        ood_id = config.ood_label_id

        augment = (
            labels is not None
            and self.training
            and config.ood_augmentation
            and bool(torch.rand(()) < config.ood_augmentation_probability)
        )
        ood_mask = (labels == ood_id).float() if augment else None
        image = self.image_encoder(pixel_values, ood_mask=ood_mask)
        dense, global_embedding = image.dense_embeddings, image.global_embedding

        text = self.compute_text_embeddings() if prompt_embeddings is None else prompt_embeddings  # (K, C)
        batch = pixel_values.shape[0]
        visual_context = torch.cat([global_embedding, dense.flatten(2).transpose(1, 2)], 1)
        text = text.expand(batch, -1, -1)
        text_embeddings = text + self.context_gamma * self.context_decoder(text, visual_context)  # T' (B, K, C)
        score_map = torch.einsum(
            "bchw,bkc->bkhw", F.normalize(dense, dim=1), F.normalize(text_embeddings, dim=-1)
        )

        if config.backbone == "clip-rn50":
            features = self.feature_pyramid(image.feature_maps, score_map)  # score map concatenated to layer4
        else:
            features = self.feature_pyramid(image.feature_maps)
        pixel_output = self.pixel_decoder(features, text_embeddings)
        class_logits, mask_logits = self.transformer_decoder(
            text_embeddings, pixel_output.multi_scale_features, pixel_output.mask_features
        )
        merged = [merge_ood_slot(c, m, ood_id) for c, m in zip(class_logits, mask_logits)]
        final_class, final_mask = merged[-1]
        semantic_map = semantic_map_from_queries(final_class, final_mask)

        loss = loss_dict = None
        if labels is not None:
            loss_dict = self.compute_losses(merged, labels, score_map, text_embeddings, global_embedding, pixel_values)
            loss = sum(loss_dict.values())
            if not torch.isfinite(loss):
                bad = [name for name, value in loss_dict.items() if not torch.isfinite(value)]
                raise FloatingPointError(f"non-finite loss: terms {bad} are NaN or infinite")

        output = TDOSOutput(
            loss=loss,
            loss_dict=loss_dict,
            class_queries_logits=final_class,
            masks_queries_logits=final_mask,
            semantic_map=semantic_map,
            anomaly_score=anomaly_score_from_semantic(semantic_map, config.anomaly_score, ood_id),
            score_map=score_map,
            text_embeddings=text_embeddings,
            auxiliary_logits=[{"class_queries_logits": c, "masks_queries_logits": m} for c, m in merged[:-1]],
        )
        return output if return_dict else output.to_tuple()

    # ------------------------------------------------------------------ inference
    @torch.no_grad()
    def predict(
        self,
        pixel_values: torch.Tensor,
        inference_mode: str | None = None,
        anomaly_score: str | None = None,
        window_batch_size: int = 1,
    ) -> TDOSOutput:
        r"""
        Test-time prediction at the input resolution (METHOD §5.1), without gradients.

        The text branch runs once per call; its embeddings are given to every window batch. In `"slide"` mode the
        image is cut into `config.crop_size` windows every `config.stride` pixels (the last window of a row or
        column is shifted back inside the image, and an image side shorter than the crop is one window, as in
        mmseg's `slide_inference`); windows are run `window_batch_size` at a time, each window's semantic map is
        resized bilinearly to the window, and overlapping windows are averaged. `"whole"` runs the image at once.
        Windows (or the whole image) whose sides are not multiples of the patch size (RN50: 32) are zero-padded at the
        bottom/right (zero is the mean colour after CLIP normalisation) and the padding is cropped off the output.
        The anomaly score is computed from the averaged semantic map.

        Args:
            pixel_values (`torch.FloatTensor` of shape `(batch, 3, H, W)`):
                Normalised images ([`TDOSImageProcessor`]); any H, W.
            inference_mode (`str`, *optional*):
                `"slide"` or `"whole"`; defaults to `config.inference_mode`.
            anomaly_score (`str`, *optional*):
                `"ood_probability"`, `"ood_logit"` or `"rba"`; defaults to `config.anomaly_score`.
            window_batch_size (`int`, *optional*, defaults to 1):
                Windows per forward pass in `"slide"` mode. One at a time is the fastest on the CPU (measured by
                `benchmarks/bench_inference.py`: 6 at a time took 1.2x (fp32) and 1.6x (bf16) as long, at 1.7-1.8x
                the peak memory); raise it where an accelerator has memory to spare. The result does not depend on it.

        Returns:
            [`TDOSOutput`] with `semantic_map` `(batch, K_id, H, W)` (float32) and `anomaly_score` `(batch, H, W)`.
        """
        mode = inference_mode if inference_mode is not None else self.config.inference_mode
        method = anomaly_score if anomaly_score is not None else self.config.anomaly_score
        if mode not in INFERENCE_MODES:
            raise ValueError(f"inference_mode must be one of {INFERENCE_MODES}, got {mode!r}")
        if method not in ANOMALY_SCORES:
            raise ValueError(f"anomaly_score must be one of {ANOMALY_SCORES}, got {method!r}")
        if window_batch_size < 1:
            raise ValueError(f"window_batch_size must be >= 1, got {window_batch_size}")
        channels = self.config.clip_config.vision_config.num_channels
        if pixel_values.dim() != 4 or pixel_values.shape[1] != channels:
            raise ValueError(f"pixel_values must have shape (batch, {channels}, H, W), got {tuple(pixel_values.shape)}")
        prompt_embeddings = self.compute_text_embeddings()
        if mode == "whole":
            semantic_map = self._semantic_map_at_input_size(pixel_values, prompt_embeddings)
        else:
            semantic_map = self._slide_semantic_map(pixel_values, prompt_embeddings, window_batch_size)
        return TDOSOutput(
            semantic_map=semantic_map,
            anomaly_score=anomaly_score_from_semantic(semantic_map, method, self.config.ood_label_id),
        )

    def _semantic_map_at_input_size(self, pixel_values: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
        """Semantic map `(N, K_id, h, w)` (float32) of images `(N, 3, h, w)` of any size: padded to the input stride,
        run through `forward`, resized bilinearly to the padded size and cropped back."""
        height, width = pixel_values.shape[-2:]
        stride = self.config.input_stride  # the patch size (ViT) or 32 (RN50)
        padded_height = max(math.ceil(height / stride), 2) * stride
        padded_width = max(math.ceil(width / stride), 2) * stride
        padded = F.pad(pixel_values, (0, padded_width - width, 0, padded_height - height))
        semantic_map = self(padded, prompt_embeddings=prompt_embeddings, return_dict=True).semantic_map
        semantic_map = F.interpolate(
            semantic_map.float(), size=(padded_height, padded_width), mode="bilinear", align_corners=False
        )
        return semantic_map[..., :height, :width]

    def _slide_semantic_map(
        self, pixel_values: torch.Tensor, prompt_embeddings: torch.Tensor, window_batch_size: int
    ) -> torch.Tensor:
        """Overlap-averaged semantic map `(batch, K_id, H, W)` of sliding windows batched across images."""
        batch, _, height, width = pixel_values.shape
        crop, stride = self.config.crop_size, self.config.stride
        windows = [
            (top, left)
            for top in sliding_window_starts(height, crop, stride)
            for left in sliding_window_starts(width, crop, stride)
        ]
        crop_height, crop_width = min(crop, height), min(crop, width)
        jobs = [(image, top, left) for image in range(batch) for top, left in windows]
        semantic_map = pixel_values.new_zeros(batch, self.config.num_id_classes, height, width, dtype=torch.float32)
        counts = pixel_values.new_zeros(height, width, dtype=torch.float32)
        for top, left in windows:
            counts[top : top + crop_height, left : left + crop_width] += 1
        for start in range(0, len(jobs), window_batch_size):
            chunk = jobs[start : start + window_batch_size]
            crops = torch.stack(
                [pixel_values[i, :, top : top + crop_height, left : left + crop_width] for i, top, left in chunk]
            )
            window_maps = self._semantic_map_at_input_size(crops, prompt_embeddings)
            for (image, top, left), window_map in zip(chunk, window_maps):
                semantic_map[image, :, top : top + crop_height, left : left + crop_width] += window_map
        return semantic_map / counts

    # ------------------------------------------------------------------ losses
    def identity_targets(self, labels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Identity assignment: merged query `c` ↔ class `c`. Returns class targets `(B, K_id)` (`K_id` = no object
        where class `c` is absent) and binary target masks `(B, K_id, H, W)`."""
        num_classes = self.config.num_id_classes
        classes = torch.arange(num_classes, device=labels.device)
        masks = labels[:, None] == classes[None, :, None, None]
        present = masks.flatten(2).any(-1)
        targets = torch.where(present, classes, torch.full_like(classes, num_classes))
        return targets, masks

    def _num_positive_masks(self, present: torch.Tensor) -> torch.Tensor:
        """Positive masks in the batch, averaged over processes, at least 1."""
        count = present.sum().float()
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.all_reduce(count)
            count = count / torch.distributed.get_world_size()
        return count.clamp(min=1)

    def _prediction_losses(self, class_logits, mask_logits, targets, target_masks, num_masks) -> dict[str, torch.Tensor]:
        config = self.config
        weights = torch.ones(config.num_id_classes + 1, device=class_logits.device)
        weights[config.ood_label_id], weights[-1] = config.ood_class_weight, config.no_object_weight
        loss_cls = F.cross_entropy(class_logits.transpose(1, 2).float(), targets, weight=weights)
        present = targets < config.num_id_classes
        predicted = mask_logits[present][:, None].float()  # (N, 1, H', W')
        if predicted.shape[0] == 0:
            zero = mask_logits.sum() * 0.0
            return {"loss_cls": loss_cls * config.class_loss_weight, "loss_mask": zero, "loss_dice": zero}
        target = target_masks[present][:, None].float()  # (N, 1, H, W)
        with torch.no_grad():
            points = sample_uncertain_points(
                predicted, config.train_num_points, config.oversample_ratio, config.importance_sample_ratio
            )
            point_targets = sample_point(target, points, align_corners=False).squeeze(1)
        point_logits = sample_point(predicted, points, align_corners=False).squeeze(1)
        return {
            "loss_cls": loss_cls * config.class_loss_weight,
            "loss_mask": sigmoid_cross_entropy_loss(point_logits, point_targets, num_masks) * config.mask_loss_weight,
            "loss_dice": dice_loss(point_logits, point_targets, num_masks) * config.dice_loss_weight,
        }

    def compute_losses(
        self, merged, labels, score_map, text_embeddings, global_embedding, pixel_values
    ) -> dict[str, torch.Tensor]:
        """All weighted loss terms (METHOD §4.1): per-prediction CE/BCE/Dice with deep supervision, identity-head CE
        on the score map, textual and visual regularisers."""
        config = self.config
        labels = labels.long()
        targets, target_masks = self.identity_targets(labels)
        num_masks = self._num_positive_masks(targets < config.num_id_classes)
        losses = {}
        for index, (class_logits, mask_logits) in enumerate(merged):
            prefix = "" if index == len(merged) - 1 else f"d{index}."
            terms = self._prediction_losses(class_logits, mask_logits, targets, target_masks, num_masks)
            losses.update({prefix + name: value for name, value in terms.items()})

        identity_logits = reduce_score_map(score_map, config.ood_label_id).float() / config.score_map_temperature
        identity_logits = F.interpolate(identity_logits, size=labels.shape[-2:], mode="bilinear", align_corners=False)
        identity = F.cross_entropy(identity_logits, labels, ignore_index=IGNORE_INDEX, reduction="sum")
        losses["loss_identity"] = identity / labels.numel() * config.identity_loss_weight

        cosine = F.normalize(text_embeddings.float(), dim=-1) @ self.text_anchors.float().T  # (B, K, K)
        anchor_targets = torch.arange(config.num_queries, device=cosine.device).expand(cosine.shape[0], -1)
        losses["loss_textual"] = F.cross_entropy(cosine.transpose(1, 2), anchor_targets) * (
            config.textual_regularization_weight
        )
        losses["loss_visual"] = self._visual_regularization(global_embedding, pixel_values)
        return losses

    def _visual_regularization(self, global_embedding, pixel_values) -> torch.Tensor:
        """`w_mse * MSE(g, g0) + w_cos * mean(1 - cos(g, g0))`, `g0` from the frozen reference tower on the
        unaugmented image. With the image tower frozen it is exactly 0: the query-noise augmentation only changes
        the outputs of OOD tokens, never the class token, so `g == g0` (the release logged a term without gradient).
        The RN50 layer1 augmentation does change `g`, but through frozen weights only, so the term has no gradient
        there either and is reported as 0 too.
        """
        if not self.config.train_image_tower:
            return global_embedding.new_zeros((), dtype=torch.float32)
        with torch.no_grad():
            reference = self.reference_image_encoder(pixel_values).global_embedding.float()
        mse = F.mse_loss(global_embedding.float(), reference)
        cosine = 1 - F.cosine_similarity(global_embedding.float(), reference, dim=-1).mean()
        config = self.config
        return config.visual_regularization_mse_weight * mse + config.visual_regularization_cosine_weight * cosine

    # ------------------------------------------------------------------ optimisation
    def get_parameter_groups(self, learning_rate: float, weight_decay: float) -> list[dict]:
        """Optimizer parameter groups (METHOD §4.3): frozen parameters excluded; the image tower, when trained, at
        `image_tower_lr_multiplier` times the rate; norms, level embeddings and query position embeddings without
        weight decay."""
        no_decay_types = (nn.LayerNorm, nn.GroupNorm, nn.BatchNorm2d)
        no_decay = {
            id(parameter)
            for module in self.modules()
            if isinstance(module, no_decay_types)
            for parameter in module.parameters(recurse=False)
        }
        groups: dict[tuple[float, float], list[nn.Parameter]] = {}
        for name, parameter in self.named_parameters():
            if not parameter.requires_grad:
                continue
            lr = learning_rate
            if name.startswith("image_encoder."):
                lr = learning_rate * self.config.image_tower_lr_multiplier
            decay = weight_decay
            if id(parameter) in no_decay or "level_embed" in name or "query_position_embeddings" in name:
                decay = 0.0
            groups.setdefault((lr, decay), []).append(parameter)
        return [{"params": params, "lr": lr, "weight_decay": decay} for (lr, decay), params in groups.items()]

    # ------------------------------------------------------------------ creation from CLIP
    @classmethod
    def from_clip(
        cls,
        clip: str | os.PathLike | CLIPModel | CLIPResNetTowers = "openai/clip-vit-base-patch16",
        tokenizer: CLIPTokenizer | None = None,
        ood_bands: list[list[str]] | None = None,
        config: TDOSConfig | None = None,
        **overrides,
    ) -> TDOSForOODSegmentation:
        """
        Builds a TDOS model around CLIP weights: a Hub id or local folder of a transformers `CLIPModel` (with its
        tokenizer), or a `CLIPModel` instance plus `tokenizer`. Copies both towers (the image position grid resized
        bilinearly to `crop_size / patch_size`), tokenizes the class names and computes the frozen text anchors:
        `anchor_template` of every class, and the mean normalised embedding of each band of OOD words (`ood_bands`,
        default: the shipped WordNet bands, regrouped into `num_ood_prompts` equal consecutive bands).

        `overrides` are `TDOSConfig` arguments (or a full `config`; its `clip_config` is replaced by the CLIP's).

        CLIP RN50 (`backbone="clip-rn50"`, set automatically): pass the folder written by `tdos-convert-clip RN50.pt
        <folder> --bpe ...` (timm trunk in `image/`, `CLIPTextModelWithProjection` in `text/`, tokenizer) or a
        [`CLIPResNetTowers`] plus `tokenizer`; the attention-pool positional grid is resized to `crop_size / 32`.
        """
        if isinstance(clip, CLIPResNetTowers) or CLIPResNetTowers.is_folder(clip):
            clip, tokenizer, config = cls._resnet_clip_and_config(clip, tokenizer, config, overrides)
            model = cls(config)
            model.load_clip_resnet_weights(clip)
            model.set_text_prompts(tokenizer, ood_bands)
            return model
        if not isinstance(clip, CLIPModel):
            tokenizer = tokenizer or CLIPTokenizer.from_pretrained(clip)
            clip = CLIPModel.from_pretrained(clip)
        if tokenizer is None:
            raise ValueError("from_clip with a CLIPModel instance needs its tokenizer")
        clip_config = clip.config.to_dict()
        crop_size = overrides.get("crop_size", config.crop_size if config is not None else TDOSConfig.crop_size)
        clip_config["vision_config"]["image_size"] = crop_size
        if config is None:
            config = TDOSConfig(clip_config=clip_config, **overrides)
        else:
            config = TDOSConfig.from_dict({**config.to_dict(), **overrides, "clip_config": clip_config})
        model = cls(config)
        model.load_clip_weights(clip)
        model.set_text_prompts(tokenizer, ood_bands)
        return model

    @staticmethod
    def _resnet_clip_and_config(
        clip: str | os.PathLike | CLIPResNetTowers, tokenizer: CLIPTokenizer | None, config: TDOSConfig | None, overrides
    ) -> tuple[CLIPResNetTowers, CLIPTokenizer, TDOSConfig]:
        """Loads a CLIP ResNet folder (towers and tokenizer) and builds the `clip-rn50` config around its shapes."""
        if not isinstance(clip, CLIPResNetTowers):
            tokenizer = tokenizer or CLIPTokenizer.from_pretrained(clip)
            clip = CLIPResNetTowers.from_pretrained(clip)
        if tokenizer is None:
            raise ValueError("from_clip with CLIPResNetTowers needs its tokenizer")
        clip_config = {"projection_dim": clip.projection_dim, "text_config": clip.text_model.config.to_dict()}
        resnet = {"backbone": "clip-rn50", "resnet_layers": list(clip.layers), "resnet_width": clip.width}
        if config is None:
            config = TDOSConfig(clip_config=clip_config, **{**overrides, **resnet})
        else:
            config = TDOSConfig.from_dict({**config.to_dict(), **overrides, **resnet, "clip_config": clip_config})
        return clip, tokenizer, config

    @torch.no_grad()
    def load_clip_resnet_weights(self, clip: CLIPResNetTowers):
        """Copies a CLIP ResNet's trunk (attention-pool positional grid resized bilinearly to `crop_size / 32`) and
        its text tower and projection."""
        trunk_state = clip.image_trunk.state_dict()
        encoders = [self.image_encoder] + ([self.reference_image_encoder] if self.config.train_image_tower else [])
        target = encoders[0].trunk.head.feat_size
        key = "head.pos_embed"
        trunk_state[key] = resize_position_grid(trunk_state[key], clip.image_trunk.head.feat_size, target)
        for encoder in encoders:
            encoder.trunk.load_state_dict(trunk_state)
        self.text_encoder.text_model.load_state_dict(clip.text_model.text_model.state_dict())
        self.text_encoder.text_projection.load_state_dict(clip.text_model.text_projection.state_dict())
        self._text_cache = None

    @torch.no_grad()
    def load_clip_weights(self, clip: CLIPModel):
        """Copies CLIP's towers and projections; resizes the image position grid to the configured crop."""
        vision_state = clip.vision_model.state_dict()
        key = "embeddings.position_embedding.weight"
        positions = vision_state[key]
        side = math.isqrt(positions.shape[0] - 1)
        target = self.config.crop_size // self.config.clip_config.vision_config.patch_size
        if side != target:
            grid = positions[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
            grid = F.interpolate(grid.float(), size=(target, target), mode="bilinear", align_corners=False)
            vision_state[key] = torch.cat([positions[:1], grid.permute(0, 2, 3, 1).flatten(0, 2).to(positions.dtype)])
        vision_state.pop("embeddings.position_ids", None)
        encoders = [self.image_encoder] + ([self.reference_image_encoder] if self.config.train_image_tower else [])
        for encoder in encoders:
            result = encoder.vision_model.load_state_dict(vision_state, strict=False)
            if result.missing_keys or result.unexpected_keys:
                raise ValueError(
                    f"the CLIP vision tower does not fit TDOS's: missing {result.missing_keys}, "
                    f"unexpected {result.unexpected_keys}"
                )
            encoder.visual_projection.load_state_dict(clip.visual_projection.state_dict())
        self.text_encoder.text_model.load_state_dict(clip.text_model.state_dict())
        self.text_encoder.text_projection.load_state_dict(clip.text_projection.state_dict())
        self._text_cache = None

    @torch.no_grad()
    def set_text_prompts(self, tokenizer: CLIPTokenizer, ood_bands: list[list[str]] | None = None, batch_size: int = 256):
        """Tokenizes the class names and computes the frozen anchors (`text_anchors`, `(K, C)`)."""
        config = self.config
        if ood_bands is None:
            try:
                ood_bands = importlib.import_module("tdos.ood_prompts").load_ood_bands()
            except ModuleNotFoundError as error:
                raise ValueError("pass ood_bands: the default OOD word bands ship with the tdos package") from error
        words = [word for band in ood_bands for word in band]
        if len(words) < config.num_ood_prompts:
            raise ValueError(f"{len(words)} OOD words cannot fill {config.num_ood_prompts} bands")
        names = [config.id2label[index] for index in range(config.num_id_classes)]
        device = self.text_anchors.device

        def tokenize(texts: list[str], length: int) -> torch.Tensor:
            encoded = tokenizer(texts, padding="max_length", max_length=length, truncation=True, return_tensors="pt")
            return encoded["input_ids"].to(device)

        eos = tokenizer.eos_token_id
        self.prompt_learner.set_prompt_tokens(
            tokenize(names, config.class_name_length), tokenizer.bos_token_id, eos, tokenizer.pad_token_id
        )

        def encode(texts: list[str]) -> torch.Tensor:
            prompts = [config.anchor_template.format(text) for text in texts]
            chunks = [
                self.text_encoder.encode_input_ids(tokenize(prompts[i : i + batch_size], config.text_context_length), eos)
                for i in range(0, len(prompts), batch_size)
            ]
            return F.normalize(torch.cat(chunks).float(), dim=-1)

        class_anchors = encode(names)
        if config.num_ood_prompts:
            band_size = len(words) // config.num_ood_prompts
            word_embeddings = encode(words[: band_size * config.num_ood_prompts])
            band_anchors = word_embeddings.view(config.num_ood_prompts, band_size, -1).mean(1)  # not re-normalised
        else:  # no learnable OOD prompts (ablation): the anchors are the class prompts' only
            band_anchors = class_anchors[:0]
        self.text_anchors.copy_(torch.cat([class_anchors, band_anchors]).to(self.text_anchors.dtype))
        self._text_cache = None


__all__ = ["TDOSForOODSegmentation", "TDOSPreTrainedModel", "TDOSOutput"]
