"""Randomly initialised CLIP towers with a byte-level tokenizer, for tests, benchmarks and the offline demo.

Real CLIP weights and CLIP's BPE vocabulary cannot be downloaded everywhere. A byte-level vocabulary (the 256 byte
symbols of CLIP's byte encoder, each also in its end-of-word form, then the start and end tokens: 514 entries, no
merges) tokenizes any text with the real `CLIPTokenizer`, so a random CLIP built from a config such as the `tiny`
preset's goes through exactly the same code path as `openai/clip-vit-base-patch16`.
"""

from __future__ import annotations

import torch
from transformers import CLIPConfig, CLIPModel, CLIPTextModelWithProjection, CLIPTokenizer

from .clip_resnet_towers import CLIPResNetTowers
from .convert_clip_common import bytes_to_unicode
from .modeling_tdos_rn50 import create_clip_resnet_trunk


def byte_level_clip_tokenizer() -> CLIPTokenizer:
    """A `CLIPTokenizer` over the 514-entry byte-level vocabulary (ids 512/513 = start/end of text)."""
    symbols = list(bytes_to_unicode().values())  # CLIP's vocabulary order
    tokens = symbols + [symbol + "</w>" for symbol in symbols] + ["<|startoftext|>", "<|endoftext|>"]
    return CLIPTokenizer(vocab={token: index for index, token in enumerate(tokens)}, merges=[])


def _checked_config(clip_config: CLIPConfig | dict, tokenizer: CLIPTokenizer) -> CLIPConfig:
    config = clip_config if isinstance(clip_config, CLIPConfig) else CLIPConfig(**clip_config)
    if config.text_config.vocab_size < len(tokenizer):
        raise ValueError(
            f"text vocab_size {config.text_config.vocab_size} is smaller than the byte-level vocabulary "
            f"({len(tokenizer)} tokens)"
        )
    return config


def random_clip(clip_config: CLIPConfig | dict, seed: int = 0) -> tuple[CLIPModel, CLIPTokenizer]:
    """A randomly initialised `CLIPModel` (deterministic under `seed`) and the byte-level tokenizer."""
    tokenizer = byte_level_clip_tokenizer()
    config = _checked_config(clip_config, tokenizer)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = CLIPModel(config)
    return model.eval(), tokenizer


def random_clip_resnet(
    clip_config: CLIPConfig | dict, layers: list[int], width: int, image_size: int = 224, seed: int = 0
) -> tuple[CLIPResNetTowers, CLIPTokenizer]:
    """Randomly initialised CLIP ResNet towers (timm trunk with `layers` and `width`, attention pool made for
    `image_size`, text tower of `clip_config` projecting to its `projection_dim`; deterministic under `seed`) and the
    byte-level tokenizer."""
    tokenizer = byte_level_clip_tokenizer()
    config = _checked_config(clip_config, tokenizer)
    text_config = config.text_config
    text_config.projection_dim = config.projection_dim
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        trunk = create_clip_resnet_trunk(layers, width, config.projection_dim, image_size)
        text_model = CLIPTextModelWithProjection(text_config)
    towers = CLIPResNetTowers(trunk.eval(), text_model.eval(), list(layers), width, image_size)
    return towers, tokenizer
