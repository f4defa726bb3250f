"""The pixel decoder's deformable attention: the PyTorch sampling core against transformers' function, the module
against transformers' module with the same weights, and the kernel switch (Triton falls back to it on the CPU)."""

import pytest
import torch
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention,
    multi_scale_deformable_attention as transformers_deformable_attention,
)

from tdos.deformable_attention import TDOSMultiscaleDeformableAttention, multi_scale_deformable_attention


SHAPES = [(3, 5), (6, 10), (12, 20)]


def random_inputs(batch=2, heads=4, head_dim=8, points=4, seed=0):
    generator = torch.Generator().manual_seed(seed)
    keys = sum(h * w for h, w in SHAPES)
    value = torch.randn(batch, keys, heads, head_dim, generator=generator)
    locations = torch.rand(batch, keys, heads, len(SHAPES), points, 2, generator=generator) * 1.4 - 0.2
    weights = torch.rand(batch, keys, heads, len(SHAPES), points, generator=generator)
    return [tensor.requires_grad_() for tensor in (value, locations, weights)]


def test_sampling_core_matches_transformers_outputs_and_gradients():
    inputs = random_inputs()
    expected = transformers_deformable_attention(inputs[0], SHAPES, inputs[1], inputs[2])
    output = multi_scale_deformable_attention(inputs[0], SHAPES, inputs[1], inputs[2])
    assert output.shape == expected.shape and output.is_contiguous()
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=1e-5)
    grad_output = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    for grad, reference in zip(
        torch.autograd.grad(output, inputs, grad_output), torch.autograd.grad(expected, inputs, grad_output)
    ):
        torch.testing.assert_close(grad, reference, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("kernel", ["pytorch", "triton"])
def test_module_matches_transformers_module_with_the_same_weights(kernel):
    torch.manual_seed(0)
    reference = Mask2FormerPixelDecoderEncoderMultiscaleDeformableAttention(64, 4, 3, 4)
    ours = TDOSMultiscaleDeformableAttention(64, 4, 3, 4, kernel=kernel)
    ours.load_state_dict(reference.state_dict())  # same parameters and checkpoint keys
    generator = torch.Generator().manual_seed(2)
    keys = sum(h * w for h, w in SHAPES)
    hidden_states = torch.randn(2, keys, 64, generator=generator)
    positions = torch.randn(2, keys, 64, generator=generator)
    reference_points = torch.rand(2, keys, 3, 2, generator=generator)
    expected, _ = reference(
        hidden_states, encoder_hidden_states=hidden_states, position_embeddings=positions,
        reference_points=reference_points, spatial_shapes_list=SHAPES,
    )  # fmt: skip
    output = ours(hidden_states, positions, reference_points, SHAPES)  # triton: the CPU falls back to PyTorch
    torch.testing.assert_close(output, expected, atol=1e-6, rtol=1e-5)


def test_unknown_kernel_is_refused():
    with pytest.raises(ValueError, match="pytorch.*triton.*'cuda'"):
        TDOSMultiscaleDeformableAttention(64, 4, 3, 4, kernel="cuda")
    module = TDOSMultiscaleDeformableAttention(64, 4, 3, 4)
    with pytest.raises(ValueError, match="got 'fast'"):
        module.kernel = "fast"


def test_config_refuses_an_unknown_kernel():
    from tdos import TDOSConfig

    with pytest.raises(ValueError, match="deformable_attention_kernel must be one of"):
        TDOSConfig.from_preset("tiny", deformable_attention_kernel="cuda")


def test_triton_kernel_config_predicts_like_pytorch_on_the_cpu_and_can_be_switched():
    from conftest import build_tiny_model

    pytorch_model = build_tiny_model().eval()
    triton_model = build_tiny_model(deformable_attention_kernel="triton").eval()
    assert all(layer.self_attn.kernel == "triton" for layer in triton_model.pixel_decoder.layers)
    pixel_values = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(0))
    expected = pytorch_model.predict(pixel_values).anomaly_score
    assert torch.equal(triton_model.predict(pixel_values).anomaly_score, expected)  # the CPU falls back
    triton_model.set_deformable_attention_kernel("pytorch")
    assert triton_model.config.deformable_attention_kernel == "pytorch"
    assert all(layer.self_attn.kernel == "pytorch" for layer in triton_model.pixel_decoder.layers)
    with pytest.raises(ValueError, match="got 'cuda'"):
        triton_model.set_deformable_attention_kernel("cuda")



def gathered_inputs(batch=2, heads=4, head_dim=8, points=4, seed=3, spread=3.0):
    """Inputs of the gathered core: locations from well outside to well inside every level, and exactly on the
    first and last cell centres and borders."""
    generator = torch.Generator().manual_seed(seed)
    keys = sum(h * w for h, w in SHAPES)
    value = torch.randn(batch, keys, heads, head_dim, generator=generator)
    locations = torch.rand(batch, keys, heads, len(SHAPES), points, 2, generator=generator) * spread - (spread - 1) / 2
    locations[:, :4, ..., 0] = torch.tensor([0.0, 1.0, 0.5 / 5, 1 - 0.5 / 5])[:, None, None, None]  # borders, centres
    weights = torch.rand(batch, keys, heads, len(SHAPES), points, generator=generator)
    return value, locations, weights


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_gathered_core_matches_transformers_inside_outside_and_on_the_borders(dtype):
    from tdos.deformable_attention import gathered_deformable_attention

    value, locations, weights = (tensor.to(dtype) for tensor in gathered_inputs())
    # the reference in float64 on the same (rounded) inputs (the gathered core: float32, or float64 for float64)
    expected = transformers_deformable_attention(value.double(), SHAPES, locations.double(), weights.double())
    output = gathered_deformable_attention(value, SHAPES, locations, weights)
    assert output.dtype == dtype and output.shape == expected.shape and output.is_contiguous()
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]  # bf16: the output rounding
    torch.testing.assert_close(output.double(), expected, atol=tolerance, rtol=tolerance)
    far_away = locations.clone()
    far_away[..., 0] = 7.5  # every sample right of every level: grid_sample's zero padding
    assert gathered_deformable_attention(value, SHAPES, far_away, weights).abs().max() == 0


def test_gathered_core_gives_nan_only_where_a_location_is_nan():
    from tdos.deformable_attention import gathered_deformable_attention

    value, locations, weights = gathered_inputs()
    locations[1, 7, 2, 1, 3, 0] = float("nan")
    output = gathered_deformable_attention(value, SHAPES, locations, weights).view(2, -1, 4, 8)
    assert output[1, 7, 2].isnan().all()
    output[1, 7, 2] = 0
    assert torch.isfinite(output).all()


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.bfloat16])
def test_gathered_core_from_offsets_matches_transformers_at_the_modules_locations(dtype):
    from tdos.deformable_attention import gathered_deformable_attention_from_offsets

    value, locations, weights = (tensor.to(dtype) for tensor in gathered_inputs())
    generator = torch.Generator().manual_seed(5)
    references = torch.rand(*locations.shape[:2], len(SHAPES), 2, generator=generator).to(dtype)
    sizes = torch.tensor([[width, height] for height, width in SHAPES], dtype=torch.float64)
    offsets = ((locations.double() - references.double()[:, :, None, :, None]) * sizes[:, None]).to(dtype)
    # the module's locations, reference + offset / size, in float64 from the same (rounded) inputs
    exact_locations = references.double()[:, :, None, :, None] + offsets.double() / sizes[:, None]
    expected = transformers_deformable_attention(value.double(), SHAPES, exact_locations, weights.double())
    output = gathered_deformable_attention_from_offsets(value, SHAPES, references, offsets, weights)
    assert output.dtype == dtype and output.shape == expected.shape
    tolerance = {torch.float64: 1e-10, torch.float32: 1e-5, torch.bfloat16: 2e-2}[dtype]
    torch.testing.assert_close(output.double(), expected, atol=tolerance, rtol=tolerance)


def test_gathered_core_with_int64_rows_equals_int32_rows(monkeypatch):
    from tdos import deformable_attention

    value, locations, weights = gathered_inputs()
    int32_rows = deformable_attention.gathered_deformable_attention(value, SHAPES, locations, weights)
    monkeypatch.setattr(deformable_attention, "INT32_TABLE_ROWS", 0)
    int64_rows = deformable_attention.gathered_deformable_attention(value, SHAPES, locations, weights)
    assert torch.equal(int64_rows, int32_rows)


def test_module_uses_the_gathered_core_only_for_cpu_inference(monkeypatch):
    from tdos import deformable_attention

    calls = []
    original = deformable_attention.gathered_deformable_attention_from_offsets
    monkeypatch.setattr(
        deformable_attention,
        "gathered_deformable_attention_from_offsets",
        lambda *args: calls.append(1) or original(*args),
    )
    torch.manual_seed(0)
    module = TDOSMultiscaleDeformableAttention(64, 4, 3, 4)
    generator = torch.Generator().manual_seed(2)
    keys = sum(h * w for h, w in SHAPES)
    inputs = (torch.randn(2, keys, 64, generator=generator), torch.randn(2, keys, 64, generator=generator),
              torch.rand(2, keys, 3, 2, generator=generator), SHAPES)  # fmt: skip
    trained = module(*inputs)  # parameters need gradients: grid_sample
    assert calls == [] and trained.requires_grad
    module.requires_grad_(False)
    inferred = module(*inputs)
    assert calls == [1]
    torch.testing.assert_close(inferred, trained.detach(), atol=1e-6, rtol=1e-5)
    with torch.no_grad():
        traced = torch.jit.trace(lambda *tensors: module(*tensors, SHAPES), inputs[:3], check_trace=False)
    assert calls == [1]  # tracing keeps grid_sample (export)
    torch.testing.assert_close(traced(*inputs[:3]), trained.detach(), atol=1e-6, rtol=1e-5)


def test_grid_sample_core_is_finite_in_bfloat16_where_the_cpu_grid_sample_of_a_strided_map_is_not():
    """torch 2.14's CPU `grid_sample` returns NaNs for bfloat16 inputs that are non-contiguous views (the permuted
    value maps of transformers' core) when samples fall outside the map; the project's core makes them contiguous."""
    generator = torch.Generator().manual_seed(0)
    shapes = [(16, 16), (32, 32), (64, 64)]
    keys = sum(h * w for h, w in shapes)
    value = torch.randn(1, keys, 8, 32, generator=generator).bfloat16()
    locations = (torch.rand(1, keys, 8, 3, 4, 2, generator=generator) * 1.6 - 0.3).bfloat16()
    weights = torch.rand(1, keys, 8, 3, 4, generator=generator).softmax(-1).bfloat16()
    output = multi_scale_deformable_attention(value, shapes, locations, weights)
    assert torch.isfinite(output).all()
    expected = transformers_deformable_attention(value.float(), shapes, locations.float(), weights.float())
    assert (output.float() - expected).abs().mean() < 0.01  # bf16 coordinates and samples: no garbage
