"""The model side of the overlay panels (`datasets_scripts.panels` draws them): the colour range of a heat map (the
anomaly score's natural range, or a benchmark's score range), the AP of one frame, and writing a panel atomically."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import numpy as np

from .atomic_io import write_atomically
from .evaluation import PixelOODMetrics, PixelOODResult


BENCHMARK_RANGE_QUANTILES = (0.001, 0.999)
MAX_LABELLED_COMPONENTS = 5  # components boxed and named on a panel (highest max score first)


def anomaly_value_range(method: str, num_id_classes: int) -> tuple[float, float]:
    """The fixed heat-map colour range of an anomaly score (`config.anomaly_score`):

    - `"ood_probability"` (softmax probability of the OOD channel) and `"ood_logit"` (the OOD channel of the
      semantic map, a sum of class probability x mask probability that stays near [0, 1]): `(0, 1)`;
    - `"rba"` (`-sum tanh` over the `num_id_classes - 1` known classes of non-negative scores): `(-(K_id - 1), 0)`;
    - `"max_softmax"` (minus the largest of `num_id_classes - 1` softmax probabilities): `(-1, -1 / (K_id - 1))`.
    """
    if method in ("ood_probability", "ood_logit"):
        return 0.0, 1.0
    if method == "rba":
        return -float(num_id_classes - 1), 0.0
    if method == "max_softmax":
        return -1.0, -1.0 / (num_id_classes - 1)
    raise ValueError(
        f"no colour range for anomaly score {method!r}; expected ood_probability, ood_logit, rba or max_softmax"
    )


def benchmark_value_range(result: PixelOODResult, quantiles=BENCHMARK_RANGE_QUANTILES) -> tuple[float, float] | None:
    """The colour range of a benchmark's panels: the `quantiles` (default 0.1 % and 99.9 %) of the scores of all its
    non-void pixels, read from the pixel curve (`thresholds` highest first, cumulative counts). One range for every
    frame of the benchmark, so colours compare across its panels, and narrow enough to show a weak model's scores
    (the synthetic demo's peak near 0.1). None when the curve is empty or has a single score."""
    counts = result.true_positives + result.false_positives  # pixels scored >= each threshold
    if counts.size < 2:
        return None
    total = counts[-1]
    low_index = min(int(np.searchsorted(counts, (1 - quantiles[0]) * total)), counts.size - 1)
    high_index = min(int(np.searchsorted(counts, (1 - quantiles[1]) * total)), counts.size - 1)
    low, high = float(result.thresholds[low_index]), float(result.thresholds[high_index])
    return (low, high) if high > low else None


def frame_average_precision(score: np.ndarray, binary_labels: Optional[np.ndarray]) -> Optional[float]:
    """Pixel AP of one frame (labels 0/1/255; exact protocol of `tdos.evaluation`); NaN when the frame has no OOD
    pixel, None without labels."""
    if binary_labels is None:
        return None
    if not (binary_labels == 1).any():
        return float("nan")
    metrics = PixelOODMetrics(key_bits=19)  # 2 x 4 MiB of bins instead of 2 x 32 MiB; float16 scores stay exact
    metrics.update(score, binary_labels)
    return float(metrics.compute().average_precision)


def component_label(rank: int, component) -> str:
    """`"1: mattress (cos 0.31)"`: a component's rank and nearest word, for a panel (all words are in the JSON)."""
    if not component.words:
        return f"{rank}: max {component.max_score:.3g}"
    word, cosine = component.words[0]
    return f"{rank}: {word} (cos {cosine:.2f})"


def save_panel(panel, path: Path) -> None:
    """Writes a panel (PIL image) as PNG under a temporary name, then renames it into place."""
    write_atomically(Path(path), lambda handle: panel.save(handle, format="PNG"))
