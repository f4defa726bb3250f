"""Multi-scale deformable attention of the pixel decoder (Deformable DETR), with a choice of sampling kernel.

`TDOSMultiscaleDeformableAttention` is transformers' `Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention`
(same parameters and checkpoint keys) whose sampling core is chosen by `config.deformable_attention_kernel`:

* `"pytorch"` (default): in training, export and on accelerators `multi_scale_deformable_attention` below, one
  `grid_sample` per level as transformers' own function, but each level's samples are weighted and summed as they
  come instead of stacking all levels and points into one `(batch * heads, dim, queries, levels * points)` tensor
  first. Where nothing needs a gradient on the CPU (inference), the gathered core instead
  (`gathered_deformable_attention`; the module calls it from its offsets): the four corners of every bilinear sample
  are gathered from zero-bordered level maps and summed with their weights by one `F.embedding_bag`, in float32
  (float64 for float64 inputs; several times faster than `grid_sample` on the CPU, see
  `benchmarks/bench_inference.py`). Both equal transformers' function up to float rounding
  (`tests/test_deformable_attention.py`).
* `"triton"`: the Triton kernels of `deformable_attention_triton.py` on CUDA tensors. The CPU, TorchScript tracing,
  ONNX and `torch.export` use the `"pytorch"` path instead, as does a machine without Triton (with one warning).

Imports only torch, transformers, `.configuration_tdos`, `.modeling_tdos_position` and (lazily, on CUDA)
`.deformable_attention_triton`, for remote code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
)
from transformers.utils import logging

from .configuration_tdos import DEFORMABLE_ATTENTION_KERNELS
from .modeling_tdos_position import is_tracing


logger = logging.get_logger(__name__)

# the gathered core indexes its table with int32 rows up to this many rows, int64 beyond
INT32_TABLE_ROWS = 2**31 - 1


def multi_scale_deformable_attention(
    value: torch.Tensor,
    spatial_shapes_list: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """
    Bilinear sampling (`grid_sample`, zero padding, `align_corners=False`) of every level at its points, weighted by
    the attention weights and summed over levels and points.

    Args:
        value: `(batch, keys, heads, head_dim)`, the levels' flattened maps concatenated in `spatial_shapes_list` order.
        spatial_shapes_list: `(height, width)` of each level.
        sampling_locations: `(batch, queries, heads, levels, points, 2)`, `(x, y)` normalised to [0, 1].
        attention_weights: `(batch, queries, heads, levels, points)`.

    Returns:
        `(batch, queries, heads * head_dim)`.
    """
    batch, _, heads, head_dim = value.shape
    num_queries = sampling_locations.shape[1]
    values = value.split([height * width for height, width in spatial_shapes_list], dim=1)
    grids = (2 * sampling_locations - 1).transpose(1, 2).flatten(0, 1)  # (batch * heads, queries, levels, points, 2)
    weights = attention_weights.transpose(1, 2).flatten(0, 1)  # (batch * heads, queries, levels, points)
    output, dtype = None, weights.dtype
    for level, (height, width) in enumerate(spatial_shapes_list):
        # contiguous: the CPU grid_sample returns NaNs for some non-contiguous bfloat16 inputs (torch 2.14)
        level_value = values[level].permute(0, 2, 3, 1).reshape(batch * heads, head_dim, height, width).contiguous()
        sampled = F.grid_sample(
            level_value, grids[:, :, level], mode="bilinear", padding_mode="zeros", align_corners=False
        )  # (batch * heads, head_dim, queries, points)
        # summed in float32 across levels too, so that bf16 rounds once, as transformers' single sum does
        weighted = (sampled * weights[:, None, :, level]).sum(-1, dtype=torch.float32)  # (batch * heads, dim, queries)
        output = weighted if output is None else output + weighted
        dtype = torch.promote_types(sampled.dtype, weights.dtype)
    return output.to(dtype).view(batch, heads * head_dim, num_queries).transpose(1, 2).contiguous()


def gathered_deformable_attention(
    value: torch.Tensor,
    spatial_shapes_list: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """
    `multi_scale_deformable_attention` as one weighted gather: every bilinear sample is the weighted sum of its four
    corner cells, so the attention output of a (query, head) is a weighted sum of `levels * points * 4` rows of the
    value maps, which `F.embedding_bag(mode="sum")` computes without materialising the samples. Each level map gets a
    zero border (1 cell before, 2 after) and the sample coordinates are clamped to it, which reproduces
    `grid_sample`'s zero padding exactly; coordinates and corner weights are `grid_sample`'s up to float rounding.
    Runs in float32 (float64 for float64 inputs); returns the inputs' promoted dtype. Same arguments and result as
    `multi_scale_deformable_attention`; the module uses it (from offsets,
    `gathered_deformable_attention_from_offsets`) only where nothing needs a gradient.
    """
    compute_dtype = torch.promote_types(value.dtype, torch.float32)
    points = sampling_locations.shape[-2]
    heights, widths = _sample_sizes(spatial_shapes_list, points, compute_dtype, value.device)
    locations = sampling_locations.to(compute_dtype).flatten(-3, -2)  # (batch, queries, heads, levels * points, 2)
    # grid_sample's unnormalisation (align_corners=False) of 2 * location - 1: location * size - 1/2
    half = torch.tensor(-0.5, dtype=compute_dtype, device=value.device)
    x = torch.addcmul(half, locations[..., 0], widths)
    y = torch.addcmul(half, locations[..., 1], heights)
    return _gather_samples(value, spatial_shapes_list, x, y, attention_weights, heights, widths)


def gathered_deformable_attention_from_offsets(
    value: torch.Tensor,
    spatial_shapes_list: list[tuple[int, int]],
    reference_points: torch.Tensor,
    sampling_offsets: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """
    `gathered_deformable_attention` at the locations `reference + offset / (width, height)` that the module would
    compute, from `reference_points` `(batch, queries, levels, 2)` and `sampling_offsets` `(batch, queries, heads,
    levels, points, 2)` in cells: a sample's pixel coordinate is `reference * size + offset - 1/2`, computed in
    float32 without rounding the normalised location first (transformers rounds it to the offsets' dtype, bfloat16
    under autocast).
    """
    compute_dtype = torch.promote_types(value.dtype, torch.float32)
    batch, num_queries, _, levels, points, _ = sampling_offsets.shape
    heights, widths = _sample_sizes(spatial_shapes_list, points, compute_dtype, value.device)
    references = reference_points.to(compute_dtype)[:, :, None, :, None].expand(-1, -1, 1, -1, points, -1)
    references = references.reshape(batch, num_queries, 1, levels * points, 2)
    half = torch.tensor(-0.5, dtype=compute_dtype, device=value.device)
    offsets = sampling_offsets.flatten(-3, -2)  # (batch, queries, heads, levels * points, 2), a view
    x = torch.add(torch.addcmul(half, references[..., 0], widths), offsets[..., 0])
    y = torch.add(torch.addcmul(half, references[..., 1], heights), offsets[..., 1])
    return _gather_samples(value, spatial_shapes_list, x, y, attention_weights, heights, widths)


def _sample_sizes(
    spatial_shapes_list: list[tuple[int, int]], points: int, dtype: torch.dtype, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """Height and width of every (level, point) `(levels * points,)`: the innermost, contiguous run of the
    samples' dimensions, along which CPU elementwise kernels vectorise (a `(levels, 1)` broadcast makes them loop
    over runs of `points`, several times slower)."""
    shapes = torch.tensor(spatial_shapes_list, dtype=dtype, device=device).repeat_interleave(points, 0)
    return shapes[:, 0], shapes[:, 1]


def _gather_samples(
    value: torch.Tensor,
    spatial_shapes_list: list[tuple[int, int]],
    x: torch.Tensor,
    y: torch.Tensor,
    attention_weights: torch.Tensor,
    heights: torch.Tensor,
    widths: torch.Tensor,
) -> torch.Tensor:
    """The gathered core at pixel coordinates `x`, `y` `(batch, queries, heads, levels * points)` (float32 or
    float64, overwritten), with the samples' level sizes from `_sample_sizes`. Memory-bound on the CPU (a 512x512
    window's layer has 0.5M samples): every intermediate is written once, per-sample constants run along the
    innermost dimension, the corner weights and table rows are written straight into the layout `embedding_bag`
    reads, the rows as int32 where they fit."""
    batch, _, heads, head_dim = value.shape
    _, num_queries, _, samples = x.shape
    points = samples // len(spatial_shapes_list)
    device, compute_dtype = value.device, x.dtype

    # one table of the level maps with zero borders, a row per (image, bordered cell, head)
    bordered_cells = [(height + 3) * (width + 3) for height, width in spatial_shapes_list]
    cells = sum(bordered_cells)
    table = value.new_empty((batch, cells, heads * head_dim), dtype=compute_dtype)
    first_cells, start = [], 0
    for (height, width), level_value, size in zip(
        spatial_shapes_list, value.split([height * width for height, width in spatial_shapes_list], 1), bordered_cells
    ):
        level_table = table[:, start : start + size].view(batch, height + 3, width + 3, heads * head_dim)
        for border in (level_table[:, :1], level_table[:, height + 1 :]):  # rows, then columns
            border.zero_()
        for border in (level_table[:, :, :1], level_table[:, :, width + 1 :]):
            border.zero_()
        level_table[:, 1 : height + 1, 1 : width + 1] = level_value.reshape(batch, height, width, heads * head_dim)
        first_cells.append(start)
        start += size
    table = table.view(-1, head_dim)
    index_dtype = torch.int32 if table.shape[0] <= INT32_TABLE_ROWS else torch.int64

    # clamped into the zero border (a NaN stays NaN); bilinear weights of the rows (north, south) and columns (west,
    # east) as grid_sample's, the rows' times the attention weight
    lower = torch.tensor(-1.0, dtype=compute_dtype, device=device)
    x, y = x.clamp_(lower, widths), y.clamp_(lower, heights)
    left, top = x.floor(), y.floor()
    row_weights = x.new_empty((batch, num_queries, heads, 2, samples))
    column_weights = x.new_empty((batch, num_queries, heads, 2, samples))
    one = torch.tensor(1.0, dtype=compute_dtype, device=device)
    torch.add(one, torch.sub(y, top, out=row_weights[:, :, :, 1]), alpha=-1, out=row_weights[:, :, :, 0])
    torch.add(one, torch.sub(x, left, out=column_weights[:, :, :, 1]), alpha=-1, out=column_weights[:, :, :, 0])
    row_weights.mul_(attention_weights.to(compute_dtype).view(batch, num_queries, heads, 1, samples))
    # every bag (image, query, head) lists its corners as (row, column, level, point): north-west, north-east,
    # south-west, south-east (one product per corner: faster than one broadcast over rows and columns)
    corner_weights = x.new_empty((batch, num_queries, heads, 2, 2, samples))
    for row, column in ((0, 0), (0, 1), (1, 0), (1, 1)):
        torch.mul(row_weights[:, :, :, row], column_weights[:, :, :, column], out=corner_weights[:, :, :, row, column])

    # the table row of the north-west corner: (first cell of the level + bordered cell) * heads + head, exact
    # integers in float (float64 beyond float32's 2^24) before the image offset; a NaN coordinate gets a valid row
    # and a NaN weight, so a NaN output
    row_dtype = compute_dtype if cells * heads < 2**24 else torch.float64
    first = torch.tensor(first_cells, dtype=row_dtype, device=device).repeat_interleave(points)
    bordered_widths = widths.to(row_dtype) + 3
    head_rows = ((first + bordered_widths + 1) * heads)[None] + torch.arange(heads, device=device)[:, None]
    cell_rows = torch.addcmul(head_rows, top, bordered_widths * heads).add_(left, alpha=heads)
    north_west = cell_rows.nan_to_num_(0).to(index_dtype)
    if batch > 1:
        north_west += torch.arange(batch, device=device, dtype=index_dtype).view(-1, 1, 1, 1) * (cells * heads)
    # the other corners: one head-row block further east, one bordered map row further south
    south_step = (bordered_widths * heads).to(index_dtype)
    rows = north_west.new_empty((batch, num_queries, heads, 2, 2, samples))
    rows[:, :, :, 0, 0] = north_west
    torch.add(north_west, heads, out=rows[:, :, :, 0, 1])
    torch.add(north_west, south_step, out=rows[:, :, :, 1, 0])
    torch.add(north_west, south_step + heads, out=rows[:, :, :, 1, 1])
    output = F.embedding_bag(
        rows.view(batch * num_queries * heads, -1),
        table,
        per_sample_weights=corner_weights.view(batch * num_queries * heads, -1),
        mode="sum",
    )
    dtype = torch.promote_types(value.dtype, attention_weights.dtype)
    return output.to(dtype).view(batch, num_queries, heads * head_dim)


_warned_without_triton = False


def _gather_usable(*inputs: torch.Tensor) -> bool:
    """The gathered core runs on the CPU when no input needs a gradient, in eager code (export and compilation keep
    `grid_sample`, whose ONNX / inductor lowerings exist)."""
    if any(tensor.requires_grad for tensor in inputs) or is_tracing() or torch.jit.is_scripting():
        return False
    return all(tensor.device.type == "cpu" for tensor in inputs)


def _triton_kernel_usable(value: torch.Tensor) -> bool:
    """The Triton kernel runs on CUDA tensors in eager or compiled code, never while tracing or exporting."""
    global _warned_without_triton
    if not value.is_cuda:
        return False
    if torch.jit.is_tracing() or torch.jit.is_scripting() or torch.onnx.is_in_onnx_export():
        return False
    if torch.compiler.is_exporting():
        return False
    from .deformable_attention_triton import is_available

    if not is_available():
        if not _warned_without_triton:
            logger.warning("deformable_attention_kernel='triton' but triton is not installed: using grid_sample")
            _warned_without_triton = True
        return False
    return True


class TDOSMultiscaleDeformableAttention(Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention):
    """Multi-scale deformable self-attention over the flattened levels (queries = keys), with a selectable kernel.

    Args:
        embed_dim, num_heads, n_levels, n_points: as transformers' module.
        kernel (`str`, *optional*, defaults to `"pytorch"`): `"pytorch"` or `"triton"` (see the module docstring).
    """

    def __init__(self, embed_dim: int, num_heads: int, n_levels: int, n_points: int, kernel: str = "pytorch"):
        super().__init__(embed_dim=embed_dim, num_heads=num_heads, n_levels=n_levels, n_points=n_points)
        self.kernel = kernel

    @property
    def kernel(self) -> str:
        return self._kernel

    @kernel.setter
    def kernel(self, kernel: str):
        if kernel not in DEFORMABLE_ATTENTION_KERNELS:
            raise ValueError(f"deformable attention kernel must be one of {DEFORMABLE_ATTENTION_KERNELS}, got {kernel!r}")
        self._kernel = kernel

    def forward(
        self,
        hidden_states: torch.Tensor,
        position_embeddings: torch.Tensor,
        reference_points: torch.Tensor,
        spatial_shapes_list: list[tuple[int, int]],
    ) -> torch.Tensor:
        """
        Args:
            hidden_states: `(batch, keys, embed_dim)`, the values (and, with the positions added, the queries).
            position_embeddings: `(batch, keys, embed_dim)`.
            reference_points: `(batch, keys, levels, 2)` in [0, 1].
            spatial_shapes_list: `(height, width)` of each level, in the order of the keys.

        Returns:
            `(batch, keys, embed_dim)`.
        """
        batch, num_queries, _ = hidden_states.shape
        heads, levels, points = self.n_heads, self.n_levels, self.n_points
        queries = hidden_states + position_embeddings
        value = self.value_proj(hidden_states).view(batch, num_queries, heads, self.d_model // heads)
        offsets = self.sampling_offsets(queries).view(batch, num_queries, heads, levels, points, 2)
        weights = self.attention_weights(queries).view(batch, num_queries, heads, levels * points)
        weights = weights.softmax(-1).view(batch, num_queries, heads, levels, points)
        if _gather_usable(value, reference_points, offsets, weights):  # the CPU: never Triton
            output = gathered_deformable_attention_from_offsets(
                value, spatial_shapes_list, reference_points, offsets, weights
            )
            return self.output_proj(output)
        normalizer = torch.tensor(
            [[width, height] for height, width in spatial_shapes_list], dtype=torch.long, device=hidden_states.device
        )
        locations = reference_points[:, :, None, :, None, :] + offsets / normalizer[None, None, None, :, None, :]
        if self.kernel == "triton" and _triton_kernel_usable(value):
            from .deformable_attention_triton import multi_scale_deformable_attention_triton

            output = multi_scale_deformable_attention_triton(value, spatial_shapes_list, locations, weights)
        else:
            output = multi_scale_deformable_attention(value, spatial_shapes_list, locations, weights)
        return self.output_proj(output)


__all__ = [
    "TDOSMultiscaleDeformableAttention",
    "gathered_deformable_attention",
    "gathered_deformable_attention_from_offsets",
    "multi_scale_deformable_attention",
]
