"""The CLIP RN50 image tower of TDOS (`backbone="clip-rn50"`, docs/method.md §3).

transformers has no CLIP ResNet: the trunk is timm's `resnet50_clip` (CLIP's ModifiedResNet with its attention
pool), built with `pretrained=False` and filled from converted OpenAI weights. TDOS adds the v-v attention-pool
embeddings, the layer1 OOD augmentation and an FPN neck that receives the score map concatenated to layer4.

Imports only torch, transformers, `.configuration_tdos` and (optionally) timm, so saved models load with
`trust_remote_code=True` without the `tdos` package; ViT models load without timm.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers.utils import ModelOutput

from .configuration_tdos import TDOSConfig


try:
    import timm
    from timm.models.byobnet import ByoBlockCfg
except ImportError:  # only the clip-rn50 backbone needs timm
    timm = None

# ModifiedResNet stage layout at base width 64 (timm's `resnet50_clip` blocks): output channels and strides.
RESNET_STAGE_CHANNELS = (256, 512, 1024, 2048)
RESNET_STAGE_STRIDES = (1, 2, 2, 2)
# Epsilon of the augmentation's standard deviations (the release's AdaIN value).
STYLE_EPSILON = 1e-5


def create_clip_resnet_trunk(layers: list[int], width: int, output_dim: int, image_size: int) -> nn.Module:
    """
    timm's `resnet50_clip` (random weights) with `layers` bottleneck blocks per stage and base `width`.

    Args:
        layers (`list[int]`): blocks of the four stages (`[3, 4, 6, 3]` for RN50).
        width (`int`): base width; the stem ends with `width` channels, stage `i` outputs `4 * 2**i * width`.
        output_dim (`int`): output of the attention pool's projection (CLIP's embedding size).
        image_size (`int`): resolution the attention-pool positional grid is made for (`image_size / 32` per side).
    """
    if timm is None:
        raise ImportError("the clip-rn50 backbone needs timm (pip install 'tdos[rn50]')")
    blocks = tuple(
        ByoBlockCfg(type="bottle", d=depth, c=channels, s=stride, br=0.25)
        for depth, channels, stride in zip(layers, RESNET_STAGE_CHANNELS, RESNET_STAGE_STRIDES)
    )
    return timm.create_model(
        "resnet50_clip",
        pretrained=False,
        blocks=blocks,
        width_factor=width / 64,
        img_size=image_size,
        num_classes=output_dim,
    )


def resnet_stage_channels(width: int) -> list[int]:
    """Output channels of layer1..4 for base `width`."""
    return [channels * width // 64 for channels in RESNET_STAGE_CHANNELS]


def resize_position_grid(positions: torch.Tensor, source: tuple[int, int], target: tuple[int, int]) -> torch.Tensor:
    """Bilinearly resizes a `(1 + h*w, D)` table (one prefix row, then an `h x w` grid) to a `target` grid of any
    aspect ratio (align_corners False); the prefix row is kept."""
    if tuple(source) == tuple(target):
        return positions
    grid = positions[1:].reshape(1, *source, -1).permute(0, 3, 1, 2)
    grid = F.interpolate(grid.float(), size=target, mode="bilinear", align_corners=False).to(positions.dtype)
    return torch.cat([positions[:1], grid.flatten(2)[0].t()])


def masked_mean_std(features: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample, per-channel mean and standard deviation of `features` `(B, C, H, W)` over `mask` `(B, 1, H, W)`.

    Only masked pixels enter the variance. (The release summed `(x * mask - mu)^2` over all pixels, so every
    masked-out pixel added `mu^2` and the deviation was inflated; docs/method.md §3.)"""
    count = mask.sum((2, 3), keepdim=True).clamp(min=1)
    mean = (features * mask).sum((2, 3), keepdim=True) / count
    variance = ((features - mean) ** 2 * mask).sum((2, 3), keepdim=True) / count
    return mean, (variance + STYLE_EPSILON).sqrt()


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor) -> torch.Tensor:
    """Adaptive instance normalisation: `content` normalised with its own per-channel image statistics (unbiased
    std + eps, as released), then given the style statistics."""
    mean = content.mean((2, 3), keepdim=True)
    std = content.std((2, 3), keepdim=True) + STYLE_EPSILON
    return (content - mean) / std * style_std + style_mean


@dataclass
class TDOSResNetImageEncoderOutput(ModelOutput):
    """
    Args:
        feature_maps (`tuple[torch.FloatTensor]`):
            layer1..layer4 of the ResNet trunk, `(batch, 4 * 2**i * width, H / 2**(i + 2), W / 2**(i + 2))`.
        global_embedding (`torch.FloatTensor` of shape `(batch, 1, projection_dim)`):
            v-v attention-pool output of the mean token `g`.
        dense_embeddings (`torch.FloatTensor` of shape `(batch, projection_dim, H / 32, W / 32)`):
            v-v attention-pool outputs of the spatial tokens `V`.
    """

    feature_maps: tuple[torch.FloatTensor, ...] | None = None
    global_embedding: torch.FloatTensor | None = None
    dense_embeddings: torch.FloatTensor | None = None


class TDOSResNetImageEncoder(nn.Module):
    """CLIP ModifiedResNet (timm `resnet50_clip`) with layer1..4 taps, v-v attention-pool embeddings and the layer1
    OOD semantic augmentation."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        self.config = config
        self.trunk = create_clip_resnet_trunk(
            config.resnet_layers, config.resnet_width, config.projection_dim, config.crop_size
        )

    def attention_pool(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """CLIP's attention pool with q, k and v all from `v_proj` (`softmax(v v^T / sqrt(d)) v`, then `c_proj`), as
        in the release. Tokens are the spatial mean and the `h x w` map plus the positional table bilinearly resized
        to `h x w` (non-square maps included). Returns `g` `(B, 1, C)` and `V` `(B, C, h, w)`."""
        head = self.trunk.head
        batch, _, height, width = features.shape
        tokens = features.flatten(2).transpose(1, 2)
        tokens = torch.cat([tokens.mean(1, keepdim=True), tokens], 1)
        tokens = tokens + resize_position_grid(head.pos_embed, head.feat_size, (height, width)).to(tokens.dtype)
        values = head.v(tokens).view(batch, -1, head.num_heads, head.head_dim).transpose(1, 2)
        attended = F.scaled_dot_product_attention(values, values, values, scale=head.scale)
        embeddings = head.proj(attended.transpose(1, 2).reshape(batch, -1, head.embed_dim))
        return embeddings[:, :1], embeddings[:, 1:].transpose(1, 2).reshape(batch, -1, height, width)

    def augment_layer1(self, features: torch.Tensor, ood_mask: torch.Tensor) -> torch.Tensor:
        """docs/method.md §3 on layer1 `(B, C, h, w)`: noise `eps * noise_scale * sigma_n` on in-distribution pixels;
        on OOD pixels (nearest-resized `ood_mask`), with probability `resnet_style_probability`, a mix of
        `resnet_style_mix` of the features AdaIN-stylised toward the in-distribution statistics `mu_n, sigma_n`
        (ignore pixels count as in-distribution). Samples without in-distribution pixels get no style mix."""
        config = self.config
        ood = F.interpolate(ood_mask[:, None].float(), size=features.shape[-2:], mode="nearest").to(features.dtype)
        normal = 1 - ood
        mean, std = masked_mean_std(features, normal)
        noisy = features + normal * torch.randn_like(features) * (config.resnet_noise_scale * std)
        if not bool(torch.rand(()) < config.resnet_style_probability):
            return noisy
        mix = config.resnet_style_mix * normal.flatten(1).amax(1)[:, None, None, None]  # 0 without ID pixels
        stylised = mix * adain(noisy, mean, std) + (1 - mix) * noisy
        return normal * noisy + ood * stylised

    def forward(self, pixel_values: torch.Tensor, ood_mask: torch.Tensor | None = None) -> TDOSResNetImageEncoderOutput:
        """
        Args:
            pixel_values: `(batch, 3, H, W)`, H and W multiples of 32.
            ood_mask: optional `(batch, H, W)` mask of OOD pixels; when given, layer1 is augmented.
        """
        trunk = self.trunk
        hidden_states = trunk.stem(pixel_values.to(trunk.stem.conv1.conv.weight.dtype))
        feature_maps = []
        for index, stage in enumerate(trunk.stages):
            hidden_states = stage(hidden_states)
            if index == 0 and ood_mask is not None:
                hidden_states = self.augment_layer1(hidden_states, ood_mask)
            feature_maps.append(hidden_states)
        global_embedding, dense_embeddings = self.attention_pool(hidden_states)
        return TDOSResNetImageEncoderOutput(
            feature_maps=tuple(feature_maps), global_embedding=global_embedding, dense_embeddings=dense_embeddings
        )


class TDOSResNetFeaturePyramid(nn.Module):
    """mmseg-style FPN neck (1x1 laterals, nearest top-down sum, 3x3 outputs; no norm or activation) on layer1..3 and
    layer4 concatenated with the `K`-channel score map: four maps of `resnet_neck_hidden_size` channels, strides
    4, 8, 16, 32 (trainable)."""

    def __init__(self, config: TDOSConfig):
        super().__init__()
        in_channels = resnet_stage_channels(config.resnet_width)
        in_channels[-1] += config.num_queries
        width = config.resnet_neck_hidden_size
        self.lateral_convolutions = nn.ModuleList(nn.Conv2d(channels, width, kernel_size=1) for channels in in_channels)
        self.output_convolutions = nn.ModuleList(
            nn.Conv2d(width, width, kernel_size=3, padding=1) for _ in in_channels
        )

    def forward(self, feature_maps: tuple[torch.Tensor, ...], score_map: torch.Tensor) -> list[torch.Tensor]:
        """`feature_maps`: layer1..4; `score_map` `(B, K, h, w)` on layer4's grid."""
        inputs = [*feature_maps[:-1], torch.cat([feature_maps[-1], score_map.to(feature_maps[-1].dtype)], 1)]
        laterals = [convolution(x) for convolution, x in zip(self.lateral_convolutions, inputs)]
        for index in range(len(laterals) - 1, 0, -1):
            upsampled = F.interpolate(laterals[index], size=laterals[index - 1].shape[-2:], mode="nearest")
            laterals[index - 1] = laterals[index - 1] + upsampled
        return [convolution(x) for convolution, x in zip(self.output_convolutions, laterals)]


__all__ = [
    "TDOSResNetFeaturePyramid",
    "TDOSResNetImageEncoder",
    "create_clip_resnet_trunk",
]
