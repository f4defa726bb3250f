import json
import re
import subprocess
import sys

import yaml
from conftest import build_tiny_model

from tdos import TDOSImageProcessor, save_for_inference


EVAL_RESULTS = {
    "synthetic:anomaly": {"frames": 3, "auroc": 0.75, "average_precision": 0.125, "fpr95": float("nan"), "best_f1": 0.2},
    "cityscapes": {"frames": 2, "miou": 0.5},
}


def card_parts(path):
    text = (path / "README.md").read_text()
    match = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert match, text[:200]
    return yaml.safe_load(match.group(1)), text


def test_card_metadata_results_and_sections(tmp_path):
    (tmp_path / "eval_results.json").write_text(json.dumps(EVAL_RESULTS))
    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    save_for_inference(build_tiny_model(), processor, tmp_path, training={"train dataset": "synthetic", "steps": 3})
    metadata, text = card_parts(tmp_path)
    assert metadata["library_name"] == "transformers" and metadata["pipeline_tag"] == "image-segmentation"
    assert "anomaly-segmentation" in metadata["tags"]
    assert metadata["datasets"] == ["cityscapes", "tdos-synthetic-road-scenes"]
    (entry,) = metadata["model-index"]
    results = {r["dataset"]["name"]: {m["name"]: m["value"] for m in r["metrics"]} for r in entry["results"]}
    assert results == {"synthetic:anomaly": {"AP": 0.125, "AUROC": 0.75}, "cityscapes": {"mIoU": 0.5}}  # no NaN
    for heading in ("## Intended use", "## Limitations", "## Training recipe", "## Evaluation", "## How to use"):
        assert heading in text
    assert "not a safety certificate" in text and "- steps: 3" in text
    assert "| synthetic:anomaly | 3 | 0.1250 | 0.7500 |" in text


def test_how_to_use_snippet_runs_as_written(tmp_path):
    model_dir = tmp_path / "model"
    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    save_for_inference(build_tiny_model(), processor, model_dir)
    _, text = card_parts(model_dir)
    (snippet,) = re.findall(r"```python\n(.*?)```", text, re.S)
    assert repr(str(model_dir)) in snippet
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, "-c", snippet], cwd=work, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(512, 1024)" in result.stdout
    assert (work / "anomaly_mask.png").is_file()
