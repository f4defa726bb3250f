"""Test-time prediction at the input resolution: the whole image at once, or mmseg-style sliding windows whose
semantic maps are averaged where they overlap. `TDOSForOODSegmentation.predict` runs these; the pipelines, the
benchmark evaluation and `tdos-predict` all go through it.

The functions take the model as their first argument and call it like a user would (`model(pixel_values,
prompt_embeddings=...)`); the text branch is computed once by the caller and passed to every window batch.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def sliding_window_starts(length: int, crop: int, stride: int) -> list[int]:
    """Window starts along one side, as mmseg's `slide_inference`: every `stride` pixels, the last one shifted back so
    that it ends at the border; one window at 0 when the side is not longer than `crop`."""
    count = max(length - crop + stride - 1, 0) // stride + 1
    return [max(min(index * stride + crop, length) - crop, 0) for index in range(count)]


def semantic_map_at_input_size(model, pixel_values: torch.Tensor, prompt_embeddings: torch.Tensor) -> torch.Tensor:
    """Semantic map `(N, K_id, h, w)` (float32) of images `(N, 3, h, w)` of any size: zero-padded at the bottom/right
    to the model's input stride, run through the model, resized bilinearly to the padded size and cropped back."""
    height, width = pixel_values.shape[-2:]
    stride = model.config.input_stride  # the patch size (ViT) or 32 (RN50)
    padded_height = max(math.ceil(height / stride), 2) * stride
    padded_width = max(math.ceil(width / stride), 2) * stride
    padded = F.pad(pixel_values, (0, padded_width - width, 0, padded_height - height))
    output = model(padded, prompt_embeddings=prompt_embeddings, output_auxiliary_logits=False, return_dict=True)
    semantic_map = output.semantic_map
    semantic_map = F.interpolate(
        semantic_map.float(), size=(padded_height, padded_width), mode="bilinear", align_corners=False
    )
    return semantic_map[..., :height, :width]


def slide_semantic_map(
    model, pixel_values: torch.Tensor, prompt_embeddings: torch.Tensor, window_batch_size: int
) -> torch.Tensor:
    """Overlap-averaged semantic map `(batch, K_id, H, W)` of `config.crop_size` windows every `config.stride` pixels,
    run `window_batch_size` at a time (windows of all images are batched together)."""
    batch, _, height, width = pixel_values.shape
    crop, stride = model.config.crop_size, model.config.stride
    windows = [
        (top, left)
        for top in sliding_window_starts(height, crop, stride)
        for left in sliding_window_starts(width, crop, stride)
    ]
    crop_height, crop_width = min(crop, height), min(crop, width)
    jobs = [(image, top, left) for image in range(batch) for top, left in windows]
    semantic_map = pixel_values.new_zeros(batch, model.config.num_id_classes, height, width, dtype=torch.float32)
    counts = pixel_values.new_zeros(height, width, dtype=torch.float32)
    for top, left in windows:
        counts[top : top + crop_height, left : left + crop_width] += 1
    for start in range(0, len(jobs), window_batch_size):
        chunk = jobs[start : start + window_batch_size]
        crops = torch.stack(
            [pixel_values[i, :, top : top + crop_height, left : left + crop_width] for i, top, left in chunk]
        )
        window_maps = semantic_map_at_input_size(model, crops, prompt_embeddings)
        for (image, top, left), window_map in zip(chunk, window_maps):
            semantic_map[image, :, top : top + crop_height, left : left + crop_width] += window_map
    return semantic_map / counts


def predict_semantic_map(
    model, pixel_values: torch.Tensor, inference_mode: str, window_batch_size: int = 1
) -> torch.Tensor:
    """The semantic map `(batch, K_id, H, W)` of `"whole"` or `"slide"` inference, with the text branch computed once."""
    prompt_embeddings = model.compute_text_embeddings()
    if inference_mode == "whole":
        return semantic_map_at_input_size(model, pixel_values, prompt_embeddings)
    return slide_semantic_map(model, pixel_values, prompt_embeddings, window_batch_size)


__all__ = ["predict_semantic_map", "semantic_map_at_input_size", "slide_semantic_map", "sliding_window_starts"]
