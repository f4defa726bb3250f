"""Ablation of TDOS's parts on the built-in synthetic benchmark, with the demo recipe (`scripts/demo.sh`).

Every variant is the demo with one `TDOSConfig` override (`DEMO_CONFIG_OVERRIDES`), trained and evaluated by the
demo script itself, per seed (`DEMO_SEED`); then each full-TDOS model is evaluated again with every anomaly score
(`run_ood_segmentation.py --model_name_or_path RUN --config_overrides anomaly_score=...`), so the scores are
compared on the same trained weights. Prints two markdown tables (mean and range over the seeds, and every run) and
writes them, with every run's metrics, to `OUTPUT_DIR/ablation.json` and `OUTPUT_DIR/ablation.md`.

    python benchmarks/ablation_synthetic.py --seeds 0 1 2 --jobs 2      # ~8.5 min per run and core
    python benchmarks/ablation_synthetic.py --variants full no_ood_prompts --seeds 0 --steps 20 --eval-samples 3

Runs already in OUTPUT_DIR (their `eval_results.json` present) are reused, so an interrupted ablation resumes. The
CLIP towers are random (no weights offline): the text prompts carry no language, so "text-driven" effects cannot
show here; what the table measures is what each part adds to a model that learns everything from the scenes.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path


ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tdos.atomic_io import write_atomically  # noqa: E402
from tdos.configuration_tdos import ANOMALY_SCORES  # noqa: E402


VARIANTS = {
    "full": "",
    "no_ood_prompts": "num_ood_prompts=0",
    "no_context_decoder": "use_context_decoder=false",
    "no_ood_augmentation": "ood_augmentation=false",
    "no_identity_head": "identity_loss_weight=0",
}
BENCHMARK = "synthetic:anomaly"
METRICS = (("AUROC", "auroc"), ("AP", "average_precision"), ("FPR95", "fpr95"))


def run_logged(command: list[str], env: dict, log: Path) -> float:
    """Runs `command` with its output in `log`; returns the wall time, raises naming the log on failure."""
    start = time.perf_counter()
    with open(log, "w", encoding="utf-8") as handle:
        code = subprocess.call(command, env=env, stdout=handle, stderr=subprocess.STDOUT, cwd=ROOT)
    if code:
        raise RuntimeError(f"{' '.join(command)} exited with {code}; see {log}")
    return time.perf_counter() - start


def read_metrics(run: Path) -> dict:
    results = json.loads((run / "eval_results.json").read_text(encoding="utf-8"))[BENCHMARK]
    return {name: results[key] for name, key in METRICS}


def train_variant(args, variant: str, seed: int) -> dict:
    run = args.output_dir / f"{variant}-seed{seed}"
    if not (run / "eval_results.json").is_file():
        env = dict(os.environ, TDOS_SKIP_SETUP="1", DEMO_SEED=str(seed), DEMO_CONFIG_OVERRIDES=VARIANTS[variant],
                   DEMO_STEPS=str(args.steps), DEMO_EVAL_SAMPLES=str(args.eval_samples),
                   OMP_NUM_THREADS=str(args.threads), TDOS_VENV=args.venv)  # fmt: skip
        run.parent.mkdir(parents=True, exist_ok=True)
        wall = run_logged(["bash", "scripts/demo.sh", str(run)], env, Path(f"{run}.log"))
        write_atomically(run / "wall_seconds.json", lambda handle: handle.write(json.dumps(wall).encode()))
    record = {"variant": variant, "seed": seed, "score": "ood_probability", **read_metrics(run)}
    wall = run / "wall_seconds.json"
    record["wall_s"] = json.loads(wall.read_text()) if wall.is_file() else None
    print(f"{variant} seed {seed}: " + ", ".join(f"{name} {record[name]:.4f}" for name, _ in METRICS), flush=True)
    return record


def evaluate_score(args, seed: int, score: str) -> dict:
    run = args.output_dir / f"full-seed{seed}"
    folder = run / "scores" / score
    if not (folder / "eval_results.json").is_file():
        env = dict(os.environ, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", OMP_NUM_THREADS=str(args.threads))
        command = [
            str(Path(args.venv) / "bin" / "python"), "run_ood_segmentation.py", "--model_name_or_path", str(run),
            "--config_overrides", f"anomaly_score={score}", "--do_eval", "--eval_benchmarks", "synthetic",
            "--max_eval_samples", str(args.eval_samples), "--eval_scale", "512", "256", "--use_cpu",
            "--report_to", "none", "--num_overlays", "0", "--output_dir", str(folder),
        ]  # fmt: skip
        folder.mkdir(parents=True, exist_ok=True)
        run_logged(command, env, folder.with_suffix(".log"))
    return {"variant": "full", "seed": seed, "score": score, **read_metrics(folder)}


def summary_line(name: str, records: list[dict]) -> str:
    cells = []
    for metric, _ in METRICS:
        values = [record[metric] for record in records]
        if len(values) == 1:
            cells.append(f"{values[0]:.4f}")
        else:
            cells.append(f"{statistics.mean(values):.4f} ({min(values):.4f}–{max(values):.4f})")
    return f"| {name} | {len(records)} | " + " | ".join(cells) + " |"


def tables(records: list[dict], variants: list[str], scores: list[str]) -> str:
    header = "| {} | seeds | AUROC | AP | FPR95 |\n|---|---|---|---|---|"
    lines = ["Variants (anomaly score ood_probability): mean (min–max) over seeds", "", header.format("variant")]
    for variant in variants:
        runs = [r for r in records if r["variant"] == variant and r["score"] == "ood_probability"]
        lines.append(summary_line(variant, runs))
    if scores:
        lines += ["", "Anomaly scores on the same full-TDOS models", "", header.format("anomaly score")]
        for score in scores:
            lines.append(summary_line(score, [r for r in records if r["variant"] == "full" and r["score"] == score]))
    lines += ["", "| variant | seed | score | AUROC | AP | FPR95 |", "|---|---|---|---|---|---|"]
    for record in records:
        lines.append(f"| {record['variant']} | {record['seed']} | {record['score']} | "
                     + " | ".join(f"{record[name]:.4f}" for name, _ in METRICS) + " |")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output-dir", type=Path, default=ROOT / "outputs" / "ablation")
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--scores", nargs="*", default=list(ANOMALY_SCORES), choices=list(ANOMALY_SCORES),
                        help="anomaly scores compared on the full models (needs 'full' among the variants)")
    parser.add_argument("--steps", type=int, default=800, help="DEMO_STEPS of every run")
    parser.add_argument("--eval-samples", type=int, default=100, help="DEMO_EVAL_SAMPLES of every run")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (one compute thread each by default)")
    parser.add_argument("--threads", type=int, default=1, help="OMP_NUM_THREADS of every run")
    parser.add_argument("--venv", default=os.environ.get("TDOS_VENV", ".venv"))
    args = parser.parse_args(argv)
    if args.scores and "full" not in args.variants:
        parser.error("--scores compares anomaly scores on the full models: add 'full' to --variants or pass --scores")
    return args


def main(argv=None):
    args = parse_args(argv)
    args.output_dir = args.output_dir.resolve()
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        trained = list(pool.map(lambda job: train_variant(args, *job),
                                [(variant, seed) for variant in args.variants for seed in args.seeds]))  # fmt: skip
        rescored = [s for s in args.scores if s != "ood_probability"]
        extra = list(pool.map(lambda job: evaluate_score(args, *job), [(s, sc) for s in args.seeds for sc in rescored]))
    records = trained + extra
    text = tables(records, args.variants, args.scores)
    print(text)
    write_atomically(args.output_dir / "ablation.md", lambda handle: handle.write((text + "\n").encode()))
    payload = json.dumps(records, indent=1).encode()
    write_atomically(args.output_dir / "ablation.json", lambda handle: handle.write(payload))


if __name__ == "__main__":
    main()
