"""The local `evaluate` module `metrics/ood_segmentation` gives the library's numbers from per-frame summaries."""

import math
from pathlib import Path

import evaluate
import numpy as np
import pytest

from tdos.evaluation import ComponentOODMetrics, PixelOODMetrics, SemanticIoUMetrics


MODULE = str(Path(__file__).resolve().parents[1] / "metrics" / "ood_segmentation")


def frames(dtype=np.float32, num_frames=3, seed=0):
    rng = np.random.default_rng(seed)
    result = []
    for index in range(num_frames):
        labels = np.zeros((40, 60), np.uint8)
        labels[5 + index : 15 + index, 10:25] = 1
        labels[rng.random(labels.shape) < 0.05] = 255
        scores = (rng.random(labels.shape) * 0.7 + 0.4 * (labels == 1)).astype(dtype)
        result.append((scores, labels))
    return result


def assert_same(module_values, library_values):
    assert module_values.keys() == library_values.keys()
    for key, value in library_values.items():
        assert (math.isnan(value) and math.isnan(module_values[key])) or module_values[key] == value, key


@pytest.mark.parametrize(
    "options", [{}, {"protocol": "smiyc", "fpr95_rule": "strict"}, {"key_bits": 19, "fpr95_rule": "interpolate"}]
)
def test_pixel_config_matches_the_library(options):
    metric = evaluate.load(MODULE)
    producer, library = PixelOODMetrics(**options), PixelOODMetrics(**options)
    for scores, labels in frames():
        metric.add_batch(**producer.summarize(scores, labels).to_dict())
        library.update(scores, labels)
    assert_same(metric.compute(**options), library.compute().to_dict())


def test_components_and_miou_configs_match_the_library():
    components = evaluate.load(MODULE, "components")
    producer = ComponentOODMetrics(threshold=0.6, min_prediction_size=5, min_ground_truth_size=5)
    library = ComponentOODMetrics(threshold=0.6, min_prediction_size=5, min_ground_truth_size=5)
    miou = evaluate.load(MODULE, "miou")
    semantic = SemanticIoUMetrics(num_classes=2)
    for scores, labels in frames():
        components.add(**producer.summarize(scores, labels).to_dict())
        library.update(scores, labels)
        prediction = (scores > 0.6).astype(np.int64)
        miou.add(confusion_matrix=semantic.summarize(prediction, labels).tolist())
        semantic.update(prediction, labels)
    expected = library.compute().to_dict()
    assert expected["num_ground_truth"] == 3 and expected["siou"] > 0
    assert_same(components.compute(), expected | {"threshold": float("nan")})
    assert_same(miou.compute(num_classes=2), semantic.compute().to_dict())


def test_unknown_config_is_refused():
    with pytest.raises(ValueError, match="config 'pr' is not supported"):
        evaluate.load(MODULE, "pr")
