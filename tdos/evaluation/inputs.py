"""Input conventions and checks shared by every metric family: label values, frame names and array validation."""

from typing import Optional, Union

import numpy as np


VOID_LABEL = 255
PROTOCOLS = ("exact", "smiyc")

FrameId = Optional[Union[str, int]]


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
