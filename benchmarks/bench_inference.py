"""Sliding-window inference of one 2048x1024 image at `tdos-vit-b16` dimensions (random weights) on the CPU.

Compares, in one run, for fp32 and bf16 autocast (each variant in a fresh subprocess, measured once after a
one-window warm-up, so its peak RSS is its own):
  * ours: `TDOSForOODSegmentation.predict` as shipped — 18 windows (crop 512, stride 341) one at a time, the text
    branch computed once per call;
  * ours, batched: the same with `--window-batch-size` windows per forward pass;
  * release: the windows one at a time with the text branch recomputed for every window (the original code's way).
Achieved FLOP/s (FLOPs from torch.utils.flop_counter: one window forward and one text branch) is set against the
measured matmul throughput of this machine (helpers shared with `bench_forward.py`).

The machine is shared and noisy: read the ratios, not the absolute times.

Usage: python benchmarks/bench_inference.py [--window-batch-size 6]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_forward import count_flops, matmul_ceiling  # noqa: E402
from rss import peak_rss_mb  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos import sliding_window  # noqa: E402
from tdos.sliding_window import sliding_window_starts  # noqa: E402


HEIGHT, WIDTH = 1024, 2048
VARIANTS = ("ours", "ours-batched", "release")
DTYPES = ("float32", "bfloat16")


def build_model() -> TDOSForOODSegmentation:
    torch.manual_seed(0)
    return TDOSForOODSegmentation(TDOSConfig.from_preset("tdos-vit-b16")).eval()


def recompute_text_per_window() -> None:
    """Makes every window batch run the text branch itself, ignoring the embeddings `predict` computed once (in this
    worker process only)."""
    run_windows = sliding_window.semantic_map_at_input_size

    def per_window(model, pixel_values, prompt_embeddings):
        model.reset_text_cache()
        return run_windows(model, pixel_values, model.compute_text_embeddings())

    sliding_window.semantic_map_at_input_size = per_window


def run_variant(variant: str, dtype: str, window_batch_size: int) -> dict:
    """Times one `predict` of the variant (in this process) and reports its peak RSS."""
    model = build_model()
    if variant == "release":
        recompute_text_per_window()
    # ours: predict's own default; release: one window at a time, as the original code
    options = {"ours-batched": {"window_batch_size": window_batch_size}, "release": {"window_batch_size": 1}}
    pixel_values = torch.randn(1, 3, HEIGHT, WIDTH)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        model.predict(pixel_values[..., :512, :512])  # warm-up: one window
        model.reset_text_cache()
        start = time.perf_counter()
        output = model.predict(pixel_values, **options.get(variant, {}))
        seconds = time.perf_counter() - start
    if not torch.isfinite(output.anomaly_score).all():
        raise FloatingPointError(f"{variant}/{dtype}: non-finite anomaly scores")
    return {"seconds": seconds, "peak_rss_gb": peak_rss_mb() / 1024}


def run_in_subprocess(variant: str, dtype: str, window_batch_size: int) -> dict:
    command = [sys.executable, __file__, "--worker", variant, dtype, "--window-batch-size", str(window_batch_size)]
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{variant}/{dtype} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


@torch.no_grad()
def window_and_text_flops() -> tuple[int, int]:
    model = build_model()
    text = model.compute_text_embeddings()
    window = count_flops(lambda: model(torch.randn(1, 3, 512, 512), prompt_embeddings=text))
    model.reset_text_cache()
    return window, count_flops(model.compute_text_embeddings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--window-batch-size", type=int, default=6)
    parser.add_argument("--worker", nargs=2, metavar=("VARIANT", "DTYPE"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(run_variant(*args.worker, args.window_batch_size)))
        return

    windows = len(sliding_window_starts(HEIGHT, 512, 341)) * len(sliding_window_starts(WIDTH, 512, 341))
    window_flops, text_flops = window_and_text_flops()
    flops = {
        "ours": windows * window_flops + text_flops,
        "ours-batched": windows * window_flops + text_flops,
        "release": windows * (window_flops + text_flops),
    }
    ceilings = {"float32": matmul_ceiling(torch.float32), "bfloat16": matmul_ceiling(torch.bfloat16)}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, one {WIDTH}x{HEIGHT} image, {windows} windows "
        f"of 512 (stride 341), batched: {args.window_batch_size} windows per batch; per window {window_flops / 1e9:.0f} "
        f"GFLOP, text branch {text_flops / 1e9:.0f} GFLOP"
    )
    for name, value in ceilings.items():
        print(f"matmul ceiling {name}: {value / 1e9:.1f} GFLOP/s (2048x2048 matmul)")
    print()
    print("| dtype | variant | time (s) | release / this | GFLOP | GFLOP/s | % of matmul ceiling | peak RSS (GB) |")
    print("|---" * 8 + "|")
    for dtype in DTYPES:
        results = {variant: run_in_subprocess(variant, dtype, args.window_batch_size) for variant in VARIANTS}
        for variant, result in results.items():
            rate = flops[variant] / result["seconds"]
            print(
                f"| {dtype} | {variant} | {result['seconds']:.1f} | "
                f"{results['release']['seconds'] / result['seconds']:.2f}x | {flops[variant] / 1e9:.0f} | "
                f"{rate / 1e9:.1f} | {rate / ceilings[dtype]:.0%} | {result['peak_rss_gb']:.2f} |"
            )


if __name__ == "__main__":
    main()
