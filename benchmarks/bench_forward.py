"""Forward-pass cost of TDOS at the paper's dimensions (random weights) on this machine, and a tiny training step.

Compares, in one run:
  * a forward pass whose text branch is cached (inference) vs recomputed (training-style), for fp32 and bf16
    autocast: time, FLOPs (torch.utils.flop_counter) and achieved FLOP/s next to a measured matmul ceiling;
  * the text branch's share of a full forward;
  * one training step of the `tiny` / `tiny-rn50` presets (time, peak RSS of a fresh process).

Both backbones by default: CLIP ViT-B/16 (`tdos-vit-b16`) and CLIP RN50 (`tdos-rn50`, timm trunk).

Usage: python benchmarks/bench_forward.py [--presets tdos-vit-b16 tdos-rn50] [--size 512] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from torch.utils.flop_counter import FlopCounterMode  # noqa: E402

from rss import peak_rss_mb  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402


def median_time(function, repeats: int) -> float:
    function()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def count_flops_by_module(function) -> tuple[int, dict[str, int]]:
    """Total FLOPs of one call and those of each direct child of the model (FlopCounterMode counts matmuls and
    convolutions; grid_sample, softmax and normalisations are not counted)."""
    with FlopCounterMode(display=False) as counter:
        function()
    counts = {}
    for name, per_op in counter.get_flop_counts().items():
        if name.count(".") == 1:  # "TDOSForOODSegmentation.<child>"
            counts[name.split(".")[1]] = sum(per_op.values())
    return counter.get_total_flops(), counts


def count_flops(function) -> int:
    return count_flops_by_module(function)[0]


def matmul_ceiling(dtype: torch.dtype, size: int = 2048, repeats: int = 5) -> float:
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    seconds = median_time(lambda: a @ b, repeats)
    return 2 * size**3 / seconds


def bench_preset(preset: str, size: int, repeats: int) -> list[dict]:
    torch.manual_seed(0)
    model = TDOSForOODSegmentation(TDOSConfig.from_preset(preset)).eval()
    pixel_values = torch.randn(1, 3, size, size)
    rows = []
    for dtype in (torch.float32, torch.bfloat16):
        autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype is torch.bfloat16)

        @torch.no_grad()
        def cached():
            with autocast:
                model(pixel_values)

        @torch.no_grad()
        def recomputed():
            model.reset_text_cache()
            with autocast:
                model(pixel_values)

        @torch.no_grad()
        def text_only():
            model.reset_text_cache()
            with autocast:
                model.compute_text_embeddings()

        cached_seconds = median_time(cached, repeats)
        recomputed_seconds = median_time(recomputed, repeats)
        text_seconds = median_time(text_only, repeats)
        model.reset_text_cache()
        recomputed_flops, module_flops = count_flops_by_module(recomputed)
        cached_flops = count_flops(cached)
        rows.append(
            {
                "preset": preset,
                "dtype": str(dtype).removeprefix("torch."),
                "cached_s": cached_seconds,
                "recomputed_s": recomputed_seconds,
                "text_s": text_seconds,
                "cached_gflop": cached_flops / 1e9,
                "recomputed_gflop": recomputed_flops / 1e9,
                "cached_gflops_per_s": cached_flops / cached_seconds / 1e9,
                "module_gflop": {name: flops / 1e9 for name, flops in module_flops.items()},
            }
        )
    return rows


def tiny_training_step(preset: str) -> dict:
    """12 training steps of a tiny preset in this process: median step time (steps 3..12) and peak RSS, also as it
    was before the model was built (imports only)."""
    from tdos.optimization import get_parameter_groups
    from tdos.random_clip import random_clip, random_clip_resnet

    import_rss_mb = peak_rss_mb()
    config = TDOSConfig.from_preset(preset)
    if config.backbone == "clip-rn50":
        clip, tokenizer = random_clip_resnet(config.clip_config, config.resnet_layers, config.resnet_width)
    else:
        clip, tokenizer = random_clip(config.clip_config)
    bands = [[f"word{i}x{j}" for j in range(4)] for i in range(50)]
    model = TDOSForOODSegmentation.from_clip(clip, tokenizer, ood_bands=bands, config=config).train()
    optimizer = torch.optim.AdamW(get_parameter_groups(model, 1e-4, 1e-5))
    generator = torch.Generator().manual_seed(0)
    pixel_values = torch.randn(2, 3, 64, 128, generator=generator)
    labels = torch.randint(0, 20, (2, 64, 128), generator=generator)
    times = []
    for _ in range(12):
        start = time.perf_counter()
        optimizer.zero_grad()
        model(pixel_values, labels=labels).loss.backward()
        optimizer.step()
        times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(times[2:]), "import_rss_mb": import_rss_mb, "peak_rss_mb": peak_rss_mb()}


def bench_tiny_training_step(preset: str) -> dict:
    """`tiny_training_step` in a fresh process, so that its peak RSS is its own."""
    command = [sys.executable, __file__, "--train-step", preset]
    result = subprocess.run(command, capture_output=True, text=True, check=True)
    return json.loads(result.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--presets", nargs="+", default=["tdos-vit-b16", "tdos-rn50"])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--train-step", metavar="PRESET", help=argparse.SUPPRESS)  # internal: one tiny training run
    args = parser.parse_args(argv)
    if args.train_step:
        print(json.dumps(tiny_training_step(args.train_step)))
        return

    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, input 1x3x{args.size}x{args.size}")
    ceilings = {"float32": matmul_ceiling(torch.float32), "bfloat16": matmul_ceiling(torch.bfloat16)}
    for name, value in ceilings.items():
        print(f"matmul ceiling {name}: {value / 1e9:.1f} GFLOP/s (2048x2048 matmul)")
    print()
    header = (
        "| preset | dtype | forward, text cached (s) | forward, text recomputed (s) | recomputed / cached | "
        "text branch share | GFLOP (cached / recomputed) | GFLOP/s | % of matmul ceiling |"
    )
    print(header)
    print("|---" * 9 + "|")
    module_gflop = {}
    for preset in args.presets:
        for row in bench_preset(preset, args.size, args.repeats):
            module_gflop[preset] = row["module_gflop"]  # the same for both dtypes
            share = row["text_s"] / row["recomputed_s"]
            ceiling = ceilings[row["dtype"]]
            print(
                f"| {row['preset']} | {row['dtype']} | {row['cached_s']:.2f} | {row['recomputed_s']:.2f} | "
                f"{row['recomputed_s'] / row['cached_s']:.2f}x | {share:.0%} | "
                f"{row['cached_gflop']:.0f} / {row['recomputed_gflop']:.0f} | {row['cached_gflops_per_s']:.1f} | "
                f"{row['cached_gflops_per_s'] * 1e9 / ceiling:.0%} |"
            )
    print()
    modules = sorted({name for counts in module_gflop.values() for name in counts})
    print("| module (text branch recomputed, fp32 FLOPs) | " + " | ".join(f"{p} GFLOP" for p in module_gflop) + " |")
    print("|---" * (len(module_gflop) + 1) + "|")
    for name in modules:
        print(f"| {name} | " + " | ".join(f"{counts.get(name, 0.0):.1f}" for counts in module_gflop.values()) + " |")
    print()
    print(
        "| tiny preset | training step, batch 2 x 64x128, forward + backward + AdamW (ms) | peak RSS of the process (MB) "
        "| of which after importing torch/transformers, before the model exists (MB) |"
    )
    print("|---|---|---|---|")
    for preset in ("tiny", "tiny-rn50"):
        step = bench_tiny_training_step(preset)
        print(f"| {preset} | {step['step_s'] * 1000:.0f} | {step['peak_rss_mb']:.0f} | {step['import_rss_mb']:.0f} |")


if __name__ == "__main__":
    main()
