"""Result and per-frame summary dataclasses of the three metric families."""

from dataclasses import dataclass
from typing import Optional

import numpy as np

from .curves import fpr_at_tpr


PIXEL_SUMMARY_FIELDS = ("thresholds", "positives", "negatives")


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
        return {field: getattr(self, field).tolist() for field in PIXEL_SUMMARY_FIELDS}


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
        best_threshold (`float`): the threshold of the curve point with `best_f1`: pixels with score >= it are
            counted OOD there. With `protocol="smiyc"` it is the lower edge of the pooled SMIYC bin of that point, the
            `best_f1_threshold` of the official code since commit 1c7804e ("fix best-f1 threshold selection"); the
            official component metrics then predict OOD where the float16 score is > this threshold (see
            `ComponentOODMetrics`).
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
