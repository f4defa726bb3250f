"""Road-scene benchmarks and training data as streaming `datasets.IterableDataset`s.

Every builder yields the same schema (`FEATURES`): `image` and `label` (`datasets.Image`), `id` (a stable
example id) and `dataset` (the benchmark name). Labels are Cityscapes trainIds for semantic benchmarks
(0-18, 19 = OOD object, 255 = ignore) and 0 = in-distribution / 1 = anomaly / 255 = void for OOD benchmarks.
Datasets know nothing of the model.
"""

from dataclasses import dataclass
from typing import Callable, Optional

import datasets

from . import synthetic
from .cityscapes import build_cityscapes, build_cityscapes_ood
from .common import FEATURES, OOD, SEMANTIC
from .fishyscapes import build_fishyscapes_lf, build_fishyscapes_static
from .lost_and_found import build_lost_and_found
from .road_anomaly import build_road_anomaly
from .smiyc import build_smiyc_anomaly, build_smiyc_obstacle


__all__ = ["BENCHMARKS", "FEATURES", "BenchmarkInfo", "ShardReader", "benchmark_kind", "load_benchmark"]


@dataclass(frozen=True)
class BenchmarkInfo:
    """What `load_benchmark` knows about one benchmark.

    Args:
        builder (`Callable`):
            `builder(root, split, **options) -> (generator, gen_kwargs)` (`builder(split, **options)` without a root),
            called with a split already checked against `splits`; the lists in `gen_kwargs` are the shards.
        splits (`dict[str, str]`):
            Split name -> label kind (`"semantic"` or `"ood"`).
        default_split (`str`):
            The split used when none is given to `load_benchmark` or `benchmark_kind`.
        needs_root (`bool`):
            Whether the benchmark reads files from a root folder.
    """

    builder: Callable
    splits: dict
    default_split: str
    needs_root: bool = True


BENCHMARKS = {
    "cityscapes": BenchmarkInfo(
        builder=build_cityscapes,
        splits={"train": SEMANTIC, "validation": SEMANTIC, "test": SEMANTIC},
        default_split="validation",
    ),
    "cityscapes_ood": BenchmarkInfo(
        builder=build_cityscapes_ood, splits={"train": SEMANTIC, "validation": SEMANTIC}, default_split="validation"
    ),
    "fishyscapes_lf": BenchmarkInfo(builder=build_fishyscapes_lf, splits={"validation": OOD}, default_split="validation"),
    "fishyscapes_static": BenchmarkInfo(
        builder=build_fishyscapes_static, splits={"validation": OOD}, default_split="validation"
    ),
    "smiyc_anomaly": BenchmarkInfo(
        builder=build_smiyc_anomaly, splits={"validation": OOD, "test": OOD}, default_split="validation"
    ),
    "smiyc_obstacle": BenchmarkInfo(
        builder=build_smiyc_obstacle,
        splits={"validation": OOD, "test": OOD, "night": OOD, "snowstorm": OOD},
        default_split="validation",
    ),
    "road_anomaly": BenchmarkInfo(builder=build_road_anomaly, splits={"validation": OOD}, default_split="validation"),
    "lost_and_found": BenchmarkInfo(
        builder=build_lost_and_found, splits={"train": OOD, "test": OOD, "testNoKnown": OOD}, default_split="testNoKnown"
    ),
    "synthetic": BenchmarkInfo(
        builder=synthetic.build_generator,
        splits={"train": SEMANTIC, "validation": SEMANTIC, "anomaly": OOD},
        default_split="validation",
        needs_root=False,
    ),
}


def _info(name):
    if name not in BENCHMARKS:
        raise ValueError(f"Unknown benchmark {name!r}; expected one of {sorted(BENCHMARKS)}.")
    return BENCHMARKS[name]


def _split(name, split):
    info = _info(name)
    split = info.default_split if split is None else split
    if split not in info.splits:
        raise ValueError(f"Benchmark {name!r} has no split {split!r}; expected one of {sorted(info.splits)}.")
    return split


def benchmark_kind(name: str, split: Optional[str] = None) -> str:
    """`"semantic"` (trainIds 0-18/19/255) or `"ood"` (0/1/255) for a benchmark split (default: its usual split)."""
    split = _split(name, split)
    return BENCHMARKS[name].splits[split]


def load_benchmark(name: str, root=None, split: Optional[str] = None, streaming: bool = True, cache_dir=None, **options):
    """Load a benchmark as a `datasets.IterableDataset` (or a `datasets.Dataset` when `streaming=False`).

    Args:
        name (`str`):
            A key of `BENCHMARKS`, e.g. `"synthetic"`.
        root (`str` or `os.PathLike`, *optional*):
            Folder holding the benchmark in its distributed layout; must be `None` for `"synthetic"`.
        split (`str`, *optional*):
            Which split to read (see `BENCHMARKS[name].splits`); default `BENCHMARKS[name].default_split`
            (`"validation"` for all but Lost & Found, whose default is `"testNoKnown"`).
        streaming (`bool`, *optional*, defaults to `True`):
            Stream examples (one shard per file, or per scene for `"synthetic"`, so that DataLoader workers and
            `datasets.distributed.split_dataset_by_node` split the work) or materialise a `datasets.Dataset`.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `streaming=False` writes its Arrow files (default: the `datasets` cache).
        options:
            Builder options, e.g. `num_examples`, `height`, `width`, `seed` for `"synthetic"`, `layout` where a
            benchmark ships in several layouts.
    """
    generator, gen_kwargs = _build(name, root, split, options)
    if streaming:
        return datasets.IterableDataset.from_generator(generator, features=FEATURES, gen_kwargs=gen_kwargs)
    return datasets.Dataset.from_generator(generator, features=FEATURES, gen_kwargs=gen_kwargs, cache_dir=cache_dir)


def _build(name, root, split, options):
    info, split = _info(name), _split(name, split)
    if info.needs_root:
        return info.builder(root, split, **options)
    if root is not None:
        raise ValueError(f"Benchmark {name!r} is generated on the fly; it takes no root (got {root!r}).")
    return info.builder(split, **options)


class ShardReader:
    """Random access to the examples of one benchmark split by `(shard, position)`, in the order and with the shards of
    `load_benchmark(name, root, split, streaming=True, **options)` (shard `s` is `dataset.shard(num_shards, s)`).

    It runs the builder's generator on one shard and decodes the examples with `FEATURES`, so it works the same inside
    `DataLoader` workers (where a streaming dataset would split its shards among the workers).
    """

    def __init__(self, name: str, root=None, split: Optional[str] = None, **options):
        self.generator, self.gen_kwargs = _build(name, root, split, options)
        lengths = {len(value) for value in self.gen_kwargs.values() if isinstance(value, list)}
        if len(lengths) != 1:
            raise ValueError(f"Benchmark {name!r}: expected one list of shards in gen_kwargs, got lengths {lengths}")
        self.num_shards = lengths.pop()

    def examples(self, shard: int):
        """The decoded examples of one shard, in order."""
        if not 0 <= shard < self.num_shards:
            raise IndexError(f"shard {shard} out of range: the benchmark has {self.num_shards} shards")
        kwargs = {key: value[shard : shard + 1] if isinstance(value, list) else value for key, value in self.gen_kwargs.items()}
        for example in self.generator(**kwargs):
            yield FEATURES.decode_example(FEATURES.encode_example(example))

    def example(self, shard: int, position: int) -> dict:
        """Example `position` (0-based) of `shard`."""
        for index, example in enumerate(self.examples(shard)):
            if index == position:
                return example
        raise IndexError(f"shard {shard} has no example {position}")
