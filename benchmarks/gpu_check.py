"""The prepared GPU check (run through `benchmarks/gpu_check.sh`): the real recipe's shapes on a CUDA device, and the
same code at `tiny` dimensions on the CPU, where the test suite runs it so that it is known to work before a GPU
is ever lent.

What it checks, each as one row of the table it prints (exit status 1 when any row fails):
  * set-up: device, TF32 switches, bf16 support;
  * device placement: every parameter and buffer (text anchors, prompt token ids) on the device after `.to()`;
  * training: `--steps` AdamW steps (the model's parameter groups, fused AdamW on CUDA) of random CLIP towers at
    `--crop`^2 crops, batch `--batch-size`, bf16 autocast; batches come from pinned host memory with non-blocking
    copies; every loss finite, trainable weights moved and frozen ones did not; steps/s and peak device memory;
    autocast dtypes seen inside the model (bf16 matmul outputs, float32 loss);
  * `predict` on one `--width`x`--height` image (sliding windows) in fp32 (TF32 off), fp32 with TF32 and bf16, each
    with the fastest window batch of `--window-batch-sizes`: images/s, max abs difference to fp32, the same result
    for every window batch, the text cache on the device in the autocast dtype, and (CUDA) one window against the
    CPU's fp32 result;
  * deformable attention: the Triton kernel against `grid_sample` (forward and gradients) and its speed (CUDA with
    Triton only);
  * the metric engine on device tensors (float32 and bfloat16 scores) against the same frames as NumPy arrays;
  * the training script itself (`run_ood_segmentation.py`, a few steps; needs the `datasets` package) and its
    2-process DDP path when two GPUs are present (or with `--ddp on`: gloo on the CPU).

Usage: python benchmarks/gpu_check.py [--device auto|cuda|cpu] [--json OUT.json]   (defaults depend on the device)
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from rss import peak_rss_mb  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos.atomic_io import write_atomically  # noqa: E402
from tdos.evaluation import ComponentOODMetrics, PixelOODMetrics  # noqa: E402
from tdos.optimization import get_parameter_groups  # noqa: E402
from tdos.random_clip import random_clip  # noqa: E402


REPO = Path(__file__).resolve().parents[1]
# Defaults per device: the real recipe's shapes on CUDA, the same code at tiny dims on the CPU (under a minute).
PROFILES = {
    "cuda": {"preset": "tdos-vit-b16", "steps": 50, "batch_size": 8, "crop": 512, "height": 1024, "width": 2048,
             "window_batch_sizes": [1, 6, 18], "repeats": 3, "script_steps": 5},
    "cpu": {"preset": "tiny", "steps": 6, "batch_size": 2, "crop": 64, "height": 128, "width": 256,
            "window_batch_sizes": [1, 5], "repeats": 1, "script_steps": 2},
}  # fmt: skip
# Sanity bounds (random weights, so only gross errors are caught; the measured differences are the figures to read).
BOUNDS = {"tf32": 1e-2, "bf16": 5e-2, "window_batch": 1e-4, "window_batch_bf16": 5e-2, "cpu_vs_device": 1e-3}


@dataclass
class Report:
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)
    figures: dict = field(default_factory=dict)

    def add(self, section: str, check: str, value: str, ok: bool):
        self._row(section, check, value, "PASS" if ok else "FAIL")

    def info(self, section: str, what: str, value: str):
        """A measured figure, not a pass/fail decision."""
        self._row(section, what, value, "info")

    def skip(self, section: str, check: str, why: str):
        self._row(section, check, why, "SKIP")

    def _row(self, section: str, check: str, value: str, status: str):
        self.rows.append((section, check, value, status))
        print(f"[{status}] {section}: {check}: {value}", flush=True)

    def failed(self) -> list[tuple[str, str, str, str]]:
        return [row for row in self.rows if row[3] == "FAIL"]

    def table(self) -> str:
        lines = ["| section | check | result | status |", "|---|---|---|---|"]
        lines += [f"| {section} | {check} | {value} | {status} |" for section, check, value, status in self.rows]
        return "\n".join(lines)


def synchronize(device: torch.device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def set_tf32(enabled: bool):
    torch.backends.cuda.matmul.allow_tf32 = enabled
    torch.backends.cudnn.allow_tf32 = enabled


def build_model(preset: str, **overrides) -> TDOSForOODSegmentation:
    """The preset around a random CLIP through the real `from_clip` path, with one placeholder word per OOD band
    (the anchors' values do not matter here; the shipped 2,000-word list would cost minutes of text tower on a CPU)."""
    config = TDOSConfig.from_preset(preset, **overrides)
    clip, tokenizer = random_clip(config.clip_config, seed=0)
    bands = [[f"object {index}"] for index in range(max(config.num_ood_prompts, 1))]
    torch.manual_seed(0)
    return TDOSForOODSegmentation.from_clip(clip, tokenizer, ood_bands=bands, config=config)


def pinned(tensor: torch.Tensor, device: torch.device) -> torch.Tensor:
    return tensor.pin_memory() if device.type == "cuda" else tensor


def training_batches(count: int, batch_size: int, crop: int, device: torch.device) -> list[tuple[torch.Tensor, ...]]:
    """Random images and trainId labels with an OOD object (label 19) and an ignored band, in host memory (pinned
    on CUDA, so that the copies to the device are asynchronous)."""
    generator = torch.Generator().manual_seed(0)
    batches = []
    for _ in range(count):
        images = torch.randn(batch_size, 3, crop, crop, generator=generator)
        labels = torch.randint(0, 19, (batch_size, crop, crop), generator=generator)
        labels[:, crop // 4 : crop // 2, crop // 4 : crop // 2] = 19
        labels[:, : crop // 16] = 255
        batches.append((pinned(images, device), pinned(labels, device)))
    return batches


def check_placement(report: Report, model: TDOSForOODSegmentation, device: torch.device):
    tensors = dict(model.named_parameters()) | dict(model.named_buffers())
    elsewhere = [name for name, tensor in tensors.items() if tensor.device != device]
    report.add(
        "placement", f"{len(tensors)} parameters and buffers on {device}", f"{len(elsewhere)} elsewhere {elsewhere[:3]}",
        not elsewhere,
    )  # fmt: skip


def autocast_dtypes(model: TDOSForOODSegmentation, run) -> dict[str, torch.dtype]:
    """Output dtypes of a few modules (image tower MLP, deformable attention, class head) during `run()`."""
    modules = {
        "image tower fc1": model.image_encoder.vision_model.encoder.layers[0].mlp.fc1,
        "deformable attention": model.pixel_decoder.layers[0].self_attn,
        "class predictor": model.transformer_decoder.class_predictor,
    }
    seen = {}

    def hook(name):
        def record(module, inputs, output):
            seen[name] = (output[0] if isinstance(output, tuple) else output).dtype

        return record

    handles = [module.register_forward_hook(hook(name)) for name, module in modules.items()]
    try:
        run()
    finally:
        for handle in handles:
            handle.remove()
    return seen


def check_training(report: Report, args, device: torch.device):
    model = build_model(args.preset).to(device).train()
    check_placement(report, model, device)
    optimizer = torch.optim.AdamW(
        get_parameter_groups(model, 1e-4, 1e-5), lr=1e-4, **({"fused": True} if device.type == "cuda" else {})
    )
    batches = training_batches(4, args.batch_size, args.crop, device)
    if device.type == "cuda":
        is_pinned = all(tensor.is_pinned() for batch in batches for tensor in batch)
        report.add("training", "host batches in pinned memory", str(is_pinned), is_pinned)
    trainable = model.pixel_decoder.mask_projection.weight
    frozen = next(model.text_encoder.parameters())
    before = trainable.detach().clone(), frozen.detach().clone()
    losses, seen = [], {}

    def step(index: int):
        images, labels = (t.to(device, non_blocking=True) for t in batches[index % len(batches)])
        with torch.autocast(device.type, dtype=torch.bfloat16):
            loss = model(images, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())
        seen["loss"] = loss.dtype

    warm_up = min(3, args.steps - 1)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    try:
        seen.update(autocast_dtypes(model, lambda: step(0)))
        for index in range(1, warm_up):
            step(index)
        synchronize(device)
        start = time.perf_counter()
        for index in range(warm_up, args.steps):
            step(index)
        synchronize(device)
        seconds = time.perf_counter() - start
    except FloatingPointError as error:  # raised by forward on a non-finite loss
        report.add("training", f"{args.steps} steps, every loss finite", str(error), False)
        return
    values = torch.stack(losses).float().cpu()
    report.add("training", f"{args.steps} steps, every loss finite",
               f"first {values[0]:.3f}, last {values[-1]:.3f}", bool(torch.isfinite(values).all()))  # fmt: skip
    steps_per_second = (args.steps - warm_up) / seconds
    images_per_second = steps_per_second * args.batch_size
    report.info("training", f"steps/s ({args.preset}, batch {args.batch_size}, {args.crop}^2, bf16)",
                f"{steps_per_second:.2f} steps/s = {images_per_second:.1f} images/s")  # fmt: skip
    report.figures["train_steps_per_s"] = steps_per_second
    memory = peak_memory_gb(device)
    report.info("training", "peak memory", f"{memory:.2f} GB ({'device' if device.type == 'cuda' else 'RSS'})")
    report.figures["train_peak_memory_gb"] = memory
    report.add("training", "trainable weights moved, frozen unchanged",
               f"mask_projection max change {(trainable.detach() - before[0]).abs().max():.2e}, text tower "
               f"{(frozen.detach() - before[1]).abs().max():.1e}",
               bool((trainable.detach() != before[0]).any() and torch.equal(frozen.detach(), before[1])))  # fmt: skip
    expected = {"image tower fc1": torch.bfloat16, "deformable attention": torch.bfloat16,
                "class predictor": torch.bfloat16, "loss": torch.float32}  # fmt: skip
    text = ", ".join(f"{name} {str(seen.get(name)).removeprefix('torch.')}" for name in expected)
    report.add("training", "autocast dtypes", text, all(seen.get(name) == dtype for name, dtype in expected.items()))


def peak_memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    return peak_rss_mb() / 1024


def timed_predict(model, pixel_values, device, window_batch_size: int, autocast: bool, repeats: int):
    """Median seconds of `repeats` predicts (after one warm-up) and the last output, copied to the host."""
    times = []
    for index in range(repeats + 1):
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            output = model.predict(pixel_values, inference_mode="slide", window_batch_size=window_batch_size)
        synchronize(device)
        if index:
            times.append(time.perf_counter() - start)
    return statistics.median(times), output.semantic_map.float().cpu(), output.anomaly_score.float().cpu()


def check_predict(report: Report, args, device: torch.device, model: TDOSForOODSegmentation):
    host = torch.randn(1, 3, args.height, args.width, generator=torch.Generator().manual_seed(1))
    pixel_values = pinned(host, device).to(device, non_blocking=True)
    results = {}
    for mode in ("fp32", "tf32", "bf16"):
        set_tf32(mode == "tf32")
        timings, outputs = {}, {}
        for window_batch_size in args.window_batch_sizes:
            seconds, semantic, anomaly = timed_predict(
                model, pixel_values, device, window_batch_size, mode == "bf16", args.repeats
            )
            timings[window_batch_size], outputs[window_batch_size] = seconds, (semantic, anomaly)
        best = min(timings, key=timings.get)
        results[mode] = outputs[best]
        sweep = ", ".join(f"{size}: {1 / seconds:.2f}" for size, seconds in timings.items())
        report.info("predict", f"{mode} images/s ({args.width}x{args.height}; per window batch)",
                    f"{1 / timings[best]:.2f} at window batch {best} ({sweep})")  # fmt: skip
        report.figures[f"predict_{mode}_images_per_s"] = 1 / timings[best]
        report.figures[f"predict_{mode}_window_batch"] = best
        # relative to the map's largest value: bf16 keeps 8 bits of mantissa, whatever the scale of the logits
        scale = max(outputs[best][0].abs().max().item(), 1.0)
        spread = max((outputs[size][0] - outputs[best][0]).abs().max().item() for size in outputs) / scale
        report.add("predict", f"{mode}: same map for every window batch", f"max diff / max |map| {spread:.2e}",
                   spread <= BOUNDS["window_batch_bf16" if mode == "bf16" else "window_batch"])  # fmt: skip
        cache = model._text_cache[1]
        expected_dtype = torch.bfloat16 if mode == "bf16" else torch.float32
        report.add("predict", f"{mode}: text cache on the device, autocast dtype",
                   f"{cache.device}, {str(cache.dtype).removeprefix('torch.')}",
                   cache.device == device and cache.dtype == expected_dtype)  # fmt: skip
    set_tf32(False)
    finite = all(torch.isfinite(tensor).all() for pair in results.values() for tensor in pair)
    report.add("predict", "outputs finite (fp32, tf32, bf16)", str(bool(finite)), bool(finite))
    for mode in ("tf32", "bf16"):
        anomaly = (results[mode][1] - results["fp32"][1]).abs().max().item()
        semantic = (results[mode][0] - results["fp32"][0]).abs().max().item()
        report.figures[f"predict_{mode}_vs_fp32_max_abs_diff"] = anomaly
        report.add("predict", f"{mode} vs fp32 max abs diff (anomaly score / semantic map)",
                   f"{anomaly:.2e} / {semantic:.2e} (bound {BOUNDS[mode]:.0e})", anomaly <= BOUNDS[mode])  # fmt: skip
    check_cpu_agreement(report, args, device, model, host)
    return results["fp32"][1], results["bf16"][1]


def check_cpu_agreement(report: Report, args, device, model, host: torch.Tensor):
    """One window (whole-image mode) on the device in fp32 against the same model on the CPU."""
    if device.type != "cuda":
        report.skip("predict", "one window: device vs CPU (fp32)", "the device is the CPU")
        return
    window = host[..., : args.crop, : args.crop]
    on_device = model.predict(window.to(device), inference_mode="whole").anomaly_score.cpu()
    model.to("cpu")
    on_cpu = model.predict(window, inference_mode="whole").anomaly_score
    model.to(device)
    difference = (on_device - on_cpu).abs().max().item()
    report.add("predict", f"one {args.crop}^2 window: device vs CPU (fp32, TF32 off)",
               f"max abs diff {difference:.2e} (bound {BOUNDS['cpu_vs_device']:.0e})",
               difference <= BOUNDS["cpu_vs_device"])  # fmt: skip


def same_values(first: dict, second: dict) -> bool:
    """Equal dictionaries of metric values, NaN equal to NaN."""

    def same(a, b) -> bool:
        a, b = np.asarray(a), np.asarray(b)
        numeric = a.dtype.kind in "fiub" and b.dtype.kind in "fiub"
        return np.array_equal(a, b, equal_nan=True) if numeric else np.array_equal(a, b)

    return first.keys() == second.keys() and all(same(first[key], second[key]) for key in first)


def check_metrics(report: Report, device: torch.device, scores: list[torch.Tensor]):
    """The streaming metric engine fed device tensors (float32 and bfloat16) against the same frames as NumPy."""
    for score in scores:
        height, width = score.shape[-2:]
        labels = torch.zeros(score.shape, dtype=torch.uint8)
        labels[..., height // 2 : height // 2 + height // 4, width // 4 : width // 4 + width // 8] = 1  # an object
        labels[..., : height // 16, :] = 255  # void
        on_device, on_host = PixelOODMetrics(), PixelOODMetrics()
        for frame in range(score.shape[0]):
            on_device.update(score[frame].to(device), labels[frame].to(device), frame_id=frame)
            on_host.update(score[frame].float().numpy(), labels[frame].numpy(), frame_id=frame)
        device_result, host_result = on_device.compute(), on_host.compute()
        components = [ComponentOODMetrics.from_pixel_result(result) for result in (device_result, host_result)]
        for frame in range(score.shape[0]):
            components[0].update(score[frame].to(device), labels[frame].to(device))
            components[1].update(score[frame].float().numpy(), labels[frame].numpy())
        same = same_values(device_result.to_dict(), host_result.to_dict())
        same = same and same_values(components[0].compute().to_dict(), components[1].compute().to_dict())
        report.add("metrics", f"{str(score.dtype).removeprefix('torch.')} scores on {device}: pixel + component",
                   f"AP {device_result.average_precision:.4f}, identical to NumPy: {same}", same)  # fmt: skip


def cuda_milliseconds(function, repeats: int = 20) -> float:
    """Median milliseconds of `function()` by CUDA events, after 3 warm-up calls."""
    for _ in range(3):
        function()
    times = []
    for _ in range(repeats):
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        function()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def compare_triton_with_grid_sample(batch, spatial_shapes, num_heads, head_dim, num_points, device, dtype) -> dict:
    """The Triton kernel against transformers' grid_sample path on random inputs of the pixel decoder's shapes (one
    query per key, as its encoder): output and gradient differences relative to the largest reference value, and
    the speed-up of forward and of forward + backward. `dtype` is the value's (bf16: as under autocast; locations
    and weights stay float32)."""
    from transformers.models.mask2former.modeling_mask2former import multi_scale_deformable_attention

    from tdos.deformable_attention_triton import multi_scale_deformable_attention_triton

    generator = torch.Generator(device).manual_seed(0)
    keys = sum(height * width for height, width in spatial_shapes)
    value = torch.randn(batch, keys, num_heads, head_dim, device=device, generator=generator).to(dtype)
    locations = torch.rand(batch, keys, num_heads, len(spatial_shapes), num_points, 2, device=device,
                           generator=generator) * 1.2 - 0.1  # fmt: skip
    weights = torch.rand(locations.shape[:-1], device=device, generator=generator)
    weights = weights.flatten(-2).softmax(-1).view_as(weights)
    inputs = [tensor.requires_grad_() for tensor in (value, locations, weights)]
    grad_output = torch.randn(batch, keys, num_heads * head_dim, device=device, generator=generator)

    def reference():  # the model's path: grid_sample under autocast for bf16 values
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=dtype is torch.bfloat16):
            return multi_scale_deformable_attention(inputs[0], spatial_shapes, inputs[1], inputs[2])

    def kernel():
        return multi_scale_deformable_attention_triton(inputs[0], spatial_shapes, inputs[1], inputs[2])

    results = {}
    for name, function in (("reference", reference), ("triton", kernel)):
        output = function()
        results[name] = [output.float()] + [g.float() for g in torch.autograd.grad(output, inputs, grad_output)]
    names = ("output", "grad value", "grad locations", "grad weights")
    relative = {
        name: ((ours - theirs).abs().max() / theirs.abs().max().clamp(min=1e-12)).item()
        for name, ours, theirs in zip(names, results["triton"], results["reference"])
    }
    with torch.no_grad():
        forward = cuda_milliseconds(reference) / cuda_milliseconds(kernel)
    both = cuda_milliseconds(lambda: torch.autograd.grad(reference(), inputs, grad_output)) / cuda_milliseconds(
        lambda: torch.autograd.grad(kernel(), inputs, grad_output)
    )
    return {"relative_diff": relative, "forward_speedup": forward, "backward_speedup": both}


def check_triton(report: Report, args, device: torch.device, model: TDOSForOODSegmentation, pixel_values_fp32):
    """The Triton deformable-attention kernel against grid_sample on the pixel decoder's shapes, then in `predict`."""
    if device.type != "cuda":
        report.skip("triton", "deformable attention kernel", "CPU: tested under TRITON_INTERPRET=1 by the test suite")
        return
    if importlib.util.find_spec("triton") is None:
        report.add("triton", "deformable attention kernel", "triton is not installed", False)
        return
    config = model.config
    grid = args.crop // config.clip_config.vision_config.patch_size
    shapes = [(grid // 2, grid // 2), (grid, grid), (2 * grid, 2 * grid)]
    for dtype in (torch.float32, torch.bfloat16):
        result = compare_triton_with_grid_sample(
            args.batch_size, shapes, config.pixel_decoder_num_heads, config.hidden_dim // config.pixel_decoder_num_heads,
            config.pixel_decoder_num_points, device, dtype,
        )  # fmt: skip
        bound = 1e-4 if dtype is torch.float32 else 1e-2
        worst = max(result["relative_diff"].values())
        diffs = ", ".join(f"{name} {value:.1e}" for name, value in result["relative_diff"].items())
        report.add("triton", f"{str(dtype).removeprefix('torch.')} kernel vs grid_sample (batch {args.batch_size})",
                   f"{diffs} (bound {bound:.0e})", worst <= bound)  # fmt: skip
        report.info("triton", f"{str(dtype).removeprefix('torch.')} speed-up over grid_sample",
                    f"forward {result['forward_speedup']:.2f}x, forward+backward {result['backward_speedup']:.2f}x")
        report.figures[f"triton_{dtype}_forward_speedup"] = result["forward_speedup"]
    window_batch = report.figures.get("predict_bf16_window_batch", 1)
    timings, maps = {}, {}
    for kernel in ("pytorch", "triton"):
        model.set_deformable_attention_kernel(kernel)
        for mode in ("fp32", "bf16"):
            timings[kernel, mode], _, maps[kernel, mode] = timed_predict(
                model, pixel_values_fp32, device, window_batch, mode == "bf16", args.repeats
            )
    model.set_deformable_attention_kernel("pytorch")
    for mode in ("fp32", "bf16"):
        difference = (maps["triton", mode] - maps["pytorch", mode]).abs().max().item()
        bound = 1e-4 if mode == "fp32" else BOUNDS["bf16"]
        report.add("triton", f"predict {mode}: triton vs pytorch kernel",
                   f"max abs diff {difference:.2e}; {timings['pytorch', mode] / timings['triton', mode]:.2f}x faster "
                   f"({1 / timings['triton', mode]:.2f} images/s)", difference <= bound)  # fmt: skip


def script_command(args, output_dir: Path, num_processes: int, device: torch.device) -> tuple[list[str], dict]:
    """`run_ood_segmentation.py` for a few steps on the synthetic benchmark, in one process or through
    `accelerate launch` with `num_processes` (CUDA: NCCL with bf16; CPU: gloo, the README's command)."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    launcher = [sys.executable]
    if num_processes > 1:
        precision = "bf16" if device.type == "cuda" else "no"
        launcher += ["-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", str(num_processes),
                     "--num_machines", "1", "--mixed_precision", precision, "--dynamo_backend", "no"]  # fmt: skip
        if device.type != "cuda":
            env["ACCELERATE_USE_CPU"] = "1"
    crop = args.crop
    command = [*launcher, str(REPO / "run_ood_segmentation.py"),
               "--preset", args.preset, "--random_clip_init", "--train_dataset", "synthetic",
               "--config_overrides", f"crop_size={crop}",
               "--synthetic_height", str(crop), "--synthetic_width", str(2 * crop), "--synthetic_num_examples", "16",
               "--per_device_train_batch_size", str(max(args.batch_size // max(num_processes, 1), 1)),
               "--max_steps", str(args.script_steps), "--warmup_steps", "0", "--do_train", "--bf16",
               "--output_dir", str(output_dir), "--report_to", "none", "--disable_tqdm", "true", "--seed", "0",
               "--dataloader_num_workers", "2" if device.type == "cuda" else "0"]  # fmt: skip
    if device.type != "cuda":
        command.append("--use_cpu")
    return command, env


def check_script(report: Report, args, device: torch.device, work: Path):
    if importlib.util.find_spec("datasets") is None:
        report.skip("script", "run_ood_segmentation.py", "the datasets package is not installed (README: carry wheels)")
        return
    gpus = torch.cuda.device_count() if device.type == "cuda" else 0
    runs = [("one process", 1)]
    if args.ddp == "on" or (args.ddp == "auto" and gpus >= 2):
        runs.append(("2-process DDP", 2))
    else:
        report.skip("script", "2-process DDP", f"{gpus} GPU(s); --ddp on forces it (gloo on the CPU)")
    for name, processes in runs:
        output_dir = work / f"script_{processes}"
        command, env = script_command(args, output_dir, processes, device)
        start = time.perf_counter()
        result = subprocess.run(command, env=env, cwd=REPO, capture_output=True, text=True, timeout=args.script_timeout)
        seconds = time.perf_counter() - start
        output = result.stdout + result.stderr
        ok = result.returncode == 0 and (output_dir / "model.safetensors").is_file()
        if processes > 1:
            ok = ok and f"world size {processes}" in output and f"identical on all {processes} processes" in output
        detail = f"{args.script_steps} steps, exit {result.returncode}, {seconds:.0f} s with start-up"
        if not ok:
            detail += " | " + output[-600:].replace("\n", " / ").replace("|", "/")
        report.add("script", f"run_ood_segmentation.py, {name}, bf16", detail, ok)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    parser.add_argument("--preset")
    parser.add_argument("--steps", type=int)
    parser.add_argument("--batch-size", type=int)
    parser.add_argument("--crop", type=int, help="training crop and window size (the preset's crop_size)")
    parser.add_argument("--height", type=int)
    parser.add_argument("--width", type=int)
    parser.add_argument("--window-batch-sizes", type=int, nargs="+")
    parser.add_argument("--repeats", type=int, help="timed predicts per setting (median)")
    parser.add_argument("--script-steps", type=int)
    parser.add_argument("--script-timeout", type=int, default=240)
    parser.add_argument("--ddp", default="auto", choices=("auto", "on", "off"))
    parser.add_argument("--skip", nargs="*", default=[], choices=("training", "predict", "triton", "metrics", "script"))
    parser.add_argument("--json", type=Path, help="also write the rows and figures here")
    parser.add_argument("--work-dir", type=Path, help="where the training script writes (default: a temporary folder)")
    args = parser.parse_args(argv)
    if args.device == "auto":
        args.device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch sees no CUDA device")
    for name, value in PROFILES[args.device].items():
        if getattr(args, name) is None:
            setattr(args, name, value)
    if args.steps < 2:
        parser.error("--steps must be >= 2 (one warm-up step is not timed)")
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    device = torch.device(args.device)
    report = Report()
    started = time.perf_counter()
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    report.figures["device"] = name
    bf16 = torch.cuda.is_bf16_supported() if device.type == "cuda" else True
    report.info("set-up", "device", f"{name}; torch {torch.__version__}, CUDA {torch.version.cuda}")
    report.add("set-up", "bf16 supported", str(bf16), bf16)
    set_tf32(True)
    tf32 = torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    report.add("set-up", "TF32 switches (matmul, cuDNN) take effect", str(tf32), tf32)
    set_tf32(False)

    if "training" not in args.skip:
        check_training(report, args, device)
    model = build_model(args.preset).to(device).eval()
    scores = None
    if "predict" not in args.skip:
        scores = check_predict(report, args, device, model)
    if "triton" not in args.skip:
        host = torch.randn(1, 3, args.height, args.width, generator=torch.Generator().manual_seed(1))
        check_triton(report, args, device, model, host.to(device))
    if "metrics" not in args.skip:
        if scores is None:
            scores = (torch.rand(1, args.height, args.width),) * 2
        fp32, bf16_scores = scores
        check_metrics(report, device, [fp32.repeat(2, 1, 1), bf16_scores.to(torch.bfloat16).repeat(2, 1, 1)])
    del model
    if "script" not in args.skip:
        with tempfile.TemporaryDirectory(prefix="gpu_check_") as temporary:
            check_script(report, args, device, args.work_dir or Path(temporary))

    seconds = time.perf_counter() - started
    print()
    print(f"gpu_check on {name}: preset {args.preset}, {seconds:.0f} s")
    print(report.table())
    failed = report.failed()
    print(f"\n{len(failed)} of {len(report.rows)} checks failed" if failed else f"\nall {len(report.rows)} checks passed")
    if args.json:
        text = json.dumps({"seconds": seconds, "rows": report.rows, "figures": report.figures}, indent=1)
        write_atomically(args.json, lambda handle: handle.write(text.encode()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
