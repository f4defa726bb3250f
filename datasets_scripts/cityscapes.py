"""Cityscapes (`leftImg8bit` + `gtFine`) and POC-style Cityscapes+objects folders, as trainIds."""

from pathlib import Path

from .common import ExampleFiles, check_root, file_builder, find_files, require_labels


SPLIT_FOLDERS = {"train": "train", "validation": "val", "test": "test"}
LABEL_TYPES = ("auto", "train_ids", "label_ids")


def _cityscapes_label(image: Path, label_dir: Path, label_type: str) -> tuple[str, str]:
    """Label path and encoding of a Cityscapes image: `labelTrainIds` when present (or asked), else `labelIds`."""
    base = image.name[: -len("_leftImg8bit.png")]
    train_ids = label_dir / f"{base}_gtFine_labelTrainIds.png"
    label_ids = label_dir / f"{base}_gtFine_labelIds.png"
    if label_type == "train_ids" or (label_type == "auto" and train_ids.is_file()):
        return str(train_ids), "train_ids"
    return str(label_ids), "cityscapes_label_ids"


def build_cityscapes(root, split, label_type="auto"):
    """Cityscapes: `leftImg8bit/<split>/<city>/<x>_leftImg8bit.png` with `gtFine/<split>/<city>/<x>_gtFine_*.png`.

    Args:
        label_type (`str`, *optional*, defaults to `"auto"`): `"train_ids"` reads `*_gtFine_labelTrainIds.png`
            (made by cityscapesScripts `createTrainIdLabelImgs.py`), `"label_ids"` remaps `*_gtFine_labelIds.png`
            to trainIds, `"auto"` takes the first when present.
    """
    if label_type not in LABEL_TYPES:
        raise ValueError(f"Unknown Cityscapes label_type {label_type!r}; expected one of {LABEL_TYPES}.")
    root = check_root(root, "cityscapes")
    folder = SPLIT_FOLDERS[split]
    images = find_files(root, [f"leftImg8bit/{folder}/*/*_leftImg8bit.png"], "Cityscapes images")
    examples = []
    for image in images:
        label, encoding = _cityscapes_label(image, root / "gtFine" / folder / image.parent.name, label_type)
        examples.append(ExampleFiles(str(image), label, image.name[: -len("_leftImg8bit.png")], encoding))
    require_labels(examples, "gtFine/<split>/<city>/<x>_gtFine_labelTrainIds.png or _labelIds.png")
    return file_builder("cityscapes", examples)


def build_cityscapes_ood(root, split):
    """POC-style Cityscapes+objects (docs/method.md §6): `leftImg8bit/<split>/**/<name>.png` with the label at the same
    relative path and name under `gtFine/<split>/`; trainIds with object ids 19-254 mapped to 19 (OOD).
    Labels named like Cityscapes (`<x>_gtFine_labelTrainIds.png`) are found too.
    """
    root = check_root(root, "cityscapes_ood")
    folder = SPLIT_FOLDERS[split]
    image_dir, label_dir = root / "leftImg8bit" / folder, root / "gtFine" / folder
    images = find_files(root, [f"leftImg8bit/{folder}/**/*.png"], "Cityscapes+objects images")
    examples = []
    for image in images:
        relative = image.relative_to(image_dir)
        label = label_dir / relative
        if not label.is_file() and image.name.endswith("_leftImg8bit.png"):
            label = label.with_name(image.name.replace("_leftImg8bit.png", "_gtFine_labelTrainIds.png"))
        examples.append(ExampleFiles(str(image), str(label), str(relative.with_suffix("")), "poc"))
    require_labels(examples, "gtFine/<split>/<same relative path>")
    return file_builder("cityscapes_ood", examples)
