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
from .common import FEATURES, OOD, SEMANTIC


__all__ = ["BENCHMARKS", "FEATURES", "BenchmarkInfo", "benchmark_kind", "load_benchmark"]


@dataclass(frozen=True)
class BenchmarkInfo:
    """What `load_benchmark` knows about one benchmark.

    Args:
        builder (`Callable`):
            `builder(root, split, **options) -> (generator, gen_kwargs)`; the lists in `gen_kwargs` are the shards.
        splits (`dict[str, str]`):
            Split name -> label kind (`"semantic"` or `"ood"`).
        default_split (`str`):
            The split used when none is given to `benchmark_kind`.
        needs_root (`bool`):
            Whether the benchmark reads files from a root folder.
    """

    builder: Callable
    splits: dict
    default_split: str
    needs_root: bool = True


BENCHMARKS = {
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


def benchmark_kind(name: str, split: Optional[str] = None) -> str:
    """`"semantic"` (trainIds 0-18/19/255) or `"ood"` (0/1/255) for a benchmark split (default: its usual split)."""
    info = _info(name)
    split = info.default_split if split is None else split
    if split not in info.splits:
        raise ValueError(f"Benchmark {name!r} has no split {split!r}; expected one of {sorted(info.splits)}.")
    return info.splits[split]


def load_benchmark(name: str, root=None, split: str = "validation", streaming: bool = True, cache_dir=None, **options):
    """Load a benchmark as a `datasets.IterableDataset` (or a `datasets.Dataset` when `streaming=False`).

    Args:
        name (`str`):
            A key of `BENCHMARKS`, e.g. `"synthetic"`.
        root (`str` or `os.PathLike`, *optional*):
            Folder holding the benchmark in its distributed layout; must be `None` for `"synthetic"`.
        split (`str`, *optional*, defaults to `"validation"`):
            Which split to read (see `BENCHMARKS[name].splits`).
        streaming (`bool`, *optional*, defaults to `True`):
            Stream examples (one shard per file, or per scene for `"synthetic"`, so that DataLoader workers and
            `datasets.distributed.split_dataset_by_node` split the work) or materialise a `datasets.Dataset`.
        cache_dir (`str` or `os.PathLike`, *optional*):
            Where `streaming=False` writes its Arrow files (default: the `datasets` cache).
        options:
            Builder options, e.g. `num_examples`, `height`, `width`, `seed` for `"synthetic"`, `layout` where a
            benchmark ships in several layouts.
    """
    info = _info(name)
    if split not in info.splits:
        raise ValueError(f"Benchmark {name!r} has no split {split!r}; expected one of {sorted(info.splits)}.")
    if info.needs_root and root is None:
        raise ValueError(f"Benchmark {name!r} reads files: pass root=<folder holding it>.")
    if not info.needs_root and root is not None:
        raise ValueError(f"Benchmark {name!r} is generated on the fly; it takes no root (got {root!r}).")
    generator, gen_kwargs = info.builder(root, split, **options) if info.needs_root else info.builder(split, **options)
    if streaming:
        return datasets.IterableDataset.from_generator(generator, features=FEATURES, gen_kwargs=gen_kwargs)
    return datasets.Dataset.from_generator(generator, features=FEATURES, gen_kwargs=gen_kwargs, cache_dir=cache_dir)
