"""Evaluation of a TDOS model on road-anomaly benchmarks: the glue between `datasets_scripts` (frames),
`TDOSForOODSegmentation.predict` (anomaly and semantic maps) and `tdos.evaluation` (streaming metrics).

Per benchmark it writes, under `OUTPUT_DIR/eval/NAME/`, PR and ROC curves, overlay panels of the first frames
(`overlay_000.png`, ...: image | heat map | mask at the benchmark's best-F1 threshold | ground truth, with the frame's
AP; `datasets_scripts.panels`; the heat maps of a benchmark share one colour range, by default its 0.1 %..99.9 %
score quantiles), and adds the numbers to `OUTPUT_DIR/eval_results.json` (results of other benchmarks already there
are kept; replacing those of a benchmark takes `overwrite=True`). OOD benchmarks (labels 0/1/255) get AUROC, AP,
FPR95 and, for the SMIYC tracks, the component metrics; semantic benchmarks (trainIds) get mIoU, plus the OOD pixel
metrics when their labels contain OOD objects (trainId 19).

Every result names its `protocol` (see `tdos.evaluation.PixelOODMetrics`): the SMIYC tracks use the official SMIYC
protocol by default (`smiyc_protocol="smiyc"`: float16 scores, per-frame percentile bins, and the component metrics
at the official best-F1 threshold with the official size filters), so their numbers are those of the official code;
the other benchmarks use the exact protocol, whose pixel metrics are scikit-learn's, as the peers' evaluation code
computes them.

SMIYC component metrics need the best-F1 threshold of the whole dataset's pixel curve, so they take a second pass:
the first pass stores each frame's anomaly map (float16, one `.npy` per frame, on disk, never in memory) and the
second pass streams the labels again and reads the maps back.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from contextlib import nullcontext
from dataclasses import dataclass
from itertools import islice
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

import datasets_scripts
from datasets_scripts.panels import NORMALIZATIONS, overlay_panel, panel_title

from .atomic_io import write_atomically
from .configuration_tdos import IGNORE_INDEX
from .evaluation import ComponentOODMetrics, PixelOODMetrics, PixelOODResult, SemanticIoUMetrics, plot_curves
from .modeling_tdos_ood_slot import anomaly_score_from_semantic
from .overlays import anomaly_value_range, benchmark_value_range, frame_average_precision, save_panel


logger = logging.getLogger(__name__)
TEST_SCALES = {
    "cityscapes": (2048, 1024),
    "cityscapes_ood": (2048, 1024),
    "fishyscapes_lf": (2048, 1024),
    "fishyscapes_static": (2048, 1024),
    "lost_and_found": (2048, 1024),
    "road_anomaly": (512, 512),
    "smiyc_anomaly": (1280, 720),
    "smiyc_obstacle": (1920, 1080),
}
"""Test scale (long side, short side) per benchmark, docs/method.md §7; images are resized keeping their ratio.
Benchmarks not listed (the synthetic one) are evaluated at their own resolution."""
SMIYC_TRACKS = {"smiyc_anomaly": "AnomalyTrack", "smiyc_obstacle": "ObstacleTrack"}
PROTOCOL_TITLES = {
    "exact": "exact protocol: pixel metrics over all non-void pixels, as scikit-learn computes them",
    "smiyc": "official SegmentMeIfYouCan protocol: float16 scores, per-frame percentile bins; components at the "
    "best-F1 threshold of that curve (score > threshold, official size filters)",
}
RESULTS_FILE = "eval_results.json"
RESIZE_ORDERS = ("semantic_map", "anomaly_score")
"""What is resized to the original image size: the `K_id`-channel semantic map, before the anomaly score (softmax)
and the arg-max are taken (the release, docs/method.md §7), or the anomaly score and the semantic map separately."""


@dataclass(frozen=True)
class BenchmarkSpec:
    name: str
    root: str | None = None
    split: str | None = None

    @property
    def key(self) -> str:
        """The benchmark's name in results: `name:split` unless the split is the benchmark's usual one."""
        if self.split is None or self.split == datasets_scripts.BENCHMARKS[self.name].default_split:
            return self.name
        return f"{self.name}:{self.split}"


def parse_benchmark_spec(text: str) -> BenchmarkSpec:
    """`NAME[:SPLIT][=ROOT]` → `BenchmarkSpec` (e.g. `fishyscapes_lf=/data/fs_lf`, `smiyc_obstacle:night=/data/smiyc`).
    Without a split a benchmark is evaluated on its usual one; `synthetic` on its `anomaly` split."""
    head, _, root = text.partition("=")
    name, _, split = head.partition(":")
    if not name:
        raise ValueError(f"benchmark {text!r}: expected NAME[:SPLIT][=ROOT]")
    if not split and name == "synthetic":
        split = "anomaly"
    return BenchmarkSpec(name=name, root=root or None, split=split or None)


def _ood_labels(label: np.ndarray, kind: str, ood_label_id: int) -> np.ndarray | None:
    """Binary OOD labels (0/1/255) of a frame; for a semantic frame only when it contains OOD pixels."""
    if kind == "ood":
        return label
    if not (label == ood_label_id).any():
        return None
    binary = (label == ood_label_id).astype(np.uint8)
    binary[label == IGNORE_INDEX] = IGNORE_INDEX
    return binary


class BenchmarkEvaluator:
    """
    Evaluates one model on benchmark after benchmark; see the module docstring. By default as released (docs/method.md §7):
    each image is resized to the test scale with mmcv's exact keep-ratio size (the model pads it to its input stride;
    `round_to_stride=True` rounds the size to a multiple of the stride instead), and the semantic map is resized to the
    original image before the anomaly score and the arg-max are taken (`resize_order="anomaly_score"` resizes the
    score itself).
    """

    def __init__(
        self,
        model,
        processor,
        output_dir: Path,
        inference_mode=None,
        bf16=False,
        num_overlays=4,
        smiyc_protocol="smiyc",
        overlay_normalization="fixed",
        overlay_range=None,
        resize_order: str = "semantic_map",
        round_to_stride: bool = False,
    ):
        if smiyc_protocol not in PROTOCOL_TITLES:
            raise ValueError(f"smiyc_protocol={smiyc_protocol!r}; expected one of {tuple(PROTOCOL_TITLES)}")
        if resize_order not in RESIZE_ORDERS:
            raise ValueError(f"resize_order must be one of {RESIZE_ORDERS}, got {resize_order!r}")
        self.smiyc_protocol = smiyc_protocol
        self.model = model.eval()
        self.processor = processor
        self.output_dir = Path(output_dir)
        self.inference_mode = inference_mode
        self.bf16 = bf16
        self.num_overlays = num_overlays
        self.resize_order = resize_order
        self.size_divisor = model.config.input_stride if round_to_stride else 1
        if overlay_normalization not in NORMALIZATIONS:
            raise ValueError(f"overlay_normalization must be one of {NORMALIZATIONS}, got {overlay_normalization!r}")
        self.overlay_normalization = overlay_normalization
        if overlay_range is not None and (len(overlay_range) != 2 or not overlay_range[1] > overlay_range[0]):
            raise ValueError(f"overlay_range must be (low, high) with high > low, got {overlay_range}")
        self.overlay_range = None if overlay_range is None else tuple(overlay_range)

    def write_panels(self, folder: Path, frames: list[dict], pixel_result: PixelOODResult | None, kind: str) -> None:
        """One overlay panel per kept frame: the mask column at the benchmark's best-F1 threshold, the heat map over
        `overlay_range`, else the benchmark's score range (`benchmark_value_range`), else the score's natural range."""
        config = self.model.config
        value_range, range_name = self.overlay_range, "--overlay_range"
        if value_range is None and pixel_result is not None:
            value_range, range_name = benchmark_value_range(pixel_result), "benchmark's 0.1-99.9 % quantiles"
        if value_range is None:
            value_range = anomaly_value_range(config.anomaly_score, config.num_id_classes)
            range_name = f"{config.anomaly_score} range"
        threshold = None if pixel_result is None else pixel_result.best_threshold
        for index, frame in enumerate(frames):
            title = panel_title(frame["id"], frame_average_precision(frame["anomaly"], frame["binary"]))
            panel = overlay_panel(
                frame["image"], frame["anomaly"], threshold=threshold, threshold_name="best-F1 threshold",
                ground_truth=frame["label"], ground_truth_kind=kind, value_range=value_range,
                normalization=self.overlay_normalization, range_name=range_name, title=title,
            )  # fmt: skip
            save_panel(panel, folder / f"overlay_{index:03d}.png")

    @torch.no_grad()
    def predict(self, image, target_size: tuple[int, int], scale: tuple[int, int] | None):
        device = next(self.model.parameters()).device
        long_side, short_side = scale if scale is not None else (max(target_size), min(target_size))
        inputs = self.processor(
            images=image,
            size={"longest_edge": long_side, "shortest_edge": short_side},
            size_divisor=self.size_divisor,
            return_tensors="pt",
        )
        autocast = torch.autocast(device.type, dtype=torch.bfloat16) if self.bf16 else nullcontext()
        with autocast:
            outputs = self.model.predict(inputs["pixel_values"].to(device), inference_mode=self.inference_mode)
        if self.resize_order == "semantic_map":
            semantic_map = F.interpolate(
                outputs.semantic_map.float(), size=tuple(target_size), mode="bilinear", align_corners=False
            )
            config = self.model.config
            anomaly = anomaly_score_from_semantic(semantic_map, config.anomaly_score, config.ood_label_id)[0]
            return anomaly.cpu().numpy().astype(np.float32), semantic_map[0].argmax(0).cpu().numpy()
        anomaly = self.processor.post_process_anomaly_map(outputs, target_sizes=[target_size])[0]
        semantic = self.processor.post_process_semantic_segmentation(outputs, target_sizes=[target_size])[0]
        return np.asarray(anomaly, dtype=np.float32), np.asarray(semantic)

    def evaluate(self, spec: BenchmarkSpec, dataset, max_samples: int | None = None, scale=None) -> dict:
        kind = datasets_scripts.benchmark_kind(spec.name, spec.split)
        scale = scale or TEST_SCALES.get(spec.name)
        folder = self.output_dir / "eval" / spec.key.replace(":", "_")
        folder.mkdir(parents=True, exist_ok=True)
        track = SMIYC_TRACKS.get(spec.name)
        ood_label_id = self.model.config.ood_label_id
        protocol = self.smiyc_protocol if track is not None else "exact"
        pixel = PixelOODMetrics(protocol=protocol)
        semantic_iou = SemanticIoUMetrics(num_classes=ood_label_id, ignore_index=IGNORE_INDEX)
        frames = 0
        kept = []  # the frames drawn as panels once the best-F1 threshold is known
        with tempfile.TemporaryDirectory(dir=folder, prefix=".scores-") as cache:
            for index, example in enumerate(tqdm(islice(dataset, max_samples), desc=f"eval {spec.key}", unit="img")):
                label = np.asarray(example["label"])
                anomaly, semantic = self.predict(example["image"].convert("RGB"), label.shape, scale)
                binary = _ood_labels(label, kind, ood_label_id)
                if binary is not None:
                    pixel.update(anomaly, binary, frame_id=example["id"])
                if kind == "semantic":
                    id_label = np.where(label >= ood_label_id, IGNORE_INDEX, label).astype(np.uint8)
                    semantic_iou.update(semantic, id_label)
                if track is not None:
                    np.save(os.path.join(cache, f"{index}.npy"), anomaly.astype(np.float16))
                if index < self.num_overlays:
                    kept.append(
                        {"id": str(example["id"]), "image": example["image"].convert("RGB"), "anomaly": anomaly,
                         "binary": binary, "label": label}
                    )  # fmt: skip
                frames += 1
            if frames == 0:
                raise ValueError(f"benchmark {spec.key} yielded no frames")
            results = {"frames": frames, "protocol": protocol}
            pixel_result = None
            if pixel.num_frames:
                pixel_result = pixel.compute()
                results.update(pixel_result.to_dict())
                plot_curves(pixel_result, folder, spec.key)
                if track is not None:
                    components = ComponentOODMetrics.from_pixel_result(pixel_result, track=track)
                    for index, example in enumerate(islice(dataset, frames)):
                        scores = np.load(os.path.join(cache, f"{index}.npy")).astype(np.float32)
                        components.update(scores, np.asarray(example["label"]), frame_id=example["id"])
                    results.update(components.compute().to_dict())
            self.write_panels(folder, kept, pixel_result, kind)
            if kind == "semantic":
                results.update(semantic_iou.compute().to_dict())
        return results


def check_results_file(output_dir, specs: list[BenchmarkSpec], overwrite: bool = False) -> dict[str, dict]:
    """The results already in `output_dir/eval_results.json` ({} without the file); refuses, naming the file, the
    benchmarks and their frame counts, when some of `specs` have results there and `overwrite` is False."""
    path = Path(output_dir) / RESULTS_FILE
    if not path.is_file():
        return {}
    try:
        previous = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"Cannot read {path}: {error}; expected the JSON results of an earlier evaluation") from error
    if not isinstance(previous, dict):
        raise ValueError(f"{path} holds {type(previous).__name__}; expected {{benchmark: {{metric: value}}}}")
    clashes = [
        f"{spec.key} ({previous[spec.key].get('frames', '?') if isinstance(previous[spec.key], dict) else '?'} frames)"
        for spec in specs
        if spec.key in previous
    ]
    if clashes and not overwrite:
        raise FileExistsError(
            f"{path} already holds results for {', '.join(clashes)}; evaluating again would replace them and their "
            f"plots under {Path(output_dir) / 'eval'}. Pass overwrite (--overwrite_eval_results) or another output "
            "folder."
        )
    return previous


def evaluate_benchmarks(
    model,
    processor,
    specs: list[BenchmarkSpec],
    output_dir: Path,
    dataset_options: dict[str, dict] | None = None,
    max_samples: int | None = None,
    scale: tuple[int, int] | None = None,
    inference_mode: str | None = None,
    num_overlays: int = 4,
    bf16: bool = False,
    accelerator=None,
    smiyc_protocol: str = "smiyc",
    overwrite: bool = False,
    overlay_normalization: str = "fixed",
    overlay_range: tuple[float, float] | None = None,
    resize_order: str = "semantic_map",
    round_to_stride: bool = False,
) -> dict[str, dict]:
    """
    Evaluates `model` on every benchmark of `specs` (on the main process; other processes wait) and writes
    `output_dir/eval_results.json` atomically after each benchmark, so finished benchmarks survive a later failure;
    results of other benchmarks already in the file are kept, and results of the same benchmarks are replaced only
    with `overwrite` (see `check_results_file`). `smiyc_protocol` is the protocol of the SMIYC tracks (`"smiyc"`, the
    official one, or `"exact"`). `overlay_normalization` is the heat maps' colour scale in the panels: `"fixed"` (one
    range for all frames of a benchmark: `overlay_range`, by default the benchmark's 0.1 %..99.9 % score quantiles)
    or `"image"` (each frame's min..max). `resize_order` and `round_to_stride`: see [`BenchmarkEvaluator`]. Returns
    `{benchmark: {metric: value}}` of this run.
    """
    results: dict[str, dict] = {}
    if accelerator is None or accelerator.is_main_process:
        stored = check_results_file(output_dir, specs, overwrite)
        evaluator = BenchmarkEvaluator(
            model, processor, output_dir, inference_mode, bf16, num_overlays, smiyc_protocol, overlay_normalization,
            overlay_range, resize_order, round_to_stride,
        )  # fmt: skip
        path = Path(output_dir) / RESULTS_FILE
        for spec in specs:
            options = (dataset_options or {}).get(spec.name, {})
            dataset = datasets_scripts.load_benchmark(spec.name, spec.root, split=spec.split, streaming=True, **options)
            results[spec.key] = evaluator.evaluate(spec, dataset, max_samples, scale)
            logger.info(f"{spec.key}: {results[spec.key]}")
            stored[spec.key] = results[spec.key]
            text = json.dumps(stored, indent=2, sort_keys=True).encode()
            write_atomically(path, lambda f: f.write(text))
    if accelerator is not None:
        accelerator.wait_for_everyone()
    return results


TABLE_COLUMNS = [
    ("frames", "frames", "{:d}"),
    ("positive_fraction", "OOD px", "{:.2%}"),
    ("auroc", "AUROC", "{:.4f}"),
    ("average_precision", "AP", "{:.4f}"),
    ("fpr95", "FPR95", "{:.4f}"),
    ("siou", "sIoU", "{:.4f}"),
    ("ppv", "PPV", "{:.4f}"),
    ("mean_f1", "mean F1", "{:.4f}"),
    ("miou", "mIoU", "{:.4f}"),
]


def format_results_table(results: dict[str, dict]) -> str:
    """Markdown tables, one per protocol, each under a line naming it: one row per benchmark, the metrics it has
    (others blank)."""
    protocols = list(dict.fromkeys(row.get("protocol", "exact") for row in results.values()))
    tables = []
    for protocol in protocols:
        rows = {name: row for name, row in results.items() if row.get("protocol", "exact") == protocol}
        columns = [column for column in TABLE_COLUMNS if any(column[0] in row for row in rows.values())]
        lines = [
            f"Protocol: {PROTOCOL_TITLES.get(protocol, protocol)}",
            "",
            "| benchmark | " + " | ".join(title for _, title, _ in columns) + " |",
            "|---" * (len(columns) + 1) + "|",
        ]
        for name, row in rows.items():
            cells = [fmt.format(row[key]) if key in row and row[key] is not None else "" for key, _, fmt in columns]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
        tables.append("\n".join(lines))
    return "\n\n".join(tables)
