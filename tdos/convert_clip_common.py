"""Pieces both CLIP converters use (`tdos.convert_clip` for ViTs, `tdos.convert_clip_rn50` for ResNets): reading
OpenAI checkpoints without executing pickled code, the text tower's config and key names, CLIP's BPE tokenizer, and
writing the output folder atomically.
"""

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
from transformers import CLIPTokenizer


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


# --------------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------------


class CheckpointError(ValueError):
    """A checkpoint that cannot be converted: refused pickle, unsupported layout, unknown or missing keys."""


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


def num_residual_blocks(state_dict: Mapping[str, torch.Tensor], tower: str) -> int:
    """Number of residual blocks of a tower (`"visual."` for the image tower, `""` for the text tower)."""
    indices = [
        int(match.group(2))
        for key in state_dict
        if (match := _RESBLOCK_KEY.match(key)) and (match.group(1) or "") == tower
    ]
    return max(indices, default=-1) + 1


def num_attention_heads(width: int, tower: str) -> int:
    if width % HEAD_WIDTH != 0:
        raise CheckpointError(
            f"The {tower} width {width} is not a multiple of {HEAD_WIDTH}: OpenAI CLIP uses heads of width "
            f"{HEAD_WIDTH}, so the number of attention heads cannot be inferred."
        )
    return width // HEAD_WIDTH


def require_keys(state_dict: Mapping[str, torch.Tensor], *keys: str, architecture: str = "ViT") -> None:
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
    require_keys(
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
        "num_hidden_layers": num_residual_blocks(state_dict, ""),
        "num_attention_heads": num_attention_heads(text_width, "text"),
        "max_position_embeddings": state_dict["positional_embedding"].shape[0],
        "hidden_act": "quick_gelu",
        "layer_norm_eps": 1e-5,
        "bos_token_id": vocab_size - 2,
        "eos_token_id": vocab_size - 1,
        "pad_token_id": vocab_size - 1,
    }


def add_block_keys(
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
    add_block_keys(renames, splits, "transformer.resblocks", "text_model.encoder.layers", num_layers)
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


# --------------------------------------------------------------------------------------------------------
# Tokenizer
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

    The ids are OpenAI's for text that OpenAI's cleaning leaves unchanged. OpenAI also repairs text with ftfy and
    unescapes HTML entities before BPE, which `CLIPTokenizer` does not do and cannot store in the folder (it rebuilds
    its normaliser on load): pass text through `tdos.text_cleaning.clean_text` first, as TDOS does for its prompts,
    to get OpenAI's ids for curly quotes, `&amp;`, mojibake and the like.

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


# --------------------------------------------------------------------------------------------------------
# Output folder
# --------------------------------------------------------------------------------------------------------


def check_output_dir(output_dir: Path, overwrite: bool) -> None:
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


def write_folder_atomically(output_dir: Path, overwrite: bool, write) -> None:
    """Calls `write(folder)` on a temporary folder next to `output_dir`, then renames it into place."""
    output_dir.parent.mkdir(parents=True, exist_ok=True)
    build_dir = Path(tempfile.mkdtemp(prefix=f".{output_dir.name}.tmp-", dir=output_dir.parent))
    try:
        write(build_dir)
        check_output_dir(output_dir, overwrite)
        _replace_dir(build_dir, output_dir)
    finally:
        shutil.rmtree(build_dir, ignore_errors=True)
    logger.info("Wrote %s.", output_dir)
