"""The official SegmentMeIfYouCan (SMIYC) pixel protocol: per-frame percentile binning and the pooling of the frames'
bins into one curve."""

import numpy as np

from .inputs import VOID_LABEL
from .results import PixelFrameSummary


def _smiyc_frame_summary(scores: np.ndarray, labels: np.ndarray, num_bins: int, name: str) -> PixelFrameSummary:
    """One frame binned as the official SMIYC code does (`binary_confusion_matrix`, `bin_strategy='percentiles'`).

    Scores are stored as float16; void pixels are dropped; the bin edges are [min - eps, max + eps] (eps = max(1 % of
    the float16 score range, 0.01), computed in float64 as under the code's pinned NumPy 1.23) plus
    `num_bins // 2` quantiles of the positive and of the negative scores, de-duplicated.
    """
    in_roi = labels != VOID_LABEL
    if not in_roi.any():
        return _empty_summary()
    with np.errstate(over="ignore", invalid="ignore"):
        prob = scores[in_roi].astype(np.float16)
        low, high = prob.min(), prob.max()
        score_range = high - low
    if not np.isfinite(score_range):
        raise ValueError(
            f"{name}: scores span [{scores.min()}, {scores.max()}], beyond the float16 range (|x| <= 65504) in "
            "which the SMIYC protocol stores them; rescale the scores (e.g. to [0, 1])"
        )
    eps = max(float(score_range) * 1e-2, 1e-2)
    positive = labels[in_roi] == 1
    at_true, at_false = prob[positive], prob[~positive]
    edges = [np.array([float(low) - eps, float(high) + eps])]
    for part in (at_true, at_false):
        if part.size:
            edges.append(np.quantile(part, np.linspace(0, 1, min(num_bins // 2, part.size))))
    edges = np.unique(np.concatenate(edges))
    positives, _ = np.histogram(at_true, bins=edges)
    negatives, _ = np.histogram(at_false, bins=edges)
    return PixelFrameSummary(edges[:-1], positives.astype(np.int64), negatives.astype(np.int64))


def _empty_summary() -> PixelFrameSummary:
    return PixelFrameSummary(np.zeros(0), np.zeros(0, np.int64), np.zeros(0, np.int64))


def _smiyc_curve(summaries: list[PixelFrameSummary]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(thresholds, cumulative TP, cumulative FP) of the curve of pooled frame bins.

    All frames' bins are sorted by lower edge, highest first, and counted cumulatively; the last entry of each run of
    equal thresholds is kept, plus the very first entry, as the official `curves_from_cmats` does. Each kept point
    keeps its own threshold, so the best-F1 point's threshold is the one it was counted at (the official code at
    commit 1c7804e, "fix best-f1 threshold selection"; before it, the threshold was read from the list before the
    runs were collapsed, one position further on).
    """
    thresholds = np.concatenate([s.thresholds for s in summaries]) if summaries else np.zeros(0)
    order = np.argsort(thresholds, kind="stable")[::-1]
    sorted_thresholds = thresholds[order]
    tps = np.cumsum(np.concatenate([s.positives for s in summaries])[order]) if summaries else np.zeros(0, int)
    fps = np.cumsum(np.concatenate([s.negatives for s in summaries])[order]) if summaries else np.zeros(0, int)
    points = np.concatenate([[0], np.flatnonzero(sorted_thresholds[:-1] != sorted_thresholds[1:]), [tps.size - 1]])
    points = points[points >= 0]
    return sorted_thresholds[points], tps[points], fps[points]

