"""`tdos-export-onnx MODEL_DIR OUT.onnx`: a TDOS model as one ONNX graph for onnxruntime (or TensorRT, OpenVINO, ...).

    tdos-export-onnx MODEL_DIR OUT.onnx [--opset 18] [--check] [--tolerance 1e-4]

The graph is the whole-image prediction of one image, `model.predict(pixel_values, inference_mode="whole")`:

    pixel_values  float32 (1, 3, H, W)   normalised as by TDOSImageProcessor; H, W any multiples of
                                          `config.input_stride` (16 for ViT-B/16, 32 for RN50), at least 2 strides
    semantic_map  float32 (1, K_id, H, W) mask-classification scores at the input size (bilinear from 1/4)
    anomaly_score float32 (1, H, W)       `config.anomaly_score` of the semantic map

H and W are dynamic (one file serves every size and every sliding window); the batch is 1. The text branch (the
CLIP text tower over the learned prompts, which does not depend on the image) is computed once at export time and
stored in the graph as a constant, so the file has no text tower. Sliding-window inference is a loop over windows
around this graph (see the README's example); resizing, normalisation and thresholds stay outside it.

`--check` runs the exported file with onnxruntime (CPU) against PyTorch at 512x512 and 512x1024 and exits with 1 when
the semantic maps differ by more than `--tolerance` (max absolute difference).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import uuid
from pathlib import Path

import numpy as np
import torch
from torch import nn
from .modeling_tdos_ood_slot import anomaly_score_from_semantic
from .sliding_window import semantic_map_at_input_size


logger = logging.getLogger(__name__)

CHECK_SIZES = ((512, 512), (512, 1024))
DEFAULT_OPSET = 18


class TDOSOnnxModule(nn.Module):
    """Whole-image prediction of a TDOS model with the text branch frozen into a buffer (exported as a constant)."""

    def __init__(self, model):
        super().__init__()
        self.model = model.eval()
        with torch.no_grad():
            self.register_buffer("prompt_embeddings", model.compute_text_embeddings().detach().clone())

    def forward(self, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        semantic_map = semantic_map_at_input_size(self.model, pixel_values, self.prompt_embeddings)
        config = self.model.config
        return semantic_map, anomaly_score_from_semantic(semantic_map, config.anomaly_score, config.ood_label_id)


def export_onnx(model, path, opset: int = DEFAULT_OPSET, example_size: tuple[int, int] | None = None) -> Path:
    """Exports `model` (see the module docstring) to `path` atomically (temporary name, then renamed); returns it."""
    if opset < 17:
        raise ValueError(f"opset {opset} is too old: the graph needs opset 17 or newer (LayerNormalization)")
    module = TDOSOnnxModule(model).eval()
    stride = model.config.input_stride
    height, width = example_size or (4 * stride, 8 * stride)
    example = torch.zeros(1, model.config.clip_config.vision_config.num_channels, height, width)
    rows, columns = torch.export.Dim("rows", min=2), torch.export.Dim("columns", min=2)
    dynamic_shapes = {"pixel_values": {2: stride * rows, 3: stride * columns}}
    with torch.no_grad():
        program = torch.onnx.export(
            module, (example,), dynamo=True, opset_version=opset, dynamic_shapes=dynamic_shapes,
            input_names=["pixel_values"], output_names=["semantic_map", "anomaly_score"], verbose=False,
        )  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        program.save(str(temporary))
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


def max_difference(model, onnx_path, size: tuple[int, int], seed: int = 0) -> float:
    """Max absolute difference of the semantic maps of onnxruntime (CPU) and PyTorch on one random input."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    pixel_values = torch.randn(1, 3, *size, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        expected = model.predict(pixel_values, inference_mode="whole").semantic_map.numpy()
    (semantic_map, _) = session.run(None, {"pixel_values": pixel_values.numpy()})
    if semantic_map.shape != expected.shape:
        raise ValueError(f"onnxruntime returned {semantic_map.shape}, PyTorch {expected.shape} at {size}")
    return float(np.abs(semantic_map - expected).max())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="tdos-export-onnx", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model", help="a saved TDOS model folder (or Hub id)")
    parser.add_argument("output", type=Path, help="the .onnx file to write")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset, >= 17 (default {DEFAULT_OPSET})")
    parser.add_argument("--check", action="store_true", help="compare with PyTorch at 512x512 and 512x1024")
    parser.add_argument("--tolerance", type=float, default=1e-4, help="--check: max abs difference (default 1e-4)")
    args = parser.parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", level=logging.INFO)
    from transformers import AutoModel

    from . import TDOSForOODSegmentation  # noqa: F401  (registers the model type)

    try:
        model = AutoModel.from_pretrained(args.model).eval()
    except (OSError, ValueError) as error:
        parser.exit(2, f"tdos-export-onnx: error: cannot load a TDOS model from {args.model}: {error}\n")
    try:
        export_onnx(model, args.output, opset=args.opset)
    except ValueError as error:
        parser.exit(2, f"tdos-export-onnx: error: {error}\n")
    logger.info("wrote %s (%.1f MB)", args.output, args.output.stat().st_size / 1e6)
    if not args.check:
        return 0
    worst = 0.0
    for size in CHECK_SIZES:
        difference = max_difference(model, args.output, size)
        worst = max(worst, difference)
        logger.info("%dx%d: max abs difference of the semantic map, onnxruntime vs PyTorch: %.3g", *size, difference)
    if worst > args.tolerance:
        logger.error("max abs difference %.3g is above the tolerance %.3g", worst, args.tolerance)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
