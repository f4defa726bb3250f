"""`protocol="smiyc"` against numbers of the official SegmentMeIfYouCan code on road-like frames.

The expected values were computed (NumPy 2.4.6, SciPy 1.17.1) by running a faithful re-implementation of the
official functions of github.com/SegmentMeIfYouCan/road-anomaly-benchmark, kept outside this repository, on the frames
of `road_like_frames()`, with the scores cast to float16 as the official `save_output` stores them:
  * `binary_confusion_matrix` (percentile bins, edges [min - eps, max + eps] plus quantiles, eps in float64 as NumPy
    1.23 computes it) and `MetricPixelClassification.aggregate_dynamic_bins` of `metrics/pixel_classification.py`
    as of commit 1c7804e0749686452eb02bbcfb81234e38795f8a;
  * `curves_from_cmats` of `metrics/pixel_classification_curves.py` as of commit 6bc8f37 (de-duplicated thresholds,
    prepended origin) with the best-F1 threshold taken at the best curve point, which commit 1c7804e ("fix best-f1
    threshold selection") made the reported `best_f1_threshold`; the code as of 6bc8f37 / b519c58 reports 0.8940
    on these frames, and then sIoU 0.4135, PPV 0.9805, mean F1 0.4114;
  * `default_instancer`, `segment_metrics` and `MetricSegment.aggregate` of `metrics/instance_segmentation.py`
    (commit 7bf85bf) with the `SegEval-AnomalyTrack` sizes (500 / 100 px) and that threshold.
"""

import numpy as np
import pytest
from scipy.ndimage import zoom

from tdos.evaluation import ComponentOODMetrics, PixelOODMetrics


def road_like_frames(num_frames=5, height=1024, width=2048, seed=0):
    """Frames with 1-5 % OOD pixels in elliptic blobs, a void band and smooth, continuous float32 scores.

    Scores are high inside the blobs and fall off smoothly across their borders; low-frequency noise adds
    unlabelled false alarms and uneven scores inside the blobs.
    """
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    for _ in range(num_frames):
        labels = np.zeros((height, width), np.uint8)
        field = np.zeros((height, width), np.float32)
        target = rng.uniform(0.01, 0.04) * height * width
        while np.count_nonzero(labels == 1) < target:
            center_row, center_col = rng.uniform(0.2, 0.85) * height, rng.uniform(0.05, 0.95) * width
            axis_row, axis_col = rng.uniform(0.02, 0.08) * height, rng.uniform(0.02, 0.08) * width
            angle = rng.uniform(0, np.pi)
            along = (cols - center_col) * np.cos(angle) + (rows - center_row) * np.sin(angle)
            across = -(cols - center_col) * np.sin(angle) + (rows - center_row) * np.cos(angle)
            radius = np.sqrt((along / axis_col) ** 2 + (across / axis_row) ** 2)
            labels[radius <= 1] = 1
            np.maximum(field, np.exp(-np.log(2) * radius**2), out=field)
        noise = zoom(rng.standard_normal((height // 64, width // 64)).astype(np.float32), 64, order=3)
        scores = 1 / (1 + np.exp(-8 * (field + 0.15 * noise - 0.5)))
        labels[int(height * 0.9) :] = 255  # ego vehicle
        yield scores.astype(np.float32), labels


# Official values on `road_like_frames()` (see the module docstring).
OFFICIAL = {
    "average_precision": 0.9274011279891137,
    "auroc": 0.996748308098716,
    "fpr95": 0.013364156500593024,
    "best_f1": 0.8493545379211833,
    "best_threshold": 0.493896484375,
    "siou": 0.721634091216032,
    "ppv": 0.8374144276098597,
    "mean_f1": 0.912432148795785,
}


@pytest.fixture(scope="module")
def frames():
    return list(road_like_frames())


def test_pixel_metrics_and_best_threshold_match_the_official_code(frames):
    metrics = PixelOODMetrics(protocol="smiyc")
    for scores, labels in frames:
        metrics.update(scores, labels)
    result = metrics.compute()
    for name in ("average_precision", "auroc", "fpr95", "best_f1", "best_threshold"):
        assert getattr(result, name) == pytest.approx(OFFICIAL[name], abs=1e-12), name


def test_component_metrics_at_the_pixel_threshold_match_the_official_code(frames):
    pixel = PixelOODMetrics(protocol="smiyc")
    for scores, labels in frames:
        pixel.update(scores, labels)
    components = ComponentOODMetrics.from_pixel_result(pixel.compute(), track="AnomalyTrack")
    for scores, labels in frames:
        components.update(scores, labels)
    result = components.compute()
    for name in ("siou", "ppv", "mean_f1"):
        assert getattr(result, name) == pytest.approx(OFFICIAL[name], abs=1e-12), name


def test_smiyc_size_filter_also_voids_a_small_background():
    # 550 OOD pixels and 50 in-distribution pixels, all predicted OOD. The official instancer loops over component
    # ids 0 ... n, so the background (50 px < 100 px) becomes void like a small ground-truth object.
    labels = np.ones((20, 30), np.uint8)
    labels[:5, :10] = 0
    scores = np.ones(labels.shape, np.float32)
    official = ComponentOODMetrics(threshold=0.5, track="AnomalyTrack", protocol="smiyc")
    official.update(scores, labels)
    result = official.compute()
    assert (result.siou, result.ppv, result.num_ground_truth, result.num_predicted) == (1.0, 1.0, 1, 1)
    exact = ComponentOODMetrics(threshold=0.5, track="AnomalyTrack")
    exact.update(scores, labels)
    result = exact.compute()
    assert result.siou == pytest.approx(550 / 600) and result.ppv == pytest.approx(550 / 600)
    # with enough background pixels both protocols keep it
    labels[:10, :10] = 0
    for protocol in ("smiyc", "exact"):
        metrics = ComponentOODMetrics(threshold=0.5, track="AnomalyTrack", protocol=protocol)
        metrics.update(scores, labels)
        assert metrics.compute().ppv == pytest.approx(500 / 600), protocol
