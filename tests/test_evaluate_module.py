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


def frames_of_two_sizes(dtype=np.float16):
    """Frames of 40 x 60 and 33 x 71 pixels; float16-representable scores (stored as float32)."""
    rng = np.random.default_rng(3)
    result = []
    for index, shape in enumerate([(40, 60), (33, 71), (40, 60)]):
        labels = np.zeros(shape, np.uint8)
        labels[4 + index : 16 + index, 9:27] = 1
        labels[rng.random(shape) < 0.05] = 255
        scores = (rng.random(shape) * 0.7 + 0.4 * (labels == 1)).astype(dtype).astype(np.float32)
        result.append((scores, labels))
    return result


@pytest.mark.parametrize("options", [{}, {"protocol": "smiyc", "fpr95_rule": "strict"}])
def test_pixel_config_takes_predictions_and_references(options):
    frames = frames_of_two_sizes()
    library = PixelOODMetrics(**options)
    for scores, labels in frames:
        library.update(scores, labels)
    expected = library.compute().to_dict()
    metric = evaluate.load(MODULE, **options)
    metric.add_batch(predictions=[s for s, _ in frames[:2]], references=[label for _, label in frames[:2]])
    metric.add(prediction=frames[2][0], reference=frames[2][1])
    assert_same(metric.compute(), expected)
    again = evaluate.load(MODULE, **options)
    assert_same(again.compute(predictions=[s for s, _ in frames], references=[label for _, label in frames]), expected)


def test_pixel_config_equals_scikit_learn_on_float16_scores():
    from sklearn.metrics import average_precision_score, roc_auc_score

    frames = frames_of_two_sizes()
    values = evaluate.load(MODULE).compute(
        predictions=[s for s, _ in frames], references=[label for _, label in frames]
    )
    scores = np.concatenate([s[label != 255] for s, label in frames])
    truth = np.concatenate([label[label != 255] == 1 for _, label in frames])
    assert abs(values["average_precision"] - average_precision_score(truth, scores)) < 1e-6
    assert abs(values["auroc"] - roc_auc_score(truth, scores)) < 1e-6


def test_components_config_takes_its_threshold_from_the_pixel_result():
    frames = frames_of_two_sizes()
    pixel = PixelOODMetrics(protocol="smiyc")
    for scores, labels in frames:
        pixel.update(scores, labels)
    pixel_result = pixel.compute()
    library = ComponentOODMetrics.from_pixel_result(pixel_result, min_prediction_size=5, min_ground_truth_size=5)
    for scores, labels in frames:
        library.update(scores, labels)
    expected = library.compute().to_dict()
    assert expected["num_ground_truth"] == 3 and expected["threshold"] == pixel_result.best_threshold
    predictions, references = [s for s, _ in frames], [label for _, label in frames]
    from_result = evaluate.load(
        MODULE, "components", pixel_result=pixel_result, min_prediction_size=5, min_ground_truth_size=5
    )
    assert_same(from_result.compute(predictions=predictions, references=references), expected)
    pixel_values = evaluate.load(MODULE, protocol="smiyc").compute(predictions=predictions, references=references)
    from_dict = evaluate.load(
        MODULE, "components", pixel_result=pixel_values, protocol="smiyc", min_prediction_size=5,
        min_ground_truth_size=5,
    )
    assert_same(from_dict.compute(predictions=predictions, references=references), expected)


def test_miou_config_takes_predictions_and_references():
    frames = frames_of_two_sizes()
    semantic = SemanticIoUMetrics(num_classes=2)
    metric = evaluate.load(MODULE, "miou", num_classes=2)
    for scores, labels in frames:
        prediction = (scores > 0.6).astype(np.int64)
        semantic.update(prediction, labels)
        metric.add(prediction=prediction, reference=labels)
    assert_same(metric.compute(), semantic.compute().to_dict())


def test_bad_frame_inputs_are_refused_with_the_reason():
    frames = frames_of_two_sizes()
    metric = evaluate.load(MODULE)
    with pytest.raises(ValueError, match="got 2 predictions for 1 references"):
        metric.add_batch(predictions=[frames[0][0], frames[1][0]], references=[frames[0][1]])
    with pytest.raises(ValueError, match="give both predictions and references"):
        metric.add_batch(predictions=[frames[0][0]])
    with pytest.raises(ValueError, match=r"frame 0: score map shape \(40, 60\) differs from label map shape"):
        metric.add(prediction=frames[0][0], reference=frames[1][1])
    with pytest.raises(ValueError, match="not both"):
        metric.add(prediction=frames[0][0], reference=frames[0][1], thresholds=0.5)
    metric.add(prediction=frames[0][0], reference=frames[0][1])
    with pytest.raises(ValueError, match="give the options to evaluate.load"):
        metric.compute(protocol="smiyc")
    with pytest.raises(ValueError, match="no score threshold"):
        evaluate.load(MODULE, "components").add(prediction=frames[0][0], reference=frames[0][1])
    with pytest.raises(ValueError, match="pixel_result must be a PixelOODResult or the dict"):
        evaluate.load(MODULE, "components", pixel_result=0.5)
