"""Creating a TDOS model from CLIP weights: a transformers `CLIPModel` (Hub id, local folder or instance) or a CLIP
ResNet folder written by `tdos-convert-clip`. Copies both towers into the model (position grids resized to the
configured crop), tokenizes the class names into the prompt learner and computes the frozen text anchors of the
textual regulariser from the class names and the OOD word bands.

`TDOSForOODSegmentation.from_clip` is the user's entry point; its body is `build_from_clip` here, so the model file
holds only what the forward computation needs.
"""

from __future__ import annotations

import math
import os

import torch
import torch.nn.functional as F
from transformers import CLIPModel, CLIPTokenizer

from .clip_resnet_towers import CLIPResNetTowers
from .configuration_tdos import TDOSConfig
from .modeling_tdos_rn50 import resize_position_grid
from .text_cleaning import clean_texts


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


def build_from_clip(
    model_class,
    clip: str | os.PathLike | CLIPModel | CLIPResNetTowers,
    tokenizer: CLIPTokenizer | None = None,
    ood_bands: list[list[str]] | None = None,
    config: TDOSConfig | None = None,
    **overrides,
):
    """A `model_class` (a `TDOSForOODSegmentation`) around CLIP weights; see `TDOSForOODSegmentation.from_clip`."""
    if isinstance(clip, CLIPResNetTowers) or CLIPResNetTowers.is_folder(clip):
        clip, tokenizer, config = _resnet_clip_and_config(clip, tokenizer, config, overrides)
        model = model_class(config)
        load_clip_resnet_weights(model, clip)
        set_text_prompts(model, tokenizer, ood_bands)
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
    model = model_class(config)
    load_clip_weights(model, clip)
    set_text_prompts(model, tokenizer, ood_bands)
    return model


def _image_encoders(model) -> list:
    """The image tower and, when it is trained, its frozen reference copy: both start from the same CLIP weights."""
    return [model.image_encoder] + ([model.reference_image_encoder] if model.config.train_image_tower else [])


@torch.no_grad()
def load_clip_resnet_weights(model, clip: CLIPResNetTowers) -> None:
    """Copies a CLIP ResNet's trunk (attention-pool positional grid resized bilinearly to `crop_size / 32`) and its
    text tower and projection into `model`."""
    trunk_state = clip.image_trunk.state_dict()
    encoders = _image_encoders(model)
    target = encoders[0].trunk.head.feat_size
    key = "head.pos_embed"
    trunk_state[key] = resize_position_grid(trunk_state[key], clip.image_trunk.head.feat_size, target)
    for encoder in encoders:
        encoder.trunk.load_state_dict(trunk_state)
    model.text_encoder.text_model.load_state_dict(clip.text_model.text_model.state_dict())
    model.text_encoder.text_projection.load_state_dict(clip.text_model.text_projection.state_dict())
    model.reset_text_cache()


@torch.no_grad()
def load_clip_weights(model, clip: CLIPModel) -> None:
    """Copies CLIP's towers and projections into `model`; resizes the image position grid to the configured crop."""
    vision_state = clip.vision_model.state_dict()
    key = "embeddings.position_embedding.weight"
    positions = vision_state[key]
    side = math.isqrt(positions.shape[0] - 1)
    target = model.config.crop_size // model.config.clip_config.vision_config.patch_size
    if side != target:
        grid = positions[1:].reshape(1, side, side, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid.float(), size=(target, target), mode="bilinear", align_corners=False)
        vision_state[key] = torch.cat([positions[:1], grid.permute(0, 2, 3, 1).flatten(0, 2).to(positions.dtype)])
    vision_state.pop("embeddings.position_ids", None)
    for encoder in _image_encoders(model):
        result = encoder.vision_model.load_state_dict(vision_state, strict=False)
        if result.missing_keys or result.unexpected_keys:
            raise ValueError(
                f"the CLIP vision tower does not fit TDOS's: missing {result.missing_keys}, "
                f"unexpected {result.unexpected_keys}"
            )
        encoder.visual_projection.load_state_dict(clip.visual_projection.state_dict())
    model.text_encoder.text_model.load_state_dict(clip.text_model.state_dict())
    model.text_encoder.text_projection.load_state_dict(clip.text_projection.state_dict())
    model.reset_text_cache()


@torch.no_grad()
def set_text_prompts(
    model, tokenizer: CLIPTokenizer, ood_bands: list[list[str]] | None = None, batch_size: int = 256
) -> None:
    """Tokenizes the class names into the prompt learner and computes the frozen anchors (`text_anchors`, `(K, C)`):
    `anchor_template` of every class, and the mean normalised embedding of each of `num_ood_prompts` equal
    consecutive bands of the OOD words (`ood_bands`, default: the shipped WordNet bands)."""
    config = model.config
    if ood_bands is None:
        from .ood_prompts import load_ood_bands

        ood_bands = load_ood_bands()
    words = [word for band in ood_bands for word in band]
    if len(words) < config.num_ood_prompts:
        raise ValueError(f"{len(words)} OOD words cannot fill {config.num_ood_prompts} bands")
    names = [config.id2label[index] for index in range(config.num_id_classes)]
    device = model.text_anchors.device

    def tokenize(texts: list[str], length: int) -> torch.Tensor:
        encoded = tokenizer(
            clean_texts(texts), padding="max_length", max_length=length, truncation=True, return_tensors="pt"
        )
        return encoded["input_ids"].to(device)

    eos = tokenizer.eos_token_id
    model.prompt_learner.set_prompt_tokens(
        tokenize(names, config.class_name_length), tokenizer.bos_token_id, eos, tokenizer.pad_token_id
    )

    def encode(texts: list[str]) -> torch.Tensor:
        prompts = [config.anchor_template.format(text) for text in texts]
        chunks = [
            model.text_encoder.encode_input_ids(tokenize(prompts[i : i + batch_size], config.text_context_length), eos)
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
    model.text_anchors.copy_(torch.cat([class_anchors, band_anchors]).to(model.text_anchors.dtype))
    model.reset_text_cache()


__all__ = ["build_from_clip", "load_clip_resnet_weights", "load_clip_weights", "set_text_prompts"]
