"""Curves of cumulative (TP, FP) counts and the metrics read from them (AUROC, AP, FPR at a TPR, F1), and the
order-preserving integer keys of float32 scores that the exact histogram bins on."""

from typing import Literal

import numpy as np


FPR95_RULES = ("smiyc", "strict", "interpolate")


def _ordered_keys(values: np.ndarray) -> np.ndarray:
    """uint32 keys whose unsigned order is the order of the float32 `values` (a fresh, flat array).

    Non-negative floats get their bit pattern with the sign bit set, negative floats the complement of theirs, so
    comparing keys as unsigned integers compares the floats; -0.0 is first turned into +0.0 (they are equal).
    """
    keys = np.add(values, np.float32(0.0), dtype=np.float32).view(np.uint32).reshape(-1)
    sign_fill = np.right_shift(keys.view(np.int32), 31).view(np.uint32)  # all ones for negative values
    sign_fill |= np.uint32(0x80000000)
    keys ^= sign_fill
    return keys


def _lower_edges(bins: np.ndarray, shift: int) -> np.ndarray:
    """The smallest float32 value of each bin of keys `bins` (keys shifted right by `shift`), as float64."""
    keys = bins.astype(np.uint32) << np.uint32(shift)
    bits = np.where(keys < 0x80000000, ~keys, keys ^ np.uint32(0x80000000))
    return bits.view(np.float32).astype(np.float64)


def _sklearn_roc_points(tps: np.ndarray, fps: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The points of `sklearn.metrics.roc_curve` (default `drop_intermediate=True`), origin included.

    scikit-learn drops every point whose step (change in FP, change in TP) equals the previous step (a zero second
    difference), which removes some, not all, points lying on a straight segment.
    """
    if tps.size > 2:
        keep = np.concatenate([[True], (np.diff(fps, 2) != 0) | (np.diff(tps, 2) != 0), [True]])
        tps, fps = tps[keep], fps[keep]
    return np.concatenate([[0], tps]), np.concatenate([[0], fps])


def fpr_at_tpr(
    true_positives,
    false_positives,
    target_tpr: float = 0.95,
    rule: Literal["smiyc", "strict", "interpolate"] = "smiyc",
) -> float:
    """False-positive rate at a true-positive rate of `target_tpr` (FPR95 for 0.95), read from a curve.

    Args:
        true_positives, false_positives: cumulative counts at the curve's thresholds, from the highest threshold to
            the lowest (the last point counts every pixel); the origin (0, 0) is implied.
        target_tpr: the TPR to reach.
        rule: how the operating point is chosen; the common evaluations differ:
            - `"smiyc"` (official SMIYC code): FPR of the first point whose TPR >= `target_tpr`.
            - `"strict"` (RbA code): FPR of the first point of scikit-learn's `roc_curve` (which drops a point whose
              step repeats the previous step) whose TPR > `target_tpr`; 0 if there is none.
            - `"interpolate"` (`ood_metrics.fpr_at_95_tpr`, used by Mask2Anomaly): FPR linearly interpolated at
              `target_tpr` on scikit-learn's `roc_curve`.

    Returns:
        The FPR, or NaN when the curve has no positive or no negative pixel.
    """
    if rule not in FPR95_RULES:
        raise ValueError(f"rule={rule!r} is not an FPR rule; expected one of {FPR95_RULES}")
    tps = np.asarray(true_positives, dtype=np.int64)
    fps = np.asarray(false_positives, dtype=np.int64)
    if tps.shape != fps.shape or tps.ndim != 1:
        raise ValueError(f"true_positives {tps.shape} and false_positives {fps.shape} must be 1-D of equal length")
    if tps.size == 0 or tps[-1] == 0 or fps[-1] == 0:
        return float("nan")
    num_positives, num_negatives = tps[-1], fps[-1]
    if rule == "smiyc":
        tps, fps = np.concatenate([[0], tps]), np.concatenate([[0], fps])
    else:
        tps, fps = _sklearn_roc_points(tps, fps)
    tpr, fpr = tps / num_positives, fps / num_negatives
    if rule == "interpolate":
        return float(np.interp(target_tpr, tpr, fpr))
    reached = np.flatnonzero(tpr >= target_tpr if rule == "smiyc" else tpr > target_tpr)
    if reached.size == 0:
        return 1.0 if rule == "smiyc" else 0.0
    return float(fpr[reached[0]])


def _area_under_roc(tps: np.ndarray, fps: np.ndarray) -> float:
    """Trapezoidal area under the ROC curve through the origin and every point."""
    tpr = np.concatenate([[0.0], tps / tps[-1]])
    fpr = np.concatenate([[0.0], fps / fps[-1]])
    return float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1])) / 2)


def _average_precision(tps: np.ndarray, fps: np.ndarray) -> float:
    """Sum over curve points of (recall increment) x (precision at the point), as scikit-learn's AP.

    A point that predicts nothing (possible only in binned curves) has precision 1 and adds no recall.
    """
    predicted = tps + fps
    precision = np.divide(tps, predicted, out=np.ones(tps.shape), where=predicted > 0)
    recall = np.concatenate([[0.0], tps / tps[-1]])
    return float(np.sum(np.diff(recall) * precision))


def _f1_scores(tps: np.ndarray, fps: np.ndarray) -> np.ndarray:
    """Pixel F1 = 2 TP / (2 TP + FP + FN) at each curve point."""
    return 2 * tps / (tps + fps + tps[-1])
