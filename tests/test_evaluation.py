"""Streaming OOD metrics (`tdos.evaluation`) against scikit-learn, hand-made curves and hand-drawn frames."""

import json
import warnings

import numpy as np
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score, roc_curve

from tdos.evaluation import PixelOODMetrics, fpr_at_tpr


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
