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
import gzip
import logging
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Mapping
from pathlib import Path

import torch
from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel, CLIPTokenizer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD


logger = logging.getLogger(__name__)

# OpenAI CLIP fixes the attention head width; the head count is not visible in the tensor shapes.
HEAD_WIDTH = 64
# Non-weight entries some archives carry: OpenAI's integer metadata and open_clip's causal-mask buffer.
IGNORED_KEYS = ("input_resolution", "context_length", "vocab_size", "attn_mask")
# Merges kept by OpenAI's SimpleTokenizer: lines 1 .. 49152 - 256 - 2 of the BPE file (line 0 is a header).
NUM_BPE_MERGES = 49152 - 256 - 2
SOT_TOKEN = "<|startoftext|>"
EOT_TOKEN = "<|endoftext|>"

_RESBLOCK_KEY = re.compile(r"^(visual\.)?transformer\.resblocks\.(\d+)\.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted: refused pickle, unsupported layout, unknown or missing keys."""


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


def _is_torchscript_archive(path: Path) -> bool:
    """Whether `path` is a TorchScript zip archive (it has `code/` or `constants.pkl` members)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        return any("/code/" in name or name.endswith("/constants.pkl") for name in archive.namelist())


def load_openai_checkpoint(checkpoint_path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """
    Read the state dict of an OpenAI CLIP checkpoint without executing pickled Python code.

    Args:
        checkpoint_path (`str` or `os.PathLike`):
            A TorchScript archive as distributed by OpenAI, or a state dict saved with `torch.save`.

    Returns:
        `dict[str, torch.Tensor]`: the tensors, on the CPU, in OpenAI's key layout.

    Raises:
        `FileNotFoundError`: the file does not exist.
        `CheckpointError`: the pickle needs arbitrary Python objects, or it does not hold a state dict.
    """
    path = Path(checkpoint_path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint {path} does not exist or is not a file.")
    if _is_torchscript_archive(path):
        logger.info("Loading %s as a TorchScript archive (torch.jit.load).", path)
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())

    logger.info("Loading %s as a plain checkpoint (torch.load, weights_only=True).", path)
    try:
        state_dict = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as error:
        raise CheckpointError(
            f"Refused to load {path}: its pickle needs Python objects other than tensors and plain containers, "
            "and unpickling those could execute arbitrary code. Expected a TorchScript archive or a state dict "
            f"(name -> tensor) saved with torch.save. Loader said: {error}"
        ) from error
    if not isinstance(state_dict, Mapping) or not all(
        isinstance(key, str) and isinstance(value, torch.Tensor) for key, value in state_dict.items()
    ):
        raise CheckpointError(
            f"{path} does not hold a state dict: expected a mapping from parameter names to tensors, "
            f"got {type(state_dict).__name__}."
        )
    return dict(state_dict)


# --------------------------------------------------------------------------------------------------------
# Architecture and weights
# --------------------------------------------------------------------------------------------------------


def _num_layers(state_dict: Mapping[str, torch.Tensor], tower: str) -> int:
    """Number of residual blocks of a tower (`"visual."` for the image tower, `""` for the text tower)."""
    indices = [
        int(match.group(2))
        for key in state_dict
        if (match := _RESBLOCK_KEY.match(key)) and (match.group(1) or "") == tower
    ]
    return max(indices, default=-1) + 1


def _num_heads(width: int, tower: str) -> int:
    if width % HEAD_WIDTH != 0:
        raise CheckpointError(
            f"The {tower} width {width} is not a multiple of {HEAD_WIDTH}: OpenAI CLIP uses heads of width "
            f"{HEAD_WIDTH}, so the number of attention heads cannot be inferred."
        )
    return width // HEAD_WIDTH


def _require(state_dict: Mapping[str, torch.Tensor], *keys: str, architecture: str = "ViT") -> None:
    missing = [key for key in keys if key not in state_dict]
    if missing:
        raise CheckpointError(f"Not an OpenAI CLIP {architecture} state dict: missing keys {missing}.")


def is_resnet_state_dict(state_dict: Mapping[str, torch.Tensor]) -> bool:
    """Whether the state dict is an OpenAI CLIP ResNet (ModifiedResNet: `visual.layer1.*` / `visual.attnpool.*`)."""
    return any(key.startswith(("visual.layer1.", "visual.attnpool.")) for key in state_dict)


def text_config_from_openai_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict:
    """
    The `CLIPTextConfig` arguments of the text tower of an OpenAI CLIP state dict (ViT or ResNet), from its shapes.

    Heads are `width // 64`, the activation is QuickGELU and the layer norms use eps 1e-5. `eos_token_id` is the
    last vocabulary id (OpenAI's `<|endoftext|>`), so pooling picks the same token as OpenAI's `argmax` over ids.
    """
    _require(
        state_dict,
        "token_embedding.weight",
        "positional_embedding",
        "ln_final.weight",
        "text_projection",
        "transformer.resblocks.0.mlp.c_fc.weight",
        architecture="text tower",
    )
    text_width = state_dict["ln_final.weight"].shape[0]
    vocab_size = state_dict["token_embedding.weight"].shape[0]
    return {
        "vocab_size": vocab_size,
        "hidden_size": text_width,
        "intermediate_size": state_dict["transformer.resblocks.0.mlp.c_fc.weight"].shape[0],
        "projection_dim": state_dict["text_projection"].shape[1],
        "num_hidden_layers": _num_layers(state_dict, ""),
        "num_attention_heads": _num_heads(text_width, "text"),
        "max_position_embeddings": state_dict["positional_embedding"].shape[0],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }


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
    _require(
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
        "num_hidden_layers": _num_layers(state_dict, "visual."),
        "num_attention_heads": _num_heads(vision_width, "vision"),
        "num_channels": num_channels,
        "image_size": patch_size * grid_size,
        "patch_size": patch_size,
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
    }
    return CLIPConfig(text_config=text_config, vision_config=vision_config, projection_dim=projection_dim)


def _add_block_keys(
    renames: dict[str, str], splits: dict[str, str], old_blocks: str, new_layers: str, num_layers: int
) -> None:
    """Adds the key names of `num_layers` residual attention blocks (`old_blocks.i` -> `new_layers.i`)."""
    for index in range(num_layers):
        old, new = f"{old_blocks}.{index}", f"{new_layers}.{index}"
        for param in ("weight", "bias"):
            splits[f"{old}.attn.in_proj_{param}"] = f"{new}.self_attn.{{}}_proj.{param}"
            for old_module, new_module in (
                ("attn.out_proj", "self_attn.out_proj"),
                ("ln_1", "layer_norm1"),
                ("ln_2", "layer_norm2"),
                ("mlp.c_fc", "mlp.fc1"),
                ("mlp.c_proj", "mlp.fc2"),
            ):
                renames[f"{old}.{old_module}.{param}"] = f"{new}.{new_module}.{param}"


def text_key_mapping(num_layers: int) -> tuple[dict[str, str], dict[str, str]]:
    """
    OpenAI -> transformers key names of the text tower and its projection (`CLIPModel` and
    `CLIPTextModelWithProjection` share them).

    Returns:
        `(renames, splits)`: `renames` maps each OpenAI key to its transformers key; `splits` maps each fused
        `attn.in_proj_{weight,bias}` to a key template whose `{}` is filled with `q`, `k` and `v`.
    """
    renames = {
        "token_embedding.weight": "text_model.embeddings.token_embedding.weight",
        "positional_embedding": "text_model.embeddings.position_embedding.weight",
        "text_projection": "text_projection.weight",
    }
    for param in ("weight", "bias"):
        renames[f"ln_final.{param}"] = f"text_model.final_layer_norm.{param}"
    splits = {}
    _add_block_keys(renames, splits, "transformer.resblocks", "text_model.encoder.layers", num_layers)
    return renames, splits


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
    _add_block_keys(renames, splits, "visual.transformer.resblocks", "vision_model.encoder.layers", vision_layers)
    return renames, splits


def rename_weights(
    source: Mapping[str, torch.Tensor], renames: Mapping[str, str], splits: Mapping[str, str]
) -> dict[str, torch.Tensor]:
    """Applies `(renames, splits)` to `source` (as float32); fused attention projections are split in thirds."""
    renamed = {new: source[old].float() for old, new in renames.items()}
    for old, template in splits.items():
        for name, chunk in zip("qkv", source[old].float().chunk(3, dim=0)):
            renamed[template.format(name)] = chunk.contiguous()
    return renamed


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
# Tokenizer and image processor
# --------------------------------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """OpenAI's reversible byte -> printable unicode character table (the first 256 vocabulary entries)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("¡"), ord("¬") + 1))
        + list(range(ord("®"), ord("ÿ") + 1))
    )
    characters = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            characters.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, characters)))


def tokenizer_from_bpe(bpe_path: str | os.PathLike, model_max_length: int = 77) -> CLIPTokenizer:
    """
    Build a `CLIPTokenizer` from CLIP's `bpe_simple_vocab_16e6.txt.gz`, with OpenAI's `SimpleTokenizer` ids.

    The vocabulary is the 256 byte characters, their `</w>` variants, one token per merge (lines
    1..49152-256-2 of the file) and finally `<|startoftext|>`, `<|endoftext|>`.

    Args:
        bpe_path (`str` or `os.PathLike`):
            CLIP's gzip'd BPE merge list.
        model_max_length (`int`, *optional*, defaults to 77):
            The text model's context length.

    Raises:
        `FileNotFoundError`: the file does not exist.
        `CheckpointError`: the file is not a gzip'd BPE merge list with enough merges.
    """
    path = Path(bpe_path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP BPE file {path} does not exist or is not a file.")
    try:
        lines = gzip.open(path).read().decode("utf-8").split("\n")
    except (OSError, UnicodeDecodeError) as error:
        raise CheckpointError(
            f"{path} is not CLIP's gzip'd BPE file (bpe_simple_vocab_16e6.txt.gz): {error}"
        ) from error
    merges = [tuple(line.split()) for line in lines[1 : NUM_BPE_MERGES + 1]]
    if len(merges) != NUM_BPE_MERGES or any(len(merge) != 2 for merge in merges):
        raise CheckpointError(
            f"{path} is not CLIP's BPE file: expected a header line and at least {NUM_BPE_MERGES} merges of two "
            "symbols each."
        )
    byte_characters = list(bytes_to_unicode().values())
    vocab = byte_characters + [character + "</w>" for character in byte_characters]
    vocab += ["".join(merge) for merge in merges] + [SOT_TOKEN, EOT_TOKEN]
    return CLIPTokenizer(
        vocab={token: index for index, token in enumerate(vocab)}, merges=merges, model_max_length=model_max_length
    )


def save_tokenizer(tokenizer: CLIPTokenizer, save_directory: str | os.PathLike) -> None:
    """Save `tokenizer` (`tokenizer.json`, `tokenizer_config.json`) plus its BPE as `vocab.json` and `merges.txt`."""
    tokenizer.save_pretrained(save_directory)
    tokenizer.backend_tokenizer.model.save(str(save_directory))


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


def _check_output_dir(output_dir: Path, overwrite: bool) -> None:
    if output_dir.exists() and not output_dir.is_dir():
        raise FileExistsError(f"Output path {output_dir} exists and is not a folder.")
    if output_dir.is_dir() and any(output_dir.iterdir()) and not overwrite:
        raise FileExistsError(
            f"Output folder {output_dir} is not empty; pass overwrite=True (--overwrite) to replace it."
        )


def _replace_dir(new_dir: Path, output_dir: Path) -> None:
    """Rename the finished `new_dir` to `output_dir`; an existing folder is moved aside, and put back on failure."""
    if not output_dir.exists():
        os.replace(new_dir, output_dir)
        return
    old_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.old-", dir=output_dir.parent))
    os.replace(output_dir, old_dir / output_dir.name)
    try:
        os.replace(new_dir, output_dir)
    except OSError:
        os.replace(old_dir / output_dir.name, output_dir)
        raise
    finally:
        shutil.rmtree(old_dir, ignore_errors=True)


def build_tokenizer(bpe_path: str | os.PathLike | None, text_config, output_dir: Path) -> CLIPTokenizer | None:
    """The tokenizer from `bpe_path` checked against the text tower's vocabulary, or `None` (with a warning)."""
    if bpe_path is None:
        logger.warning(
            "No --bpe file given: %s gets no tokenizer. OpenAI checkpoints do not contain one; pass CLIP's "
            "bpe_simple_vocab_16e6.txt.gz (shipped inside the open_clip package) to write it.",
            output_dir,
        )
        return None
    tokenizer = tokenizer_from_bpe(bpe_path, model_max_length=text_config.max_position_embeddings)
    if len(tokenizer) != text_config.vocab_size:
        raise CheckpointError(
            f"The tokenizer built from {bpe_path} has {len(tokenizer)} tokens but the checkpoint's token "
            f"embedding has {text_config.vocab_size} rows."
        )
    return tokenizer


def write_folder_atomically(output_dir: Path, overwrite: bool, write) -> None:
    """Calls `write(folder)` on a temporary folder next to `output_dir`, then renames it into place."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        write(build_dir)
        _check_output_dir(output_dir, overwrite)
        _replace_dir(build_dir, output_dir)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    logger.info("Wrote %s.", output_dir)


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
        `CLIPModel` (ViT) or `tdos.modeling_tdos_rn50.CLIPResNetTowers` (ResNet): the converted model, in eval mode.
    """
    output_dir = Path(output_dir).resolve()
    _check_output_dir(output_dir, overwrite)

    state_dict = load_openai_checkpoint(checkpoint_path)
    if is_resnet_state_dict(state_dict):
        from .convert_clip_rn50 import convert_resnet_state_dict

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
