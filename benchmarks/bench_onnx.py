"""ONNX export (`tdos.export_onnx`) against eager PyTorch, in one run: the max abs difference of the semantic maps at
512x512 and 512x1024, and the time per sliding window (one `crop_size` x `crop_size` window, the unit that
sliding-window inference repeats) of onnxruntime (CPU) and of `model.predict(..., inference_mode="whole")`.

Random weights (`TDOSForOODSegmentation(config)` of the preset): the timing and the agreement do not depend on the
values. Both runtimes get the same number of threads; runs alternate (eager, onnxruntime, eager, ...) after one
warm-up each, and the median is reported. The machine is shared and noisy: read the ratio, not the absolute times.

Usage: python benchmarks/bench_onnx.py [--preset tdos-vit-b16] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import onnxruntime  # noqa: E402
import torch  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos.export_onnx import CHECK_SIZES, export_onnx, max_difference  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="tdos-vit-b16", help="TDOSConfig preset (tdos-vit-b16, tdos-rn50, tiny, ...)")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = TDOSForOODSegmentation(TDOSConfig.from_preset(args.preset)).eval()
    crop = model.config.crop_size
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "model.onnx")
        start = time.perf_counter()
        export_onnx(model, path)
        export_seconds = time.perf_counter() - start
        size_mb = os.path.getsize(path) / 1e6
        differences = {size: max_difference(model, path, size) for size in CHECK_SIZES}
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        window = torch.randn(1, 3, crop, crop, generator=torch.Generator().manual_seed(1))
        feed = {"pixel_values": window.numpy()}

        def eager():
            with torch.no_grad():
                model.predict(window, inference_mode="whole")

        def ort():
            session.run(None, feed)

        times = {"eager PyTorch": [], "onnxruntime": []}
        eager(), ort()  # warm-up (and the text-branch cache of predict)
        for _ in range(args.repeats):
            for name, run in (("eager PyTorch", eager), ("onnxruntime", ort)):
                start = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - start)
    print(f"preset {args.preset}, {args.threads} threads, torch {torch.__version__}, onnxruntime {onnxruntime.__version__}")
    print(f"export: {export_seconds:.1f} s, {size_mb:.1f} MB")
    for (height, width), difference in differences.items():
        print(f"max abs difference of the semantic map at {height}x{width}: {difference:.3g}")
    eager_median = statistics.median(times["eager PyTorch"])
    print(f"\n| runtime | s per {crop}x{crop} window (median of {args.repeats}) | vs eager |")
    print("|---|---|---|")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"| {name} | {median:.3f} (min {min(values):.3f}) | {median / eager_median:.2f}x |")
    if max(differences.values()) > 1e-4 or not np.isfinite(max(differences.values())):
        raise SystemExit("the ONNX graph differs from PyTorch by more than 1e-4")


if __name__ == "__main__":
    main()
