"""Streaming SegmentMeIfYouCan component-level metrics (`ComponentOODMetrics`): adjusted sIoU, PPV and mean F1."""

import warnings
from typing import Literal, Optional

import numpy as np

from .inputs import (
    PROTOCOLS,
    VOID_LABEL,
    FrameId,
    _as_array,
    _check_label_values,
    _check_scores,
    _check_shapes,
    _frame_name,
)
from .results import ComponentFrameSummary, ComponentOODResult, PixelOODResult


SIOU_THRESHOLDS = np.linspace(0.25, 0.75, 11)
TRACK_SIZE_FILTERS = {"AnomalyTrack": (500, 100), "ObstacleTrack": (50, 10)}
"""Per SMIYC track: (minimum predicted component size, minimum ground-truth component size) in pixels."""
_EIGHT_CONNECTED = np.ones((3, 3), dtype=bool)
_SEGEVAL_SIZE_FILTERS = (500, 100)
"""Size filters of the official generic `SegEval` config, used when neither a track nor sizes are given."""


def _component_sizes(components: np.ndarray, count: int) -> np.ndarray:
    return np.bincount(components.reshape(-1), minlength=count + 1)


def _frame_components(
    predicted: np.ndarray,
    labels: np.ndarray,
    min_prediction_size: int,
    min_ground_truth_size: int,
    filter_background: bool = False,
) -> tuple[np.ndarray, np.ndarray, int, int]:
    """Ground-truth and predicted component ids inside the region of interest, as the official `default_instancer`.

    Components are 8-connected. Predicted components smaller than `min_prediction_size` are deleted; ground-truth
    components smaller than `min_ground_truth_size` become void. With `filter_background`, the background (every
    pixel not labelled 1, void included) is treated as one more ground-truth component, as the official loop over
    component ids 0 ... n does: when it has fewer than `min_ground_truth_size` pixels, all of it becomes void.
    Returns the two id arrays restricted to the region of interest (non-void pixels) and the two component counts.
    """
    from scipy.ndimage import label

    ground_truth, num_ground_truth = label(labels == 1, structure=_EIGHT_CONNECTED)
    prediction, num_predicted = label(predicted & (labels != VOID_LABEL), structure=_EIGHT_CONNECTED)
    small = _component_sizes(prediction, num_predicted) < min_prediction_size
    small[0] = False
    prediction[small[prediction]] = 0
    small = _component_sizes(ground_truth, num_ground_truth) < min_ground_truth_size
    small[0] &= filter_background
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
            convention of `PixelOODResult` curves, and never filters the background. `"smiyc"` follows the official
            code: scores cast to float16, OOD where score > threshold (the threshold compared in float16 too), and the
            ground-truth size filter also applied to the background, so a frame with fewer non-OOD pixels (void
            included) than `min_ground_truth_size` has all of them made void.
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
        smiyc = self.protocol == "smiyc"
        components = _frame_components(
            predicted, labels, min_prediction_size, self.min_ground_truth_size, filter_background=smiyc
        )
        return _component_scores(*components)

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
                return scores.astype(np.float16) > np.float16(self.threshold), labels
        return scores >= self.threshold, labels


def _is_mask(scores: np.ndarray) -> bool:
    return scores.dtype == np.bool_
