"""benchmarks/gpu_check.sh runs green on the CPU at `tiny` dimensions (the same code a CUDA machine runs at the real
recipe's shapes), and a failed check makes it exit non-zero."""

import json
import os
import subprocess
import sys
from pathlib import Path


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import gpu_check  # noqa: E402


def test_gpu_check_script_passes_on_the_cpu_at_tiny_dims(tmp_path):
    env = dict(os.environ, PYTHON=sys.executable, OUT=str(tmp_path), OMP_NUM_THREADS="1")
    result = subprocess.run(
        ["bash", str(REPO / "benchmarks" / "gpu_check.sh"), "--device", "cpu", "--ddp", "on"],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-4000:]
    assert "checks passed" in output and "| FAIL |" not in output
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    statuses = {(section, check.split(" (")[0]): status for section, check, _, status in report["rows"]}
    for needed in [
        ("placement", "281 parameters and buffers on cpu"),
        ("training", "6 steps, every loss finite"),
        ("training", "autocast dtypes"),
        ("predict", "bf16 vs fp32 max abs diff"),
        ("predict", "bf16: text cache on the device, autocast dtype"),
        ("metrics", "bfloat16 scores on cpu: pixel + component"),
        ("script", "run_ood_segmentation.py, one process, bf16"),
        ("script", "run_ood_segmentation.py, 2-process DDP, bf16"),
    ]:
        assert statuses.get(needed) == "PASS", (needed, statuses)
    figures = report["figures"]
    assert figures["train_steps_per_s"] > 0 and figures["predict_bf16_images_per_s"] > 0
    assert 0 < figures["predict_bf16_vs_fp32_max_abs_diff"] < gpu_check.BOUNDS["bf16"]


def test_a_failed_check_makes_the_exit_status_non_zero(monkeypatch, capsys):
    # bf16 and fp32 never agree to the last bit: a zero bound must fail that row, and the run must report it
    monkeypatch.setitem(gpu_check.BOUNDS, "bf16", 0.0)
    status = gpu_check.main(["--device", "cpu", "--skip", "training", "triton", "metrics", "script", "--repeats", "1"])
    output = capsys.readouterr().out
    assert status == 1
    assert "| predict | bf16 vs fp32 max abs diff (anomaly score / semantic map) |" in output
    assert "1 of " in output and "checks failed" in output
