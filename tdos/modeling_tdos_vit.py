"""The CLIP ViT image tower of TDOS: multi-scale taps, dense and global embeddings, OOD semantic augmentation of the
last block, and the simple feature pyramid on its taps."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import CLIPVisionModel
from transformers.utils import ModelOutput

from .configuration_tdos import TDOSConfig
from .modeling_tdos_position import is_eager_inference


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

    def forward(
        self, feature_maps: tuple[torch.Tensor, ...], finest_projection: nn.Conv2d | None = None
    ) -> list[torch.Tensor]:
        """The four maps, high to low resolution. `finest_projection`: a bias-free 1x1 convolution the caller applies
        to the finest map next (the pixel decoder's lateral convolution); when given, the finest map is returned
        projected by it. At inference (no gradients, no tracing) the projection is folded into fpn1's last
        transposed convolution, both being linear: one transposed convolution straight to the projection's channels
        replaces a full-width one and a 1x1 convolution on the largest map; and the transposed convolutions run as
        matrix products (`upsampling_convolution`, channels-last maps out). Both equal the modules up to float
        rounding."""
        first, second, third, fourth = feature_maps
        if not is_eager_inference():
            finest = self.fpn1(first)
            if finest_projection is not None:
                finest = finest_projection(finest)
            return [finest, self.fpn2(second), third, self.fpn4(fourth)]
        upsampling, norm, activation, last = self.fpn1
        finest = activation(norm(upsampling_convolution(first, upsampling.weight, upsampling.bias)))
        weights = (last.weight, last.bias) if finest_projection is None else fold_projection(last, finest_projection)
        finest = upsampling_convolution(finest, *weights)
        return [finest, upsampling_convolution(second, self.fpn2.weight, self.fpn2.bias), third, self.fpn4(fourth)]


def upsampling_convolution(features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """`F.conv_transpose2d(features, weight, bias, stride=kernel size)` (the pyramid's: no padding, no overlap) as one
    matrix product: each input pixel's channels times the weight laid out `(in, kernel rows, kernel columns, out)`
    give its output block, and the blocks are interleaved into the output grid. The result is channels-last (its
    channels innermost, as the products come out); equal to the transposed convolution up to float rounding, and
    faster on the CPU than oneDNN's transposed convolution at the pyramid's shapes (README, "Sliding-window cost")."""
    batch, channels, height, width = features.shape
    out_channels, rows, columns = weight.shape[1:]
    pixels = features.permute(0, 2, 3, 1).reshape(-1, channels)  # a view when `features` is channels-last
    matrix = weight.permute(0, 2, 3, 1).reshape(channels, -1)
    blocks = torch.addmm(bias.repeat(rows * columns), pixels, matrix)
    blocks = blocks.view(batch, height, width, rows, columns, out_channels).permute(0, 1, 3, 2, 4, 5)
    return blocks.reshape(batch, height * rows, width * columns, out_channels).permute(0, 3, 1, 2)


def fold_projection(transposed: nn.ConvTranspose2d, projection: nn.Conv2d) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of the transposed convolution equal to `projection(transposed(x))`, for a bias-free 1x1
    `projection` and a `transposed` convolution without padding; folded in float32 (or the weights' wider dtype)
    outside autocast, cast back to the weights' dtype."""
    dtype = torch.promote_types(transposed.weight.dtype, torch.float32)
    with torch.autocast(transposed.weight.device.type, enabled=False):
        matrix = projection.weight.flatten(1).to(dtype)  # (out, mid)
        weight = torch.einsum("imab,om->ioab", transposed.weight.to(dtype), matrix)
        bias = matrix @ transposed.bias.to(dtype)
    return weight.to(transposed.weight.dtype), bias.to(transposed.bias.dtype)



__all__ = ["TDOSImageEncoder", "TDOSImageEncoderOutput", "TDOSSimpleFeaturePyramid", "upsampling_convolution"]
