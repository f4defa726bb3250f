"""`evaluate` module for road-scene OOD segmentation: a thin wrapper over `tdos.evaluation`.

The module stores per-frame summaries made by the library (`summarize(...).to_dict()`), never raw pixels, and
accumulates them with the library's own `add_summary`, so its numbers are those of the library API.
"""

import datasets
import evaluate
import numpy as np

from tdos.evaluation import (
    ComponentFrameSummary,
    ComponentOODMetrics,
    PixelFrameSummary,
    PixelOODMetrics,
    SemanticIoUMetrics,
)


_DESCRIPTION = """\
Out-of-distribution (OOD) segmentation metrics of road scenes, computed by `tdos.evaluation`:

* config `"pixel"` (default): pixel AUROC, average precision (AP), FPR at 95 % TPR, best pixel F1 and its threshold,
  over all non-void pixels (label 1 = OOD, 0 = in-distribution, 255 = void). Exact protocol (scikit-learn's numbers
  for float16-representable scores, within 1e-4 for float32) or the official SegmentMeIfYouCan binning.
* config `"components"`: SegmentMeIfYouCan component metrics (adjusted sIoU, PPV, mean F1 over tau = 0.25 ... 0.75).
* config `"miou"`: mean IoU of the in-distribution classes from per-frame confusion matrices.

Examples are summaries made by the library, never pixels: for "pixel", one row per non-empty score bin of a frame
(at most 2**key_bits rows, <= 65536 for float16 scores, <= num_bins for the SMIYC protocol); for "components" and
"miou", one row per frame.
"""

_KWARGS_DESCRIPTION = """
Args (config "pixel"), one row per score bin, added per frame with
`metric.add_batch(**PixelOODMetrics(...).summarize(scores, labels).to_dict())`:
    thresholds (`float`): lower edge of a non-empty score bin.
    positives (`int`): OOD pixels in the bin.
    negatives (`int`): in-distribution pixels in the bin.
    protocol (`str`, *optional*, defaults to `"exact"`), fpr95_rule (`str`, *optional*, defaults to `"smiyc"`),
    key_bits (`int`, *optional*, defaults to 22), num_bins (`int`, *optional*, defaults to 768): as
        `PixelOODMetrics`; protocol and key_bits must be those the summaries were made with.
Args (config "components"), one row per frame, `metric.add(**ComponentOODMetrics(...).summarize(...).to_dict())`:
    siou (`list[float]`): adjusted sIoU of each ground-truth component of the frame.
    ppv (`list[float]`): PPV of each predicted component of the frame.
Args (config "miou"), one row per frame, `metric.add(confusion_matrix=SemanticIoUMetrics(...).summarize(...).tolist())`:
    confusion_matrix (`list[list[int]]`): the frame's confusion matrix (num_classes x num_classes + 1).
    num_classes (`int`, *optional*, defaults to 19).
Returns:
    "pixel": auroc, average_precision, fpr95, best_f1, best_threshold, positive_fraction, num_positives,
        num_negatives. "components": siou, ppv, mean_f1, f1_25, f1_50, f1_75, num_ground_truth, num_predicted,
        threshold (NaN: the threshold stays with the summaries' producer). "miou": miou, pixel_accuracy, iou_<class>.
Examples:
    >>> import evaluate
    >>> from tdos.evaluation import PixelOODMetrics
    >>> metric = evaluate.load("metrics/ood_segmentation")
    >>> engine = PixelOODMetrics()
    >>> for scores, labels in frames:  # doctest: +SKIP
    ...     metric.add_batch(**engine.summarize(scores, labels).to_dict())
    >>> metric.compute()  # doctest: +SKIP
"""

_CITATION = """\
@inproceedings{chan2021segmentmeifyoucan,
  title={SegmentMeIfYouCan: A Benchmark for Anomaly Segmentation},
  author={Chan, Robin and Lis, Krzysztof and Uhlemeyer, Svenja and Blum, Hermann and Honari, Sina and
          Siegwart, Roland and Fua, Pascal and Salzmann, Mathieu and Rottmann, Matthias},
  booktitle={NeurIPS Datasets and Benchmarks},
  year={2021}
}
"""

_FEATURES = {
    "pixel": datasets.Features(
        {
            "thresholds": datasets.Value("float64"),
            "positives": datasets.Value("int64"),
            "negatives": datasets.Value("int64"),
        }
    ),
    "components": datasets.Features(
        {"siou": datasets.List(datasets.Value("float64")), "ppv": datasets.List(datasets.Value("float64"))}
    ),
    "miou": datasets.Features({"confusion_matrix": datasets.List(datasets.List(datasets.Value("int64")))}),
}


@evaluate.utils.file_utils.add_start_docstrings(_DESCRIPTION, _KWARGS_DESCRIPTION)
class OodSegmentation(evaluate.Metric):
    """Streaming OOD segmentation metrics over per-frame summaries (configs "pixel", "components", "miou")."""

    @property
    def _config(self) -> str:
        return "pixel" if self.config_name == "default" else self.config_name

    def _info(self):
        config = self._config
        if config not in _FEATURES:
            raise ValueError(f"config {self.config_name!r} is not supported; expected one of {tuple(_FEATURES)}")
        return evaluate.MetricInfo(
            description=_DESCRIPTION,
            citation=_CITATION,
            inputs_description=_KWARGS_DESCRIPTION,
            features=_FEATURES[config],
            format="arrow" if config == "pixel" else None,
        )

    def _compute(
        self,
        thresholds=None,
        positives=None,
        negatives=None,
        siou=None,
        ppv=None,
        confusion_matrix=None,
        protocol="exact",
        fpr95_rule="smiyc",
        key_bits=22,
        num_bins=768,
        num_classes=19,
    ):
        if self._config == "pixel":
            metrics = PixelOODMetrics(protocol=protocol, fpr95_rule=fpr95_rule, key_bits=key_bits, num_bins=num_bins)
            # "arrow" format: columns arrive as pyarrow arrays (the numpy format would cast float64 to float32)
            metrics.add_summary(
                PixelFrameSummary(thresholds.to_numpy(), positives.to_numpy(), negatives.to_numpy())
            )
        elif self._config == "components":
            metrics = ComponentOODMetrics()
            for frame_siou, frame_ppv in zip(siou, ppv):
                metrics.add_summary(ComponentFrameSummary(np.asarray(frame_siou), np.asarray(frame_ppv)))
        else:
            metrics = SemanticIoUMetrics(num_classes=num_classes)
            for frame in confusion_matrix:
                metrics.add_summary(frame)
        return metrics.compute().to_dict()

