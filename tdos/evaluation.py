"""Streaming evaluation of road-scene OOD segmentation.

Three metric families, each accumulated frame by frame with memory that does not grow with the number of pixels:

* `PixelOODMetrics`: pixel-level AUROC, average precision (AP), FPR at 95 % TPR, best pixel F1 and the
  PR / ROC curves, over all non-void pixels of a dataset (label 1 = OOD = positive, 0 = in-distribution,
  255 = void, dropped).
* `ComponentOODMetrics`: the SegmentMeIfYouCan (SMIYC) component-level metrics (adjusted sIoU per ground-truth
  component, PPV per predicted component, F1 at sIoU/PPV thresholds 0.25 ... 0.75 and their mean).
* `SemanticIoUMetrics`: mean IoU of the in-distribution classes from a streaming confusion matrix.
* `plot_curves`: PR and ROC curves of a pixel result as PNG files (needs matplotlib).

Every family has `update(...)` (one frame), `compute()` (a result dataclass), `reset()`, and the pair
`summarize(...)` / `add_summary(...)`, which splits `update` into a per-frame reduction to a small summary and its
accumulation (used by the `evaluate` module in `metrics/ood_segmentation`, and for sharding work over processes).

Component metrics need a score threshold. SMIYC takes the best-F1 threshold of the pixel curve of the same
dataset, so a faithful evaluation is two passes over the frames::

    pixel = PixelOODMetrics()
    for scores, labels in frames():
        pixel.update(scores, labels)
    pixel_result = pixel.compute()
    components = ComponentOODMetrics.from_pixel_result(pixel_result, track="AnomalyTrack")
    for scores, labels in frames():
        components.update(scores, labels)
    component_result = components.compute()

With a threshold fixed in advance (e.g. tuned on a validation set), `ComponentOODMetrics(threshold=...)` runs in
the same pass as the pixel metrics.

The metrics know nothing of models or datasets: inputs are NumPy arrays, anything `np.asarray` accepts, or torch
tensors (moved to the CPU; float16 / bfloat16 scores are read as float32).
"""

import logging
import os
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Optional, Union

import numpy as np

from .atomic_io import write_atomically


logger = logging.getLogger(__name__)

VOID_LABEL = 255
PROTOCOLS = ("exact", "smiyc")
FPR95_RULES = ("smiyc", "strict", "interpolate")
SIOU_THRESHOLDS = np.linspace(0.25, 0.75, 11)
TRACK_SIZE_FILTERS = {"AnomalyTrack": (500, 100), "ObstacleTrack": (50, 10)}
"""Per SMIYC track: (minimum predicted component size, minimum ground-truth component size) in pixels."""

FrameId = Optional[Union[str, int]]


# ----------------------------------------------------------------------------------------------------------------
# Input validation
# ----------------------------------------------------------------------------------------------------------------


def _frame_name(frame_id: FrameId, index: int) -> str:
    return f"frame {frame_id!r}" if frame_id is not None else f"frame #{index}"


def _as_array(value, what: str, name: str) -> np.ndarray:
    """`value` as a NumPy array; torch tensors may live on an accelerator or hold float16 / bfloat16 values."""
    if hasattr(value, "detach") and hasattr(value, "is_floating_point"):
        value = value.detach().cpu()
        value = value.float() if value.is_floating_point() else value
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(
            f"{name}: cannot read the {what} ({type(value).__name__}) as a NumPy array: {error}"
        ) from error


def _check_shapes(scores: np.ndarray, labels: np.ndarray, name: str, what: str = "score map") -> None:
    if scores.shape != labels.shape:
        raise ValueError(f"{name}: {what} shape {scores.shape} differs from label map shape {labels.shape}")
    if scores.size == 0:
        raise ValueError(f"{name}: empty frame (shape {scores.shape}); expected at least one pixel")


def _check_scores(scores: np.ndarray, name: str) -> np.ndarray:
    """Returns the scores as float32, after checking they are real and finite."""
    if scores.dtype.kind not in "fiub":
        raise ValueError(f"{name}: scores have dtype {scores.dtype}; expected a real-valued (float) score map")
    scores = scores.astype(np.float32, copy=False)
    finite = np.isfinite(scores)
    if not finite.all():
        raise ValueError(
            f"{name}: {scores.size - np.count_nonzero(finite)} score(s) are NaN or infinite (as float32); "
            "expected finite scores"
        )
    return scores


def _check_label_values(labels: np.ndarray, allowed_max: int, name: str, expected: str) -> np.ndarray:
    """Returns the labels unchanged after checking they are integers in [0, allowed_max] or void (255)."""
    if labels.dtype.kind not in "iub":
        raise ValueError(f"{name}: labels have dtype {labels.dtype}; expected an integer label map with {expected}")
    bad = (labels > allowed_max) & (labels != VOID_LABEL)
    if labels.dtype.kind == "i":
        bad |= labels < 0
    if bad.any():
        values = np.unique(labels[bad])
        raise ValueError(f"{name}: labels contain {values[:8].tolist()}; expected {expected}")
    return labels


def _ood_frame(scores, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Validated (float32 scores, uint8 labels in {0, 1, 255}), both flattened."""
    scores = _as_array(scores, "scores", name)
    labels = _as_array(labels, "labels", name)
    _check_shapes(scores, labels, name)
    labels = _check_label_values(labels, 1, name, "0 (in-distribution), 1 (OOD) or 255 (void)")
    return _check_scores(scores, name).reshape(-1), labels.astype(np.uint8, copy=False).reshape(-1)


# ----------------------------------------------------------------------------------------------------------------
# Ordered integer keys of float32 values
# ----------------------------------------------------------------------------------------------------------------


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


# ----------------------------------------------------------------------------------------------------------------
# Curves and the metrics read from them
# ----------------------------------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class PixelFrameSummary:
    """A frame reduced to a histogram: the pixel counts of each non-empty score bin.

    Attributes:
        thresholds (`np.ndarray` of float64): the lower edge of each bin; a pixel is counted in the bin with the
            largest lower edge not above its score.
        positives (`np.ndarray` of int64): OOD (label 1) pixels per bin.
        negatives (`np.ndarray` of int64): in-distribution (label 0) pixels per bin.
    """

    thresholds: np.ndarray
    positives: np.ndarray
    negatives: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """Plain lists, one entry per bin: rows of the `evaluate` module (`metric.add_batch(**summary.to_dict())`)."""
        return {
            "thresholds": self.thresholds.tolist(),
            "positives": self.positives.tolist(),
            "negatives": self.negatives.tolist(),
        }


@dataclass(frozen=True)
class PixelOODResult:
    """Pixel-level OOD metrics of a dataset and the curve they are read from.

    Definitions (positives = pixels labelled 1, negatives = pixels labelled 0, void pixels ignored; a pixel is
    predicted OOD at threshold t when its score >= t):

    Attributes:
        auroc (`float`): area under the ROC curve (TPR against FPR), trapezoidal rule through the origin.
        average_precision (`float`): AP = sum over curve points of (recall - previous recall) x precision, as
            `sklearn.metrics.average_precision_score` (SMIYC's `area_PRC`).
        fpr95 (`float`): FPR at 95 % TPR, by `fpr95_rule` (see `fpr_at_tpr`).
        best_f1 (`float`): the maximum over thresholds of pixel F1 = 2 TP / (2 TP + FP + FN).
        best_threshold (`float`): the threshold of `best_f1`. With `protocol="smiyc"` it is the value the
            official code reports, which indexes its sorted, not de-duplicated threshold list with the position of
            the best point on the de-duplicated curve (shifted by its prepended origin); the official component
            metrics then predict OOD where score > this threshold.
        positive_fraction (`float`): num_positives / (num_positives + num_negatives), the AP of a random scorer.
        num_positives, num_negatives (`int`): pixel counts.
        thresholds (`np.ndarray`): curve thresholds, highest first (the origin is implied, not stored).
        true_positives, false_positives (`np.ndarray` of int64): cumulative counts at each threshold.
        protocol (`str`), fpr95_rule (`str`): how the result was computed.

    Metrics that are undefined (no positive pixel: all; no negative pixel: AUROC and FPR95) are NaN.
    """

    auroc: float
    average_precision: float
    fpr95: float
    best_f1: float
    best_threshold: float
    positive_fraction: float
    num_positives: int
    num_negatives: int
    thresholds: np.ndarray
    true_positives: np.ndarray
    false_positives: np.ndarray
    protocol: str
    fpr95_rule: str

    @property
    def precision(self) -> np.ndarray:
        """Precision at each threshold (1 where nothing is predicted)."""
        predicted = self.true_positives + self.false_positives
        return np.divide(self.true_positives, predicted, out=np.ones(predicted.shape), where=predicted > 0)

    @property
    def recall(self) -> np.ndarray:
        """Recall (= TPR) at each threshold."""
        return self.true_positives / max(self.num_positives, 1)

    tpr = recall

    @property
    def fpr(self) -> np.ndarray:
        """False-positive rate at each threshold."""
        return self.false_positives / max(self.num_negatives, 1)

    def fpr_at_tpr(self, target_tpr: float = 0.95, rule: Optional[str] = None) -> float:
        """FPR at `target_tpr` by `rule` (default: this result's `fpr95_rule`); see the function `fpr_at_tpr`."""
        return fpr_at_tpr(self.true_positives, self.false_positives, target_tpr, rule or self.fpr95_rule)

    def to_dict(self) -> dict[str, float]:
        """The scalar metrics as plain Python numbers (JSON-serialisable; undefined metrics are NaN)."""
        return {
            "auroc": float(self.auroc),
            "average_precision": float(self.average_precision),
            "fpr95": float(self.fpr95),
            "best_f1": float(self.best_f1),
            "best_threshold": float(self.best_threshold),
            "positive_fraction": float(self.positive_fraction),
            "num_positives": int(self.num_positives),
            "num_negatives": int(self.num_negatives),
        }


# ----------------------------------------------------------------------------------------------------------------
# Pixel metrics
# ----------------------------------------------------------------------------------------------------------------


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


class PixelOODMetrics:
    """Streaming pixel-level OOD metrics: AUROC, AP, FPR at 95 % TPR, best pixel F1, PR and ROC curves.

    Scores are "higher = more OOD". Labels: 1 = OOD (positive), 0 = in-distribution (negative), 255 = void (ignored).
    Metric definitions are in `PixelOODResult`.

    Protocols:
        - `"exact"` (default): a histogram of all frames' pixels keyed on the score's float32 bit pattern. Each
          score is mapped to an ordered 32-bit integer key (order-preserving, see `_ordered_keys`) and counted in
          bin `key >> (32 - key_bits)`: 2**key_bits bins of positive and of all counts (2 x 32 MiB at the default
          22 bits), whatever the number of pixels. The curve has one point per non-empty bin, as scikit-learn's
          has one per distinct score, and thresholds are the bins' lower edges, so:
            * scores exactly representable in float16 (all float16 values, e.g. scores stored as SMIYC stores
              them) each get a bin of their own (a float16 value has at most 11 significant bits, a bin keeps
              1 sign + 8 exponent + key_bits - 9 >= 10 stored mantissa bits): AP, AUROC and the curves are those
              of `sklearn.metrics` up to float64 round-off (~1e-12);
            * other float32 scores are grouped with the scores sharing their top key_bits bits (relative
              spacing 2**-(key_bits - 9), ~1.2e-4 at 22 bits) and treated as ties. The AUROC error is at most
              half the fraction of (positive, negative) pairs sharing a bin, and the AP error is of the same
              order; measured differences to scikit-learn on continuous float32 scores are ~2e-5 on 3e4 pixels
              and ~1e-6 on 2e8 pixels (tests: < 1e-4; `benchmarks/bench_metrics.py`). The error shrinks as the
              data grows; on a tiny set (a few hundred pixels) one positive sharing a top bin with a negative
              can cost more than 1e-4. `key_bits=24` gives 4x finer bins for 4x the memory; scores cast to
              float16 (as SMIYC stores them) make the result exact.
        - `"smiyc"`: reproduces the official SMIYC evaluation (`PixBinaryClass`): scores cast to float16, void
          removed, each frame binned on its own 768 percentile edges (see `_smiyc_frame_summary`), all frames' bins
          pooled and sorted by lower edge, repeated thresholds collapsed. Numbers are comparable with leaderboard
          values; they approximate the exact ones. Memory grows by <= `num_bins` bins per frame (not per pixel).

    Args:
        protocol (`str`, *optional*, defaults to `"exact"`): `"exact"` or `"smiyc"`.
        fpr95_rule (`str`, *optional*, defaults to `"smiyc"`): rule of `PixelOODResult.fpr95`: `"smiyc"`
            (first TPR >= 0.95), `"strict"` (RbA: first TPR > 0.95) or `"interpolate"` (ood-metrics package).
        key_bits (`int`, *optional*, defaults to 22): number of key bits of the exact histogram, 19 to 24.
        num_bins (`int`, *optional*, defaults to 768): bins per frame of the `"smiyc"` protocol.
    """

    def __init__(
        self,
        protocol: Literal["exact", "smiyc"] = "exact",
        fpr95_rule: Literal["smiyc", "strict", "interpolate"] = "smiyc",
        key_bits: int = 22,
        num_bins: int = 768,
    ):
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r} is not supported; expected one of {PROTOCOLS}")
        if fpr95_rule not in FPR95_RULES:
            raise ValueError(f"fpr95_rule={fpr95_rule!r} is not supported; expected one of {FPR95_RULES}")
        if not 19 <= key_bits <= 24:
            raise ValueError(f"key_bits={key_bits} is out of range; expected 19 to 24 (19 keeps float16 exact)")
        if num_bins < 2:
            raise ValueError(f"num_bins={num_bins} is too small; expected at least 2 bins per frame")
        self.protocol = protocol
        self.fpr95_rule = fpr95_rule
        self.key_bits = key_bits
        self.num_bins = num_bins
        self._shift = 32 - key_bits
        self.reset()

    def reset(self) -> None:
        """Forgets every frame seen."""
        self.num_frames = 0
        if self.protocol == "exact":
            self._totals = np.zeros(1 << self.key_bits, dtype=np.int64)
            self._positives = np.zeros(1 << self.key_bits, dtype=np.int64)
        else:
            self._frame_summaries: list[PixelFrameSummary] = []

    def update(self, scores, labels, frame_id: FrameId = None) -> None:
        """Adds one frame.

        Args:
            scores: H x W (any shape) anomaly scores, finite, higher = more OOD; cast to float32.
            labels: integer label map of the same shape, values 0, 1 or 255.
            frame_id: name used in error messages (default: the frame's index, counted from 0).
        """
        name = _frame_name(frame_id, self.num_frames)
        scores, labels = _ood_frame(scores, labels, name)
        if self.protocol == "exact":
            first, totals, positives = self._bin_counts(scores, labels)
            self._totals[first : first + totals.size] += totals
            self._positives[first : first + totals.size] += positives
        else:
            self._frame_summaries.append(_smiyc_frame_summary(scores, labels, self.num_bins, name))
        self.num_frames += 1

    def summarize(self, scores, labels, frame_id: FrameId = None) -> PixelFrameSummary:
        """Reduces one frame to its histogram without adding it; `add_summary` adds it later (`update` = both).

        The summary has one entry per non-empty bin: at most min(distinct scores, 2**key_bits) entries for the
        exact protocol (e.g. <= 65536 for float16 scores) and at most `num_bins` for `"smiyc"`.
        """
        name = _frame_name(frame_id, self.num_frames)
        scores, labels = _ood_frame(scores, labels, name)
        if self.protocol == "smiyc":
            return _smiyc_frame_summary(scores, labels, self.num_bins, name)
        first, totals, positives = self._bin_counts(scores, labels)
        bins = np.flatnonzero(totals)
        return PixelFrameSummary(
            _lower_edges(bins + first, self._shift), positives[bins], totals[bins] - positives[bins]
        )

    def add_summary(self, summary: PixelFrameSummary) -> None:
        """Adds a frame reduced by `summarize` of a `PixelOODMetrics` with the same protocol and key bits."""
        thresholds = np.asarray(summary.thresholds, dtype=np.float64)
        positives = np.asarray(summary.positives, dtype=np.int64)
        negatives = np.asarray(summary.negatives, dtype=np.int64)
        name = _frame_name(None, self.num_frames)
        if not thresholds.shape == positives.shape == negatives.shape or thresholds.ndim != 1:
            raise ValueError(
                f"{name}: summary arrays must be 1-D of equal length; got thresholds {thresholds.shape}, "
                f"positives {positives.shape}, negatives {negatives.shape}"
            )
        if (positives < 0).any() or (negatives < 0).any():
            raise ValueError(f"{name}: summary counts must be non-negative")
        if self.protocol == "exact":
            bins = self._summary_bins(thresholds, name)
            np.add.at(self._totals, bins, positives + negatives)
            np.add.at(self._positives, bins, positives)
        else:
            self._frame_summaries.append(PixelFrameSummary(thresholds, positives, negatives))
        self.num_frames += 1

    def compute(self) -> PixelOODResult:
        """Metrics and curve over all frames added so far (the state is kept; `reset` clears it)."""
        if self.protocol == "exact":
            bins = np.flatnonzero(self._totals)[::-1]
            positives = self._positives[bins]
            thresholds = _lower_edges(bins, self._shift)
            tps, fps = np.cumsum(positives), np.cumsum(self._totals[bins] - positives)
            return self._result(thresholds, tps, fps, best_index=None, sorted_thresholds=None)
        summaries = self._frame_summaries
        thresholds = np.concatenate([s.thresholds for s in summaries]) if summaries else np.zeros(0)
        order = np.argsort(thresholds)[::-1]
        sorted_thresholds = thresholds[order]
        tps = np.cumsum(np.concatenate([s.positives for s in summaries])[order]) if summaries else np.zeros(0, int)
        fps = np.cumsum(np.concatenate([s.negatives for s in summaries])[order]) if summaries else np.zeros(0, int)
        # SMIYC keeps the first entry and the last entry of each run of equal thresholds (`curves_from_cmats`)
        points = np.concatenate([[0], np.flatnonzero(sorted_thresholds[:-1] != sorted_thresholds[1:]), [tps.size - 1]])
        points = points[points >= 0]
        return self._result(sorted_thresholds[points], tps[points], fps[points], None, sorted_thresholds)

    def _bin_counts(self, scores: np.ndarray, labels: np.ndarray) -> tuple[int, np.ndarray, np.ndarray]:
        """(first bin, per-bin counts of all non-void pixels, of positive pixels) over the frame's range of bins.

        Counting only from the frame's lowest to its highest bin keeps the work proportional to the range of scores
        the frame uses (about a quarter of all bins for scores in [0, 1]), not to 2**key_bits.
        """
        in_roi = labels != VOID_LABEL
        bins = _ordered_keys(scores[in_roi])
        if bins.size == 0:
            return 0, np.zeros(0, np.int64), np.zeros(0, np.int64)
        bins >>= np.uint32(self._shift)
        first = int(bins.min())
        bins -= np.uint32(first)
        totals = np.bincount(bins)
        positives = np.bincount(bins[labels[in_roi] == 1], minlength=totals.size)
        return first, totals, positives

    def _summary_bins(self, thresholds: np.ndarray, name: str) -> np.ndarray:
        """Bin indices of summary thresholds, which must be bin lower edges of this histogram."""
        values = thresholds.astype(np.float32)
        bins = _ordered_keys(values) >> np.uint32(self._shift)
        if not (np.isfinite(values).all() and np.array_equal(_lower_edges(bins, self._shift), thresholds)):
            raise ValueError(
                f"{name}: summary thresholds are not lower bin edges of an exact histogram with "
                f"key_bits={self.key_bits}; summarize and accumulate with the same protocol and key_bits"
            )
        return bins

    def _result(self, thresholds, tps, fps, best_index, sorted_thresholds) -> PixelOODResult:
        num_positives = int(tps[-1]) if tps.size else 0
        num_negatives = int(fps[-1]) if fps.size else 0
        nan = float("nan")
        auroc = average_precision = fpr95 = best_f1 = best_threshold = nan
        if num_positives == 0:
            warnings.warn(
                f"No OOD (label 1) pixel in {self.num_frames} frame(s): AUROC, AP, FPR95 and F1 are NaN",
                RuntimeWarning,
                stacklevel=3,
            )
        else:
            average_precision = _average_precision(tps, fps)
            f1 = _f1_scores(tps, fps)
            best = int(np.argmax(f1))
            best_f1 = float(f1[best])
            best_threshold = float(thresholds[best] if sorted_thresholds is None else
                                      _smiyc_reported_threshold(sorted_thresholds, f1, best))
        if num_negatives == 0:
            warnings.warn(
                f"No in-distribution (label 0) pixel in {self.num_frames} frame(s): AUROC and FPR95 are NaN",
                RuntimeWarning,
                stacklevel=3,
            )
        elif num_positives > 0:
            auroc = _area_under_roc(tps, fps)
            fpr95 = fpr_at_tpr(tps, fps, 0.95, self.fpr95_rule)
        return PixelOODResult(
            auroc=auroc,
            average_precision=average_precision,
            fpr95=fpr95,
            best_f1=best_f1,
            best_threshold=best_threshold,
            positive_fraction=num_positives / (num_positives + num_negatives) if num_positives + num_negatives else nan,
            num_positives=num_positives,
            num_negatives=num_negatives,
            thresholds=thresholds,
            true_positives=tps.astype(np.int64),
            false_positives=fps.astype(np.int64),
            protocol=self.protocol,
            fpr95_rule=self.fpr95_rule,
        )


def _smiyc_reported_threshold(sorted_thresholds: np.ndarray, f1: np.ndarray, best: int) -> float:
    """The best-F1 threshold as the official SMIYC code reports it.

    The official curve has the origin prepended (position 0, F1 = 0), so the best point sits at position
    `best + 1` (or 0 when every F1 is 0), and that position is read from the sorted threshold list before repeated
    thresholds are collapsed. Clamped to the list for tiny curves, where the official code raises IndexError.
    """
    position = best + 1 if f1[best] > 0 else 0
    return float(sorted_thresholds[min(position, sorted_thresholds.size - 1)])


# ----------------------------------------------------------------------------------------------------------------
# Component metrics (SMIYC)
# ----------------------------------------------------------------------------------------------------------------

_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_SEGEVAL_SIZE_FILTERS = (500, 100)
"""Size filters of the official generic `SegEval` config, used when neither a track nor sizes are given."""


@dataclass(frozen=True)
class ComponentFrameSummary:
    """A frame reduced to its components' scores.

    Attributes:
        siou (`np.ndarray` of float64): adjusted sIoU of each ground-truth component kept by the size filter.
        ppv (`np.ndarray` of float64): PPV of each predicted component kept by the size filter.
    """

    siou: np.ndarray
    ppv: np.ndarray

    def to_dict(self) -> dict[str, list]:
        """Plain lists: one row of the `evaluate` module's "components" config (`metric.add(**summary.to_dict())`)."""
        return {"siou": self.siou.tolist(), "ppv": self.ppv.tolist()}


@dataclass(frozen=True)
class ComponentOODResult:
    """SMIYC component-level metrics of a dataset (components pooled over all frames).

    Attributes:
        siou (`float`): mean adjusted sIoU over all ground-truth components (SMIYC's `sIoU_gt`).
        ppv (`float`): mean positive predictive value over all predicted components (SMIYC's `prec_pred`).
        mean_f1 (`float`): mean of `f1` over the 11 thresholds (SMIYC's `f1_mean`).
        f1 (`np.ndarray`): component F1 = 2 TP / (2 TP + FN + FP) at each of `thresholds_siou`.
        thresholds_siou (`np.ndarray`): 0.25, 0.30, ..., 0.75.
        true_positives, false_negatives, false_positives (`np.ndarray` of int64): counts at each threshold: ground-truth
            components with sIoU >= tau, with sIoU < tau, and predicted components with PPV < tau.
        num_ground_truth, num_predicted (`int`): component counts after the size filters.
        threshold (`float`): the score threshold that made the predicted masks.

    Undefined values (no ground-truth component: `siou`; no predicted component: `ppv`; neither: F1) are NaN.
    """

    siou: float
    ppv: float
    mean_f1: float
    f1: np.ndarray
    thresholds_siou: np.ndarray
    true_positives: np.ndarray
    false_negatives: np.ndarray
    false_positives: np.ndarray
    num_ground_truth: int
    num_predicted: int
    threshold: float

    def to_dict(self) -> dict[str, float]:
        """The scalar metrics as plain Python numbers, with F1 at tau = 0.25, 0.5 and 0.75 (SMIYC's table fields)."""
        values = {"siou": float(self.siou), "ppv": float(self.ppv), "mean_f1": float(self.mean_f1)}
        for tau, f1 in zip(self.thresholds_siou, self.f1):
            if round(tau * 100) in (25, 50, 75):
                values[f"f1_{round(tau * 100)}"] = float(f1)
        values.update(
            num_ground_truth=int(self.num_ground_truth),
            num_predicted=int(self.num_predicted),
            threshold=float(self.threshold),
        )
        return values


def _component_sizes(components: np.ndarray, count: int) -> np.ndarray:
    return np.bincount(components.reshape(-1), minlength=count + 1)


def _frame_components(
    predicted: np.ndarray, labels: np.ndarray, min_prediction_size: int, min_ground_truth_size: int
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Ground-truth and predicted component ids inside the region of interest, as the official `default_instancer`.

    Components are 8-connected. Predicted components smaller than `min_prediction_size` are deleted; ground-truth
    components smaller than `min_ground_truth_size` become void. Returns the two id arrays restricted to the region
    of interest (non-void pixels) and the two component counts.
    """
    from scipy.ndimage import label

    ground_truth, num_ground_truth = label(labels == 1, structure=_EIGHT_CONNECTED)
    prediction, num_predicted = label(predicted & (labels != VOID_LABEL), structure=_EIGHT_CONNECTED)
    small = _component_sizes(prediction, num_predicted) < min_prediction_size
    small[0] = False
    prediction[small[prediction]] = 0
    small = _component_sizes(ground_truth, num_ground_truth) < min_ground_truth_size
    small[0] = False
    roi = (labels != VOID_LABEL) & ~small[ground_truth]
    return ground_truth[roi], prediction[roi], num_ground_truth, num_predicted


def _component_scores(
    ground_truth: np.ndarray, prediction: np.ndarray, num_ground_truth: int, num_predicted: int
) -> ComponentFrameSummary:
    """Adjusted sIoU per ground-truth component and PPV per predicted component of one frame.

    For a ground-truth component K, let P be the union of the predicted components that touch K:
    sIoU(K) = |K ∩ P| / (|K| + |P| - |K ∩ P| - |P ∩ other ground-truth components|)
            = |K ∩ P| / (|K| + |P \\ all ground truth|).
    For a predicted component Q: PPV(Q) = |Q ∩ all ground truth| / |Q|. Sizes are counted in the region of interest.
    """
    gt_sizes = _component_sizes(ground_truth, num_ground_truth).astype(np.float64)
    pred_sizes = _component_sizes(prediction, num_predicted).astype(np.float64)
    both = (ground_truth > 0) & (prediction > 0)
    pairs, overlap = np.unique(
        ground_truth[both].astype(np.int64) * (num_predicted + 1) + prediction[both], return_counts=True
    )
    pair_gt, pair_pred = np.divmod(pairs, num_predicted + 1)
    on_ground_truth = np.bincount(pair_pred, weights=overlap, minlength=num_predicted + 1)
    intersection = np.bincount(pair_gt, weights=overlap, minlength=num_ground_truth + 1)
    off_ground_truth = np.bincount(
        pair_gt, weights=(pred_sizes - on_ground_truth)[pair_pred], minlength=num_ground_truth + 1
    )
    kept_gt = np.flatnonzero(gt_sizes[1:]) + 1
    kept_pred = np.flatnonzero(pred_sizes[1:]) + 1
    siou = intersection[kept_gt] / (gt_sizes[kept_gt] + off_ground_truth[kept_gt])
    ppv = on_ground_truth[kept_pred] / pred_sizes[kept_pred]
    return ComponentFrameSummary(siou, ppv)


class ComponentOODMetrics:
    """Streaming SMIYC component-level metrics: adjusted sIoU, PPV and mean F1 (official definitions).

    Per frame, the predicted OOD mask is thresholded from the scores, void pixels are removed, and ground truth
    (label 1) and prediction are split into 8-connected components (`scipy.ndimage.label`). Small predicted
    components are deleted and small ground-truth components become void. Then each ground-truth component gets its
    adjusted sIoU and each predicted component its PPV (see `_component_scores`). Over the dataset, for each tau in
    0.25, 0.30, ..., 0.75: TP = ground-truth components with sIoU >= tau, FN = the others, FP = predicted components
    with PPV < tau, summed over frames; F1(tau) = 2 TP / (2 TP + FN + FP) and `mean_f1` is their mean. `siou` and
    `ppv` are means over all components of all frames. Only sums and counts are kept (constant memory).

    The official evaluation takes the threshold from the best pixel F1 of the same dataset; that needs the pixel
    metrics first, so it is a second pass over the frames (see the module docstring and `from_pixel_result`).

    Args:
        threshold (`float`, *optional*): score threshold of the predicted masks. Required unless every frame comes
            with a boolean mask (then only the ground-truth size filter applies, as the official mask mode does).
        track (`str`, *optional*): `"AnomalyTrack"` (predictions >= 500 px, ground truth >= 100 px) or
            `"ObstacleTrack"` (50 px / 10 px); sets the size filters unless they are given. Without a track and
            sizes, the official generic `SegEval` filters (500 px / 100 px) apply.
        min_prediction_size (`int`, *optional*): predicted components with fewer pixels are deleted.
        min_ground_truth_size (`int`, *optional*): ground-truth components with fewer pixels become void.
        protocol (`str`, *optional*, defaults to `"exact"`): `"exact"` predicts OOD where score >= threshold, the
            convention of `PixelOODResult` curves; `"smiyc"` casts scores to float16 and predicts OOD where
            score > threshold, as the official code does with its reported best-F1 threshold.
    """

    def __init__(
        self,
        threshold: Optional[float] = None,
        track: Optional[Literal["AnomalyTrack", "ObstacleTrack"]] = None,
        min_prediction_size: Optional[int] = None,
        min_ground_truth_size: Optional[int] = None,
        protocol: Literal["exact", "smiyc"] = "exact",
    ):
        if track is not None and track not in TRACK_SIZE_FILTERS:
            raise ValueError(
                f"track={track!r} is not a SMIYC track; expected one of {tuple(TRACK_SIZE_FILTERS)} or None"
            )
        if protocol not in PROTOCOLS:
            raise ValueError(f"protocol={protocol!r} is not supported; expected one of {PROTOCOLS}")
        if threshold is not None and not np.isfinite(threshold):
            raise ValueError(f"threshold={threshold!r} must be a finite number")
        default_prediction, default_ground_truth = TRACK_SIZE_FILTERS.get(track, _SEGEVAL_SIZE_FILTERS)
        self.threshold = None if threshold is None else float(threshold)
        self.track = track
        self.min_prediction_size = default_prediction if min_prediction_size is None else int(min_prediction_size)
        self.min_ground_truth_size = (
            default_ground_truth if min_ground_truth_size is None else int(min_ground_truth_size)
        )
        if self.min_prediction_size < 0 or self.min_ground_truth_size < 0:
            raise ValueError(
                f"size filters must be >= 0; got min_prediction_size={self.min_prediction_size}, "
                f"min_ground_truth_size={self.min_ground_truth_size}"
            )
        self.protocol = protocol
        self.reset()

    @classmethod
    def from_pixel_result(
        cls, result: PixelOODResult, track: Optional[Literal["AnomalyTrack", "ObstacleTrack"]] = None, **kwargs
    ) -> "ComponentOODMetrics":
        """Metrics thresholded at the best pixel-F1 threshold of `result`, with its protocol (the SMIYC recipe)."""
        if not np.isfinite(result.best_threshold):
            raise ValueError(
                f"the pixel result has no best-F1 threshold ({result.best_threshold}): it saw no OOD pixel"
            )
        return cls(threshold=result.best_threshold, track=track, protocol=result.protocol, **kwargs)

    def reset(self) -> None:
        """Forgets every frame seen."""
        self.num_frames = 0
        self._siou_sum = self._ppv_sum = 0.0
        self._num_ground_truth = self._num_predicted = 0
        self._true_positives = np.zeros(SIOU_THRESHOLDS.size, dtype=np.int64)
        self._false_positives = np.zeros(SIOU_THRESHOLDS.size, dtype=np.int64)

    def update(self, scores, labels, frame_id: FrameId = None) -> None:
        """Adds one frame: `scores` is an H x W score map (or a boolean predicted mask), `labels` the 0/1/255 map."""
        self.add_summary(self.summarize(scores, labels, frame_id))

    def summarize(self, scores, labels, frame_id: FrameId = None) -> ComponentFrameSummary:
        """Reduces one frame to its components' sIoU and PPV without adding it (`update` = this + `add_summary`)."""
        name = _frame_name(frame_id, self.num_frames)
        scores = _as_array(scores, "scores", name)
        predicted, labels = self._predicted_mask(scores, labels, name)
        min_prediction_size = 0 if _is_mask(scores) else self.min_prediction_size
        return _component_scores(*_frame_components(predicted, labels, min_prediction_size, self.min_ground_truth_size))

    def add_summary(self, summary: ComponentFrameSummary) -> None:
        """Adds a frame reduced by `summarize`."""
        siou = np.asarray(summary.siou, dtype=np.float64).reshape(-1)
        ppv = np.asarray(summary.ppv, dtype=np.float64).reshape(-1)
        values = np.concatenate([siou, ppv])
        if not ((values >= 0) & (values <= 1)).all():  # NaN fails both comparisons
            raise ValueError(f"{_frame_name(None, self.num_frames)}: summary sIoU and PPV values must lie in [0, 1]")
        self._siou_sum += float(siou.sum())
        self._ppv_sum += float(ppv.sum())
        self._num_ground_truth += siou.size
        self._num_predicted += ppv.size
        self._true_positives += (siou[:, None] >= SIOU_THRESHOLDS).sum(axis=0)
        self._false_positives += (ppv[:, None] < SIOU_THRESHOLDS).sum(axis=0)
        self.num_frames += 1

    def compute(self) -> ComponentOODResult:
        """Metrics over all frames added so far."""
        nan = float("nan")
        true_positives = self._true_positives.copy()
        false_negatives = self._num_ground_truth - true_positives
        false_positives = self._false_positives.copy()
        denominator = 2 * true_positives + false_negatives + false_positives
        if self._num_ground_truth == 0:
            warnings.warn(
                f"No ground-truth OOD component in {self.num_frames} frame(s) after the size filter: sIoU is NaN",
                RuntimeWarning,
                stacklevel=2,
            )
        if self._num_predicted == 0:
            warnings.warn(
                f"No predicted OOD component in {self.num_frames} frame(s) after the size filter: PPV is NaN",
                RuntimeWarning,
                stacklevel=2,
            )
        f1 = np.divide(2 * true_positives, denominator, out=np.full(denominator.shape, nan), where=denominator > 0)
        return ComponentOODResult(
            siou=self._siou_sum / self._num_ground_truth if self._num_ground_truth else nan,
            ppv=self._ppv_sum / self._num_predicted if self._num_predicted else nan,
            mean_f1=float(np.mean(f1)),
            f1=f1,
            thresholds_siou=SIOU_THRESHOLDS.copy(),
            true_positives=true_positives,
            false_negatives=false_negatives,
            false_positives=false_positives,
            num_ground_truth=self._num_ground_truth,
            num_predicted=self._num_predicted,
            threshold=nan if self.threshold is None else self.threshold,
        )

    def _predicted_mask(self, scores: np.ndarray, labels, name: str) -> tuple[np.ndarray, np.ndarray]:
        """(predicted OOD mask, validated labels) of one frame."""
        labels = _as_array(labels, "labels", name)
        _check_shapes(scores, labels, name)
        if scores.ndim != 2:
            raise ValueError(f"{name}: component metrics need 2-D (H x W) maps; got shape {scores.shape}")
        labels = _check_label_values(labels, 1, name, "0 (in-distribution), 1 (OOD) or 255 (void)")
        if _is_mask(scores):
            return scores, labels
        if self.threshold is None:
            raise ValueError(
                f"{name}: no score threshold; pass threshold=..., use ComponentOODMetrics.from_pixel_result, or give "
                "a boolean predicted mask"
            )
        scores = _check_scores(scores, name)
        if self.protocol == "smiyc":
            with np.errstate(over="ignore"):
                return scores.astype(np.float16) > self.threshold, labels
        return scores >= self.threshold, labels


def _is_mask(scores: np.ndarray) -> bool:
    return scores.dtype == np.bool_


# ----------------------------------------------------------------------------------------------------------------
# Semantic segmentation (mIoU)
# ----------------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SemanticIoUResult:
    """Intersection over union of the in-distribution classes.

    Attributes:
        miou (`float`): mean of `per_class_iou` over the classes present in the labels or the predictions.
        per_class_iou (`np.ndarray`): IoU = TP / (TP + FP + FN) per class; NaN for a class absent from both.
        pixel_accuracy (`float`): correctly classified non-ignored pixels / non-ignored pixels.
        confusion_matrix (`np.ndarray` of int64): rows = label, columns = prediction (predictions outside the
            classes, e.g. an OOD id, count in an extra last column).
    """

    miou: float
    per_class_iou: np.ndarray
    pixel_accuracy: float
    confusion_matrix: np.ndarray

    def to_dict(self, class_names: Optional[list[str]] = None) -> dict[str, float]:
        """mIoU, pixel accuracy and one `iou_<class>` entry per class (names or indices) as plain floats."""
        names = class_names if class_names is not None else [str(index) for index in range(self.per_class_iou.size)]
        if len(names) != self.per_class_iou.size:
            raise ValueError(f"got {len(names)} class names for {self.per_class_iou.size} classes")
        values = {"miou": float(self.miou), "pixel_accuracy": float(self.pixel_accuracy)}
        values.update({f"iou_{name}": float(iou) for name, iou in zip(names, self.per_class_iou)})
        return values


class SemanticIoUMetrics:
    """Streaming mean IoU of `num_classes` in-distribution classes from a confusion matrix.

    Args:
        num_classes (`int`, *optional*, defaults to 19): number of classes (Cityscapes train ids 0-18).
        ignore_index (`int`, *optional*, defaults to 255): label value that is not counted.
    """

    def __init__(self, num_classes: int = 19, ignore_index: int = VOID_LABEL):
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes} must be >= 1")
        self.num_classes = num_classes
        self.ignore_index = ignore_index
        self.reset()

    def reset(self) -> None:
        """Forgets every frame seen."""
        self.num_frames = 0
        self._confusion = np.zeros((self.num_classes, self.num_classes + 1), dtype=np.int64)

    def update(self, prediction, labels, frame_id: FrameId = None) -> None:
        """Adds one frame: integer class maps of equal shape (predictions >= `num_classes` count as "other")."""
        self.add_summary(self.summarize(prediction, labels, frame_id))

    def summarize(self, prediction, labels, frame_id: FrameId = None) -> np.ndarray:
        """The frame's confusion matrix (`num_classes` x `num_classes + 1`) without adding it."""
        name = _frame_name(frame_id, self.num_frames)
        prediction = _as_array(prediction, "prediction", name)
        labels = _as_array(labels, "labels", name)
        _check_shapes(prediction, labels, name, what="prediction")
        if prediction.dtype.kind not in "iu":
            raise ValueError(f"{name}: prediction has dtype {prediction.dtype}; expected integer class ids")
        if labels.dtype.kind not in "iu":
            raise ValueError(f"{name}: labels have dtype {labels.dtype}; expected integer class ids")
        keep = labels != self.ignore_index
        truth, predicted = labels[keep].astype(np.int64), prediction[keep].astype(np.int64)
        bad = (truth < 0) | (truth >= self.num_classes)
        if bad.any():
            raise ValueError(
                f"{name}: labels contain {np.unique(truth[bad])[:8].tolist()}; expected 0 to {self.num_classes - 1} "
                f"or {self.ignore_index} (ignored)"
            )
        if (predicted < 0).any():
            raise ValueError(f"{name}: prediction contains negative class ids")
        predicted = np.minimum(predicted, self.num_classes)
        width = self.num_classes + 1
        counts = np.bincount(truth * width + predicted, minlength=self.num_classes * width)
        return counts.reshape(self.num_classes, width)

    def add_summary(self, confusion) -> None:
        """Adds a frame's confusion matrix made by `summarize`."""
        confusion = np.asarray(confusion, dtype=np.int64)
        if confusion.shape != self._confusion.shape or (confusion < 0).any():
            raise ValueError(
                f"{_frame_name(None, self.num_frames)}: confusion matrix of shape {confusion.shape} with non-negative "
                f"counts expected to have shape {self._confusion.shape}"
            )
        self._confusion += confusion
        self.num_frames += 1

    def compute(self) -> SemanticIoUResult:
        """IoU per class, mIoU and pixel accuracy over all frames added so far."""
        confusion = self._confusion
        true_positives = np.diag(confusion[:, : self.num_classes]).astype(np.float64)
        union = confusion.sum(axis=1) + confusion[:, : self.num_classes].sum(axis=0) - true_positives
        iou = np.divide(true_positives, union, out=np.full(self.num_classes, np.nan), where=union > 0)
        total = confusion.sum()
        if total == 0:
            warnings.warn(f"No labelled pixel in {self.num_frames} frame(s): mIoU is NaN", RuntimeWarning, stacklevel=2)
        return SemanticIoUResult(
            miou=float(np.nanmean(iou)) if (union > 0).any() else float("nan"),
            per_class_iou=iou,
            pixel_accuracy=float(true_positives.sum() / total) if total else float("nan"),
            confusion_matrix=confusion.copy(),
        )


# ----------------------------------------------------------------------------------------------------------------
# Plots
# ----------------------------------------------------------------------------------------------------------------

MAX_PLOTTED_POINTS = 4096


def _plotted_points(num_points: int) -> np.ndarray:
    """At most `MAX_PLOTTED_POINTS` curve indices, evenly spaced, first and last included."""
    return np.unique(np.linspace(0, num_points - 1, min(num_points, MAX_PLOTTED_POINTS)).round().astype(np.int64))


def plot_curves(result: PixelOODResult, output_dir: Union[str, os.PathLike], name: str) -> list[Path]:
    """Saves the PR and ROC curves of `result` as `<output_dir>/<name>_pr.png` and `<name>_roc.png`; `name` titles
    the plots, and in the file names every character other than letters, digits, `.`, `-` and `_` becomes `_`
    (`"synthetic:anomaly"` → `synthetic_anomaly_pr.png`).

    The PR legend gives AP (and the positive fraction, the AP of a random scorer); the ROC legend gives AUROC and
    FPR95. Curves with many points are drawn through `MAX_PLOTTED_POINTS` evenly spaced ones. Needs matplotlib
    (`pip install tdos[plots]`); only its object-oriented API is used, so no global pyplot state changes.

    Returns:
        The two paths written.
    """
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as error:
        raise ImportError("plot_curves needs matplotlib: pip install 'tdos[plots]' (or matplotlib)") from error
    if result.true_positives.size == 0 or result.num_positives == 0:
        raise ValueError(f"cannot plot curves for {name!r}: the result has no OOD (label 1) pixel")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    file_stem = re.sub(r"[^A-Za-z0-9._-]", "_", name)
    points = _plotted_points(result.true_positives.size)
    recall = np.concatenate([[0.0], result.recall[points]])
    precision = np.concatenate([[1.0], result.precision[points]])
    fpr = np.concatenate([[0.0], result.fpr[points]])
    tpr = recall
    panels = (
        ("pr", recall, precision, "recall", "precision",
         f"AP = {result.average_precision:.4f} (random: {result.positive_fraction:.4f})", "lower left"),
        ("roc", fpr, tpr, "false-positive rate", "true-positive rate",
         f"AUROC = {result.auroc:.4f}, FPR95 = {result.fpr95:.4f} ({result.fpr95_rule})", "lower right"),
    )
    paths = []
    for suffix, x, y, x_label, y_label, label, location in panels:
        figure = Figure(figsize=(5, 5))
        FigureCanvasAgg(figure)
        axes = figure.add_subplot()
        axes.plot(x, y, drawstyle="steps-pre" if suffix == "pr" else "default", label=label)
        axes.set(xlabel=x_label, ylabel=y_label, xlim=(0, 1), ylim=(0, 1.02), title=f"{name} ({result.protocol})")
        axes.grid(True)
        axes.legend(loc=location)
        path = output_dir / f"{file_stem}_{suffix}.png"
        write_atomically(path, lambda handle: figure.savefig(handle, format="png", dpi=120))
        paths.append(path)
    logger.info("Saved %s", ", ".join(str(path) for path in paths))
    return paths
