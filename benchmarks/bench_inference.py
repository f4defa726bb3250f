"""Sliding-window inference of one 2048x1024 image at `tdos-vit-b16` dimensions (random weights) on the CPU: the
release-style baseline, each optimisation on its own, and all together, in one run.

Variants, each in a fresh subprocess (so its peak RSS is its own), timed once after a one-window warm-up:
  * release: every window recomputes the text branch (the original code's way), transformers' deformable-attention
    core (`grid_sample`), the pixel decoder's FFN as written (`fc2(relu(fc1(x)))`), decoder position maps rebuilt in
    every forward;
  * text once: the text branch computed once per `predict` call (this project's `predict` before issue 16);
  * text once + gathered core: + the deformable attention's CPU inference core
    (`gathered_deformable_attention_from_offsets` in `tdos/deformable_attention.py`: the four corners of every
    bilinear sample gathered and summed with their weights by one `embedding_bag`, in float32, at pixel coordinates
    computed in float32 from the reference points and offsets, instead of one `grid_sample` per level);
  * text once + lean FFN: + the pixel decoder's FFN with its ReLU in place and, at inference, on chunks of 1024
    tokens (`tdos/modeling_tdos_pixel_decoder.py`);
  * text once + folded lateral: + the pixel decoder's lateral 1x1 convolution folded into the ViT feature pyramid's
    last transposed convolution at inference (`fold_projection` in `tdos/modeling_tdos_vit.py`);
  * text once + pyramid as matmuls: + the ViT feature pyramid's 2x2 stride-2 transposed convolutions at inference as
    one matrix product each, channels-last out (`upsampling_convolution` in `tdos/modeling_tdos_vit.py`);
  * text once + last prediction only: + the last decoder prediction alone, not the 9 auxiliary ones, which `predict`
    does not read (`output_auxiliary_logits=False`): their OOD-slot merge and their full-resolution masks are not
    computed, each masked attention's mask comes from the mask features resized to its level
    (`TDOSMaskedAttentionDecoder.forward_last`);
  * text once + shared maps: + sine position maps and reference points computed once per shape and kept across
    windows (`tdos/modeling_tdos_position.py`);
  * all: every optimisation (`predict` as shipped now);
  * all but folded lateral: every optimisation except the one that sums the lateral convolution in another order
    (the closest to the release's own rounding);
  * all, N windows per pass: the same with `--window-batch-size` windows per forward pass;
  * all + torch.compile (with `--compile`): the pixel and transformer decoders compiled by inductor; the warm-up
    window includes the compilation, reported on its own.
Every variant's semantic map and anomaly score are compared with the release variant's of the same dtype (max abs
difference), and every variant's semantic map also with the model run in float64 ("text once", the release's
arithmetic: the rounding reference).
With `--profile`, the top-10 ops (self CPU time, one 512x512 window) of "text once" and of "all" are printed.
`--paired` instead runs every window under each of release / text once / each optimisation / all in turn in one
process (robust ratios on a loaded machine: a load change hits all of them alike).
FLOPs (torch.utils.flop_counter: one window forward and one text branch) are set against a measured matmul rate.

The machine is shared and noisy: read the ratios of one run, not the absolute times.

Usage: python benchmarks/bench_inference.py [--dtypes float32 bfloat16] [--compile] [--profile] [--window-batch-size 6]
                                           [--size 1024 2048] [--paired] [--variants all ...]
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
import torch.nn.functional as F  # noqa: E402
from bench_forward import count_flops, matmul_ceiling  # noqa: E402
from rss import peak_rss_mb  # noqa: E402
from transformers.models.mask2former import modeling_mask2former  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos import deformable_attention, modeling_tdos_pixel_decoder, modeling_tdos_position  # noqa: E402
from tdos import modeling_tdos_vit, sliding_window  # noqa: E402
from tdos.sliding_window import sliding_window_starts  # noqa: E402


OPTIMISATIONS = (
    "gathered core", "lean FFN", "folded lateral", "pyramid as matmuls", "last prediction only", "shared maps"
)  # fmt: skip


def variant_settings(text_once=True, optimisations=(), window_batch=1, compile_decoders=False) -> dict:
    return {"text_once": text_once, "optimisations": optimisations, "window_batch": window_batch,
            "compile": compile_decoders}  # fmt: skip


VARIANTS = {
    "release": variant_settings(text_once=False),
    "text once": variant_settings(),
    **{f"text once + {name}": variant_settings(optimisations=(name,)) for name in OPTIMISATIONS},
    "all": variant_settings(optimisations=OPTIMISATIONS),
    "all but folded lateral": variant_settings(optimisations=tuple(n for n in OPTIMISATIONS if n != "folded lateral")),
    "all, batched": variant_settings(optimisations=OPTIMISATIONS, window_batch=None),
    "all + torch.compile": variant_settings(optimisations=OPTIMISATIONS, compile_decoders=True),
}
PROFILED = ("text once", "all")
SHIPPED = {
    "core": deformable_attention.multi_scale_deformable_attention,
    "gather_usable": deformable_attention._gather_usable,
    "feed_forward": modeling_tdos_pixel_decoder.TDOSPixelDecoderEncoderLayer.feed_forward,
    "chunk": modeling_tdos_pixel_decoder.FEED_FORWARD_CHUNK_TOKENS,
    "pyramid": modeling_tdos_vit.TDOSSimpleFeaturePyramid.forward,
    "upsampling": modeling_tdos_vit.upsampling_convolution,
    "forward": TDOSForOODSegmentation.forward,
    "maps": modeling_tdos_position.MAX_CACHED_MAPS,
}


def release_feed_forward(layer, hidden_states: torch.Tensor) -> torch.Tensor:
    """The pixel decoder's FFN as the release writes it: a fresh ReLU output, all tokens at once."""
    return layer.fc2(torch.relu(layer.fc1(hidden_states)))


def release_pyramid(pyramid, feature_maps, finest_projection=None) -> list[torch.Tensor]:
    """The feature pyramid and the lateral convolution one after the other, as the release runs them."""
    maps = SHIPPED["pyramid"](pyramid, feature_maps)
    if finest_projection is not None:
        maps[0] = finest_projection(maps[0])
    return maps


def release_upsampling(features, weight, bias) -> torch.Tensor:
    """The pyramid's transposed convolutions as `nn.ConvTranspose2d` runs them."""
    return F.conv_transpose2d(features, weight, bias, stride=weight.shape[-2:])


def every_prediction_forward(model, *args, output_auxiliary_logits=True, **kwargs):
    """The forward merging the OOD slot of every decoder prediction, as the release does."""
    return SHIPPED["forward"](model, *args, output_auxiliary_logits=True, **kwargs)


def set_optimisations(enabled=OPTIMISATIONS) -> None:
    """Turns the in-model optimisations named in `enabled` on and the others off (the release's ways) in this
    process."""
    deformable_attention.multi_scale_deformable_attention = (
        SHIPPED["core"] if "gathered core" in enabled else modeling_mask2former.multi_scale_deformable_attention
    )
    deformable_attention._gather_usable = SHIPPED["gather_usable"] if "gathered core" in enabled else (lambda *_: False)
    layer_class = modeling_tdos_pixel_decoder.TDOSPixelDecoderEncoderLayer
    layer_class.feed_forward = SHIPPED["feed_forward"] if "lean FFN" in enabled else release_feed_forward
    modeling_tdos_pixel_decoder.FEED_FORWARD_CHUNK_TOKENS = SHIPPED["chunk"] if "lean FFN" in enabled else sys.maxsize
    pyramid_class = modeling_tdos_vit.TDOSSimpleFeaturePyramid
    pyramid_class.forward = SHIPPED["pyramid"] if "folded lateral" in enabled else release_pyramid
    modeling_tdos_vit.upsampling_convolution = (
        SHIPPED["upsampling"] if "pyramid as matmuls" in enabled else release_upsampling
    )
    TDOSForOODSegmentation.forward = (
        SHIPPED["forward"] if "last prediction only" in enabled else every_prediction_forward
    )
    modeling_tdos_position.MAX_CACHED_MAPS = SHIPPED["maps"] if "shared maps" in enabled else 0


def build_model(preset: str = "tdos-vit-b16") -> TDOSForOODSegmentation:
    torch.manual_seed(0)
    return TDOSForOODSegmentation(TDOSConfig.from_preset(preset)).eval()


def image_windows(model: TDOSForOODSegmentation, size: tuple[int, int]) -> list[torch.Tensor]:
    """The sliding windows (the model's crop and stride) of the benchmarks' random image of `size`, row by row."""
    pixel_values = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(0))
    crop, stride = model.config.crop_size, model.config.stride
    return [
        pixel_values[..., top : top + crop, left : left + crop]
        for top in sliding_window_starts(size[0], crop, stride)
        for left in sliding_window_starts(size[1], crop, stride)
    ]


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
    settings = VARIANTS[variant]
    if not settings["text_once"]:
        recompute_text_per_window()
    set_optimisations(settings["optimisations"])
    return settings["window_batch"], settings["compile"]


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
    if dtype == "float64":  # the rounding reference
        model, pixel_values = model.double(), pixel_values.double()
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


PAIRED = ("release", "text once", *(f"text once + {name}" for name in OPTIMISATIONS), "all", "all but folded lateral")


@torch.no_grad()
def run_paired(args, dtype: str) -> list[str]:
    """Every window of the image under each configuration of `PAIRED` in turn, in one process (the order rotating
    from window to window), so that a load change on the shared machine hits all configurations alike. Returns the
    table rows: total seconds, ratios of totals, the median of the per-window ratios to "text once", and the
    largest difference of a window's semantic map to the release configuration's."""
    model = build_model()
    windows = image_windows(model, args.size)
    paired = [name for name in PAIRED if not args.variants or name in ("release", "text once", *args.variants)]
    seconds = {name: [] for name in paired}
    differences = dict.fromkeys(paired, 0.0)
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        model.predict(windows[0])  # warm-up
        for index, window in enumerate(windows):
            maps = {}
            for name in paired[index % len(paired) :] + paired[: index % len(paired)]:
                set_optimisations(VARIANTS[name]["optimisations"])
                start = time.perf_counter()
                if not VARIANTS[name]["text_once"]:
                    model.reset_text_cache()
                maps[name] = sliding_window.semantic_map_at_input_size(model, window, model.compute_text_embeddings())
                seconds[name].append(time.perf_counter() - start)
            for name in paired:
                differences[name] = max(differences[name], (maps[name] - maps["release"]).abs().max().item())
    set_optimisations()
    rows = []
    for name in paired:
        ratios = sorted(a / b for a, b in zip(seconds["text once"], seconds[name]))
        rows.append(
            f"| {dtype} | {name} | {sum(seconds[name]):.1f} | {sum(seconds['release']) / sum(seconds[name]):.2f}x | "
            f"{sum(seconds['text once']) / sum(seconds[name]):.2f}x | {ratios[len(ratios) // 2]:.2f}x | "
            f"{differences[name]:.1e} |"
        )
    return rows


@torch.no_grad()
def run_components(dtype: str, repeats: int = 9) -> list[str]:
    """Each optimisation at its own level, the two ways interleaved `repeats` times in this process (median
    seconds): the deformable-attention core on one 512x512 window's pixel-decoder shapes (levels 16^2, 32^2, 64^2,
    8 heads of 32, 4 points), one pixel-decoder FFN on its 5376 tokens, the transformer decoder on one window's
    pixel-decoder outputs (every prediction or the last alone), the ViT feature pyramid on one window's taps (with the
    folded lateral convolution), and the position maps and reference points one window's decoders ask for."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(16, 16), (32, 32), (64, 64)]
    keys = sum(height * width for height, width in shapes)
    value = torch.randn(1, keys, 8, 32, generator=generator)
    locations = torch.rand(1, keys, 8, 3, 4, 2, generator=generator)
    weights = torch.rand(1, keys, 8, 3, 4, generator=generator).flatten(-2).softmax(-1).view(1, keys, 8, 3, 4)
    embedding = modeling_tdos_position.TDOSSinePositionEmbedding(num_position_features=128)
    model = build_model()
    layer = model.pixel_decoder.layers[0]
    tokens = torch.randn(1, keys, layer.fc1.in_features, generator=generator)
    window = torch.randn(1, 3, 512, 512, generator=generator)
    decoder, decoder_inputs = model.transformer_decoder, []
    decoder.register_forward_pre_hook(lambda module, inputs: decoder_inputs.append(inputs[:3]))
    pyramid, pyramid_inputs = model.feature_pyramid, []
    pyramid.register_forward_pre_hook(lambda module, inputs: pyramid_inputs.append(inputs))

    def window_maps():
        for _ in range(2):  # the pixel decoder's and the transformer decoder's
            for height, width in shapes:
                embedding(torch.Size([1, 256, height, width]), "cpu", torch.float32)
        modeling_tdos_position.reference_points(shapes, 1, "cpu", torch.float32)

    def feed_forward():
        chunk = modeling_tdos_pixel_decoder.FEED_FORWARD_CHUNK_TOKENS
        return torch.cat([layer.feed_forward(part) for part in tokens.split(chunk, 1)], 1)

    def toggle(optimisation: str):
        """Turns `optimisation` on or off, every other one on (as in "all")."""
        return lambda on: set_optimisations([name for name in OPTIMISATIONS if on or name != optimisation])

    pairs = {
        "deformable-attention core, one layer (transformers -> gathered)": (
            lambda: modeling_mask2former.multi_scale_deformable_attention(value, shapes, locations, weights),
            lambda: deformable_attention.gathered_deformable_attention(value, shapes, locations, weights),
            None,
        ),
        "pixel-decoder FFN, one layer (release -> lean)": (feed_forward, feed_forward, toggle("lean FFN")),
        "ViT feature pyramid, one window (transposed convolutions -> matrix products)": (
            lambda: pyramid(*pyramid_inputs[0]),
            lambda: pyramid(*pyramid_inputs[0]),
            toggle("pyramid as matmuls"),
        ),
        "transformer decoder, one window (every prediction -> the last alone)": (
            lambda: decoder(*decoder_inputs[0]),
            lambda: decoder(*decoder_inputs[0], every_prediction=False),
            None,
        ),
        "position maps + reference points, one window (rebuilt -> shared)": (
            window_maps,
            window_maps,
            toggle("shared maps"),
        ),
    }
    rows = []
    autocast = torch.autocast("cpu", dtype=torch.bfloat16, enabled=dtype == "bfloat16")
    with autocast:
        decoder_inputs.clear()
        pyramid_inputs.clear()
        model(window)  # the pyramid's and the transformer decoder's inputs, in this dtype
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
    set_optimisations()
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
        (outputs[name].double() - reference[name].double()).abs().max().item()
        for name in ("semantic_map", "anomaly_score")
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
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), metavar="VARIANT",
        help="only these variants, also with --paired (release and text once always run: the ratios refer to them)",
    )  # fmt: skip
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
    variants = [name for name in VARIANTS if args.compile or not VARIANTS[name]["compile"]]
    if args.variants:
        variants = [name for name in VARIANTS if name in ("release", "text once") or name in args.variants]
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
              "| peak RSS (GB) | max abs diff to release (semantic map / anomaly score) "
              "| max abs diff to float64 (semantic map) |")  # fmt: skip
    rows, tables = [header, "|---" * 11 + "|"], []
    with tempfile.TemporaryDirectory(prefix="bench_inference_") as folder:
        float64_path = Path(folder) / "float64.pt"
        float64_seconds = run_in_subprocess("text once", "float64", args, float64_path)["seconds"]
        print(f"float64 text once (the rounding reference): {float64_seconds:.1f} s", file=sys.stderr, flush=True)
        float64 = torch.load(float64_path)
        for dtype in args.dtypes:
            results, paths = {}, {}
            for variant in variants:
                paths[variant] = Path(folder) / f"{dtype}_{len(results)}.pt"
                results[variant] = run_in_subprocess(variant, dtype, args, paths[variant])
                print(f"{dtype} {variant}: {results[variant]['seconds']:.1f} s", file=sys.stderr, flush=True)
            reference = torch.load(paths["release"])
            for variant, result in results.items():
                text_passes = 1 if VARIANTS[variant]["text_once"] else windows
                flops = windows * window_flops + text_passes * text_flops
                rate = flops / result["seconds"]
                semantic, anomaly = max_differences(paths[variant], reference)
                to_float64 = max_differences(paths[variant], float64)[0]
                name = variant.replace("batched", f"{args.window_batch_size} windows per pass")
                if VARIANTS[variant]["compile"]:
                    name += f" (warm-up with compilation {result['warm_up_seconds']:.0f} s)"
                rows.append(
                    f"| {dtype} | {name} | {result['seconds']:.1f} | "
                    f"{results['release']['seconds'] / result['seconds']:.2f}x | "
                    f"{results['text once']['seconds'] / result['seconds']:.2f}x | {flops / 1e9:.0f} | {rate / 1e9:.1f} | "
                    f"{rate / ceilings[dtype]:.0%} | {result['peak_rss_gb']:.2f} | {semantic:.1e} / {anomaly:.1e} | "
                    f"{to_float64:.1e} |"
                )
                if "top_ops" in result:
                    tables.append(f"top-10 ops, {dtype}, {variant} (one 512x512 window):\n{result['top_ops']}")
    print("\n".join(rows))
    for table in tables:
        print()
        print(table)


if __name__ == "__main__":
    main()
