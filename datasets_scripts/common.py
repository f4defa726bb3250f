"""Schema, label encodings and the file-pair reader shared by every benchmark builder."""

import io
import logging
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Iterable, Optional

import datasets
import numpy as np
from PIL import Image, UnidentifiedImageError


logger = logging.getLogger(__name__)

FEATURES = datasets.Features(
    {
        "image": datasets.Image(),
        "label": datasets.Image(),
        "id": datasets.Value("string"),
        "dataset": datasets.Value("string"),
    }
)
SEMANTIC = "semantic"
OOD = "ood"
IGNORE_INDEX = 255

# Cityscapes labelId -> trainId (cityscapesScripts `labels.py`); every other id -> 255.
CITYSCAPES_LABEL_ID_TO_TRAIN_ID = {
    7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9,
    23: 10, 24: 11, 25: 12, 26: 13, 27: 14, 28: 15, 31: 16, 32: 17, 33: 18,
}  # fmt: skip


def _lookup_table(mapping: dict) -> np.ndarray:
    """A 256-entry table stored value -> label; -1 marks values the encoding does not allow."""
    table = np.full(256, -1, dtype=np.int16)
    for stored, label in mapping.items():
        table[stored] = label
    return table


# Label encoding name -> (lookup table, what the encoding allows, in words for error messages).
ENCODINGS = {
    "train_ids": (_lookup_table({**{i: i for i in range(19)}, 255: 255}), "trainIds 0-18 or 255"),
    "train_ids_ood": (_lookup_table({**{i: i for i in range(20)}, 255: 255}), "trainIds 0-19 or 255"),
    "cityscapes_label_ids": (
        _lookup_table({**{i: CITYSCAPES_LABEL_ID_TO_TRAIN_ID.get(i, 255) for i in range(34)}, 255: 255}),
        "Cityscapes labelIds 0-33 or 255 (license plate)",
    ),
    # POC-style Cityscapes+objects: trainIds, object ids 19-254 -> 19 (docs/method.md §6).
    "poc": (_lookup_table({**{i: min(i, 19) for i in range(255)}, 255: 255}), "trainIds 0-18, object ids 19-254, 255"),
    "ood": (_lookup_table({0: 0, 1: 1, 255: 255}), "0 (in-distribution), 1 (anomaly) or 255 (void)"),
    # Road Anomaly stores anomalies as 2.
    "road_anomaly": (_lookup_table({0: 0, 1: 1, 2: 1, 255: 255}), "0, 1, 2 (anomaly) or 255"),
    # Lost & Found gtCoarse labelIds, as SMIYC reads them: 0 unlabelled -> 255, 1 free road -> 0, 2-200 -> 1.
    "lost_and_found": (
        _lookup_table({0: 255, 1: 0, **{i: 1 for i in range(2, 201)}, **{i: 255 for i in range(201, 256)}}),
        "Lost & Found labelIds 0-255",
    ),
}


@dataclass(frozen=True)
class ExampleFiles:
    """One example on disk: its image, its label (None for unlabelled test images), its id and label encoding."""

    image: str
    label: Optional[str]
    id: str
    encoding: str


def encode_array(array: np.ndarray) -> dict:
    """Encode an in-memory uint8 image (HxW or HxWx3) for an `Image` feature, losslessly and cheaply (BMP).

    `datasets` would otherwise compress arrays to PNG, which costs more than drawing a synthetic scene.
    """
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="BMP")
    return {"bytes": buffer.getvalue(), "path": None}


def check_root(root, name: str) -> Path:
    """The benchmark root as a `Path`, or a clear error when it is missing."""
    if root is None:
        raise ValueError(f"Benchmark {name!r} reads files: pass root=<folder holding it>.")
    path = Path(root).expanduser()
    if not path.is_dir():
        raise FileNotFoundError(f"Root folder of benchmark {name!r} not found: {path}")
    return path


def find_files(root: Path, patterns: Iterable[str], what: str) -> list[Path]:
    """Files under `root` matching any glob pattern, sorted; an error naming the patterns when there are none."""
    patterns = list(patterns)
    found = sorted({path for pattern in patterns for path in root.glob(pattern) if path.is_file()})
    if not found:
        searched = ", ".join(str(root / pattern) for pattern in patterns)
        raise FileNotFoundError(f"No {what} found; searched {searched}")
    return found


def require_labels(examples: list[ExampleFiles], label_description: str) -> None:
    """Fail when an image has no label file, naming the image and where its label was expected."""
    for example in examples:
        if example.label is None or not os.path.isfile(example.label):
            raise FileNotFoundError(
                f"Image {example.image} has no label: expected {example.label or label_description}"
            )


def _open(path: str, what: str) -> Image.Image:
    try:
        return Image.open(path)
    except (UnidentifiedImageError, OSError) as error:
        raise ValueError(f"Cannot read {what} file {path}: {error}") from error


LOSSLESS_LABEL_FORMATS = ("PNG", "TIFF", "BMP")


def _check_lossless(label: Image.Image, path: str) -> None:
    """Labels must be stored losslessly: a JPEG (whatever its extension) changes class ids near every border."""
    if label.format not in LOSSLESS_LABEL_FORMATS:
        raise ValueError(
            f"Label {path} is stored as {label.format}, a lossy or unsupported format whose pixel values are not the "
            f"drawn labels; expected a lossless label file ({', '.join(LOSSLESS_LABEL_FORMATS)})."
        )


def check_image_complete(path: str) -> None:
    """Fail, naming the file, when an image is truncated or corrupt: PNG chunks and checksums are verified (fast),
    other formats are decoded. `datasets` decodes images later, when their error no longer names the file."""
    try:
        with Image.open(path) as image:
            if image.format == "PNG":
                image.verify()
            else:
                image.load()
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"Cannot read image file {path}: {error}; expected a complete image file") from error


def check_sizes(examples: Iterable[ExampleFiles]) -> None:
    """Open the headers of every image and label (cheap) so unreadable files, lossy labels and size mismatches fail
    at load time."""
    for example in examples:
        with _open(example.image, "image") as image:
            size = image.size
        if example.label is None:
            continue
        with _open(example.label, "label") as label:
            _check_lossless(label, example.label)
            if label.size != size:
                raise ValueError(
                    f"Label {example.label} is {label.size[0]}x{label.size[1]} but its image {example.image} is "
                    f"{size[0]}x{size[1]} (width x height)."
                )


def read_label(path: str, encoding: str) -> np.ndarray:
    """Read a single-channel label file and remap it with `encoding`; an error names the file and bad values."""
    table, allowed = ENCODINGS[encoding]
    with _open(path, "label") as label_image:
        _check_lossless(label_image, path)
        if label_image.mode not in ("L", "P", "I", "I;16"):
            raise ValueError(f"Label {path} has image mode {label_image.mode}; expected a single-channel label.")
        try:
            stored = np.asarray(label_image)
        except OSError as error:
            raise ValueError(f"Cannot read label file {path}: {error}") from error
    if stored.dtype != np.uint8:
        if stored.size and (stored.min() < 0 or stored.max() > 255):
            raise ValueError(f"Label {path} has values outside 0-255; expected {allowed}.")
        stored = stored.astype(np.uint8)
    mapped = table[stored]
    invalid = mapped < 0
    if invalid.any():
        values = np.unique(stored[invalid]).tolist()
        raise ValueError(f"Label {path} has values {values[:20]} that the layout does not allow; expected {allowed}.")
    return mapped.astype(np.uint8)


def generate_file_examples(files: list[dict], dataset: str, skip_unlabelled: bool = False) -> Iterable[dict]:
    """Yield schema examples from `ExampleFiles` dicts (one shard = a list of them).

    Images are passed by path (decoded by `datasets` when read) after a check that they are complete; labels are
    read, checked and remapped here.
    With `skip_unlabelled`, frames whose label is void everywhere are skipped (SMIYC's "invalid frames").
    """
    for entry in files:
        example = ExampleFiles(**entry)
        check_image_complete(example.image)
        label = None
        if example.label is not None:
            mapped = read_label(example.label, example.encoding)
            if skip_unlabelled and (mapped == IGNORE_INDEX).all():
                logger.info("Skipping %s: its label %s has no labelled pixel.", example.id, example.label)
                continue
            label = encode_array(mapped)
        yield {"image": {"path": example.image, "bytes": None}, "label": label, "id": example.id, "dataset": dataset}


def file_builder(dataset: str, examples: list[ExampleFiles], skip_unlabelled: bool = False):
    """Check the headers of all files, then return `(generator, gen_kwargs)` with one shard per example."""
    check_sizes(examples)
    logger.info("Benchmark %s: %d examples.", dataset, len(examples))
    files = [asdict(example) for example in examples]
    return generate_file_examples, {"files": files, "dataset": dataset, "skip_unlabelled": skip_unlabelled}


def subfolder(root: Path, name: str) -> Path:
    """`root/name` when it exists (root is the parent folder), else `root` itself (root is that folder)."""
    return root / name if (root / name).is_dir() else root


def choose_layout(name: str, root: Path, markers: dict, layout: Optional[str]) -> str:
    """The layout named by the caller, or the single one whose marker (a relative path) exists under `root`."""
    if layout is not None:
        if layout not in markers:
            raise ValueError(f"Unknown layout {layout!r} for benchmark {name!r}; expected one of {sorted(markers)}.")
        return layout
    found = [key for key, marker in markers.items() if any((root / path).exists() for path in marker)]
    if len(found) == 1:
        return found[0]
    if not found:
        expected = "; ".join(f"{key}: {' or '.join(str(root / path) for path in marker)}" for key, marker in markers.items())
        raise FileNotFoundError(f"No known layout of benchmark {name!r} under {root}; looked for {expected}")
    raise ValueError(f"Several layouts of benchmark {name!r} found under {root} ({found}); pass layout=one of them.")


def original_and_labels_examples(base: Path, encoding: str) -> list[ExampleFiles]:
    """PEBAL / TDOS style: `<set>/labels/<x>.png` with the image `<set>/original/<x>.<png|jpg|jpeg|webp>`."""
    examples = []
    for label in find_files(base, ["labels/*.png"], "labels"):
        candidates = [base / "original" / f"{label.stem}{extension}" for extension in (".png", ".jpg", ".jpeg", ".webp")]
        image = next((path for path in candidates if path.is_file()), None)
        if image is None:
            raise FileNotFoundError(f"Label {label} has no image: expected {base / 'original' / label.stem}.<png|jpg|jpeg|webp>")
        examples.append(ExampleFiles(str(image), str(label), label.stem, encoding))
    return examples


def images_and_masks_examples(base: Path, encoding: str, image_patterns=("images/*.png", "images/*.jpg", "images/*.webp")):
    """Mask2Anomaly's validation bundle: `<set>/images/<x>.<ext>` with `<set>/labels_masks/<x>.png`."""
    images = find_files(base, image_patterns, "images")
    examples = [ExampleFiles(str(path), str(base / "labels_masks" / f"{path.stem}.png"), path.stem, encoding) for path in images]
    require_labels(examples, "labels_masks/<image stem>.png")
    return examples
