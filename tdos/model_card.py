"""The `README.md` model card of a saved TDOS model: YAML metadata the Hub reads (library, pipeline tag, tags,
datasets, `model-index` with the evaluation results of `eval_results.json`), then intended use, limitations, the
training recipe, the evaluation table and a "How to use" snippet that runs as written."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Optional

from .atomic_io import write_atomically


METRICS = [  # (key in eval_results.json, model-index type, display name)
    ("average_precision", "average_precision", "AP"),
    ("auroc", "roc_auc", "AUROC"),
    ("fpr95", "fpr95", "FPR95"),
    ("siou", "siou", "sIoU"),
    ("ppv", "ppv", "PPV"),
    ("mean_f1", "mean_f1", "mean F1"),
    ("miou", "mean_iou", "mIoU"),
]
TAGS = ["tdos", "out-of-distribution-detection", "anomaly-segmentation", "road-scenes", "clip", "mask2former"]
BENCHMARK_DATASETS = {  # benchmark name (before ":split") -> dataset name on the card
    "cityscapes": "cityscapes",
    "cityscapes_ood": "cityscapes",
    "fishyscapes_lf": "fishyscapes",
    "fishyscapes_static": "fishyscapes",
    "lost_and_found": "lost_and_found",
    "road_anomaly": "road_anomaly",
    "smiyc_anomaly": "segment_me_if_you_can",
    "smiyc_obstacle": "segment_me_if_you_can",
    "synthetic": "tdos-synthetic-road-scenes",
}


def how_to_use(model_id: str) -> str:
    """The card's "How to use" code (Python): the `ood-segmentation` pipeline on an image, as written in the card."""
    return f'''from PIL import Image
from transformers import pipeline

segmenter = pipeline("ood-segmentation", model={model_id!r}, trust_remote_code=True)
image = Image.new("RGB", (1024, 512), (100, 100, 100))  # your road image: Image.open("road.png")
result = segmenter(image, threshold=0.5)
print(result["anomaly_score"].shape, result["anomaly_score"].max())  # (512, 1024) float32 scores
result["anomaly_mask"].save("anomaly_mask.png")  # 255 where the score is >= 0.5
'''


def _yaml_string(value: str) -> str:
    return json.dumps(value)  # a JSON string is a valid YAML scalar


def _finite(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value)


def _metadata(model_name: str, eval_results: dict, train_dataset: Optional[str]) -> str:
    datasets = sorted(
        {BENCHMARK_DATASETS.get(name.split(":")[0], name.split(":")[0]) for name in eval_results}
        | ({BENCHMARK_DATASETS.get(train_dataset, train_dataset)} if train_dataset else set())
    )
    lines = ["---", "library_name: transformers", "pipeline_tag: image-segmentation", "license: apache-2.0", "tags:"]
    lines += [f"- {tag}" for tag in TAGS]
    if datasets:
        lines += ["datasets:"] + [f"- {_yaml_string(name)}" for name in datasets]
    rows = [(name, row) for name, row in eval_results.items() if any(_finite(row.get(key)) for key, _, _ in METRICS)]
    if rows:
        lines += ["model-index:", f"- name: {_yaml_string(model_name)}", "  results:"]
        for name, row in rows:
            benchmark = name.split(":")[0]
            lines += [
                "  - task:",
                "      type: image-segmentation",
                "      name: Out-of-distribution segmentation",
                "    dataset:",
                f"      name: {_yaml_string(name)}",
                f"      type: {_yaml_string(BENCHMARK_DATASETS.get(benchmark, benchmark))}",
                "    metrics:",
            ]
            for key, metric_type, display in METRICS:
                if _finite(row.get(key)):
                    lines += [
                        f"    - type: {metric_type}",
                        f"      value: {float(row[key]):.6g}",
                        f"      name: {_yaml_string(display)}",
                    ]
    lines.append("---")
    return "\n".join(lines)


def _results_table(eval_results: dict) -> str:
    columns = [(key, display) for key, _, display in METRICS if any(_finite(r.get(key)) for r in eval_results.values())]
    if not columns:
        return "No evaluation results were recorded with this model."
    lines = ["| benchmark | frames | " + " | ".join(display for _, display in columns) + " |"]
    lines.append("|---" * (len(columns) + 2) + "|")
    for name, row in eval_results.items():
        cells = [f"{row[key]:.4f}" if _finite(row.get(key)) else "" for key, _ in columns]
        lines.append(f"| {name} | {row.get('frames', '')} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _recipe(config, training: Optional[dict]) -> str:
    vision = config.clip_config.vision_config
    backbone = "CLIP ResNet" if config.backbone == "clip-rn50" else f"CLIP ViT (hidden size {vision.hidden_size})"
    lines = [
        f"- Backbone: {backbone}, image tower {'trained' if config.train_image_tower else 'frozen'}, text tower frozen;",
        f"  {config.num_id_classes - 1} Cityscapes classes, one OOD class and {config.num_ood_prompts} learnable OOD "
        "prompts anchored at WordNet distance bands (TDOS, Song & Lee, IROS 2025).",
        f"- Crop {config.crop_size}, inference `{config.inference_mode}` (stride {config.stride}), anomaly score "
        f"`{config.anomaly_score}`.",
    ]
    for key, value in (training or {}).items():
        lines.append(f"- {key}: {value}")
    return "\n".join(lines)


def model_card_text(
    model, model_id: str, eval_results: Optional[dict] = None, training: Optional[dict] = None, model_name: str = ""
) -> str:
    """The card as text; `training`: recipe lines (`{"train dataset": "synthetic", "steps": 800, ...}`)."""
    eval_results = eval_results or {}
    config = model.config
    name = model_name or Path(str(model_id)).name or "tdos"
    train_dataset = (training or {}).get("train dataset")
    return f"""{_metadata(name, eval_results, train_dataset)}

# {name}

A TDOS model (text-driven out-of-distribution segmentation for road scenes) for Hugging Face `transformers`: per pixel,
the Cityscapes class and an anomaly score that is high on objects of none of the known classes.

## Intended use

Research on and evaluation of pixel-level anomaly (out-of-distribution) segmentation in driving scenes: finding
unexpected objects on the road in images like those of the training and evaluation data below, ranking pixels by how
unknown they look, and comparing methods on public benchmarks.

## Limitations

- OOD detection is **not a safety certificate**. A low anomaly score does not mean an object is known or the road is
  free: the model misses objects, and it flags harmless ones. Never use it as the only check in a vehicle.
- Scores are calibrated on the training distribution only; thresholds chosen on one benchmark do not transfer.
- Images far from the training data (other cameras, night, weather, non-road scenes) make everything look anomalous
  or nothing.
- With randomly initialised CLIP towers (the offline demo) the model only knows its synthetic training scenes, and the
  names its components get from CLIP's text space mean nothing.

## Training recipe

{_recipe(config, training)}

## Evaluation

{_results_table(eval_results)}

## How to use

```python
{how_to_use(model_id)}```

Sliding-window inference, component names and the command-line tools (`tdos-predict`, `tdos-export-onnx`) are
described in the TDOS-HF README.
"""


def write_model_card(
    save_directory, model, model_id: Optional[str] = None, eval_results: Optional[dict] = None,
    training: Optional[dict] = None,
) -> Path:  # fmt: skip
    """Writes `save_directory/README.md` atomically. `eval_results` default: `save_directory/eval_results.json` when
    it exists; `model_id` default: the folder's path (what `pipeline(model=...)` loads)."""
    save_directory = Path(save_directory)
    if eval_results is None and (save_directory / "eval_results.json").is_file():
        eval_results = json.loads((save_directory / "eval_results.json").read_text())
    text = model_card_text(model, model_id or str(save_directory), eval_results, training).encode()
    return write_atomically(save_directory / "README.md", lambda handle: handle.write(text))
