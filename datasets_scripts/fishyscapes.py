"""Fishyscapes Lost & Found (validation, 100 frames) and Fishyscapes Static, labels 0/1/255 used directly."""

from pathlib import Path

from .common import (
    ExampleFiles,
    check_root,
    choose_layout,
    file_builder,
    find_files,
    images_and_masks_examples,
    original_and_labels_examples,
    subfolder,
)


# Where the "original_labels" layout keeps its `original/` and `labels/` folders, relative to the root.
ORIGINAL_LABELS_FOLDERS = {
    "fishyscapes_lf": ("", "LostAndFound/", "fs_LostAndFound/"),
    "fishyscapes_static": ("", "Static/", "fs_static/"),
}


def _original_labels_base(root: Path, name: str) -> Path:
    """The folder holding `original/` (the root itself when none does: the file search then names what is missing)."""
    folders = [root / folder for folder in ORIGINAL_LABELS_FOLDERS[name] if (root / folder / "original").is_dir()]
    return folders[0] if folders else root


def _smiyc_lost_and_found(root, images_root):
    """SMIYC loader: `labels/val/<fid>_fishy-labels.png`; images from Lost & Found
    `leftImg8bit/{train,test}/<NN_scene>/<fid>_leftImg8bit.png` under `images_root`."""
    suffix = "_fishy-labels.png"
    labels = find_files(root, [f"labels/val/*{suffix}"], "Fishyscapes Lost & Found labels")
    images_root = check_root(images_root, "fishyscapes_lf (images_root)")
    images = {
        path.name[: -len("_leftImg8bit.png")]: path
        for path in images_root.glob("leftImg8bit/*/*/*_leftImg8bit.png")
    }
    examples = []
    for label in labels:
        fid = label.name[: -len(suffix)]
        if fid not in images:
            raise FileNotFoundError(
                f"Label {label} has no image: expected {images_root}/leftImg8bit/<split>/<scene>/{fid}_leftImg8bit.png"
            )
        examples.append(ExampleFiles(str(images[fid]), str(label), fid, "ood"))
    return examples


def _rba_lost_and_found(root):
    """RbA loader: `fishyscapes_lostandfound/<label>.png` with `laf_images/<label[5:-10]>leftImg8bit.png`."""
    labels = find_files(root, ["fishyscapes_lostandfound/*.png"], "Fishyscapes Lost & Found labels")
    examples = []
    for label in labels:
        image = root / "laf_images" / f"{label.name[5:-10]}leftImg8bit.png"
        if not image.is_file():
            raise FileNotFoundError(f"Label {label} has no image: expected {image}")
        examples.append(ExampleFiles(str(image), str(label), label.stem, "ood"))
    return examples


def build_fishyscapes_lf(root, split, layout=None, images_root=None):
    """Fishyscapes Lost & Found validation. Layouts: `"smiyc"` (labels under `root/labels/val`, images from a
    Lost & Found folder `images_root`, default `root`), `"rba"` (`Fishyscapes/fishyscapes_lostandfound` +
    `Fishyscapes/laf_images`), `"m2a"` (`FS_LostFound_full/images` + `labels_masks`), `"original_labels"`
    (PEBAL / TDOS / Gao24: `[LostAndFound|fs_LostAndFound]/original/<x>` + `labels/<x>.png`).
    """
    root = check_root(root, "fishyscapes_lf")
    markers = {
        "smiyc": ["labels/val"],
        "rba": ["fishyscapes_lostandfound", "Fishyscapes/fishyscapes_lostandfound"],
        "m2a": ["FS_LostFound_full/labels_masks"],
        "original_labels": [f"{folder}original" for folder in ORIGINAL_LABELS_FOLDERS["fishyscapes_lf"]],
    }
    layout = choose_layout("fishyscapes_lf", root, markers, layout)
    if layout == "smiyc":
        examples = _smiyc_lost_and_found(root, root if images_root is None else images_root)
    elif layout == "rba":
        examples = _rba_lost_and_found(subfolder(root, "Fishyscapes"))
    elif layout == "original_labels":
        examples = original_and_labels_examples(_original_labels_base(root, "fishyscapes_lf"), "ood")
    else:
        examples = images_and_masks_examples(root / "FS_LostFound_full", "ood")
    return file_builder("fishyscapes_lf", examples)


def _rba_static(root: Path, version):
    """RbA loader: `fs_val_v<N>/<x>_labels.png` with the rebuilt images `fs_static_images_v<N>/<x>_rgb.png`."""
    versions = sorted(path.name[len("fs_val_v") :] for path in root.glob("fs_val_v*") if path.is_dir())
    if version is None:
        if len(versions) != 1:
            raise ValueError(f"Fishyscapes Static versions {versions} under {root}: pass version=one of them.")
        version = versions[0]
    suffix = "_labels.png"
    labels = find_files(root, [f"fs_val_v{version}/*{suffix}"], "Fishyscapes Static labels")
    examples = [
        ExampleFiles(str(root / f"fs_static_images_v{version}" / f"{label.name[: -len(suffix)]}_rgb.png"), str(label),
                     label.name[: -len(suffix)], "ood")
        for label in labels
    ]  # fmt: skip
    for example in examples:
        if not Path(example.image).is_file():
            raise FileNotFoundError(
                f"Label {example.label} has no image: expected {example.image} (rebuild the Static images from "
                "Cityscapes and the distributed .npz differences first)"
            )
    return examples


def build_fishyscapes_static(root, split, layout=None, version=None):
    """Fishyscapes Static validation. Layouts: `"rba"` (`Fishyscapes/fs_val_v<N>` + `fs_static_images_v<N>`;
    `version` picks N when several are present), `"m2a"` (`fs_static/images/*.jpg` + `labels_masks`) and
    `"original_labels"` (PEBAL / TDOS / Gao24: `[Static|fs_static]/original/<x>` + `labels/<x>.png`).
    """
    root = check_root(root, "fishyscapes_static")
    markers = {
        "rba": [f"{parent}fs_val_v{version}" for parent in ("", "Fishyscapes/") for version in (1, 2, 3)],
        "m2a": ["fs_static/labels_masks"],
        "original_labels": [f"{folder}original" for folder in ORIGINAL_LABELS_FOLDERS["fishyscapes_static"]],
    }
    layout = choose_layout("fishyscapes_static", root, markers, layout)
    if layout == "rba":
        examples = _rba_static(subfolder(root, "Fishyscapes"), version)
    elif layout == "original_labels":
        examples = original_and_labels_examples(_original_labels_base(root, "fishyscapes_static"), "ood")
    else:
        examples = images_and_masks_examples(root / "fs_static", "ood")
    return file_builder("fishyscapes_static", examples)
