"""Streaming evaluation of road-scene OOD segmentation.

Three metric families, each accumulated frame by frame with memory that does not grow with the number of pixels:

* `PixelOODMetrics`: pixel-level AUROC, average precision (AP), FPR at 95 % TPR, best pixel F1 and the
  PR / ROC curves, over all non-void pixels of a dataset (label 1 = OOD = positive, 0 = in-distribution,
  255 = void, dropped).
* `ComponentOODMetrics`: the SegmentMeIfYouCan (SMIYC) component-level metrics (adjusted sIoU per ground-truth
  component, PPV per predicted component, F1 at sIoU/PPV thresholds 0.25 ... 0.75 and their mean).
* `SemanticIoUMetrics`: mean IoU of the in-distribution classes from a streaming confusion matrix.

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

The metrics know nothing of models or datasets: inputs are NumPy arrays (or anything `np.asarray` accepts, such as
CPU torch tensors).
"""

import logging
import warnings
from dataclasses import dataclass
from typing import Literal, Optional, Union

import numpy as np


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
    try:
        return np.asarray(value)
    except (TypeError, ValueError, RuntimeError) as error:
        raise ValueError(f"{name}: cannot read the {what} ({type(value).__name__}) as a NumPy array: {error}") from error


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

    scikit-learn drops every point whose step (change in FP, change in TP) equals the previous step: such points
    lie on a straight segment.
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
            - `"strict"` (RbA code): FPR of the first point of scikit-learn's `roc_curve` (which drops collinear
              points) whose TPR > `target_tpr`; 0 if there is none.
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
        """Plain lists, as stored by the `evaluate` module."""
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
              and ~1e-7 on 2e8 pixels (tests: < 1e-4; `benchmarks/bench_metrics.py`). `key_bits=24` gives 4x
              finer bins for 4x the memory.
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
            totals, positives = self._bin_counts(scores, labels)
            self._totals += totals
            self._positives += positives
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
        totals, positives = self._bin_counts(scores, labels)
        bins = np.flatnonzero(totals)
        return PixelFrameSummary(
            _lower_edges(bins, self._shift), positives[bins], totals[bins] - positives[bins]
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

    def _bin_counts(self, scores: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per-bin counts of (all non-void pixels, positive pixels) of one frame."""
        num_keys = 1 << self.key_bits
        bins = _ordered_keys(scores)
        bins >>= np.uint32(self._shift)
        np.putmask(bins, labels == VOID_LABEL, np.uint32(num_keys))  # void pixels go to an extra, dropped bin
        totals = np.bincount(bins, minlength=num_keys + 1)[:num_keys]
        positives = np.bincount(bins[labels == 1], minlength=num_keys + 1)[:num_keys]
        return totals, positives

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
