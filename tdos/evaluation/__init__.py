"""Streaming evaluation of road-scene OOD segmentation.

Three metric families, each accumulated frame by frame with memory that does not grow with the number of pixels:

* `PixelOODMetrics`: pixel-level AUROC, average precision (AP), FPR at 95 % TPR, best pixel F1 and the
  PR / ROC curves, over all non-void pixels of a dataset (label 1 = OOD = positive, 0 = in-distribution,
  255 = void, dropped).
* `ComponentOODMetrics`: the SegmentMeIfYouCan (SMIYC) component-level metrics (adjusted sIoU per ground-truth
  component, PPV per predicted component, F1 at sIoU/PPV thresholds 0.25 ... 0.75 and their mean).
* `SemanticIoUMetrics`: mean IoU of the in-distribution classes from a streaming confusion matrix.
* `plot_curves`: PR and ROC curves of a pixel result as PNG files (needs matplotlib).

Modules: `inputs` (label conventions, input checks), `curves` (AUROC / AP / FPR-at-TPR / F1 from cumulative
counts), `pixel` (`PixelOODMetrics`), `smiyc` (the official SMIYC binning protocol), `components`
(`ComponentOODMetrics`), `semantic` (`SemanticIoUMetrics`), `results` (result and summary dataclasses), `plotting`
(`plot_curves`). The package needs only NumPy (SciPy for components, matplotlib for plots): it imports neither
torch nor transformers.

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

from .components import SIOU_THRESHOLDS, TRACK_SIZE_FILTERS, ComponentOODMetrics
from .curves import FPR95_RULES, fpr_at_tpr
from .inputs import PROTOCOLS, VOID_LABEL, FrameId
from .pixel import PixelOODMetrics
from .plotting import MAX_PLOTTED_POINTS, plot_curves
from .results import (
    ComponentFrameSummary,
    ComponentOODResult,
    PixelFrameSummary,
    PixelOODResult,
    SemanticIoUResult,
)
from .semantic import SemanticIoUMetrics


__all__ = [
    "FPR95_RULES",
    "MAX_PLOTTED_POINTS",
    "PROTOCOLS",
    "SIOU_THRESHOLDS",
    "TRACK_SIZE_FILTERS",
    "VOID_LABEL",
    "ComponentFrameSummary",
    "ComponentOODMetrics",
    "ComponentOODResult",
    "FrameId",
    "PixelFrameSummary",
    "PixelOODMetrics",
    "PixelOODResult",
    "SemanticIoUMetrics",
    "SemanticIoUResult",
    "fpr_at_tpr",
    "plot_curves",
]
