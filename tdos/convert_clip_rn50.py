"""Convert OpenAI CLIP ResNet checkpoints (`RN50.pt`, ...) into the layout TDOS reads for `backbone="clip-rn50"`.

transformers has no CLIP ResNet, so the image tower becomes timm's `resnet50_clip` trunk (CLIP's ModifiedResNet
with its attention pool; keys mapped by timm's own OpenAI filter) and the text tower a transformers
`CLIPTextModelWithProjection` (same key mapping as the ViT converter). The output folder is
[`tdos.clip_resnet_towers.CLIPResNetTowers`]'s:

```
<output_dir>/image/config.json        {"architecture": "resnet50_clip", "layers", "width", "output_dim", "image_size"}
<output_dir>/image/model.safetensors  the timm trunk's state dict
<output_dir>/text/                    CLIPTextModelWithProjection (save_pretrained)
<output_dir>/tokenizer.json, ...      CLIPTokenizer (when --bpe is given)
```

and `TDOSForOODSegmentation.from_clip(<output_dir>)` builds a `clip-rn50` TDOS model from it. `tdos-convert-clip`
recognises ResNet checkpoints by their keys:

```bash
tdos-convert-clip RN50.pt clip-rn50-tdos --bpe bpe_simple_vocab_16e6.txt.gz
```
"""

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

import torch
from timm.models.byobnet import checkpoint_filter_fn
from transformers import CLIPTextConfig, CLIPTextModelWithProjection

from .configuration_tdos import RESNET_STRIDE
from .clip_resnet_towers import CLIPResNetTowers
from .convert_clip_common import (
    IGNORED_KEYS,
    CheckpointError,
    build_tokenizer,
    check_output_dir,
    require_keys,
    rename_weights,
    save_tokenizer,
    text_config_from_openai_state_dict,
    text_key_mapping,
    write_folder_atomically,
)
from .modeling_tdos_rn50 import create_clip_resnet_trunk


logger = logging.getLogger(__name__)

_STAGE_BLOCK_KEY = re.compile(r"^visual\.layer([1-4])\.(\d+)\.")


def resnet_architecture(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """
    The ModifiedResNet shape of an OpenAI CLIP ResNet state dict: `layers` (blocks per stage), `width` (stem output
    channels), `output_dim` (attention-pool projection) and `image_size` (32 x the positional grid side).

    Raises:
        `CheckpointError`: a key needed to infer the architecture is missing or a shape is inconsistent.
    """
    require_keys(
        state_dict,
        "visual.conv1.weight",
        "visual.conv3.weight",
        "visual.attnpool.positional_embedding",
        "visual.attnpool.c_proj.weight",
        "text_projection",
        architecture="ResNet",
    )
    blocks = [set() for _ in range(4)]
    for key in state_dict:
        if match := _STAGE_BLOCK_KEY.match(key):
            blocks[int(match.group(1)) - 1].add(int(match.group(2)))
    layers = [len(stage) for stage in blocks]
    if not all(layers):
        raise CheckpointError(f"Not an OpenAI CLIP ResNet: blocks per stage {layers}, expected 4 non-empty stages.")
    num_positions = state_dict["visual.attnpool.positional_embedding"].shape[0]
    grid_size = round((num_positions - 1) ** 0.5)
    if grid_size**2 + 1 != num_positions:
        raise CheckpointError(
            f"visual.attnpool.positional_embedding has {num_positions} rows; expected 1 + a square number."
        )
    output_dim = state_dict["visual.attnpool.c_proj.weight"].shape[0]
    if state_dict["text_projection"].shape[1] != output_dim:
        raise CheckpointError(
            f"visual.attnpool.c_proj projects to {output_dim} dims but text_projection to "
            f"{state_dict['text_projection'].shape[1]}; TDOS needs one embedding dimension."
        )
    return {
        "layers": layers,
        "width": state_dict["visual.conv3.weight"].shape[0],
        "output_dim": output_dim,
        "image_size": grid_size * RESNET_STRIDE,
    }


def _check_keys(expected, source, tower: str) -> None:
    missing, unknown = sorted(set(expected) - set(source)), sorted(set(source) - set(expected))
    if missing or unknown:
        raise CheckpointError(
            f"The state dict does not match an OpenAI CLIP ResNet {tower}: missing keys {missing}, unknown keys "
            f"{unknown}."
        )


def _image_trunk(state_dict: Mapping[str, torch.Tensor], architecture: dict) -> torch.nn.Module:
    trunk = create_clip_resnet_trunk(
        architecture["layers"], architecture["width"], architecture["output_dim"], architecture["image_size"]
    )
    visual = {
        key: value.float() if value.is_floating_point() else value
        for key, value in state_dict.items()
        if key.startswith("visual.")
    }
    trunk_state = checkpoint_filter_fn(visual, trunk)  # timm's OpenAI -> timm key mapping
    _check_keys(trunk.state_dict(), trunk_state, "image tower")
    trunk.load_state_dict(trunk_state)
    return trunk.eval()


def _text_model(state_dict: Mapping[str, torch.Tensor]) -> CLIPTextModelWithProjection:
    config = CLIPTextConfig(**text_config_from_openai_state_dict(state_dict))
    renames, splits = text_key_mapping(config.num_hidden_layers)
    source = {
        key: value
        for key, value in state_dict.items()
        if not key.startswith("visual.") and key not in IGNORED_KEYS and key != "logit_scale"
    }
    _check_keys(renames.keys() | splits.keys(), source, "text tower")
    text_state = rename_weights(source, renames, splits)
    # OpenAI stores the projection as a (width, dim) matrix applied as `x @ proj`; nn.Linear wants (dim, width).
    text_state["text_projection.weight"] = text_state["text_projection.weight"].t().contiguous()
    model = CLIPTextModelWithProjection(config)
    model.load_state_dict(text_state, strict=True)
    return model.eval()


def openai_resnet_state_dict_to_towers(state_dict: Mapping[str, torch.Tensor]) -> CLIPResNetTowers:
    """
    Map an OpenAI CLIP ResNet state dict (OpenAI's `clip.model.CLIP` / open_clip layout) onto a timm `resnet50_clip`
    trunk and a transformers `CLIPTextModelWithProjection`. Float16 tensors become float32; OpenAI's integer
    metadata and `logit_scale` are dropped.

    Raises:
        `CheckpointError`: keys are missing or left over (both are listed), or shapes are inconsistent.
    """
    architecture = resnet_architecture(state_dict)
    return CLIPResNetTowers(
        image_trunk=_image_trunk(state_dict, architecture),
        text_model=_text_model(state_dict),
        layers=architecture["layers"],
        width=architecture["width"],
        image_size=architecture["image_size"],
    )


def convert_resnet_state_dict(
    state_dict: Mapping[str, torch.Tensor],
    output_dir: str | os.PathLike,
    bpe_path: str | os.PathLike | None = None,
    overwrite: bool = False,
) -> CLIPResNetTowers:
    """
    Convert an OpenAI CLIP ResNet state dict into a CLIP ResNet folder (layout in the module docstring), written
    to a temporary folder and renamed into place. `tdos.convert_clip.convert_openai_clip` calls this for ResNet
    checkpoints.

    Args:
        state_dict (`Mapping[str, torch.Tensor]`): as read by `tdos.convert_clip.load_openai_checkpoint`.
        output_dir (`str` or `os.PathLike`): folder to write.
        bpe_path (`str` or `os.PathLike`, *optional*): CLIP's BPE file; without it no tokenizer is written.
        overwrite (`bool`, *optional*, defaults to `False`): replace a non-empty `output_dir`.

    Returns:
        `CLIPResNetTowers`: the converted towers, in eval mode.
    """
    output_dir = Path(output_dir).resolve()
    check_output_dir(output_dir, overwrite)
    towers = openai_resnet_state_dict_to_towers(state_dict)
    text = towers.text_model.config
    logger.info(
        "Inferred CLIP ResNet: image %d px, layers %s, width %d | text: width %d, %d layers, context %d, vocab %d | "
        "projection %d.",
        towers.image_size, towers.layers, towers.width, text.hidden_size, text.num_hidden_layers,
        text.max_position_embeddings, text.vocab_size, towers.projection_dim,
    )  # fmt: skip
    tokenizer = build_tokenizer(bpe_path, text, output_dir)

    def write(folder: Path) -> None:
        towers.save_pretrained(folder)
        if tokenizer is not None:
            save_tokenizer(tokenizer, folder)

    write_folder_atomically(output_dir, overwrite, write)
    return towers
