"""Road Anomaly (Lis et al., ICCV 2019): 60 frames, anomalies stored as 2 and read as 1."""

import json

from .common import ExampleFiles, check_root, choose_layout, file_builder, find_files, images_and_masks_examples, require_labels, subfolder


def _lis_examples(base):
    """`frame_list.json` (or every `frames/*.jpg`) with `frames/<name>.labels/labels_semantic.png`."""
    frame_list = base / "frame_list.json"
    if frame_list.is_file():
        try:
            names = json.loads(frame_list.read_text())
        except json.JSONDecodeError as error:
            raise ValueError(f"Cannot read {frame_list}: {error}") from error
        if not isinstance(names, list) or not all(isinstance(name, str) for name in names):
            raise ValueError(f"{frame_list} must hold a JSON list of frame file names.")
        images = [base / "frames" / name for name in names]
        missing = [str(path) for path in images if not path.is_file()]
        if missing:
            raise FileNotFoundError(f"Frames listed in {frame_list} not found: {missing[:5]}")
    else:
        images = find_files(base, ["frames/*.jpg", "frames/*.png"], "Road Anomaly frames")
    examples = [
        ExampleFiles(str(image), str(image.parent / f"{image.stem}.labels" / "labels_semantic.png"), image.stem, "road_anomaly")
        for image in images
    ]
    require_labels(examples, "frames/<name>.labels/labels_semantic.png")
    return examples


def build_road_anomaly(root, split, layout=None):
    """Road Anomaly. Layouts: `"lis"` (the distributed `RoadAnomaly_jpg` folder) and `"m2a"`
    (Mask2Anomaly's `RoadAnomaly/images/*.jpg` + `labels_masks/*.png`). Label 2 (anomaly) becomes 1.
    """
    root = check_root(root, "road_anomaly")
    markers = {"lis": ["RoadAnomaly_jpg", "frames"], "m2a": ["RoadAnomaly/labels_masks"]}
    layout = choose_layout("road_anomaly", root, markers, layout)
    if layout == "lis":
        examples = _lis_examples(subfolder(root, "RoadAnomaly_jpg"))
    else:
        examples = images_and_masks_examples(root / "RoadAnomaly", "road_anomaly")
    return file_builder("road_anomaly", examples)
