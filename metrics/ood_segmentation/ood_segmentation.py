"""`evaluate` module for road-scene OOD segmentation: a thin wrapper over `tdos.evaluation`.

`add`, `add_batch` and `compute` take `predictions` (anomaly score maps, or class maps for "miou") and `references`
(label maps), one pair per frame, frames of any size. Each frame is reduced by the library as it arrives, so raw
pixels never reach `evaluate`'s cache: "components" and "miou" write one small row per frame; "pixel" adds the frame
to a histogram of fixed size (the library's `PixelOODMetrics`) that `compute` writes to the cache as rows of
non-empty bins. Memory therefore does not grow with the pixels seen. Per-frame summaries made by the library
(`summarize(...).to_dict()`) are still accepted as the module's rows.
"""

import datasets
import evaluate
import numpy as np

from tdos.evaluation import (
    ComponentFrameSummary,
    ComponentOODMetrics,
    PixelFrameSummary,
    PixelOODMetrics,
    PixelOODResult,
    SemanticIoUMetrics,
)


_DESCRIPTION = """\
Out-of-distribution (OOD) segmentation metrics of road scenes, computed by `tdos.evaluation`:

* config `"pixel"` (default): pixel AUROC, average precision (AP), FPR at 95 % TPR, best pixel F1 and its threshold,
  over all non-void pixels (label 1 = OOD, 0 = in-distribution, 255 = void). Exact protocol (scikit-learn's numbers
  for float16-representable scores, within 1e-4 for float32) or the official SegmentMeIfYouCan binning.
* config `"components"`: SegmentMeIfYouCan component metrics (adjusted sIoU, PPV, mean F1 over tau = 0.25 ... 0.75).
* config `"miou"`: mean IoU of the in-distribution classes.

Inputs are `predictions` and `references`, one pair per frame; frames are summarised as they are added, so memory
does not grow with the number of pixels.
"""

_KWARGS_DESCRIPTION = """
Args:
    predictions (`list` of H x W arrays, or a B x H x W array): per frame, for "pixel" and "components" the anomaly
        scores (float, higher = more OOD; a boolean mask is also accepted by "components"), for "miou" the
        predicted class ids. NumPy arrays, nested lists or torch tensors; each frame may have its own size.
    references (same layout): the label maps of the same frames: 0 (in-distribution), 1 (OOD), 255 (void) for
        "pixel" and "components"; class ids 0 ... num_classes - 1 or 255 (ignored) for "miou".
Options, given to `evaluate.load(..., option=value)` because frames are summarised as they arrive:
    "pixel": protocol (`"exact"` or `"smiyc"`), fpr95_rule (`"smiyc"`, `"strict"`, `"interpolate"`), key_bits
        (19-24), num_bins (SMIYC bins per frame), as `PixelOODMetrics`.
    "components": threshold (`float`), or pixel_result (the `PixelOODResult` of the same frames, or the dict that the
        "pixel" config returned) to take the best-F1 threshold of the pixel pass, the SMIYC recipe; track
        (`"AnomalyTrack"` or `"ObstacleTrack"`), min_prediction_size, min_ground_truth_size, protocol, as
        `ComponentOODMetrics` (a `PixelOODResult` also sets the protocol).
    "miou": num_classes (default 19).
Summaries instead of pixels (the library's `summarize(...).to_dict()`): "pixel" rows `thresholds`, `positives`,
    `negatives` (with the summariser's protocol and key_bits, given at load time or to `compute`); "components" rows
    `siou`, `ppv`; "miou" rows `confusion_matrix`.
Returns:
    "pixel": auroc, average_precision, fpr95, best_f1, best_threshold, positive_fraction, num_positives,
        num_negatives. "components": siou, ppv, mean_f1, f1_25, f1_50, f1_75, num_ground_truth, num_predicted,
        threshold (NaN when only summaries were given without a threshold). "miou": miou, pixel_accuracy, iou_<class>.
Examples:
    >>> import evaluate
    >>> pixel = evaluate.load("metrics/ood_segmentation", protocol="smiyc")
    >>> pixel.add_batch(predictions=score_maps, references=label_maps)  # doctest: +SKIP
    >>> pixel_results = pixel.compute()  # doctest: +SKIP
    >>> components = evaluate.load("metrics/ood_segmentation", "components", pixel_result=pixel_results,
    ...                            protocol="smiyc", track="AnomalyTrack")  # doctest: +SKIP
    >>> components.compute(predictions=score_maps, references=label_maps)  # doctest: +SKIP
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
    """Streaming OOD segmentation metrics over frames or per-frame summaries (configs "pixel", "components", "miou")."""

    def __init__(
        self,
        protocol=None,
        fpr95_rule="smiyc",
        key_bits=22,
        num_bins=768,
        threshold=None,
        pixel_result=None,
        track=None,
        min_prediction_size=None,
        min_ground_truth_size=None,
        num_classes=19,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self._frames_added = 0
        config = self._config
        if config == "pixel":
            self._pixel_options = {
                "protocol": protocol or "exact", "fpr95_rule": fpr95_rule, "key_bits": key_bits, "num_bins": num_bins
            }
            self._summarizer = PixelOODMetrics(**self._pixel_options)
        elif config == "components":
            if pixel_result is not None:
                if threshold is not None:
                    raise ValueError("give threshold= or pixel_result=, not both")
                threshold, protocol = _threshold_of(pixel_result, protocol)
            self._summarizer = ComponentOODMetrics(
                threshold=threshold,
                track=track,
                min_prediction_size=min_prediction_size,
                min_ground_truth_size=min_ground_truth_size,
                protocol=protocol or "exact",
            )
        else:
            self._summarizer = SemanticIoUMetrics(num_classes=num_classes)

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

    def add(self, *, prediction=None, reference=None, **kwargs):
        """Adds one frame (`prediction`, `reference`) or one row of library summaries."""
        if prediction is None and reference is None:
            return super().add(**kwargs)
        self._refuse_mixed_inputs(kwargs)
        self._add_frame(prediction, reference)

    def add_batch(self, *, predictions=None, references=None, **kwargs):
        """Adds frames (`predictions`, `references`: one entry per frame) or rows of library summaries."""
        if predictions is None and references is None:
            return super().add_batch(**kwargs)
        self._refuse_mixed_inputs(kwargs)
        if predictions is None or references is None:
            raise ValueError("give both predictions and references (one entry per frame)")
        if len(predictions) != len(references):
            raise ValueError(
                f"got {len(predictions)} predictions for {len(references)} references; expected one per frame"
            )
        for prediction, reference in zip(predictions, references):
            self._add_frame(prediction, reference)

    def compute(self, *, predictions=None, references=None, **kwargs):
        """Metrics over every frame and summary added, after adding `predictions` / `references` if given."""
        if predictions is not None or references is not None:
            self.add_batch(predictions=predictions, references=references)
        if self._config == "pixel" and self._summarizer.num_frames:
            if any(kwargs.get(name, value) != value for name, value in self._pixel_options.items()):
                raise ValueError(
                    f"frames were summarised with {self._pixel_options}; compute() got {kwargs}: give the options to "
                    "evaluate.load(...) instead"
                )
            summary = self._summarizer.summary()
            self._summarizer.reset()
            super().add_batch(**{name: getattr(summary, name) for name in _FEATURES["pixel"]})
        return super().compute(**kwargs)

    def _refuse_mixed_inputs(self, kwargs) -> None:
        if kwargs:
            raise ValueError(f"give frames (predictions / references) or summary fields ({sorted(kwargs)}), not both")

    def _add_frame(self, prediction, reference) -> None:
        frame_id = self._frames_added
        if self._config == "pixel":
            self._summarizer.update(prediction, reference, frame_id=frame_id)
        elif self._config == "components":
            super().add(**self._summarizer.summarize(prediction, reference, frame_id=frame_id).to_dict())
        else:
            confusion = self._summarizer.summarize(prediction, reference, frame_id=frame_id)
            super().add(confusion_matrix=confusion.tolist())
        self._frames_added += 1

    def _compute(
        self,
        thresholds=None,
        positives=None,
        negatives=None,
        siou=None,
        ppv=None,
        confusion_matrix=None,
        **options,
    ):
        if self._config == "pixel":
            metrics = PixelOODMetrics(**(self._pixel_options | options))
            # "arrow" format: columns arrive as pyarrow arrays (the numpy format would cast float64 to float32)
            metrics.add_summary(
                PixelFrameSummary(thresholds.to_numpy(), positives.to_numpy(), negatives.to_numpy())
            )
        elif self._config == "components":
            metrics = ComponentOODMetrics(threshold=self._summarizer.threshold)
            for frame_siou, frame_ppv in zip(siou, ppv):
                metrics.add_summary(ComponentFrameSummary(np.asarray(frame_siou), np.asarray(frame_ppv)))
        else:
            metrics = SemanticIoUMetrics(num_classes=options.get("num_classes", self._summarizer.num_classes))
            for frame in confusion_matrix:
                metrics.add_summary(frame)
        return metrics.compute().to_dict()


def _threshold_of(pixel_result, protocol):
    """(best-F1 threshold, protocol) of a pixel result: a `PixelOODResult` or the "pixel" config's dict."""
    if isinstance(pixel_result, PixelOODResult):
        if protocol is not None and protocol != pixel_result.protocol:
            raise ValueError(f"protocol={protocol!r} differs from the pixel result's {pixel_result.protocol!r}")
        return pixel_result.best_threshold, pixel_result.protocol
    if not isinstance(pixel_result, dict) or "best_threshold" not in pixel_result:
        raise ValueError(
            "pixel_result must be a PixelOODResult or the dict returned by the 'pixel' config (with 'best_threshold'); "
            f"got {type(pixel_result).__name__}"
        )
    threshold = float(pixel_result["best_threshold"])
    if not np.isfinite(threshold):
        raise ValueError(f"the pixel result has no best-F1 threshold ({threshold}): it saw no OOD pixel")
    return threshold, protocol
