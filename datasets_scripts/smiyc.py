"""SegmentMeIfYouCan AnomalyTrack (RoadAnomaly21) and ObstacleTrack (RoadObstacle21), with SMIYC's split rules."""

from .common import (
    ExampleFiles,
    check_root,
    choose_layout,
    file_builder,
    find_files,
    images_and_masks_examples,
    require_labels,
    subfolder,
)


IMAGE_PATTERNS = ("images/*.jpg", "images/*.png", "images/*.webp")
# SMIYC `datasets/road_anomaly_21.py`: ObstacleTrack scenes (fid prefix before "_") per split.
OBSTACLE_SCENES = {
    "test": {"curvy-street", "one-way-street", "gravel", "greyasphalt", "motorway", "paving", "darkasphalt", "darkasphalt2"},
    "validation": {"validation"},
    "night": {"driveway"},
    "snowstorm": {"snowstorm1", "snowstorm2"},
}
# ObstacleTrack-validation leaves out these frames (30 of the 'validation' scene remain).
OBSTACLE_VALIDATION_EXCLUDED = tuple(f"validation_{number}" for number in (19, *range(21, 30)))


def _smiyc_examples(base, keep_fid, labelled):
    """`images/<fid>.<ext>` with `labels_masks/<fid>_labels_semantic.png`; test frames have no public label."""
    examples = []
    for image in find_files(base, IMAGE_PATTERNS, "SMIYC images"):
        if keep_fid(image.stem):
            label = base / "labels_masks" / f"{image.stem}_labels_semantic.png"
            examples.append(ExampleFiles(str(image), str(label) if labelled or label.is_file() else None, image.stem, "ood"))
    if not examples:
        raise FileNotFoundError(f"No SMIYC frames of the requested split among the images in {base / 'images'}")
    if labelled:
        require_labels(examples, "labels_masks/<fid>_labels_semantic.png")
    return examples


def build_smiyc_anomaly(root, split, layout=None):
    """AnomalyTrack. Layouts: `"smiyc"` (`dataset_AnomalyTrack/images`, `labels_masks/<fid>_labels_semantic.png`;
    validation = the 10 fids containing "validation", test = the 100 others, without labels) and `"m2a"`
    (Mask2Anomaly's `RoadAnomaly21/images` + `labels_masks/<fid>.png`, validation only).
    """
    root = check_root(root, "smiyc_anomaly")
    markers = {"smiyc": ["dataset_AnomalyTrack", "labels_masks"], "m2a": ["RoadAnomaly21/labels_masks"]}
    layout = choose_layout("smiyc_anomaly", root, markers, layout)
    if layout == "m2a":
        if split != "validation":
            raise ValueError("Mask2Anomaly's RoadAnomaly21 bundle holds only the validation split.")
        return file_builder("smiyc_anomaly", images_and_masks_examples(root / "RoadAnomaly21", "ood"))
    is_validation = split == "validation"
    examples = _smiyc_examples(
        subfolder(root, "dataset_AnomalyTrack"), lambda fid: ("validation" in fid) == is_validation, is_validation
    )
    return file_builder("smiyc_anomaly", examples)


def _obstacle_frame_filter(split):
    scenes = OBSTACLE_SCENES[split]

    def keep(fid):
        if fid.split("_")[0] not in scenes:
            return False
        return split != "validation" or not fid.startswith(OBSTACLE_VALIDATION_EXCLUDED)

    return keep


def build_smiyc_obstacle(root, split, layout=None):
    """ObstacleTrack. Layouts: `"smiyc"` (`dataset_ObstacleTrack/images/<fid>.webp`,
    `labels_masks/<fid>_labels_semantic.png`; splits by scene = fid prefix: validation (30 frames, after SMIYC's
    exclusion of `validation_19`, `validation_21` ... `validation_29`), test (327), night, snowstorm; labels only
    where distributed) and `"m2a"` (Mask2Anomaly's `RoadObsticle21/images` + `labels_masks/<fid>.png`).
    """
    root = check_root(root, "smiyc_obstacle")
    markers = {"smiyc": ["dataset_ObstacleTrack", "labels_masks"], "m2a": ["RoadObsticle21/labels_masks"]}
    layout = choose_layout("smiyc_obstacle", root, markers, layout)
    keep = _obstacle_frame_filter(split)
    if layout == "m2a":
        if split != "validation":
            raise ValueError("Mask2Anomaly's RoadObsticle21 bundle holds only the validation split.")
        examples = [example for example in images_and_masks_examples(root / "RoadObsticle21", "ood") if keep(example.id)]
        if not examples:
            raise FileNotFoundError(f"No ObstacleTrack validation frames in {root / 'RoadObsticle21' / 'images'}")
        return file_builder("smiyc_obstacle", examples)
    examples = _smiyc_examples(subfolder(root, "dataset_ObstacleTrack"), keep, split == "validation")
    return file_builder("smiyc_obstacle", examples)
