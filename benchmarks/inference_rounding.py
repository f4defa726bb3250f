"""How far the fp32 semantic map of `predict` ("all" optimisations) is from the release's, and why: rounding, or the
masked attention's thresholds.

Mask2Former's masked attention binarises the previous prediction's mask logits (`sigmoid < 0.5`), so a (query, key)
position whose logit lies within rounding of 0 is masked in one fp32 run and not in another: the map then jumps. For
every sliding window of one image (`tdos-vit-b16` dimensions by default, random weights, CPU) this runs, in one
process:
  * float64 with the release's arithmetic (the rounding reference), recording its binarised attention masks;
  * release in fp32, at this process's thread count and at 1 thread (MKL sums in another order);
  * all in fp32 (`predict` as shipped);
  * release and all in fp32 again, with float64's attention masks imposed on every masked-attention layer.
It prints per window how many mask positions (query, key) differ from the float64 run's, layer by layer, and the max
abs differences of the window's semantic map; then the worst over all windows. The imposed-mask rows are the
difference due to rounding alone; the others add the thresholds' jumps.

Usage: python benchmarks/inference_rounding.py [--size 1024 2048] [--preset tdos-vit-b16] [--windows N]
"""

from __future__ import annotations

import argparse
import copy
import os
import time
from contextlib import contextmanager

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch  # noqa: E402
from bench_inference import OPTIMISATIONS, build_model, image_windows, set_optimisations  # noqa: E402

from tdos import TDOSForOODSegmentation  # noqa: E402
from tdos.sliding_window import semantic_map_at_input_size  # noqa: E402


IMPOSED_ON_BOTH = "all vs release, float64's masks imposed on both"
COMPARISONS = {
    "release 1 thread vs release": ("release, 1 thread", "release"),
    "release vs float64": ("release", "float64"),
    "all vs release": ("all", "release"),
    "all vs float64": ("all", "float64"),
    "release vs float64, float64's masks imposed": ("release, float64's masks", "float64"),
    IMPOSED_ON_BOTH: ("all, float64's masks", "release, float64's masks"),
    "all vs float64, float64's masks imposed": ("all, float64's masks", "float64"),
}


@contextmanager
def attention_masks(model: TDOSForOODSegmentation, imposed: list[torch.Tensor] | None = None):
    """Records the binarised attention masks `(batch·heads, queries, keys)` the masked-attention decoder's mask
    predictor makes, call by call, into the yielded list; with `imposed`, call `i` returns `imposed[i]` instead (the
    mask logits are left as computed)."""
    recorded = []

    def hook(module, inputs, output):
        recorded.append(output[1])
        if imposed is not None:
            return output[0], imposed[len(recorded) - 1]

    handle = model.transformer_decoder.decoder.mask_predictor.register_forward_hook(hook)
    try:
        yield recorded
    finally:
        handle.remove()


def window_map(model, window: torch.Tensor, optimisations=(), imposed=None, threads=None):
    """The window's semantic map (float64) under `optimisations` and the attention masks its decoder computed."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    set_optimisations(optimisations)
    try:
        with attention_masks(model, imposed) as recorded:
            semantic_map = semantic_map_at_input_size(model, window, model.compute_text_embeddings()).double()
    finally:
        torch.set_num_threads(previous)
        set_optimisations()
    return semantic_map, recorded


def differing_positions(masks: list[torch.Tensor], reference: list[torch.Tensor], heads: int) -> list[int]:
    """Per masked-attention layer, the (query, key) positions masked in one run and not in the other (the predictor
    repeats each mask over the heads: the first head's copy is counted)."""
    return [int((mask.unflatten(0, (-1, heads))[:, 0] != other.unflatten(0, (-1, heads))[:, 0]).sum())
            for mask, other in zip(masks, reference)]  # fmt: skip


@torch.no_grad()
def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, nargs=2, default=[1024, 2048], metavar=("HEIGHT", "WIDTH"))
    parser.add_argument("--preset", default="tdos-vit-b16")
    parser.add_argument("--windows", type=int, help="only the first N windows")
    args = parser.parse_args(argv)
    model = build_model(args.preset)
    model64 = copy.deepcopy(model).double()
    heads = model.transformer_decoder.decoder.mask_predictor.num_heads
    windows = image_windows(model, args.size)[: args.windows]
    layers = len(model.transformer_decoder.decoder.layers)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, preset {args.preset}, one "
        f"{args.size[1]}x{args.size[0]} image, {len(windows)} windows of {model.config.crop_size}; "
        f"{layers} masked-attention layers"
    )
    print("\n| window | mask positions differing from float64's, per layer: release / all "
          "| release vs float64 | all vs release | all vs release, float64's masks imposed | seconds |")  # fmt: skip
    print("|---" * 6 + "|")
    worst = dict.fromkeys(COMPARISONS, 0.0)
    flipped = {"release": 0, "all": 0}
    for index, window in enumerate(windows):
        start = time.perf_counter()
        maps, masks = {}, {}
        maps["float64"], masks["float64"] = window_map(model64, window.double())
        maps["release"], masks["release"] = window_map(model, window)
        maps["release, 1 thread"], _ = window_map(model, window, threads=1)
        maps["all"], masks["all"] = window_map(model, window, OPTIMISATIONS)
        maps["release, float64's masks"], _ = window_map(model, window, imposed=masks["float64"])
        maps["all, float64's masks"], _ = window_map(model, window, OPTIMISATIONS, imposed=masks["float64"])
        differences = {name: (maps[a] - maps[b]).abs().max().item() for name, (a, b) in COMPARISONS.items()}
        for name, value in differences.items():
            worst[name] = max(worst[name], value)
        counts = {run: differing_positions(masks[run][:layers], masks["float64"], heads) for run in flipped}
        for run, per_layer in counts.items():
            flipped[run] += sum(per_layer)
        shown = [differences[name] for name in ("release vs float64", "all vs release", IMPOSED_ON_BOTH)]
        print(f"| {index} | {counts['release']} / {counts['all']} | " + " | ".join(f"{value:.1e}" for value in shown)
              + f" | {time.perf_counter() - start:.0f} |", flush=True)  # fmt: skip
    print(f"\nmask positions differing from float64's over all windows and layers: release {flipped['release']}, "
          f"all {flipped['all']}")  # fmt: skip
    print("\n| worst over windows (window semantic maps) | max abs difference |\n|---|---|")
    for name, value in worst.items():
        print(f"| {name} | {value:.2e} |")


if __name__ == "__main__":
    main()
