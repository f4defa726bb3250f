"""Pixel OOD metrics: the streaming engine (`tdos.evaluation`) vs scikit-learn on all pixels concatenated.

Compares, in one run and on the same synthetic data (frames of float32 scores, ~1 % OOD pixels, ~8 % void):
  * `PixelOODMetrics` (exact protocol), one frame at a time;
  * `PixelOODMetrics(protocol="smiyc")` (the official SMIYC binning), one frame at a time, for context;
  * the `evaluate` module `metrics/ood_segmentation` used the usual way (`add(prediction=..., reference=...)` per
    frame, then `compute()`), and, to separate what `import evaluate` costs (it loads torch and transformers), the
    engine run after `import evaluate`;
  * scikit-learn as RbA / Mask2Anomaly use it: every frame kept, non-void pixels concatenated, then
    `average_precision_score`, `roc_curve` + `auc`, FPR at the first TPR > 0.95 (scikit-learn is favoured here:
    boolean labels and float32 scores instead of the peers' int64 / float64 arrays).
Each side runs in its own subprocess so that its peak RSS (VmHWM, `rss.peak_rss_mb`) is its own.
Times cover the metric work only (frame generation is excluded; it is identical on every side).
`tdos.evaluation` needs only NumPy: importing it loads neither torch nor transformers (~0.7 GB RSS, which a training
or evaluation script has loaded anyway).
The machine is shared and noisy: read the ratios, not the absolute times.

Usage: python benchmarks/bench_metrics.py [--frames 100] [--height 1024] [--width 2048] [--sides engine,evaluate,...]
(ratios are against scikit-learn when it runs, else against the engine).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rss import peak_rss_mb

from tdos.evaluation import PixelOODMetrics


SIDES = ("engine", "engine-smiyc", "engine-after-import-evaluate", "evaluate", "sklearn")
MODULE_DIR = Path(__file__).resolve().parents[1] / "metrics" / "ood_segmentation"


def make_frame(index: int, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """Frame `index`: continuous float32 scores, labels with ~1 % OOD pixels (a few boxes) and a void band."""
    rng = np.random.default_rng(index)
    labels = np.zeros((height, width), np.uint8)
    labels[int(height * 0.92) :] = 255  # ego vehicle
    box_area = 0.01 * height * width / 3
    for _ in range(3):
        box_h = int(np.sqrt(box_area) * rng.uniform(0.6, 1.4))
        box_w = int(box_area / box_h)
        top, left = rng.integers(0, int(height * 0.92) - box_h), rng.integers(0, width - box_w)
        labels[top : top + box_h, left : left + box_w] = 1
    scores = rng.random((height, width), dtype=np.float32) ** 3  # skewed to low scores, as softmax outputs are
    scores[labels == 1] = rng.random(np.count_nonzero(labels == 1), dtype=np.float32) ** 0.5
    return scores, labels


class Clock:
    """Accumulates wall time and process CPU time over the `with` blocks it wraps."""

    def __init__(self):
        self.wall = self.cpu = 0.0

    def __enter__(self):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def __exit__(self, *exc):
        self.wall += time.perf_counter() - self._wall
        self.cpu += time.process_time() - self._cpu

    def times(self) -> dict[str, float]:
        return {"seconds": self.wall, "cpu_seconds": self.cpu}


def run_engine(frames: int, height: int, width: int, protocol: str) -> dict:
    metrics = PixelOODMetrics(protocol=protocol, fpr95_rule="strict")
    clock = Clock()
    for index in range(frames):
        scores, labels = make_frame(index, height, width)
        with clock:
            metrics.update(scores, labels)
    with clock:
        result = metrics.compute()
    return clock.times() | {"ap": result.average_precision, "auroc": result.auroc, "fpr95": result.fpr95}


def run_evaluate_module(frames: int, height: int, width: int) -> dict:
    import evaluate

    with tempfile.TemporaryDirectory() as cache_dir:
        metric = evaluate.load(str(MODULE_DIR), fpr95_rule="strict", cache_dir=cache_dir)
        clock = Clock()
        for index in range(frames):
            scores, labels = make_frame(index, height, width)
            with clock:
                metric.add(prediction=scores, reference=labels)
        with clock:
            values = metric.compute()
    return clock.times() | {"ap": values["average_precision"], "auroc": values["auroc"], "fpr95": values["fpr95"]}


def run_sklearn(frames: int, height: int, width: int) -> dict:
    from sklearn.metrics import auc, average_precision_score, roc_curve

    all_scores, all_labels = [], []
    clock = Clock()
    for index in range(frames):
        scores, labels = make_frame(index, height, width)
        with clock:
            keep = labels != 255
            all_scores.append(scores[keep])
            all_labels.append(labels[keep] == 1)
    with clock:
        scores, labels = np.concatenate(all_scores), np.concatenate(all_labels)
        del all_scores, all_labels
        ap = average_precision_score(labels, scores)
        fpr, tpr, _ = roc_curve(labels, scores)
        auroc = auc(fpr, tpr)
        fpr95 = fpr[np.flatnonzero(tpr > 0.95)[0]]
    values = {"ap": float(ap), "auroc": float(auroc), "fpr95": float(fpr95)}
    return clock.times() | values


def run_side(side: str, frames: int, height: int, width: int) -> dict:
    if side == "sklearn":
        values = run_sklearn(frames, height, width)
    elif side == "evaluate":
        values = run_evaluate_module(frames, height, width)
    else:
        if side == "engine-after-import-evaluate":
            import evaluate  # noqa: F401
        values = run_engine(frames, height, width, "smiyc" if side == "engine-smiyc" else "exact")
    values["peak_rss_gb"] = peak_rss_mb() / 1024
    return values


def measure(side: str, args: argparse.Namespace) -> dict:
    command = [sys.executable, __file__, "--side", side, "--frames", str(args.frames)]
    command += ["--height", str(args.height), "--width", str(args.width)]
    output = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    return json.loads(output.strip().splitlines()[-1])


def print_table(results: dict[str, dict], args: argparse.Namespace) -> None:
    name = "sklearn" if "sklearn" in results else "engine" if "engine" in results else next(iter(results))
    reference = results[name]
    print(f"{args.frames} frames of {args.width}x{args.height} ({args.frames * args.width * args.height:.2e} px)\n")
    print(f"| method | metric wall time (s) | metric CPU time (s) | peak RSS (GB) | speed-up vs {name} (wall / CPU) | "
          f"memory ratio vs {name} | AP - {name} AP | AUROC - {name} | FPR95 - {name} |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for side in results:
        values = results[side]
        print(
            f"| {side} | {values['seconds']:.2f} | {values['cpu_seconds']:.2f} | {values['peak_rss_gb']:.3f} | "
            f"{reference['seconds'] / values['seconds']:.1f}x / "
            f"{reference['cpu_seconds'] / values['cpu_seconds']:.1f}x | "
            f"{reference['peak_rss_gb'] / values['peak_rss_gb']:.1f}x | "
            f"{values['ap'] - reference['ap']:+.2e} | {values['auroc'] - reference['auroc']:+.2e} | "
            f"{values['fpr95'] - reference['fpr95']:+.2e} |"
        )
    print(f"\n{name}: AP {reference['ap']:.6f}, AUROC {reference['auroc']:.6f}, FPR95 {reference['fpr95']:.6f}")
    if "evaluate" in results:
        for base in ("engine", "engine-after-import-evaluate"):
            if base in results:
                ratio = results["evaluate"]["peak_rss_gb"] / results[base]["peak_rss_gb"]
                print(f"evaluate module peak RSS / {base} peak RSS: {ratio:.2f}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=100)
    parser.add_argument("--height", type=int, default=1024)
    parser.add_argument("--width", type=int, default=2048)
    parser.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated subset of {', '.join(SIDES)}")
    parser.add_argument("--side", choices=SIDES, help=argparse.SUPPRESS)  # internal: run one side, print JSON
    args = parser.parse_args(argv)
    if args.side:
        print(json.dumps(run_side(args.side, args.frames, args.height, args.width)))
        return
    sides = args.sides.split(",")
    unknown = sorted(set(sides) - set(SIDES))
    if unknown:
        parser.error(f"unknown sides {unknown}; expected a comma-separated subset of {', '.join(SIDES)}")
    print_table({side: measure(side, args) for side in sides}, args)


if __name__ == "__main__":
    main()
