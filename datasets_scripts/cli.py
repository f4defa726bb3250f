"""`tdos-datasets inspect NAME [ROOT]`: what a benchmark folder holds, the first thing to run when numbers look wrong.

Prints the number of examples, their resolutions and the label value histogram, and writes a few overlay panels
(image | ground truth, `datasets_scripts.panels`) as PNG files.
"""

import argparse
import logging
import os
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np
from PIL import Image

from . import BENCHMARKS, benchmark_kind, load_benchmark
from .panels import overlay_panel, panel_title


logger = logging.getLogger(__name__)


@dataclass
class Inspection:
    """What `inspect_benchmark` found."""

    count: int = 0
    unlabelled: int = 0
    resolutions: Counter = field(default_factory=Counter)
    histogram: np.ndarray = field(default_factory=lambda: np.zeros(256, dtype=np.int64))
    overlays: list = field(default_factory=list)


def write_png_atomically(image: Image.Image, path: Path) -> None:
    """Writes a PNG under a temporary name in the same folder (permissions from the umask), then renames it into
    place; on error the temporary file is removed and the error propagates. (`tdos.atomic_io` does the same for the
    model side; it is not imported here so that the datasets never load the model package.)"""
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(temporary, "xb") as handle:
            image.save(handle, format="PNG")
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def inspect_benchmark(
    name: str,
    root=None,
    split: Optional[str] = None,
    output_dir=None,
    max_images: Optional[int] = None,
    num_overlays: int = 4,
    **options,
) -> Inspection:
    """Stream a benchmark once: count examples, resolutions and label values; write overlays to `output_dir`."""
    kind = benchmark_kind(name, split)
    dataset = load_benchmark(name, root, split=split, **options)
    if max_images is not None:
        dataset = dataset.take(max_images)
    if output_dir is not None:
        output_dir = Path(output_dir)
        output_dir.mkdir(parents=True, exist_ok=True)
    found = Inspection()
    for example in dataset:
        image = np.asarray(example["image"].convert("RGB"))
        found.count += 1
        found.resolutions[f"{image.shape[1]}x{image.shape[0]}"] += 1
        if example["label"] is None:
            found.unlabelled += 1
            continue
        label = np.asarray(example["label"])
        found.histogram += np.bincount(label.ravel(), minlength=256)
        if output_dir is not None and len(found.overlays) < num_overlays:
            path = output_dir / f"{name}_{example['id'].replace('/', '_')}_overlay.png"
            panel = overlay_panel(image, ground_truth=label, ground_truth_kind=kind, title=panel_title(example["id"]))
            write_png_atomically(panel, path)
            found.overlays.append(path)
    return found


def _parse_option(text: str):
    key, separator, value = text.partition("=")
    if not separator or not key:
        raise argparse.ArgumentTypeError(f"--option expects KEY=VALUE, got {text!r}")
    try:
        return key, int(value)
    except ValueError:
        return key, value


def _report(name: str, split: Optional[str], found: Inspection) -> str:
    lines = [f"{name} ({split or BENCHMARKS[name].default_split}): {found.count} examples, {found.unlabelled} without label"]
    lines.append("resolutions: " + ", ".join(f"{size} x{count}" for size, count in found.resolutions.most_common()))
    total = int(found.histogram.sum())
    if total:
        lines.append("| label value | pixels | share |")
        lines.append("| --- | --- | --- |")
        for value in np.nonzero(found.histogram)[0]:
            pixels = int(found.histogram[value])
            lines.append(f"| {value} | {pixels} | {100.0 * pixels / total:.2f} % |")
    lines.extend(f"overlay: {path}" for path in found.overlays)
    return "\n".join(lines)


def main(argv: Optional[list] = None) -> None:
    parser = argparse.ArgumentParser(prog="tdos-datasets", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    inspect = commands.add_parser("inspect", help="count examples, resolutions and label values; write overlays")
    inspect.add_argument("name", choices=sorted(BENCHMARKS))
    inspect.add_argument("root", nargs="?", help="benchmark folder (none for 'synthetic')")
    inspect.add_argument("--split", help="split to read (default: the benchmark's usual one)")
    inspect.add_argument("--output-dir", help="where to write overlay panels (PNG; none written without it)")
    inspect.add_argument("--max-images", type=int, help="stop after this many examples")
    inspect.add_argument("--num-overlays", type=int, default=4, help="overlay panels to write (default 4)")
    inspect.add_argument("--layout", help="layout name where a benchmark ships in several")
    inspect.add_argument(
        "--option", type=_parse_option, action="append", default=[], metavar="KEY=VALUE",
        help="builder option, e.g. num_examples=8 for 'synthetic' or images_root=... for 'fishyscapes_lf'",
    )  # fmt: skip
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    options = dict(args.option)
    if args.layout is not None:
        options["layout"] = args.layout
    try:
        found = inspect_benchmark(
            args.name, args.root, split=args.split, output_dir=args.output_dir, max_images=args.max_images,
            num_overlays=args.num_overlays, **options,
        )  # fmt: skip
    except (FileNotFoundError, ValueError, TypeError) as error:
        parser.exit(2, f"tdos-datasets: error: {error}\n")
    print(_report(args.name, args.split, found))


if __name__ == "__main__":
    main()
