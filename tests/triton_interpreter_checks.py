"""Checks of the Triton deformable-attention kernels against transformers' grid_sample implementation, run on the
CPU by Triton's interpreter. The interpreter must be switched on before triton is first imported, so
`tests/test_deformable_attention_triton.py` runs this file in a fresh process with `TRITON_INTERPRET=1`; it prints
one JSON line: check name -> "ok" or the failure's traceback.
"""

import json
import os
import traceback

import pytest
import torch
from transformers.models.mask2former.modeling_mask2former import multi_scale_deformable_attention

import tdos.deformable_attention_triton as kernels

# small enough for the interpreter (it runs every program in Python): 3 levels, 4 heads, 4 points
SHAPES = [(2, 3), (4, 6), (7, 11)]
HEADS, HEAD_DIM, POINTS = 4, 8, 4


def random_inputs(dtype=torch.float32, batch=2, num_queries=37, seed=0):
    generator = torch.Generator().manual_seed(seed)
    keys = sum(h * w for h, w in SHAPES)
    value = torch.randn(batch, keys, HEADS, HEAD_DIM, generator=generator)
    # locations partly outside [0, 1]: zero padding and corners on both sides of every border are exercised
    locations = torch.rand(batch, num_queries, HEADS, len(SHAPES), POINTS, 2, generator=generator) * 1.5 - 0.25
    weights = torch.rand(batch, num_queries, HEADS, len(SHAPES), POINTS, generator=generator)
    weights = weights.flatten(-2).softmax(-1).view_as(weights)
    return [tensor.to(dtype).requires_grad_() for tensor in (value, locations, weights)]


def check_forward_and_gradients_match_grid_sample():
    value, locations, weights = random_inputs()
    expected = multi_scale_deformable_attention(value, SHAPES, locations, weights)
    output = kernels.multi_scale_deformable_attention_triton(value, SHAPES, locations, weights)
    assert output.shape == expected.shape == (2, 37, HEADS * HEAD_DIM) and output.dtype == torch.float32
    torch.testing.assert_close(output, expected, atol=1e-5, rtol=1e-5)

    grad_output = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    expected_grads = torch.autograd.grad(expected, (value, locations, weights), grad_output)
    grads = torch.autograd.grad(output, (value, locations, weights), grad_output)
    for name, grad, reference in zip(("value", "locations", "weights"), grads, expected_grads):
        scale = reference.abs().max().item()
        assert scale > 0, name
        torch.testing.assert_close(grad, reference, atol=1e-5 * scale, rtol=1e-4, msg=name)


def check_points_far_outside_the_maps_give_zero_output_and_gradient():
    value, locations, weights = random_inputs(num_queries=5)
    with torch.no_grad():
        locations[:, :2] = 40.0  # every corner outside every level
        locations[:, 2:] = -7.0
    output = kernels.multi_scale_deformable_attention_triton(value, SHAPES, locations, weights)
    assert output.abs().max() == 0
    grads = torch.autograd.grad(output.sum(), (value, locations, weights))
    assert all(grad.abs().max() == 0 for grad in grads)


def check_bfloat16_values_are_accumulated_in_float32():
    value, locations, weights = random_inputs()
    output = kernels.multi_scale_deformable_attention_triton(
        value.detach().bfloat16(), SHAPES, locations.detach(), weights.detach()
    )
    reference = multi_scale_deformable_attention(value.detach().bfloat16().float(), SHAPES, locations, weights)
    assert output.dtype == torch.float32  # promoted with the float32 weights, as grid_sample's path
    torch.testing.assert_close(output, reference.detach(), atol=1e-5, rtol=1e-5)


def check_bad_shapes_are_refused_with_the_expected_layout():
    value, locations, weights = (tensor.detach() for tensor in random_inputs())
    with pytest.raises(ValueError, match="do not add up"):
        kernels.multi_scale_deformable_attention_triton(value, SHAPES[:2] + [(7, 10)], locations, weights)
    with pytest.raises(ValueError, match="attention_weights"):
        kernels.multi_scale_deformable_attention_triton(value, SHAPES, locations, weights[..., :2])


def main() -> None:
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise SystemExit("run with TRITON_INTERPRET=1 (the kernels need the interpreter on the CPU)")
    results = {}
    for name, check in sorted(globals().items()):
        if name.startswith("check_"):
            try:
                check()
                results[name] = "ok"
            except Exception:  # every check reports, one failure does not hide the others
                results[name] = traceback.format_exc()
    print(json.dumps(results))


if __name__ == "__main__":
    main()
