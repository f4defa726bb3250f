"""Lost & Found (original layout) as an OOD benchmark, read as SMIYC does: 0 -> 255, 1 -> 0, 2-200 -> 1."""

from .common import ExampleFiles, check_root, file_builder, find_files, require_labels


SPLIT_FOLDERS = {"train": "train", "test": "test", "testNoKnown": "test"}
# SMIYC `LostAndFound-testNoKnown`: test frames minus scenes with known objects (children, bicycles) ...
NO_KNOWN_EXCLUDED_PREFIXES = (
    "15_Rechbergstr_Deckenpfronn",
    "01_Hanns_Klemm_Str_45_000006",
    "01_Hanns_Klemm_Str_45_000007",
    "10_Schlossberg_9_000004",
)
# ... and minus the frames whose label has no labelled pixel (SMIYC lists their indices; we test the labels).


def build_lost_and_found(root, split):
    """Lost & Found: `leftImg8bit/<split>/<NN_scene>/<fid>_leftImg8bit.<png|webp|jpg>` with
    `gtCoarse/<split>/<NN_scene>/<fid>_gtCoarse_labelIds.png`. Splits: `train`, `test` (1203) and `testNoKnown`
    (1043: SMIYC's exclusions, unlabelled frames skipped while streaming).
    """
    root = check_root(root, "lost_and_found")
    folder = SPLIT_FOLDERS[split]
    patterns = [f"leftImg8bit/{folder}/*/*_leftImg8bit.{extension}" for extension in ("png", "webp", "jpg")]
    images = find_files(root, patterns, "Lost & Found images")
    examples = []
    for image in images:
        fid = image.name[: image.name.rindex("_leftImg8bit.")]
        if split == "testNoKnown" and fid.startswith(NO_KNOWN_EXCLUDED_PREFIXES):
            continue
        label = root / "gtCoarse" / folder / image.parent.name / f"{fid}_gtCoarse_labelIds.png"
        examples.append(ExampleFiles(str(image), str(label), fid, "lost_and_found"))
    require_labels(examples, "gtCoarse/<split>/<NN_scene>/<fid>_gtCoarse_labelIds.png")
    return file_builder("lost_and_found", examples, skip_unlabelled=split == "testNoKnown")
