"""Streaming pixel-level OOD metrics (`PixelOODMetrics`): the exact histogram and the SMIYC protocol."""

import warnings
from typing import Literal

import numpy as np

from .curves import (
    FPR95_RULES,
    _area_under_roc,
    _average_precision,
    _f1_scores,
    _lower_edges,
    _ordered_keys,
    fpr_at_tpr,
)
from .inputs import PROTOCOLS, VOID_LABEL, FrameId, _frame_name, _ood_frame
from .results import PIXEL_SUMMARY_FIELDS, PixelFrameSummary, PixelOODResult
from .smiyc import _empty_summary, _smiyc_curve, _smiyc_frame_summary


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
          pooled and sorted by lower edge, repeated thresholds collapsed; `best_threshold` is the lower edge of the
          best-F1 point's bin (the official code since commit 1c7804e). Numbers are comparable with leaderboard
          values (`tests/test_smiyc_parity.py` checks AP, AUROC, FPR95, best F1, its threshold and the component
          metrics at it against the official functions); they approximate the exact ones. Equal bin edges of
          different frames are ordered by a stable sort; the official code uses NumPy's default (unstable) sort, so on
          data with many exactly tied scores its first curve point, and through it AP, can differ slightly between
          NumPy versions. Memory grows by <= `num_bins` bins per frame (not per pixel).

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

    def summary(self) -> PixelFrameSummary:
        """Every frame added so far as one summary, for `add_summary` of a `PixelOODMetrics` with the same options.

        Adding it to an empty instance gives the same `compute()` as this one (e.g. to merge the work of several
        processes, or to store the state): the exact protocol's non-empty histogram bins (at most 2**key_bits),
        or the SMIYC protocol's frame bins one after the other (at most `num_bins` per frame).
        """
        if self.protocol == "exact":
            bins = np.flatnonzero(self._totals)
            positives = self._positives[bins]
            return PixelFrameSummary(_lower_edges(bins, self._shift), positives, self._totals[bins] - positives)
        if not self._frame_summaries:
            return _empty_summary()
        return PixelFrameSummary(
            *(np.concatenate([getattr(s, field) for s in self._frame_summaries]) for field in PIXEL_SUMMARY_FIELDS)
        )

    def compute(self) -> PixelOODResult:
        """Metrics and curve over all frames added so far (the state is kept; `reset` clears it)."""
        if self.protocol == "exact":
            bins = np.flatnonzero(self._totals)[::-1]
            positives = self._positives[bins]
            thresholds = _lower_edges(bins, self._shift)
            tps, fps = np.cumsum(positives), np.cumsum(self._totals[bins] - positives)
            return self._result(thresholds, tps, fps)
        return self._result(*_smiyc_curve(self._frame_summaries))

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

    def _result(self, thresholds, tps, fps) -> PixelOODResult:
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
            best_threshold = float(thresholds[best])
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
