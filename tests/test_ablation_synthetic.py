"""benchmarks/ablation_synthetic.py: the variants run through scripts/demo.sh, the score comparison, the tables."""

import json
import subprocess
import sys
from pathlib import Path

import pytest


REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO), str(REPO / "benchmarks")]

import ablation_synthetic  # noqa: E402


def test_every_variant_is_one_valid_config_override():
    from run_ood_segmentation import parse_config_overrides

    from tdos import TDOSConfig

    assert ablation_synthetic.VARIANTS["full"] == ""
    for variant, override in ablation_synthetic.VARIANTS.items():
        if override:
            ((key, value),) = parse_config_overrides(override).items()
            config = TDOSConfig.from_preset("tiny", **{key: value})
            assert getattr(config, key) != getattr(TDOSConfig.from_preset("tiny"), key), variant


def test_tables_give_mean_and_range_over_seeds():
    records = [
        {"variant": "full", "seed": 0, "score": "ood_probability", "AUROC": 0.9, "AP": 0.5, "FPR95": 0.4},
        {"variant": "full", "seed": 1, "score": "ood_probability", "AUROC": 0.95, "AP": 0.7, "FPR95": 0.2},
        {"variant": "full", "seed": 0, "score": "rba", "AUROC": 0.8, "AP": 0.3, "FPR95": 0.6},
    ]
    text = ablation_synthetic.tables(records, ["full"], ["ood_probability", "rba"])
    assert "| full | 2 | 0.9250 (0.9000–0.9500) | 0.6000 (0.5000–0.7000) | 0.3000 (0.2000–0.4000) |" in text
    assert "| rba | 1 | 0.8000 | 0.3000 | 0.6000 |" in text


def test_scores_need_the_full_variant():
    with pytest.raises(SystemExit):
        ablation_synthetic.parse_args(["--variants", "no_ood_prompts"])


def test_a_short_ablation_runs_end_to_end_and_resumes(tmp_path):
    command = [
        sys.executable, str(REPO / "benchmarks" / "ablation_synthetic.py"), "--output-dir", str(tmp_path),
        "--variants", "full", "no_context_decoder", "--scores", "ood_probability", "max_softmax",
        "--steps", "2", "--eval-samples", "2", "--venv", sys.prefix,
    ]  # fmt: skip
    result = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    records = json.loads((tmp_path / "ablation.json").read_text())
    assert {(r["variant"], r["score"]) for r in records} == {
        ("full", "ood_probability"), ("no_context_decoder", "ood_probability"), ("full", "max_softmax")
    }
    assert "| no_context_decoder | 1 |" in (tmp_path / "ablation.md").read_text()
    config = json.loads((tmp_path / "no_context_decoder-seed0" / "config.json").read_text())
    assert config["use_context_decoder"] is False
    again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)  # all runs reused
    assert again.returncode == 0 and "| full | 0 | max_softmax |" in again.stdout
