"""PR and ROC curves of a pixel result as PNG files (`plot_curves`, needs matplotlib)."""

import logging
import os
import re
from pathlib import Path
from typing import Union

import numpy as np

from ..atomic_io import write_atomically
from .results import PixelOODResult


logger = logging.getLogger(__name__)

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
