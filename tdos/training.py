"""Training-side pieces of `run_ood_segmentation.py`: the augmentation of docs/method.md §6, the training stream that
feeds the `Trainer`, the batch collator, a `Trainer` with TDOS's parameter groups, and checkpoint discovery.

Every random decision of the data pipeline is drawn from a generator seeded by `(seed, epoch, example id)`, never
from the global RNG. Data order and augmentation therefore do not depend on worker count or on how many batches were
skipped when a run resumes, and a resumed run sees exactly the batches an uninterrupted run would have seen.
"""

from __future__ import annotations

import json
import logging
import os
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torch.utils.data import IterableDataset
from transformers import Trainer
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .configuration_tdos import IGNORE_INDEX
from .model_card import write_model_card
from .optimization import get_parameter_groups, get_release_poly_schedule


logger = logging.getLogger(__name__)


def example_generator(seed: int, epoch: int, example_id: str) -> torch.Generator:
    """A generator owned by one example in one epoch (stable across processes, workers and resumption)."""
    return torch.Generator().manual_seed(zlib.crc32(f"{seed}/{epoch}/{example_id}".encode()))


def _uniform(generator: torch.Generator, low: float, high: float) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _coin(generator: torch.Generator, probability: float) -> bool:
    return torch.rand((), generator=generator).item() < probability


def example_arrays(example: dict) -> tuple[np.ndarray, np.ndarray]:
    """Writable `(H, W, 3)` uint8 image and `(H, W)` label of a `{"image", "label", "id"}` example (pasting edits
    them); a clear error when their sizes differ."""
    image = np.array(example["image"].convert("RGB"))
    label = np.array(example["label"])
    if label.ndim != 2 or label.shape != image.shape[:2]:
        raise ValueError(f"example {example['id']!r}: label shape {label.shape} does not match image {image.shape[:2]}")
    return image, label


def _convert(values: torch.Tensor, alpha: float = 1.0, beta: float = 0.0) -> torch.Tensor:
    """mmseg's `convert`: `values * alpha + beta`, clipped to [0, 255] and truncated to uint8."""
    return (values.float() * alpha + beta).clamp(0, 255).to(torch.uint8)


def adjust_brightness(image: torch.Tensor, delta: float) -> torch.Tensor:
    """Adds `delta` to every channel (mmseg's brightness step)."""
    return _convert(image, beta=delta)


def adjust_contrast(image: torch.Tensor, alpha: float) -> torch.Tensor:
    """Multiplies every channel by `alpha` (mmseg's contrast step; no blending with the mean, unlike torchvision)."""
    return _convert(image, alpha=alpha)


HSV_SHIFT = 12  # OpenCV's fixed-point 8-bit RGB -> HSV


def rgb_to_hsv(image: torch.Tensor) -> torch.Tensor:
    """uint8 `(3, H, W)` RGB → OpenCV's 8-bit HSV (`H` in `[0, 180)` = degrees / 2, `S` and `V` in `[0, 255]`), with
    OpenCV's fixed-point arithmetic (`cvtColor(..., COLOR_RGB2HSV)`, which mmcv's `bgr2hsv` calls)."""
    red, green, blue = image.long()
    value = torch.maximum(torch.maximum(red, green), blue)
    diff = value - torch.minimum(torch.minimum(red, green), blue)
    one = 1 << HSV_SHIFT
    saturation_table = torch.tensor([0] + [round((255 << HSV_SHIFT) / v) for v in range(1, 256)])
    hue_table = torch.tensor([0] + [round((180 << HSV_SHIFT) / (6 * d)) for d in range(1, 256)])
    saturation = torch.div(diff * saturation_table[value] + one // 2, one, rounding_mode="floor")
    hue = torch.where(
        value == red,
        green - blue,
        torch.where(value == green, blue - red + 2 * diff, red - green + 4 * diff),
    )
    hue = torch.div(hue * hue_table[diff] + one // 2, one, rounding_mode="floor")
    hue = torch.where(hue < 0, hue + 180, hue)
    return torch.stack([hue, saturation, value]).to(torch.uint8)


def hsv_to_rgb(hsv: torch.Tensor) -> torch.Tensor:
    """OpenCV's 8-bit HSV `(3, H, W)` → uint8 RGB (`cvtColor(..., COLOR_HSV2RGB)`: float32 arithmetic, truncated)."""
    hue, saturation, value = hsv.float()
    sector_float = hue * (6 / 180)
    sector = sector_float.floor()
    fraction = sector_float - sector
    saturation, value = saturation * (1 / 255), value * (1 / 255)
    p = value * (1 - saturation)
    q = value * (1 - saturation * fraction)
    t = value * (1 - saturation * (1 - fraction))
    sector = sector.long() % 6
    table = torch.stack(
        [
            torch.stack([value, q, p, p, t, value]),
            torch.stack([t, value, value, q, p, p]),
            torch.stack([p, p, t, value, value, q]),
        ]
    )  # (channel, sector, H, W)
    rgb = table.gather(1, sector[None, None].expand(3, 1, *sector.shape))[:, 0]
    return (rgb * 255).clamp(0, 255).to(torch.uint8)


def adjust_saturation(image: torch.Tensor, alpha: float) -> torch.Tensor:
    """Scales the HSV saturation by `alpha` (mmseg's saturation step, OpenCV's 8-bit HSV)."""
    hsv = rgb_to_hsv(image)
    hsv[1] = _convert(hsv[1], alpha=alpha)
    return hsv_to_rgb(hsv)


def adjust_hue(image: torch.Tensor, delta: int) -> torch.Tensor:
    """Shifts the 8-bit HSV hue by `delta` units of 2 degrees, modulo 180 (mmseg's hue step)."""
    hsv = rgb_to_hsv(image)
    hsv[0] = ((hsv[0].long() + delta) % 180).to(torch.uint8)
    return hsv_to_rgb(hsv)


@dataclass
class TrainTransform:
    """
    The training augmentation of docs/method.md §6 on torchvision's functional ops (images and masks):

    random keep-ratio rescale by a factor in `scale_range` (bilinear for the image, nearest for the label) →
    random `crop_size` crop whose most frequent class covers at most `cat_max_ratio` of the labelled pixels (up to
    10 tries, as mmseg's `RandomCrop`) → horizontal flip with `flip_probability` → mmseg's `PhotoMetricDistortion`
    (additive brightness ±32; multiplicative contrast ×[0.5, 1.5], before or after the colour steps; saturation
    ×[0.5, 1.5] and hue ±18 units of 2° in OpenCV's 8-bit HSV; each step with probability 0.5, uint8 results
    clipped and truncated after every step) → CLIP normalisation → pad to the crop (normalised image 0, label 255).

    Call with a uint8 `(H, W, 3)` image, a uint8 `(H, W)` trainId label and a `torch.Generator`; returns
    `pixel_values` `(3, crop, crop)` float32 and `labels` `(crop, crop)` int64.
    """

    crop_size: int = 512
    scale_range: tuple[float, float] = (0.5, 2.0)
    cat_max_ratio: float = 0.75
    flip_probability: float = 0.5
    photometric_distortion: bool = True
    mean: tuple[float, ...] = tuple(OPENAI_CLIP_MEAN)
    std: tuple[float, ...] = tuple(OPENAI_CLIP_STD)

    def __post_init__(self):
        low, high = self.scale_range
        if not 0 < low <= high:
            raise ValueError(f"scale_range must be 0 < low <= high, got {self.scale_range}")
        if self.crop_size <= 0:
            raise ValueError(f"crop_size must be positive, got {self.crop_size}")

    def rescale(self, image: torch.Tensor, label: torch.Tensor, generator: torch.Generator):
        """mmseg's `Resize(ratio_range=...)`: target `int(side * ratio)`, then mmcv's keep-ratio rescale to it
        (`int(side * factor + 0.5)`), bilinear without antialiasing (OpenCV's `INTER_LINEAR`) / nearest."""
        ratio = _uniform(generator, *self.scale_range)
        height, width = image.shape[-2:]
        target_height, target_width = int(height * ratio), int(width * ratio)
        factor = min(max(target_height, target_width) / max(height, width), min(target_height, target_width) / min(height, width))
        size = [max(1, int(height * factor + 0.5)), max(1, int(width * factor + 0.5))]
        image = TF.resize(image, size, interpolation=TF.InterpolationMode.BILINEAR, antialias=False)
        label = TF.resize(label, size, interpolation=TF.InterpolationMode.NEAREST)
        return image, label

    def crop_box(self, label: torch.Tensor, generator: torch.Generator) -> tuple[int, int]:
        """mmseg's `RandomCrop`: a random box, re-drawn up to 10 times while one class covers `cat_max_ratio` or more
        of its labelled pixels (or it holds a single class); the last box is kept unchecked."""
        height, width = label.shape[-2:]

        def draw():
            top = int(torch.randint(0, max(height - self.crop_size, 0) + 1, (), generator=generator))
            return top, int(torch.randint(0, max(width - self.crop_size, 0) + 1, (), generator=generator))

        top, left = draw()
        if self.cat_max_ratio < 1.0:
            for _ in range(10):
                window = label[..., top : top + self.crop_size, left : left + self.crop_size]
                counts = torch.bincount(window[window != IGNORE_INDEX].flatten().long())
                if (counts > 0).sum() > 1 and counts.max() < self.cat_max_ratio * counts.sum():
                    break
                top, left = draw()
        return top, left

    def photometric(self, image: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """mmseg's `PhotoMetricDistortion` on a uint8 `(3, H, W)` image: brightness; contrast first or last (one
        coin); saturation; hue; each applied with probability 0.5."""
        if _coin(generator, 0.5):
            image = adjust_brightness(image, _uniform(generator, -32, 32))
        contrast_first = _coin(generator, 0.5)
        if contrast_first and _coin(generator, 0.5):
            image = adjust_contrast(image, _uniform(generator, 0.5, 1.5))
        if _coin(generator, 0.5):
            image = adjust_saturation(image, _uniform(generator, 0.5, 1.5))
        if _coin(generator, 0.5):
            image = adjust_hue(image, int(torch.randint(-18, 18, (), generator=generator)))
        if not contrast_first and _coin(generator, 0.5):
            image = adjust_contrast(image, _uniform(generator, 0.5, 1.5))
        return image

    def __call__(self, image: np.ndarray, label: np.ndarray, generator: torch.Generator) -> dict[str, torch.Tensor]:
        image = torch.from_numpy(np.ascontiguousarray(image)).permute(2, 0, 1)  # (3, H, W) uint8
        label = torch.from_numpy(np.ascontiguousarray(label))[None]  # (1, H, W) uint8
        image, label = self.rescale(image, label, generator)
        top, left = self.crop_box(label, generator)
        image = image[:, top : top + self.crop_size, left : left + self.crop_size]
        label = label[:, top : top + self.crop_size, left : left + self.crop_size]
        if _coin(generator, self.flip_probability):
            image, label = TF.horizontal_flip(image), TF.horizontal_flip(label)
        if self.photometric_distortion:
            image = self.photometric(image, generator)
        pixel_values = TF.normalize(image.float() / 255.0, list(self.mean), list(self.std))
        pad = [0, 0, self.crop_size - image.shape[-1], self.crop_size - image.shape[-2]]
        pixel_values = TF.pad(pixel_values, pad, fill=0.0)  # after normalisation, as mmseg's Pad
        label = TF.pad(label, pad, fill=IGNORE_INDEX)
        return {"pixel_values": pixel_values, "labels": label[0].long()}


class TrainingStream(IterableDataset):
    """
    An endless training stream over a `datasets.IterableDataset` of `{"image", "label", "id"}` examples: epoch after
    epoch (re-shuffled with `seed + epoch` when `shuffle_buffer` > 0), each example optionally passed through
    `paste_objects(image, label, generator)` (outlier exposure) and then `transform(image, label, generator)`.
    `Trainer` stops it at `max_steps`. Worker sharding is done by the underlying `datasets.IterableDataset` (one
    shard per file), so give the source at least as many shards as data-loader workers.
    """

    def __init__(
        self,
        source,
        transform: TrainTransform,
        seed: int = 0,
        shuffle_buffer: int = 0,
        paste_objects: Callable | None = None,
    ):
        self.source = source
        self.transform = transform
        self.seed = seed
        self.shuffle_buffer = shuffle_buffer
        self.paste_objects = paste_objects
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def _epoch_source(self, epoch: int):
        if self.shuffle_buffer > 0:
            return self.source.shuffle(seed=self.seed + epoch, buffer_size=self.shuffle_buffer)
        return self.source

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        epoch = self.epoch
        while True:
            empty = True
            for example in self._epoch_source(epoch):
                empty = False
                generator = example_generator(self.seed, epoch, example["id"])
                image, label = example_arrays(example)
                if self.paste_objects is not None:
                    image, label = self.paste_objects(image, label, generator)
                yield self.transform(image, label, generator)
            if empty:
                raise ValueError("the training dataset yielded no examples")
            epoch += 1


def collate_segmentation_batch(examples: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    return {
        "pixel_values": torch.stack([example["pixel_values"] for example in examples]),
        "labels": torch.stack([example["labels"] for example in examples]),
    }


class TDOSTrainer(Trainer):
    """`Trainer` with TDOS's per-module parameter groups (docs/method.md §5), a log of every loss term, the TDOS model
    card (`tdos.model_card`) where `Trainer` writes its generic one (`push_to_hub` calls `create_model_card`;
    `card_training`: the recipe lines of the card) and, when its arguments say `lr_schedule="release_poly"` (the
    default of `run_ood_segmentation.py`), the released warm-up + poly schedule ([`get_release_poly_schedule`],
    docs/method.md §5) with `warmup_steps`, `lr_scheduler_kwargs` `lr_end` / `power` and `warmup_start_factor`."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._loss_terms: dict[str, list[float]] = {}
        self.card_training: dict = {}

    def create_model_card(self, **kwargs):
        """Writes `output_dir/README.md` with the evaluation results of `output_dir/eval_results.json`."""
        if self.is_world_process_zero():
            model = self.accelerator.unwrap_model(self.model)
            model_id = self.args.hub_model_id or self.args.output_dir
            write_model_card(self.args.output_dir, model, model_id=model_id, training=self.card_training)

    def create_optimizer(self, model=None):
        if self.optimizer is None:
            model = self.model if model is None else model
            groups = get_parameter_groups(model, self.args.learning_rate, self.args.weight_decay)
            optimizer_cls, optimizer_kwargs = self.get_optimizer_cls_and_kwargs(self.args, model)
            self.optimizer = optimizer_cls(groups, **optimizer_kwargs)
        return self.optimizer

    def create_scheduler(self, num_training_steps: int, optimizer=None):
        if self.lr_scheduler is None and getattr(self.args, "lr_schedule", None) == "release_poly":
            kwargs = self.args.lr_scheduler_kwargs or {}
            self.lr_scheduler = get_release_poly_schedule(
                self.optimizer if optimizer is None else optimizer,
                num_warmup_steps=self.args.get_warmup_steps(num_training_steps),
                num_training_steps=num_training_steps,
                min_lr=kwargs.get("lr_end", 1e-6),
                power=kwargs.get("power", 0.9),
                warmup_start_factor=self.args.warmup_start_factor,
            )
            self._created_lr_scheduler = True
        return super().create_scheduler(num_training_steps, optimizer)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        outputs = model(**inputs)
        if model.training:
            for name, value in outputs.loss_dict.items():
                self._loss_terms.setdefault(name, []).append(value.detach().float().item())
        return (outputs.loss, outputs) if return_outputs else outputs.loss

    def log(self, logs: dict[str, float], *args, **kwargs):
        if "loss" in logs and self._loss_terms:
            for name, values in self._loss_terms.items():
                if not name.startswith("d"):  # deep-supervision terms stay out of the log line
                    logs[name] = round(sum(values) / len(values), 4)
            self._loss_terms = {}
        super().log(logs, *args, **kwargs)


def last_complete_checkpoint(output_dir: str | os.PathLike) -> Path | None:
    """
    The newest `checkpoint-N` folder of `output_dir` that was written completely. `Trainer` writes
    `trainer_state.json` last, so a folder without a readable one (a run killed while saving) is skipped with a warning.
    """
    found = []
    for path in Path(output_dir).glob(f"{PREFIX_CHECKPOINT_DIR}-*"):
        step = path.name.removeprefix(f"{PREFIX_CHECKPOINT_DIR}-")
        if not step.isdigit():
            continue
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, ValueError):
            logger.warning(f"ignoring incomplete checkpoint {path} (no readable trainer_state.json)")
            continue
        found.append((int(step), path))
    return max(found)[1] if found else None

