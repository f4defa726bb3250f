"""Convert OpenAI CLIP ViT checkpoints (`CLIP-ViT-B-16.pt`, ...) into a transformers `CLIPModel` folder.

ResNet checkpoints (`RN50.pt`, ...) are recognised and converted by `tdos.convert_clip_rn50` into a timm trunk plus a
transformers `CLIPTextModelWithProjection` (see there); the command line is the same.

OpenAI distributes CLIP as TorchScript archives; training code often stores plain state dicts saved with
`torch.save`. Both are read without executing pickled Python code: TorchScript archives with
`torch.jit.load(map_location="cpu")`, plain checkpoints with `torch.load(weights_only=True)`.

The architecture is inferred from the tensor shapes (any width, depth, patch size or resolution converts,
tiny random models included). The output folder holds the model (`save_pretrained`, safetensors), a
`CLIPImageProcessor` at the model's resolution and, when CLIP's BPE file is given (`--bpe`), a
`CLIPTokenizer` whose vocabulary is built exactly as OpenAI's `SimpleTokenizer` builds it.

Example:

```bash
tdos-convert-clip CLIP-ViT-B-16.pt clip-vit-b16-hf --bpe bpe_simple_vocab_16e6.txt.gz
```
"""

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD

from .convert_clip_common import (
    IGNORED_KEYS,
    CheckpointError,
    add_block_keys,
    build_tokenizer,
    check_output_dir,
    is_resnet_state_dict,
    load_openai_checkpoint,
    num_attention_heads,
    num_residual_blocks,
    rename_weights,
    require_keys,
    save_tokenizer,
    text_config_from_openai_state_dict,
    text_key_mapping,
    write_folder_atomically,
)


logger = logging.getLogger(__name__)


# --------------------------------------------------------------------------------------------------------
# Architecture and weights
# --------------------------------------------------------------------------------------------------------


def config_from_openai_state_dict(state_dict: Mapping[str, torch.Tensor]) -> CLIPConfig:
    """
    Infer a `CLIPConfig` from the tensor shapes of an OpenAI CLIP ViT state dict.

    Heads are `width // 64` in both towers (OpenAI's convention), the activation is QuickGELU and the layer norms
    use eps 1e-5; the text tower is described by [`text_config_from_openai_state_dict`].

    Raises:
        `CheckpointError`: for ResNet (RN50, ...) state dicts (see `tdos.convert_clip_rn50`), when a key needed to
        infer the architecture is missing or a shape is inconsistent.
    """
    if is_resnet_state_dict(state_dict):
        raise CheckpointError(
            "This is a ResNet (ModifiedResNet) CLIP state dict (it has visual.layer1 / visual.attnpool keys); convert "
            "it with tdos.convert_clip_rn50 (convert_openai_clip does so automatically)."
        )
    require_keys(
        state_dict,
        "visual.conv1.weight",
        "visual.positional_embedding",
        "visual.proj",
        "visual.transformer.resblocks.0.mlp.c_fc.weight",
    )
    text_config = text_config_from_openai_state_dict(state_dict)

    vision_width, num_channels, patch_size, _ = state_dict["visual.conv1.weight"].shape
    num_positions = state_dict["visual.positional_embedding"].shape[0]
    grid_size = round((num_positions - 1) ** 0.5)
    if grid_size**2 + 1 != num_positions:
        raise CheckpointError(
            f"visual.positional_embedding has {num_positions} rows; expected 1 + a square number of patches."
        )
    projection_dim = text_config["projection_dim"]
    if state_dict["visual.proj"].shape[1] != projection_dim:
        raise CheckpointError(
            f"visual.proj projects to {state_dict['visual.proj'].shape[1]} dims but text_projection to "
            f"{projection_dim}; a CLIPModel needs one projection dimension."
        )
    vision_config = {
        "hidden_size": vision_width,
        "intermediate_size": state_dict["visual.transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "projection_dim": projection_dim,
        "num_hidden_layers": num_residual_blocks(state_dict, "visual."),
        "num_attention_heads": num_attention_heads(vision_width, "vision"),
        "num_channels": num_channels,
        "image_size": patch_size * grid_size,
        "patch_size": patch_size,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }
    return CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection_dim)


def _key_mapping(config: CLIPConfig) -> tuple[dict[str, str], dict[str, str]]:
    """OpenAI -> `CLIPModel` key names of both towers: `(renames, splits)` as in [`text_key_mapping`]."""
    renames, splits = text_key_mapping(config.text_config.num_hidden_layers)
    renames.update(
        {
            "visual.conv1.weight": "vision_model.embeddings.patch_embedding.weight",
            "visual.class_embedding": "vision_model.embeddings.class_embedding",
            "visual.positional_embedding": "vision_model.embeddings.position_embedding.weight",
            "visual.proj": "visual_projection.weight",
            "logit_scale": "logit_scale",
        }
    )
    for param in ("weight", "bias"):
        renames[f"visual.ln_pre.{param}"] = f"vision_model.pre_layrnorm.{param}"
        renames[f"visual.ln_post.{param}"] = f"vision_model.post_layernorm.{param}"
    vision_layers = config.vision_config.num_hidden_layers
    add_block_keys(renames, splits, "visual.transformer.resblocks", "vision_model.encoder.layers", vision_layers)
    return renames, splits


def openai_state_dict_to_hf(state_dict: Mapping[str, torch.Tensor]) -> tuple[CLIPConfig, dict[str, torch.Tensor]]:
    """
    Map an OpenAI CLIP ViT state dict onto transformers' `CLIPModel` layout.

    Args:
        state_dict (`Mapping[str, torch.Tensor]`):
            Tensors named as in OpenAI's `clip.model.CLIP` (also open_clip's layout for these models). Float16
            tensors are converted to float32; the non-weight entries in `IGNORED_KEYS` are dropped.

    Returns:
        `tuple[CLIPConfig, dict[str, torch.Tensor]]`: the inferred configuration and the state dict for
        `CLIPModel(config).load_state_dict(...)`.

    Raises:
        `CheckpointError`: for ResNet (RN50, ...) state dicts, or when keys are missing or left over (both are listed).
    """
    config = config_from_openai_state_dict(state_dict)
    renames, splits = _key_mapping(config)
    source = {key: value for key, value in state_dict.items() if key not in IGNORED_KEYS}
    expected = renames.keys() | splits.keys()
    missing = sorted(expected - source.keys())
    unknown = sorted(source.keys() - expected)
    if missing or unknown:
        raise CheckpointError(
            f"The state dict does not match an OpenAI CLIP ViT: missing keys {missing}, unknown keys {unknown}."
        )

    hf_state_dict = rename_weights(source, renames, splits)
    # OpenAI stores the projections as (width, dim) matrices applied as `x @ proj`; nn.Linear wants (dim, width).
    for key in ("visual_projection.weight", "text_projection.weight"):
        hf_state_dict[key] = hf_state_dict[key].t().contiguous()
    hf_state_dict["logit_scale"] = hf_state_dict["logit_scale"].reshape(())
    return config, hf_state_dict


# --------------------------------------------------------------------------------------------------------
# Image processor
# --------------------------------------------------------------------------------------------------------


def image_processor_for(config: CLIPConfig) -> CLIPImageProcessor:
    """A `CLIPImageProcessor` with CLIP's mean/std that resizes and crops to the model's resolution."""
    resolution = config.vision_config.image_size
    return CLIPImageProcessor(
        size={"shortest_edge": resolution},
        crop_size={"height": resolution, "width": resolution},
        image_mean=OPENAI_CLIP_MEAN,
        image_std=OPENAI_CLIP_STD,
    )


# --------------------------------------------------------------------------------------------------------
# Conversion
# --------------------------------------------------------------------------------------------------------


def convert_openai_clip(
    checkpoint_path: str | os.PathLike,
    output_dir: str | os.PathLike,
    bpe_path: str | os.PathLike | None = None,
    overwrite: bool = False,
):
    """
    Convert an OpenAI CLIP ViT checkpoint into a transformers `CLIPModel` folder; ResNet checkpoints (`RN50.pt`)
    are converted by `tdos.convert_clip_rn50.convert_resnet_state_dict` into a CLIP ResNet folder instead.

    The folder is built in a temporary folder next to `output_dir` and renamed into place, so an interrupted
    conversion never leaves a half-written model.

    Args:
        checkpoint_path (`str` or `os.PathLike`):
            OpenAI TorchScript archive (e.g. `CLIP-ViT-B-16.pt`) or a `torch.save`'d state dict.
        output_dir (`str` or `os.PathLike`):
            Folder to write (model weights as safetensors, config, image processor, tokenizer).
        bpe_path (`str` or `os.PathLike`, *optional*):
            CLIP's `bpe_simple_vocab_16e6.txt.gz`. Without it no tokenizer is written (a warning says so).
        overwrite (`bool`, *optional*, defaults to `False`):
            Replace a non-empty `output_dir`.

    Returns:
        `CLIPModel` (ViT) or `tdos.clip_resnet_towers.CLIPResNetTowers` (ResNet): the converted model, in eval mode.
    """
    output_dir = Path(output_dir).resolve()
    check_output_dir(output_dir, overwrite)

    state_dict = load_openai_checkpoint(checkpoint_path)
    if is_resnet_state_dict(state_dict):
        from .convert_clip_rn50 import convert_resnet_state_dict  # needs timm (the rn50 extra)

        try:
            return convert_resnet_state_dict(state_dict, output_dir, bpe_path=bpe_path, overwrite=overwrite)
        except CheckpointError as error:
            raise CheckpointError(f"Cannot convert {checkpoint_path}: {error}") from error
    try:
        config, hf_state_dict = openai_state_dict_to_hf(state_dict)
    except CheckpointError as error:
        raise CheckpointError(f"Cannot convert {checkpoint_path}: {error}") from error
    vision, text = config.vision_config, config.text_config
    logger.info(
        "Inferred CLIP ViT: image %d px, patch %d, width %d, %d layers, %d heads | text: width %d, %d layers, "
        "%d heads, context %d, vocab %d | projection %d.",
        vision.image_size, vision.patch_size, vision.hidden_size, vision.num_hidden_layers,
        vision.num_attention_heads, text.hidden_size, text.num_hidden_layers, text.num_attention_heads,
        text.max_position_embeddings, text.vocab_size, config.projection_dim,
    )  # fmt: skip
    model = CLIPModel(config)
    model.load_state_dict(hf_state_dict, strict=True)
    model.eval()

    tokenizer = build_tokenizer(bpe_path, text, output_dir)

    def write(folder: Path) -> None:
        model.save_pretrained(folder)
        image_processor_for(config).save_pretrained(folder)
        if tokenizer is not None:
            save_tokenizer(tokenizer, folder)

    write_folder_atomically(output_dir, overwrite, write)
    return model


def main(argv: list[str] | None = None) -> None:
    """Command line entry point `tdos-convert-clip`."""
    parser = argparse.ArgumentParser(
        prog="tdos-convert-clip",
        description=(
            "Convert an OpenAI CLIP checkpoint (.pt) into a transformers CLIPModel folder (ViT) or a CLIP ResNet folder "
            "(RN50: timm trunk in image/, CLIPTextModelWithProjection in text/) that TDOSForOODSegmentation.from_clip "
            "reads."
        ),
    )
    parser.add_argument("checkpoint", help="OpenAI CLIP .pt (TorchScript archive or torch.save'd state dict).")
    parser.add_argument("output_dir", help="Folder to write the transformers model to.")
    parser.add_argument(
        "--bpe",
        default=None,
        help="CLIP's bpe_simple_vocab_16e6.txt.gz (shipped with open_clip); without it no tokenizer is written.",
    )
    parser.add_argument("--overwrite", action="store_true", help="Replace a non-empty output folder.")
    args = parser.parse_args(argv)

    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    convert_openai_clip(args.checkpoint, args.output_dir, bpe_path=args.bpe, overwrite=args.overwrite)


if __name__ == "__main__":
    main()
