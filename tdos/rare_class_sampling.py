"""Rare-class sampling (RCS) of the released training recipe (docs/method.md §6; DAFormer's `UDADataset` as the release
configures it: `class_temp=100`, `min_pixels=3000`, `min_crop_ratio=0.5`).

Every training sample is drawn the same way, whatever its position: a class `c` with probability
`softmax((1 - f) / temperature)[c]` (`f` the classes' pixel frequencies over the training set), then uniformly one of
the examples holding more than `min_pixels` pixels of `c`; the augmentation is re-drawn (up to `max_crop_tries` times)
while the crop holds at most `min_pixels * min_crop_ratio` pixels of `c`. The per-example class statistics come from
one streaming pass over the training set, cached as JSON in the output folder (never in the dataset folder).

Sample `k` draws everything from the generator seeded by `(seed, epoch, "rcs/k")` ([`example_generator`]), so the
stream is deterministic per seed and a resumed run (which skips batches by iterating the stream again) sees exactly
the samples an uninterrupted one would have.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import IterableDataset, get_worker_info
from tqdm.auto import tqdm

from .atomic_io import write_atomically
from .training import TrainTransform, example_arrays, example_generator


logger = logging.getLogger(__name__)

STATISTICS_VERSION = 1


@dataclass
class ClassStatistics:
    """Pixels per class of every training example: `examples[i] = (shard, position, id, {class: pixels})`."""

    examples: list[tuple[int, int, str, dict[int, int]]]

    def to_json(self) -> dict:
        rows = [[shard, position, id_, {str(c): n for c, n in counts.items()}] for shard, position, id_, counts in self.examples]
        return {"version": STATISTICS_VERSION, "examples": rows}

    @classmethod
    def from_json(cls, data: dict) -> ClassStatistics:
        rows = data["examples"]
        return cls([(shard, position, id_, {int(c): n for c, n in counts.items()}) for shard, position, id_, counts in rows])

    @property
    def class_pixels(self) -> dict[int, int]:
        """Pixels per class over all examples (classes without pixels absent)."""
        total: dict[int, int] = {}
        for *_, counts in self.examples:
            for c, n in counts.items():
                total[c] = total.get(c, 0) + n
        return total


def label_class_pixels(label: np.ndarray, num_classes: int) -> dict[int, int]:
    """`{class: pixels}` of a trainId label for the classes `0..num_classes-1` it contains (255 and others ignored)."""
    counts = np.bincount(label.ravel(), minlength=256)[:num_classes]
    return {int(c): int(n) for c, n in enumerate(counts) if n > 0}


def compute_class_statistics(source, num_classes: int) -> ClassStatistics:
    """One streaming pass over a `datasets.IterableDataset` of `{"label", "id"}` examples, shard by shard (so each
    example's `(shard, position)` is known for random access), with a progress bar."""
    examples = []
    labels = source.select_columns(["label", "id"])
    with tqdm(desc="rare-class statistics", unit="img") as progress:
        for shard in range(source.num_shards):
            for position, example in enumerate(labels.shard(num_shards=source.num_shards, index=shard, contiguous=True)):
                counts = label_class_pixels(np.asarray(example["label"]), num_classes)
                examples.append((shard, position, example["id"], counts))
                progress.update()
    if not examples:
        raise ValueError("rare-class sampling: the training dataset yielded no examples")
    return ClassStatistics(examples)


def statistics_cache_path(output_dir: str | os.PathLike, description: dict) -> Path:
    """Where the statistics of the training set `description` (name, resolved root, split, options) are cached."""
    key = hashlib.sha256(json.dumps(description, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return Path(output_dir) / f"rcs_class_stats-{description.get('name', 'data')}-{key}.json"


def load_or_compute_class_statistics(
    source, num_classes: int, cache_path: str | os.PathLike, description: dict
) -> ClassStatistics:
    """The cached statistics at `cache_path` when they were computed for `description`, else a new pass (written
    atomically to `cache_path`)."""
    cache_path = Path(cache_path)
    if cache_path.is_file():
        try:
            data = json.loads(cache_path.read_text())
        except ValueError as error:
            raise ValueError(f"rare-class statistics {cache_path} are not valid JSON ({error}); delete the file") from error
        if data.get("version") == STATISTICS_VERSION and data.get("description") == json.loads(json.dumps(description, default=str)):
            logger.info(f"rare-class statistics read from {cache_path}")
            return ClassStatistics.from_json(data)
        logger.warning(f"rare-class statistics {cache_path} were computed for other data; computing them again")
    statistics = compute_class_statistics(source, num_classes)
    payload = json.dumps({**statistics.to_json(), "description": description}, default=str).encode()
    write_atomically(cache_path, lambda f: f.write(payload))
    logger.info(f"rare-class statistics of {len(statistics.examples)} examples written to {cache_path}")
    return statistics


class RareClassSampler:
    """
    DAFormer's class and example draw. Args:
        statistics ([`ClassStatistics`]): pixels per class of every example.
        temperature (`float`, defaults to 100): `T` of `softmax((1 - f) / T)`; the release's `class_temp=100` makes
            the class draw almost uniform (DAFormer itself used 0.01).
        min_pixels (`int`, defaults to 3000): an example is drawn for class `c` only if it has more pixels of `c`.
        min_crop_ratio (`float`, defaults to 0.5): the crop is re-drawn until it holds more than `min_pixels *
            min_crop_ratio` pixels of `c` (0: never re-drawn).
        max_crop_tries (`int`, defaults to 10): re-drawn augmentations at most per sample (DAFormer: the first one
            plus up to 10, the last kept unchecked).

    Classes without any example above `min_pixels` cannot be drawn and are left out of the softmax (with a warning;
    DAFormer stops with an assertion).
    """

    def __init__(
        self,
        statistics: ClassStatistics,
        temperature: float = 100.0,
        min_pixels: int = 3000,
        min_crop_ratio: float = 0.5,
        max_crop_tries: int = 10,
    ):
        if temperature <= 0:
            raise ValueError(f"rare-class sampling temperature must be > 0, got {temperature}")
        if max_crop_tries < 1:
            raise ValueError(f"max_crop_tries must be >= 1, got {max_crop_tries}")
        self.statistics = statistics
        self.min_pixels = min_pixels
        self.min_crop_ratio = min_crop_ratio
        self.max_crop_tries = max_crop_tries
        examples_with_class: dict[int, list[int]] = {}
        for index, (*_, counts) in enumerate(statistics.examples):
            for c, n in counts.items():
                if n > min_pixels:
                    examples_with_class.setdefault(c, []).append(index)
        pixels = statistics.class_pixels
        missing = sorted(set(pixels) - set(examples_with_class))
        if missing:
            logger.warning(f"rare-class sampling: no example has more than {min_pixels} pixels of classes {missing}")
        self.classes = sorted(examples_with_class, key=lambda c: (pixels[c], c))  # DAFormer: rarest first
        if not self.classes:
            raise ValueError(f"rare-class sampling: no example has more than min_pixels={min_pixels} pixels of any class")
        counts = torch.tensor([pixels[c] for c in self.classes], dtype=torch.float64)
        frequencies = counts / counts.sum()
        self.probabilities = torch.softmax((1 - frequencies) / temperature, dim=0)
        self.examples_with_class = {c: examples_with_class[c] for c in self.classes}

    @property
    def min_crop_pixels(self) -> float:
        return self.min_pixels * self.min_crop_ratio

    def draw(self, generator: torch.Generator) -> tuple[int, int]:
        """`(class, example index)` of one sample."""
        c = self.classes[int(torch.multinomial(self.probabilities, 1, generator=generator))]
        candidates = self.examples_with_class[c]
        return c, candidates[int(torch.randint(len(candidates), (), generator=generator))]


class RareClassTrainingStream(IterableDataset):
    """
    An endless stream of rare-class-sampled training crops: sample `k` is drawn by `sampler` with the generator of
    `(seed, epoch, "rcs/k")`, read with `read_example(shard, position)`, optionally pasted (`paste_objects`, as in
    [`TrainingStream`]) and augmented by `transform`, re-drawn while the crop holds at most `sampler.min_crop_pixels`
    pixels of the drawn class. `DataLoader` workers take every `num_workers`-th sample.
    """

    def __init__(
        self,
        sampler: RareClassSampler,
        read_example: Callable[[int, int], dict],
        transform: TrainTransform,
        seed: int = 0,
        paste_objects: Callable | None = None,
    ):
        self.sampler = sampler
        self.read_example = read_example
        self.transform = transform
        self.seed = seed
        self.paste_objects = paste_objects
        self.epoch = 0

    def set_epoch(self, epoch: int):
        self.epoch = epoch

    def sample(self, index: int) -> dict[str, torch.Tensor]:
        """Sample `index` of the current epoch, with `"rcs_class"` (the drawn class) and `"crop_tries"`."""
        generator = example_generator(self.seed, self.epoch, f"rcs/{index}")
        c, example_index = self.sampler.draw(generator)
        shard, position, example_id, _ = self.sampler.statistics.examples[example_index]
        example = self.read_example(shard, position)
        if example["id"] != example_id:
            raise ValueError(
                f"rare-class sampling: shard {shard} position {position} is {example['id']!r}, the class statistics say "
                f"{example_id!r}; the training data changed since they were computed (delete the rcs_class_stats file)"
            )
        image, label = example_arrays(example)
        if self.paste_objects is not None:
            image, label = self.paste_objects(image, label, generator)
        output, tries = self.transform(image, label, generator), 1
        while self.sampler.min_crop_ratio > 0 and tries <= self.sampler.max_crop_tries:
            if (output["labels"] == c).sum() > self.sampler.min_crop_pixels:
                break
            output, tries = self.transform(image, label, generator), tries + 1
        return {**output, "rcs_class": c, "crop_tries": tries}

    def __iter__(self) -> Iterator[dict[str, torch.Tensor]]:
        worker = get_worker_info()
        index, step = (worker.id, worker.num_workers) if worker is not None else (0, 1)
        while True:
            sample = self.sample(index)
            yield {"pixel_values": sample["pixel_values"], "labels": sample["labels"]}
            index += step


__all__ = [
    "ClassStatistics",
    "RareClassSampler",
    "RareClassTrainingStream",
    "compute_class_statistics",
    "label_class_pixels",
    "load_or_compute_class_statistics",
    "statistics_cache_path",
]
