"""Streaming mean IoU of the in-distribution classes (`SemanticIoUMetrics`) from a confusion matrix."""

import warnings

import numpy as np

from .inputs import VOID_LABEL, FrameId, _as_array, _check_shapes, _frame_name
from .results import SemanticIoUResult


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
