"""Multi-scale deformable attention (Deformable DETR's sampling core) as Triton kernels, forward and backward.

The same computation as `transformers.models.mask2former.modeling_mask2former.multi_scale_deformable_attention`
(bilinear `grid_sample` with zero padding and `align_corners=False`, weighted over levels and points), without the
per-level `grid_sample` calls, the `(batch * heads, dim, queries, levels * points)` intermediate and its re-reads:
one program gathers the four corners of every sampling point of a block of queries for one head and accumulates
them in registers. Backward scatters the value gradient with atomic adds (float32) and writes the location and
attention-weight gradients directly.

Triton is optional: it is imported here only, inside a `try` block (so a saved model's remote code loads without
it), and the model imports this module only when `deformable_attention_kernel="triton"` runs on a CUDA tensor.
Under `TRITON_INTERPRET=1` (set before this module is imported) the kernels run on CPU tensors, which is how the
test suite checks them against `grid_sample`.
"""

from __future__ import annotations

import torch


try:
    import triton
    import triton.language as tl
except ImportError:  # the model falls back to grid_sample
    triton = None


def is_available() -> bool:
    """Whether Triton could be imported."""
    return triton is not None


BLOCK_QUERIES = 64

if triton is not None:

    @triton.jit
    def _corner_offsets(y, x, height, width, start, row_stride, query_mask):
        """Value-row offsets of pixel `(y, x)` of a level and whether it lies inside the level (zero padding)."""
        inside = query_mask & (x >= 0) & (x < width) & (y >= 0) & (y < height)
        return (start + y * width + x).to(tl.int64) * row_stride, inside

    @triton.jit
    def _program_tile(
        num_queries, NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr
    ):
        """This program's batch index (int64), head, block of queries and of channels, and their masks."""
        batch_head = tl.program_id(0)
        queries = tl.program_id(1) * BLOCK_Q + tl.arange(0, BLOCK_Q)
        channels = tl.arange(0, BLOCK_D)
        batch = (batch_head // NUM_HEADS).to(tl.int64)
        return batch, batch_head % NUM_HEADS, queries, channels, queries < num_queries, channels < HEAD_DIM

    @triton.jit
    def _level(shapes_ptr, starts_ptr, level):
        """Height, width and first key of a level."""
        return tl.load(shapes_ptr + 2 * level), tl.load(shapes_ptr + 2 * level + 1), tl.load(starts_ptr + level)

    @triton.jit
    def _sampling_point(location_ptr, weight_ptr, point, height, width, query_mask):
        """Top-left corner `(x0, y0)` of a sampling point in pixels (grid_sample, align_corners=False; coordinates
        clamped to [-2, size + 1], where every corner already lies outside), its fractions `(fx, fy)` towards the
        next pixel and its attention weight (float32)."""
        x = tl.load(location_ptr + 2 * point, mask=query_mask, other=0.0).to(tl.float32) * width - 0.5
        y = tl.load(location_ptr + 2 * point + 1, mask=query_mask, other=0.0).to(tl.float32) * height - 0.5
        x = tl.minimum(tl.maximum(x, -2.0), width + 1.0)
        y = tl.minimum(tl.maximum(y, -2.0), height + 1.0)
        weight = tl.load(weight_ptr + point, mask=query_mask, other=0.0).to(tl.float32)
        x_floor, y_floor = tl.floor(x), tl.floor(y)
        return x_floor.to(tl.int32), y_floor.to(tl.int32), x - x_floor, y - y_floor, weight

    @triton.jit
    def _forward_kernel(
        value_ptr, shapes_ptr, starts_ptr, location_ptr, weight_ptr, output_ptr, num_queries, num_keys,
        NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, NUM_LEVELS: tl.constexpr, NUM_POINTS: tl.constexpr,
        BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        batch, head, queries, channels, query_mask, channel_mask = _program_tile(
            num_queries, NUM_HEADS, HEAD_DIM, BLOCK_Q, BLOCK_D
        )
        row_stride = NUM_HEADS * HEAD_DIM
        values = value_ptr + batch * num_keys * row_stride + head * HEAD_DIM + channels[None, :]
        # (batch, query, head) row of the (levels, points) sampling grid
        points = ((batch * num_queries + queries) * NUM_HEADS + head) * (NUM_LEVELS * NUM_POINTS)
        accumulator = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
        for level in tl.static_range(NUM_LEVELS):
            height, width, start = _level(shapes_ptr, starts_ptr, level)
            for index in tl.static_range(NUM_POINTS):
                point = points + level * NUM_POINTS + index
                x0, y0, fx, fy, weight = _sampling_point(location_ptr, weight_ptr, point, height, width, query_mask)
                for dy in tl.static_range(2):
                    for dx in tl.static_range(2):
                        offsets, inside = _corner_offsets(y0 + dy, x0 + dx, height, width, start, row_stride, query_mask)
                        corner = tl.load(
                            values + offsets[:, None], mask=inside[:, None] & channel_mask[None, :], other=0.0
                        ).to(tl.float32)
                        # corner weights: fy or 1 - fy, fx or 1 - fx (dy, dx are compile-time 0 / 1)
                        bilinear = (dy * fy + (1 - dy) * (1.0 - fy)) * (dx * fx + (1 - dx) * (1.0 - fx))
                        accumulator += (weight * bilinear)[:, None] * corner
        outputs = output_ptr + ((batch * num_queries + queries) * row_stride + head * HEAD_DIM)[:, None]
        tl.store(outputs + channels[None, :], accumulator, mask=query_mask[:, None] & channel_mask[None, :])

    @triton.jit
    def _backward_kernel(
        value_ptr, shapes_ptr, starts_ptr, location_ptr, weight_ptr, grad_output_ptr,
        grad_value_ptr, grad_location_ptr, grad_weight_ptr, num_queries, num_keys,
        NUM_HEADS: tl.constexpr, HEAD_DIM: tl.constexpr, NUM_LEVELS: tl.constexpr, NUM_POINTS: tl.constexpr,
        BLOCK_Q: tl.constexpr, BLOCK_D: tl.constexpr,
    ):  # fmt: skip
        batch, head, queries, channels, query_mask, channel_mask = _program_tile(
            num_queries, NUM_HEADS, HEAD_DIM, BLOCK_Q, BLOCK_D
        )
        tile_mask = query_mask[:, None] & channel_mask[None, :]
        row_stride = NUM_HEADS * HEAD_DIM
        key_base = batch * num_keys * row_stride + head * HEAD_DIM + channels[None, :]
        values, grad_values = value_ptr + key_base, grad_value_ptr + key_base
        outputs = ((batch * num_queries + queries) * row_stride + head * HEAD_DIM)[:, None]
        grad_output = tl.load(grad_output_ptr + outputs + channels[None, :], mask=tile_mask, other=0.0).to(tl.float32)
        points = ((batch * num_queries + queries) * NUM_HEADS + head) * (NUM_LEVELS * NUM_POINTS)
        for level in tl.static_range(NUM_LEVELS):
            height, width, start = _level(shapes_ptr, starts_ptr, level)
            for index in tl.static_range(NUM_POINTS):
                point = points + level * NUM_POINTS + index
                x0, y0, fx, fy, weight = _sampling_point(location_ptr, weight_ptr, point, height, width, query_mask)
                sampled = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
                d_sampled_dx = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
                d_sampled_dy = tl.zeros((BLOCK_Q, BLOCK_D), dtype=tl.float32)
                for dy in tl.static_range(2):
                    for dx in tl.static_range(2):
                        offsets, inside = _corner_offsets(y0 + dy, x0 + dx, height, width, start, row_stride, query_mask)
                        corner_mask = inside[:, None] & channel_mask[None, :]
                        corner = tl.load(values + offsets[:, None], mask=corner_mask, other=0.0).to(tl.float32)
                        weight_y = dy * fy + (1 - dy) * (1.0 - fy)
                        weight_x = dx * fx + (1 - dx) * (1.0 - fx)
                        sampled += (weight_y * weight_x)[:, None] * corner
                        # d(bilinear)/dx = weight_y for the right corners, -weight_y for the left ones (dy: alike)
                        d_sampled_dx += ((2 * dx - 1) * weight_y)[:, None] * corner
                        d_sampled_dy += ((2 * dy - 1) * weight_x)[:, None] * corner
                        tl.atomic_add(
                            grad_values + offsets[:, None],
                            (weight * weight_y * weight_x)[:, None] * grad_output,
                            mask=corner_mask,
                        )
                tl.store(grad_weight_ptr + point, tl.sum(grad_output * sampled, axis=1), mask=query_mask)
                grad_x = weight * width * tl.sum(grad_output * d_sampled_dx, axis=1)
                grad_y = weight * height * tl.sum(grad_output * d_sampled_dy, axis=1)
                tl.store(grad_location_ptr + 2 * point, grad_x, mask=query_mask)
                tl.store(grad_location_ptr + 2 * point + 1, grad_y, mask=query_mask)


def _level_tables(spatial_shapes_list, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """`(levels, 2)` int32 (height, width) and `(levels,)` int32 first-key index of each level."""
    shapes = torch.tensor([[int(h), int(w)] for h, w in spatial_shapes_list], dtype=torch.int32)
    starts = torch.cat([shapes.new_zeros(1), (shapes[:, 0] * shapes[:, 1]).cumsum(0)[:-1].to(torch.int32)])
    return shapes.to(device), starts.to(device)


def _launch_grid(batch: int, num_heads: int, num_queries: int) -> tuple[int, int]:
    return batch * num_heads, triton.cdiv(num_queries, BLOCK_QUERIES)


class _MultiScaleDeformableAttention(torch.autograd.Function):
    @staticmethod
    def forward(ctx, value, shapes, starts, sampling_locations, attention_weights):
        batch, num_keys, num_heads, head_dim = value.shape
        _, num_queries, _, num_levels, num_points, _ = sampling_locations.shape
        output_dtype = torch.promote_types(value.dtype, attention_weights.dtype)
        output = value.new_empty(batch, num_queries, num_heads * head_dim, dtype=output_dtype)
        constants = dict(
            NUM_HEADS=num_heads, HEAD_DIM=head_dim, NUM_LEVELS=num_levels, NUM_POINTS=num_points,
            BLOCK_Q=BLOCK_QUERIES, BLOCK_D=triton.next_power_of_2(head_dim),
        )  # fmt: skip
        _forward_kernel[_launch_grid(batch, num_heads, num_queries)](
            value, shapes, starts, sampling_locations, attention_weights, output, num_queries, num_keys, **constants
        )
        ctx.save_for_backward(value, shapes, starts, sampling_locations, attention_weights)
        ctx.constants = constants
        return output

    @staticmethod
    def backward(ctx, grad_output):
        value, shapes, starts, sampling_locations, attention_weights = ctx.saved_tensors
        batch, num_keys, num_heads, _ = value.shape
        num_queries = sampling_locations.shape[1]
        grad_value = torch.zeros(value.shape, dtype=torch.float32, device=value.device)
        grad_locations = torch.empty(sampling_locations.shape, dtype=torch.float32, device=value.device)
        grad_weights = torch.empty(attention_weights.shape, dtype=torch.float32, device=value.device)
        _backward_kernel[_launch_grid(batch, num_heads, num_queries)](
            value, shapes, starts, sampling_locations, attention_weights, grad_output.contiguous(),
            grad_value, grad_locations, grad_weights, num_queries, num_keys, **ctx.constants,
        )  # fmt: skip
        return (
            grad_value.to(value.dtype),
            None,
            None,
            grad_locations.to(sampling_locations.dtype),
            grad_weights.to(attention_weights.dtype),
        )


def multi_scale_deformable_attention_triton(
    value: torch.Tensor,
    spatial_shapes_list: list[tuple[int, int]],
    sampling_locations: torch.Tensor,
    attention_weights: torch.Tensor,
) -> torch.Tensor:
    """
    Drop-in for transformers' `multi_scale_deformable_attention` (same arguments and layouts: `value` `(batch, keys,
    heads, head_dim)`, `sampling_locations` `(batch, queries, heads, levels, points, 2)` in [0, 1], weights without the
    last axis), differentiable in `value`, `sampling_locations` and `attention_weights`. Returns `(batch, queries,
    heads * head_dim)` in the promoted dtype of `value` and `attention_weights`; the kernels accumulate in float32.
    """
    if triton is None:
        raise RuntimeError("the Triton deformable-attention kernel needs the `triton` package (pip install triton)")
    batch, num_keys, num_heads, _ = value.shape
    if sampling_locations.dim() != 6 or sampling_locations.shape[:3] != (batch, sampling_locations.shape[1], num_heads):
        raise ValueError(
            f"sampling_locations must be (batch={batch}, queries, heads={num_heads}, levels, points, 2), got "
            f"{tuple(sampling_locations.shape)}"
        )
    if attention_weights.shape != sampling_locations.shape[:-1]:
        raise ValueError(
            f"attention_weights {tuple(attention_weights.shape)} must be sampling_locations' shape without the "
            f"last axis {tuple(sampling_locations.shape[:-1])}"
        )
    if sum(int(h) * int(w) for h, w in spatial_shapes_list) != num_keys:
        raise ValueError(f"spatial shapes {list(spatial_shapes_list)} do not add up to the {num_keys} value rows")
    if len(spatial_shapes_list) != sampling_locations.shape[3]:
        raise ValueError(f"{len(spatial_shapes_list)} spatial shapes for {sampling_locations.shape[3]} levels")
    shapes, starts = _level_tables(spatial_shapes_list, value.device)
    return _MultiScaleDeformableAttention.apply(
        value.contiguous(), shapes, starts, sampling_locations.contiguous(), attention_weights.contiguous()
    )


__all__ = ["is_available", "multi_scale_deformable_attention_triton"]
