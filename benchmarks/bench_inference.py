"""Sliding-window inference of one 2048x1024 image at `tdos-vit-b16` dimensions (random weights) on the CPU: the
release-style baseline, each optimisation on its own, and all together, in one run.

Variants, each in a fresh subprocess (so its peak RSS is its own), timed once after a one-window warm-up:
  * release: every window recomputes the text branch (the original code's way), transformers' deformable-attention
    core, decoder position maps rebuilt in every forward;
  * text once: the text branch computed once per `predict` call (this project's `predict` before issue 16);
  * text once + deformable core: + the pixel decoder's own sampling core (levels weighted as they are sampled,
    no stacked `(batch*heads, dim, queries, levels*points)` tensor; `tdos/deformable_attention.py`);
  * text once + shared maps: + sine position maps and reference points computed once per shape and kept across
    windows (`tdos/modeling_tdos_position.py`);
  * all: text once, deformable core and shared maps (`predict` as shipped now);
  * all, N windows per pass: the same with `--window-batch-size` windows per forward pass;
  * all + torch.compile (with `--compile`): the pixel and transformer decoders compiled by inductor; the warm-up
    window includes the compilation, reported on its own.
Every variant's semantic map and anomaly score are compared with the release variant's (max abs difference).
With `--profile`, the top-10 ops (self CPU time, one 512x512 window) of "text once" and of "all" are printed.
`--paired` instead runs every window under each of release / text once / + deformable core / + shared maps / all in
turn in one process (robust ratios on a loaded machine: a load change hits all of them alike).
FLOPs (torch.utils.flop_counter: one window forward and one text branch) are set against a measured matmul rate.

The machine is shared and noisy: read the ratios of one run, not the absolute times.

Usage: python benchmarks/bench_inference.py [--dtypes float32 bfloat16] [--compile] [--profile] [--window-batch-size 6]
                                           [--size 1024 2048] [--paired]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_forward import count_flops, matmul_ceiling  # noqa: E402
from rss import peak_rss_mb  # noqa: E402
from transformers.models.mask2former import modeling_mask2former  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos import deformable_attention, modeling_tdos_position, sliding_window  # noqa: E402
from tdos.sliding_window import sliding_window_starts  # noqa: E402


# variant -> (text once, own deformable core, shared maps, window batch, compile)
VARIANTS = {
    "release": (False, False, False, 1, False),
    "text once": (True, False, False, 1, False),
    "text once + deformable core": (True, True, False, 1, False),
    "text once + shared maps": (True, False, True, 1, False),
    "all": (True, True, True, 1, False),
    "all, batched": (True, True, True, None, False),
    "all + torch.compile": (True, True, True, 1, True),
}
PROFILED = ("text once", "all")


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


def configure(variant: str) -> tuple[int | None, bool]:
    """Turns this worker's optimisations on or off; returns the window batch and whether to compile."""
    text_once, own_core, shared_maps, window_batch, compile_decoders = VARIANTS[variant]
    if not text_once:
        recompute_text_per_window()
    if not own_core:
        deformable_attention.multi_scale_deformable_attention = modeling_mask2former.multi_scale_deformable_attention
    if not shared_maps:
        modeling_tdos_position.MAX_CACHED_MAPS = 0
    return window_batch, compile_decoders


def top_ops(model: TDOSForOODSegmentation, window: torch.Tensor, autocast) -> str:
    """The profiler's 10 ops of largest self CPU time in one window's `predict`."""
    from torch.profiler import ProfilerActivity, profile

    with autocast, profile(activities=[ProfilerActivity.CPU]) as profiler:
        model.predict(window)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=10, max_name_column_width=48)


def run_variant(variant: str, dtype: str, args: argparse.Namespace, output_path: str) -> dict:
    """Times one `predict` of the variant (in this process), saves its outputs and reports its peak RSS."""
    window_batch, compile_decoders = configure(variant)
    model = build_model()
    if compile_decoders:
        model.pixel_decoder.compile()
        model.transformer_decoder.compile()
    pixel_values = torch.randn(1, 3, *args.size, generator=torch.Generator().manual_seed(0))
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        start = time.perf_counter()
        model.predict(pixel_values[..., :512, :512])  # warm-up: one window (and the compilation)
        warm_up = time.perf_counter() - start
        model.reset_text_cache()
        start = time.perf_counter()
        output = model.predict(pixel_values, window_batch_size=window_batch or args.window_batch_size)
        seconds = time.perf_counter() - start
    if not torch.isfinite(output.anomaly_score).all():
        raise FloatingPointError(f"{variant}/{dtype}: non-finite anomaly scores")
    torch.save({"semantic_map": output.semantic_map, "anomaly_score": output.anomaly_score}, output_path)
    result = {"seconds": seconds, "warm_up_seconds": warm_up, "peak_rss_gb": peak_rss_mb() / 1024}
    if args.profile and variant in PROFILED:
        result["top_ops"] = top_ops(model, pixel_values[..., :512, :512], autocast)
    return result


PAIRED = ("release", "text once", "text once + deformable core", "text once + shared maps", "all")


@torch.no_grad()
def run_paired(args, dtype: str) -> list[str]:
    """Every window of the image under each configuration of `PAIRED` in turn, in one process (the order rotating
    from window to window), so that a load change on the shared machine hits all configurations alike. Returns the
    table rows: total seconds, ratios of totals, the median of the per-window ratios to "text once", and the
    largest difference of a window's semantic map to the release configuration's."""
    original_core = deformable_attention.multi_scale_deformable_attention
    model = build_model()
    pixel_values = torch.randn(1, 3, *args.size, generator=torch.Generator().manual_seed(0))
    crop, stride = model.config.crop_size, model.config.stride
    windows = [
        pixel_values[..., top : top + crop, left : left + crop]
        for top in sliding_window_starts(args.size[0], crop, stride)
        for left in sliding_window_starts(args.size[1], crop, stride)
    ]
    seconds = {name: [] for name in PAIRED}
    differences = dict.fromkeys(PAIRED, 0.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        model.predict(windows[0])  # warm-up
        for index, window in enumerate(windows):
            maps = {}
            for name in PAIRED[index % len(PAIRED) :] + PAIRED[: index % len(PAIRED)]:
                text_once, own_core, shared_maps = VARIANTS[name][:3]
                deformable_attention.multi_scale_deformable_attention = (
                    original_core if own_core else modeling_mask2former.multi_scale_deformable_attention
                )
                modeling_tdos_position.MAX_CACHED_MAPS = 8 if shared_maps else 0
                start = time.perf_counter()
                if not text_once:
                    model.reset_text_cache()
                maps[name] = sliding_window.semantic_map_at_input_size(model, window, model.compute_text_embeddings())
                seconds[name].append(time.perf_counter() - start)
            for name in PAIRED:
                differences[name] = max(differences[name], (maps[name] - maps["release"]).abs().max().item())
    deformable_attention.multi_scale_deformable_attention = original_core
    modeling_tdos_position.MAX_CACHED_MAPS = 8
    rows = []
    for name in PAIRED:
        paired = sorted(a / b for a, b in zip(seconds["text once"], seconds[name]))
        rows.append(
            f"| {dtype} | {name} | {sum(seconds[name]):.1f} | {sum(seconds['release']) / sum(seconds[name]):.2f}x | "
            f"{sum(seconds['text once']) / sum(seconds[name]):.2f}x | {paired[len(paired) // 2]:.2f}x | "
            f"{differences[name]:.1e} |"
        )
    return rows


@torch.no_grad()
def run_components(dtype: str, repeats: int = 9) -> list[str]:
    """Each optimisation at its own level, the two ways interleaved `repeats` times in this process (median
    seconds): the deformable-attention core on one 512x512 window's pixel-decoder shapes (levels 16^2, 32^2, 64^2,
    8 heads of 32, 4 points), and the position maps and reference points one window's decoders ask for."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(16, 16), (32, 32), (64, 64)]
    keys = sum(height * width for height, width in shapes)
    value = torch.randn(1, keys, 8, 32, generator=generator)
    locations = torch.rand(1, keys, 8, 3, 4, 2, generator=generator)
    weights = torch.rand(1, keys, 8, 3, 4, generator=generator).flatten(-2).softmax(-1).view(1, keys, 8, 3, 4)
    embedding = modeling_tdos_position.TDOSSinePositionEmbedding(num_position_features=128)

    def window_maps():
        for _ in range(2):  # the pixel decoder's and the transformer decoder's
            for height, width in shapes:
                embedding(torch.Size([1, 256, height, width]), "cpu", torch.float32)
        modeling_tdos_position.reference_points(shapes, 1, "cpu", torch.float32)

    def set_sharing(on: bool):
        modeling_tdos_position.MAX_CACHED_MAPS = 8 if on else 0

    pairs = {
        "deformable-attention core, one layer (transformers -> ours)": (
            lambda: modeling_mask2former.multi_scale_deformable_attention(value, shapes, locations, weights),
            lambda: deformable_attention.multi_scale_deformable_attention(value, shapes, locations, weights),
            None,
        ),
        "position maps + reference points, one window (rebuilt -> shared)": (window_maps, window_maps, set_sharing),
    }
    rows = []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        for name, (before, after, switch) in pairs.items():
            times = ([], [])
            for _ in range(repeats):
                for index, function in enumerate((before, after)):
                    if switch is not None:
                        switch(index == 1)
                    start = time.perf_counter()
                    function()
                    times[index].append(time.perf_counter() - start)
            old, new = (sorted(t)[len(t) // 2] for t in times)
            rows.append(f"| {dtype} | {name} | {old * 1e3:.1f} | {new * 1e3:.1f} | {old / new:.2f}x |")
    set_sharing(True)
    return rows


def run_in_subprocess(variant: str, dtype: str, args, output_path: Path) -> dict:
    command = [sys.executable, __file__, "--worker", variant, dtype, str(output_path), "--size", *map(str, args.size),
               "--window-batch-size", str(args.window_batch_size)] + (["--profile"] if args.profile else [])  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        raise RuntimeError(f"{variant}/{dtype} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def max_differences(path: Path, reference: dict) -> tuple[float, float]:
    outputs = torch.load(path)
    return tuple(
        (outputs[name].float() - reference[name].float()).abs().max().item() for name in ("semantic_map", "anomaly_score")
    )


@torch.no_grad()
def window_and_text_flops() -> tuple[int, int]:
    model = build_model()
    text = model.compute_text_embeddings()
    window = count_flops(lambda: model(torch.randn(1, 3, 512, 512), prompt_embeddings=text))
    model.reset_text_cache()
    return window, count_flops(model.compute_text_embeddings)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--window-batch-size", type=int, default=6)
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"], choices=("float32", "bfloat16"))
    parser.add_argument("--compile", action="store_true", help="also time the torch.compile variant")
    parser.add_argument("--profile", action="store_true", help="print the top-10 op tables")
    parser.add_argument("--paired", action="store_true", help="only the paired per-window comparison, in this process")
    parser.add_argument("--worker", nargs=3, metavar=("VARIANT", "DTYPE", "OUTPUT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        variant, dtype, output_path = args.worker
        print(json.dumps(run_variant(variant, dtype, args, output_path)))
        return

    if args.paired:
        print(f"paired per-window comparison, one {args.size[1]}x{args.size[0]} image, windows of 512 (stride 341)")
        print("| dtype | configuration | windows total (s) | release / this | text once / this "
              "| median per-window text once / this | max abs diff to release (semantic map) |")  # fmt: skip
        print("|---" * 7 + "|")
        for dtype in args.dtypes:
            print("\n".join(run_paired(args, dtype)), flush=True)
        print("\n| dtype | optimisation, at its own level | before (ms) | after (ms) | before / after |")
        print("|---" * 5 + "|")
        for dtype in args.dtypes:
            print("\n".join(run_components(dtype)), flush=True)
        return
    variants = [name for name in VARIANTS if args.compile or not VARIANTS[name][4]]
    height, width = args.size
    windows = len(sliding_window_starts(height, 512, 341)) * len(sliding_window_starts(width, 512, 341))
    window_flops, text_flops = window_and_text_flops()
    ceilings = {dtype: matmul_ceiling(getattr(torch, dtype)) for dtype in args.dtypes}
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, one {width}x{height} image, {windows} windows "
        f"of 512 (stride 341), batched: {args.window_batch_size} windows per pass; per window {window_flops / 1e9:.0f} "
        f"GFLOP, text branch {text_flops / 1e9:.0f} GFLOP"
    )
    for name, value in ceilings.items():
        print(f"matmul ceiling {name}: {value / 1e9:.1f} GFLOP/s (2048x2048 matmul)")
    print()
    header = ("| dtype | variant | time (s) | release / this | vs text once | GFLOP | GFLOP/s | % of matmul ceiling "
              "| peak RSS (GB) | max abs diff to release (semantic map / anomaly score) |")  # fmt: skip
    rows, tables = [header, "|---" * 10 + "|"], []
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as folder:
        for dtype in args.dtypes:
            results, paths = {}, {}
            for variant in variants:
                paths[variant] = Path(folder) / f"{dtype}_{len(results)}.pt"
                results[variant] = run_in_subprocess(variant, dtype, args, paths[variant])
                print(f"{dtype} {variant}: {results[variant]['seconds']:.1f} s", file=sys.stderr, flush=True)
            reference = torch.load(paths["release"])
            for variant, result in results.items():
                flops = windows * window_flops + (text_flops if VARIANTS[variant][0] else windows * text_flops)
                rate = flops / result["seconds"]
                semantic, anomaly = max_differences(paths[variant], reference)
                name = variant.replace("batched", f"{args.window_batch_size} windows per pass")
                if VARIANTS[variant][4]:
                    name += f" (warm-up with compilation {result['warm_up_seconds']:.0f} s)"
                rows.append(
                    f"| {dtype} | {name} | {result['seconds']:.1f} | "
                    f"{results['release']['seconds'] / result['seconds']:.2f}x | "
                    f"{results['text once']['seconds'] / result['seconds']:.2f}x | {flops / 1e9:.0f} | {rate / 1e9:.1f} | "
                    f"{rate / ceilings[dtype]:.0%} | {result['peak_rss_gb']:.2f} | {semantic:.1e} / {anomaly:.1e} |"
                )
                if "top_ops" in result:
                    tables.append(f"top-10 ops, {dtype}, {variant} (one 512x512 window):\n{result['top_ops']}")
    print("\n".join(rows))
    for table in tables:
        print()
        print(table)


if __name__ == "__main__":
    main()
