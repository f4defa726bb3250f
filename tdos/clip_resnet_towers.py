"""The folder format of a CLIP ResNet's two towers as TDOS reads them (written by `tdos-convert-clip` from an OpenAI
RN50 checkpoint, read by `TDOSForOODSegmentation.from_clip`)."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from torch import nn
from transformers import CLIPTextModelWithProjection

from .modeling_tdos_rn50 import create_clip_resnet_trunk


IMAGE_TRUNK_DIR = "image"
TEXT_MODEL_DIR = "text"
TRUNK_CONFIG_NAME = "config.json"
TRUNK_WEIGHTS_NAME = "model.safetensors"


@dataclass
class CLIPResNetTowers:
    """
    The two towers of a CLIP ResNet as TDOS reads them: the image trunk in timm's layout and the text tower as a
    transformers `CLIPTextModelWithProjection`. `tdos-convert-clip RN50.pt <folder>` writes them as
    `<folder>/image/` (`config.json` with `layers`, `width`, `output_dim`, `image_size`, and the trunk's
    `model.safetensors`) and `<folder>/text/` (`save_pretrained`), plus the tokenizer in `<folder>`;
    [`TDOSForOODSegmentation.from_clip`] reads that folder.

    Args:
        image_trunk (`nn.Module`): timm `resnet50_clip` trunk (from [`create_clip_resnet_trunk`]).
        text_model (`CLIPTextModelWithProjection`): text tower and projection.
        layers (`list[int]`): blocks per stage of the trunk.
        width (`int`): base width of the trunk.
        image_size (`int`): CLIP's input resolution (the attention-pool grid is `image_size / 32` per side).
    """

    image_trunk: nn.Module
    text_model: CLIPTextModelWithProjection
    layers: list[int]
    width: int
    image_size: int

    @property
    def projection_dim(self) -> int:
        return self.text_model.config.projection_dim

    @staticmethod
    def is_folder(path: str | os.PathLike) -> bool:
        """Whether `path` is a folder written by `save_pretrained` (it has `image/config.json` and `text/`)."""
        return isinstance(path, (str, os.PathLike)) and (
            Path(path, IMAGE_TRUNK_DIR, TRUNK_CONFIG_NAME).is_file() and Path(path, TEXT_MODEL_DIR).is_dir()
        )

    def save_pretrained(self, save_directory: str | os.PathLike) -> None:
        """Writes `image/` and `text/` under `save_directory` (which must exist)."""
        from safetensors.torch import save_file

        image_dir = Path(save_directory, IMAGE_TRUNK_DIR)
        image_dir.mkdir()
        trunk_config = {
            "architecture": "resnet50_clip",
            "layers": list(self.layers),
            "width": self.width,
            "output_dim": self.projection_dim,
            "image_size": self.image_size,
        }
        (image_dir / TRUNK_CONFIG_NAME).write_text(json.dumps(trunk_config, indent=2) + "\n")
        state = {name: tensor.contiguous() for name, tensor in self.image_trunk.state_dict().items()}
        save_file(state, str(image_dir / TRUNK_WEIGHTS_NAME), metadata={"format": "pt"})
        self.text_model.save_pretrained(Path(save_directory, TEXT_MODEL_DIR))

    @classmethod
    def from_pretrained(cls, path: str | os.PathLike) -> CLIPResNetTowers:
        """Reads a folder written by `save_pretrained` (both towers in eval mode)."""
        from safetensors.torch import load_file

        if not cls.is_folder(path):
            raise FileNotFoundError(
                f"{path} is not a CLIP ResNet folder: expected {IMAGE_TRUNK_DIR}/{TRUNK_CONFIG_NAME} and "
                f"{TEXT_MODEL_DIR}/ (written by tdos-convert-clip from an OpenAI RN50 checkpoint)"
            )
        trunk_config = json.loads(Path(path, IMAGE_TRUNK_DIR, TRUNK_CONFIG_NAME).read_text())
        if trunk_config.get("architecture") != "resnet50_clip":
            raise ValueError(f"{path}/{IMAGE_TRUNK_DIR}: unsupported architecture {trunk_config.get('architecture')!r}")
        trunk = create_clip_resnet_trunk(
            trunk_config["layers"], trunk_config["width"], trunk_config["output_dim"], trunk_config["image_size"]
        )
        trunk.load_state_dict(load_file(str(Path(path, IMAGE_TRUNK_DIR, TRUNK_WEIGHTS_NAME))))
        text_model = CLIPTextModelWithProjection.from_pretrained(Path(path, TEXT_MODEL_DIR))
        return cls(
            image_trunk=trunk.eval(),
            text_model=text_model.eval(),
            layers=trunk_config["layers"],
            width=trunk_config["width"],
            image_size=trunk_config["image_size"],
        )


__all__ = ["CLIPResNetTowers"]
