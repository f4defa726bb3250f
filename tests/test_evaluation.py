"""Streaming OOD metrics (`tdos.evaluation`) against scikit-learn, hand-made curves and hand-drawn frames."""

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from tdos.evaluation import (
    ComponentFrameSummary,
    ComponentOODMetrics,
    PixelOODMetrics,
    SemanticIoUMetrics,
    fpr_at_tpr,
    plot_curves,
)


def random_frames(dtype, num_frames=4, shape=(48, 64), seed=0, quantum=None):
    """Frames with ~10 % OOD pixels scored higher on average, ~10 % void pixels and one all-void frame."""
    rng = np.random.default_rng(seed)
    frames = []
    for index in range(num_frames):
        labels = (rng.random(shape) < 0.1).astype(np.uint8)
        labels[rng.random(shape) < 0.1] = 255
        if index == 1:
            labels[:] = 255
        scores = rng.random(shape) + 0.6 * (labels == 1)
        if quantum is not None:
            scores = np.round(scores / quantum) * quantum  # many ties
        frames.append((scores.astype(dtype), labels))
    return frames


def pooled(frames):
    scores = np.concatenate([s.reshape(-1) for s, _ in frames]).astype(np.float64)
    labels = np.concatenate([l.reshape(-1) for _, l in frames])
    keep = labels != 255
    return scores[keep], labels[keep] == 1


def evaluate_frames(frames, **kwargs):
    metrics = PixelOODMetrics(**kwargs)
    for scores, labels in frames:
        metrics.update(scores, labels)
    return metrics.compute()


@pytest.mark.parametrize("quantum", [None, 0.05])
def test_pixel_metrics_match_sklearn_on_float16_scores(quantum):
    frames = random_frames(np.float16, quantum=quantum)
    scores, positive = pooled(frames)
    result = evaluate_frames(frames)
    assert abs(result.average_precision - average_precision_score(positive, scores)) < 1e-6
    assert abs(result.auroc - roc_auc_score(positive, scores)) < 1e-6
    assert result.num_positives == positive.sum() and result.num_negatives == (~positive).sum()
    assert result.positive_fraction == pytest.approx(positive.mean())
    # one curve point per distinct score, as scikit-learn's
    assert result.thresholds.size == np.unique(scores).size
    np.testing.assert_array_equal(np.sort(result.thresholds), np.unique(scores))


def test_pixel_metrics_match_sklearn_on_float32_scores():
    frames = random_frames(np.float32, seed=1)
    scores, positive = pooled(frames)
    result = evaluate_frames(frames)
    assert abs(result.average_precision - average_precision_score(positive, scores)) < 1e-4
    assert abs(result.auroc - roc_auc_score(positive, scores)) < 1e-4


def test_best_f1_and_threshold_by_brute_force():
    frames = random_frames(np.float16, quantum=0.1, seed=2)
    scores, positive = pooled(frames)
    result = evaluate_frames(frames)
    f1 = {}
    for threshold in np.unique(scores):
        predicted = scores >= threshold
        tp = np.sum(predicted & positive)
        f1[threshold] = 2 * tp / (predicted.sum() + positive.sum())
    best = max(f1, key=f1.get)
    assert result.best_f1 == pytest.approx(f1[best])
    assert result.best_threshold == pytest.approx(best)


def test_fpr95_rules_on_hand_made_curves():
    # TPR 0.05, 0.5, 0.95, 1.0 / FPR 0, 0.2, 0.5, 1.0: the curve reaches TPR = 0.95 exactly
    tps, fps = [1, 10, 19, 20], [0, 2, 5, 10]
    assert fpr_at_tpr(tps, fps, rule="smiyc") == pytest.approx(0.5)
    assert fpr_at_tpr(tps, fps, rule="strict") == pytest.approx(1.0)
    assert fpr_at_tpr(tps, fps, rule="interpolate") == pytest.approx(0.5)
    # TPR 0.05, 0.5, 0.9, 1.0: 0.95 is crossed between the last two points
    tps = [1, 10, 18, 20]
    assert fpr_at_tpr(tps, fps, rule="smiyc") == pytest.approx(1.0)
    assert fpr_at_tpr(tps, fps, rule="strict") == pytest.approx(1.0)
    assert fpr_at_tpr(tps, fps, rule="interpolate") == pytest.approx(0.75)
    # scikit-learn's roc_curve drops a point whose step equals the previous one (TPR 0.96 here), so "strict" does
    tps, fps = [92, 96, 100], [0, 4, 8]
    assert fpr_at_tpr(tps, fps, rule="smiyc") == pytest.approx(0.5)
    assert fpr_at_tpr(tps, fps, rule="strict") == pytest.approx(1.0)
    assert fpr_at_tpr(tps, fps, rule="interpolate") == pytest.approx(0.375)
    assert np.isnan(fpr_at_tpr([0, 0], [1, 2]))
    with pytest.raises(ValueError, match="rule"):
        fpr_at_tpr(tps, fps, rule="median")


def test_fpr95_rules_match_the_peer_implementations():
    frames = random_frames(np.float16, quantum=0.01, seed=3)
    scores, positive = pooled(frames)
    fpr, tpr, _ = roc_curve(positive, scores)  # drop_intermediate=True, as RbA and ood-metrics call it
    rba = fpr[np.flatnonzero(tpr > 0.95)[0]]
    ood_metrics = np.interp(0.95, tpr, fpr)
    full_fpr, full_tpr, _ = roc_curve(positive, scores, drop_intermediate=False)
    smiyc = full_fpr[np.flatnonzero(full_tpr >= 0.95)[0]]
    for rule, expected in (("strict", rba), ("interpolate", ood_metrics), ("smiyc", smiyc)):
        result = evaluate_frames(frames, fpr95_rule=rule)
        assert result.fpr95 == pytest.approx(expected, abs=1e-12), rule
        assert result.fpr_at_tpr(0.95) == result.fpr95


def test_summaries_give_the_same_result_as_update():
    frames = random_frames(np.float32, seed=4)
    direct = evaluate_frames(frames)
    producer, consumer = PixelOODMetrics(), PixelOODMetrics()
    for scores, labels in frames:
        consumer.add_summary(producer.summarize(scores, labels))
    assert producer.num_frames == 0
    via_summaries = consumer.compute()
    assert via_summaries.to_dict() == direct.to_dict()
    np.testing.assert_array_equal(via_summaries.true_positives, direct.true_positives)
    with pytest.raises(ValueError, match="key_bits=20"):
        PixelOODMetrics(key_bits=20).add_summary(PixelOODMetrics(key_bits=22).summarize(*frames[0]))


def test_curves_and_to_dict():
    result = evaluate_frames(random_frames(np.float16, quantum=0.05))
    assert np.all(np.diff(result.thresholds) < 0)
    assert np.all(np.diff(result.recall) >= 0) and result.recall[-1] == 1.0 and result.fpr[-1] == 1.0
    assert result.precision[-1] == pytest.approx(result.positive_fraction)
    values = json.loads(json.dumps(result.to_dict()))
    assert set(values) >= {"auroc", "average_precision", "fpr95", "best_f1", "best_threshold", "positive_fraction"}
    assert all(type(value) in (float, int) for value in result.to_dict().values())


def test_reset_forgets_frames():
    frames = random_frames(np.float16)
    metrics = PixelOODMetrics()
    metrics.update(*frames[0])
    metrics.reset()
    for scores, labels in frames:
        metrics.update(scores, labels)
    assert metrics.compute().to_dict() == evaluate_frames(frames).to_dict()


@pytest.mark.parametrize(
    "scores, labels, message",
    [
        (np.zeros((4, 4)), np.zeros((4, 5), np.uint8), r"frame 'a'.*shape \(4, 4\) differs"),
        (np.zeros((4, 4)), np.full((4, 4), 2, np.uint8), r"frame 'a'.*labels contain \[2\]"),
        (np.full((4, 4), np.nan), np.zeros((4, 4), np.uint8), r"frame 'a'.*NaN or infinite"),
        (np.zeros((0, 4)), np.zeros((0, 4), np.uint8), r"frame 'a'.*empty frame"),
        (np.zeros((2, 2)), np.zeros((2, 2), np.float32), r"frame 'a'.*integer label map"),
    ],
)
def test_bad_input_names_the_frame(scores, labels, message):
    metrics = PixelOODMetrics()
    with pytest.raises(ValueError, match=message):
        metrics.update(scores, labels, frame_id="a")


def test_torch_tensors_are_accepted():
    import torch

    frames = random_frames(np.float16, quantum=0.05)
    metrics = PixelOODMetrics()
    for scores, labels in frames:
        metrics.update(torch.from_numpy(scores.astype(np.float32)).to(torch.bfloat16), torch.from_numpy(labels))
    expected = evaluate_frames([(torch.tensor(s.astype(np.float32)).bfloat16().float().numpy(), l) for s, l in frames])
    assert metrics.compute().to_dict() == expected.to_dict()


def test_bad_input_without_id_names_the_frame_index():
    metrics = PixelOODMetrics()
    metrics.update(np.zeros((2, 2)), np.zeros((2, 2), np.uint8))
    with pytest.raises(ValueError, match=r"frame #1.*inf"):
        metrics.update(np.array([[0.0, np.inf]]), np.array([[0, 1]], np.uint8))


def test_missing_class_gives_nan_with_a_warning():
    metrics = PixelOODMetrics()
    metrics.update(np.random.default_rng(0).random((8, 8)), np.zeros((8, 8), np.uint8))
    with pytest.warns(RuntimeWarning, match="No OOD"):
        result = metrics.compute()
    assert np.isnan(result.average_precision) and np.isnan(result.auroc) and np.isnan(result.fpr95)
    assert result.positive_fraction == 0.0
    metrics = PixelOODMetrics()
    metrics.update(np.random.default_rng(0).random((8, 8)), np.ones((8, 8), np.uint8))
    with pytest.warns(RuntimeWarning, match="No in-distribution"):
        result = metrics.compute()
    assert result.average_precision == 1.0 and np.isnan(result.auroc) and np.isnan(result.fpr95)


def test_smiyc_protocol_is_bounded_and_close_to_exact():
    frames = random_frames(np.float32, num_frames=3, shape=(64, 96), seed=5)
    metrics = PixelOODMetrics(protocol="smiyc", num_bins=64)
    summaries = [metrics.summarize(scores, labels) for scores, labels in frames]
    assert all(s.thresholds.size <= 64 + 1 for s in summaries)
    assert summaries[1].thresholds.size == 0  # the all-void frame
    for summary in summaries:
        metrics.add_summary(summary)
    binned, exact = metrics.compute(), evaluate_frames(frames)
    assert binned.protocol == "smiyc"
    assert abs(binned.average_precision - exact.average_precision) < 0.02
    assert abs(binned.auroc - exact.auroc) < 0.01
    # float16 storage: the official code cannot store scores beyond 65504
    with pytest.raises(ValueError, match="float16 range"):
        metrics.update(np.full((2, 2), 1e6), np.array([[0, 1], [0, 0]], np.uint8), frame_id="big")


def test_invalid_options():
    with pytest.raises(ValueError, match="protocol"):
        PixelOODMetrics(protocol="binned")
    with pytest.raises(ValueError, match="fpr95_rule"):
        PixelOODMetrics(fpr95_rule="rba")
    with pytest.raises(ValueError, match="key_bits"):
        PixelOODMetrics(key_bits=16)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        PixelOODMetrics(key_bits=19)


# ---------------------------------------------------------------------------------------------------------------
# Component metrics
# ---------------------------------------------------------------------------------------------------------------


def hand_drawn_frame():
    """A 20 x 30 frame whose component metrics are worked out by hand in `test_component_metrics_by_hand`."""
    labels = np.zeros((20, 30), np.uint8)
    labels[0] = 255  # void row
    labels[2:7, 2:8] = 1  # K1: 30 px
    labels[2:6, 12:16] = 1  # K2: 16 px
    labels[15, 25] = 1  # K3: 1 px, below the ground-truth size filter -> void
    predicted = np.zeros((20, 30), bool)
    predicted[0, 20:] = True  # on void: ignored
    predicted[2:6, 5:15] = True  # Q1: 41 px = 12 on K1 + 17 on road + 12 on K2
    predicted[6, 10] = True
    predicted[10:12, 2:6] = True  # Q2: 8 px on road
    predicted[17, 2:4] = True  # Q3: 2 px, below the prediction size filter -> deleted
    predicted[14:17, 24:27] = True  # Q4: 9 px, one of them on K3 (void), 8 on road
    scores = np.where(predicted, 0.9, 0.1).astype(np.float32)
    return scores, labels


def test_component_metrics_by_hand():
    metrics = ComponentOODMetrics(threshold=0.5, min_prediction_size=4, min_ground_truth_size=3)
    metrics.update(*hand_drawn_frame())
    result = metrics.compute()
    # sIoU(K) = |K & P| / (|K| + |P| - |K & P| - |P & other GT|)
    # K1 = 12 / (30 + 41 - 12 - 12), K2 = 12 / (16 + 41 - 12 - 12)
    siou = np.array([12 / 47, 12 / 33])
    ppv = np.array([24 / 41, 0.0, 0.0])  # Q1, Q2, Q4
    assert result.num_ground_truth == 2 and result.num_predicted == 3
    assert result.siou == pytest.approx(siou.mean())
    assert result.ppv == pytest.approx(ppv.mean())
    tau = np.linspace(0.25, 0.75, 11)
    tp = (siou[:, None] >= tau).sum(0)
    fp = (ppv[:, None] < tau).sum(0)
    np.testing.assert_array_equal(result.true_positives, [2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    np.testing.assert_array_equal(result.true_positives, tp)
    np.testing.assert_array_equal(result.false_positives, [2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3])
    np.testing.assert_array_equal(result.false_positives, fp)
    np.testing.assert_array_equal(result.false_negatives, 2 - tp)
    assert result.mean_f1 == pytest.approx((4 / 6 + 2 / 5 + 2 / 5) / 11)
    assert result.to_dict()["f1_25"] == pytest.approx(4 / 6) and result.to_dict()["f1_75"] == 0.0


def test_component_size_filters_and_tracks():
    scores, labels = hand_drawn_frame()
    unfiltered = ComponentOODMetrics(threshold=0.5, min_prediction_size=0, min_ground_truth_size=0)
    unfiltered.update(scores, labels)
    result = unfiltered.compute()
    # K3 stays (sIoU 1 / (1 + 8)), Q3 stays (PPV 0), Q4 now touches K3 (PPV 1 / 9)
    assert result.num_ground_truth == 3 and result.num_predicted == 4
    assert result.siou == pytest.approx((12 / 47 + 12 / 33 + 1 / 9) / 3)
    assert result.ppv == pytest.approx((24 / 41 + 1 / 9) / 4)
    obstacle = ComponentOODMetrics(threshold=0.5, track="ObstacleTrack")
    anomaly = ComponentOODMetrics(threshold=0.5, track="AnomalyTrack")
    assert (obstacle.min_prediction_size, obstacle.min_ground_truth_size) == (50, 10)
    assert (anomaly.min_prediction_size, anomaly.min_ground_truth_size) == (500, 100)
    assert ComponentOODMetrics(track="ObstacleTrack", min_prediction_size=7).min_prediction_size == 7
    obstacle.update(scores, labels)
    with pytest.warns(RuntimeWarning, match="No predicted"):
        result = obstacle.compute()  # every predicted component is < 50 px; K1 and K2 (>= 10 px) stay
    assert result.num_ground_truth == 2 and result.siou == 0.0 and np.isnan(result.ppv)
    assert result.mean_f1 == 0.0
    with pytest.raises(ValueError, match="track"):
        ComponentOODMetrics(track="Fishyscapes")


def official_component_scores(predicted, labels, min_prediction_size, min_ground_truth_size):
    """The official per-component loops (`default_instancer` + `segment_metrics` with PPV), as an oracle."""
    from scipy.ndimage import label

    gt, num_gt = label(labels == 1, np.ones((3, 3)))
    pred, num_pred = label(predicted & (labels != 255), np.ones((3, 3)))
    for component in range(1, num_pred + 1):
        if np.sum(pred == component) < min_prediction_size:
            pred[pred == component] = 0
    roi = labels != 255
    for component in range(1, num_gt + 1):
        if np.sum(gt == component) < min_ground_truth_size:
            roi &= gt != component
    gt, pred = gt[roi], pred[roi]
    siou, ppv = [], []
    for k in np.unique(gt[gt > 0]):
        touching = np.unique(pred[(gt == k) & (pred > 0)])
        in_p = np.isin(pred, touching)
        intersection = np.sum(in_p & (gt == k))
        adjustment = np.sum(in_p & (gt > 0) & (gt != k))
        siou.append(intersection / (in_p.sum() + np.sum(gt == k) - intersection - adjustment))
    for q in np.unique(pred[pred > 0]):
        ppv.append(np.mean(gt[pred == q] > 0))
    return np.array(siou), np.array(ppv)


def test_component_scores_match_the_official_loops_on_random_blobs():
    from scipy.ndimage import gaussian_filter

    rng = np.random.default_rng(7)
    for seed in range(3):
        field = gaussian_filter(rng.standard_normal((60, 80)), 2)
        labels = (gaussian_filter(rng.standard_normal((60, 80)), 2) > 0.15).astype(np.uint8)
        labels[rng.random(labels.shape) < 0.02] = 255
        metrics = ComponentOODMetrics(threshold=0.1, min_prediction_size=6, min_ground_truth_size=5)
        summary = metrics.summarize(field, labels)
        siou, ppv = official_component_scores(field >= 0.1, labels, 6, 5)
        assert siou.size > 1 and ppv.size > 1
        np.testing.assert_allclose(summary.siou, siou, atol=1e-12)
        np.testing.assert_allclose(summary.ppv, ppv, atol=1e-12)


def test_component_threshold_from_pixel_result_and_mask_mode():
    scores, labels = hand_drawn_frame()
    pixel = PixelOODMetrics()
    pixel.update(scores, labels)
    pixel_result = pixel.compute()
    metrics = ComponentOODMetrics.from_pixel_result(pixel_result, min_prediction_size=0, min_ground_truth_size=3)
    assert metrics.threshold == pixel_result.best_threshold == pytest.approx(0.9, abs=2e-4)  # lower edge of its bin
    metrics.update(scores, labels)
    masks = ComponentOODMetrics(min_prediction_size=100, min_ground_truth_size=3)  # no prediction filter on masks
    masks.update(scores > 0.5, labels)
    assert masks.compute().to_dict() | {"threshold": metrics.threshold} == metrics.compute().to_dict()
    smiyc = ComponentOODMetrics(threshold=0.9, protocol="smiyc", min_prediction_size=0, min_ground_truth_size=3)
    smiyc.update(scores, labels)  # official rule: score > threshold, nothing is above 0.9
    with pytest.warns(RuntimeWarning, match="No predicted"):
        assert smiyc.compute().num_predicted == 0
    with pytest.raises(ValueError, match="frame #0.*no score threshold"):
        ComponentOODMetrics().update(scores, labels)
    with pytest.raises(ValueError, match="frame 'x'.*2-D"):
        ComponentOODMetrics(threshold=0.5).update(scores[None], labels[None], frame_id="x")
    with pytest.raises(ValueError, match=r"frame #0: summary sIoU and PPV values must lie in \[0, 1\]"):
        ComponentOODMetrics().add_summary(ComponentFrameSummary(np.array([np.nan]), np.zeros(0)))


# ---------------------------------------------------------------------------------------------------------------
# mIoU
# ---------------------------------------------------------------------------------------------------------------


def test_miou_matches_a_direct_computation():
    rng = np.random.default_rng(8)
    labels = rng.integers(0, 5, size=(3, 16, 24)).astype(np.uint8)
    labels[rng.random(labels.shape) < 0.1] = 255
    labels[labels == 4] = 3  # class 4 absent from the labels
    prediction = np.where(rng.random(labels.shape) < 0.7, labels, rng.integers(0, 5, size=labels.shape))
    prediction[(prediction == 255) | (rng.random(labels.shape) < 0.05)] = 6  # an id outside the classes (e.g. OOD)
    metrics = SemanticIoUMetrics(num_classes=6)
    for frame_prediction, frame_labels in zip(prediction, labels):
        metrics.update(frame_prediction, frame_labels)
    result = metrics.compute()
    keep = labels != 255
    expected = []
    for c in range(6):
        intersection = np.sum((prediction == c) & (labels == c) & keep)
        union = np.sum(((prediction == c) | (labels == c)) & keep)
        expected.append(intersection / union if union else np.nan)
    np.testing.assert_allclose(result.per_class_iou, expected)
    assert np.isnan(result.per_class_iou[5]) and result.per_class_iou[4] == 0.0
    assert result.miou == pytest.approx(np.nanmean(expected))
    assert result.pixel_accuracy == pytest.approx(np.mean(prediction[keep] == labels[keep]))
    assert result.to_dict([f"c{i}" for i in range(6)])["iou_c0"] == pytest.approx(expected[0])
    with pytest.raises(ValueError, match=r"frame 'z'.*labels contain \[7\]"):
        metrics.update(np.zeros((2, 2), int), np.full((2, 2), 7), frame_id="z")


# ---------------------------------------------------------------------------------------------------------------
# Plots
# ---------------------------------------------------------------------------------------------------------------


def test_plot_curves_writes_two_pngs(tmp_path):
    result = evaluate_frames(random_frames(np.float32))
    paths = plot_curves(result, tmp_path / "plots", "toy")
    assert [p.name for p in paths] == ["toy_pr.png", "toy_roc.png"]
    for path in paths:
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 5000
    assert sorted(p.name for p in (tmp_path / "plots").iterdir()) == ["toy_pr.png", "toy_roc.png"]  # no temporaries


def test_plot_curves_file_names_are_portable_and_titles_keep_the_name(tmp_path):
    paths = plot_curves(evaluate_frames(random_frames(np.float32)), tmp_path, "synthetic:anomaly/v2")
    assert [p.name for p in paths] == ["synthetic_anomaly_v2_pr.png", "synthetic_anomaly_v2_roc.png"]
    assert all(p.parent == tmp_path for p in paths)


def test_plot_curves_without_matplotlib_says_how_to_install(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)
    with pytest.raises(ImportError, match="pip install"):
        plot_curves(evaluate_frames(random_frames(np.float16)), tmp_path, "toy")
