"""Parameter-free maps of the decoders, computed once per shape: the sine position embeddings of the pixel decoder
and of the masked-attention decoder, and the deformable attention's reference points.

They depend only on a feature map's shape, device and dtype, so sliding-window inference (18 windows of one size for
a 2048x1024 image) and training at a fixed crop would otherwise rebuild the same few maps in every forward
(transformers' own `build_sine_position_embedding` keeps one map, which the three levels evict in turn). The last
`MAX_CACHED_MAPS` maps of each kind are kept; 0 turns the sharing off (the benchmarks compare both). While a graph is
traced for export or compilation the maps are computed in the graph instead, so their sizes stay symbolic.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable

import torch
from transformers.models.mask2former.modeling_mask2former import Mask2FormerSinePositionEmbedding


MAX_CACHED_MAPS = 8


def is_tracing() -> bool:
    """Whether the forward is being traced (ONNX / `torch.export` / `torch.compile` / TorchScript tracing)."""
    return (
        torch.compiler.is_exporting()
        or torch.compiler.is_compiling()
        or torch.onnx.is_in_onnx_export()
        or torch.jit.is_tracing()
    )


def is_eager_inference() -> bool:
    """No gradients and no tracing: where the inference-only shortcuts apply (the pixel decoder's chunked FFN, the
    ViT pyramid's folded lateral convolution and transposed convolutions as matrix products), whose training and
    export forms stay as written."""
    return not torch.is_grad_enabled() and not is_tracing()


def _remembered(cache: OrderedDict, key: Hashable, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
    """`cache[key]`, computed and stored (least recently used entries dropped) if missing; always computed when
    `MAX_CACHED_MAPS` is 0."""
    if MAX_CACHED_MAPS <= 0 or is_tracing():
        return compute()
    if key in cache:
        cache.move_to_end(key)
        return cache[key]
    value = cache[key] = compute()
    while len(cache) > MAX_CACHED_MAPS:
        cache.popitem(last=False)
    return value


class TDOSSinePositionEmbedding(Mask2FormerSinePositionEmbedding):
    """Mask2Former's normalised sine position embedding `(batch, 2 * num_position_features, h, w)`, one map per shape,
    device and dtype kept (never modify the returned tensor in place)."""

    def __init__(self, num_position_features: int):
        super().__init__(num_position_features=num_position_features, normalize=True)
        self._maps: OrderedDict = OrderedDict()

    def forward(self, shape: torch.Size, device: torch.device, dtype: torch.dtype, mask=None) -> torch.Tensor:
        if mask is not None:
            return super().forward(shape, device, dtype, mask)
        key = (tuple(shape), torch.device(device), dtype)
        return _remembered(self._maps, key, lambda: super(TDOSSinePositionEmbedding, self).forward(shape, device, dtype))


_REFERENCE_POINTS: OrderedDict = OrderedDict()


def reference_points(spatial_shapes_list: list[tuple[int, int]], batch: int, device, dtype) -> torch.Tensor:
    """The deformable attention's reference points `(batch, keys, levels, 2)`: the normalised `(x, y)` centre of every
    cell of every level, repeated for each level (no padding, so every valid ratio is 1). The values of transformers'
    `get_reference_points` (tested), written with `arange`: its `linspace` is exported to ONNX with the example's
    length, which would pin the graph to one input size."""

    def compute() -> torch.Tensor:
        points = []
        for height, width in spatial_shapes_list:
            rows = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height
            columns = (torch.arange(width, dtype=dtype, device=device) + 0.5) / width
            grid_y, grid_x = torch.meshgrid(rows, columns, indexing="ij")
            points.append(torch.stack((grid_x.reshape(-1), grid_y.reshape(-1)), -1))
        return torch.cat(points)[None, :, None].expand(batch, -1, len(spatial_shapes_list), -1)

    if is_tracing():
        return compute()
    shapes = tuple((int(height), int(width)) for height, width in spatial_shapes_list)
    return _remembered(_REFERENCE_POINTS, (shapes, batch, torch.device(device), dtype), compute)


__all__ = ["MAX_CACHED_MAPS", "TDOSSinePositionEmbedding", "is_eager_inference", "is_tracing", "reference_points"]
