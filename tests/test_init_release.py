"""The released initialisation (docs/method.md §5): PyTorch defaults where the release never re-initialises,
mmcv's module inits where it has them, truncated normal 0.02 in the context decoder."""

import math

import pytest
import torch

from conftest import build_tiny_model


@pytest.fixture(scope="module")
def model():
    return build_tiny_model(hidden_dim=64, decoder_ffn_dim=256, pixel_decoder_ffn_dim=256)


def uniform_bound(weight):
    return weight.abs().max().item(), weight.std().item() * math.sqrt(3)  # both ~ the bound of U(-b, b)


def assert_uniform(weight, bound):
    largest, from_std = uniform_bound(weight)
    assert largest <= bound * (1 + 1e-6)
    assert largest > 0.95 * bound and from_std == pytest.approx(bound, rel=0.1)


def test_linear_layers_outside_the_context_decoder_have_pytorch_default_init(model):
    # kaiming_uniform(a=sqrt(5)): U(+-1/sqrt(fan_in)); bias U(+-1/sqrt(fan_in))
    for linear in (model.transformer_decoder.class_predictor, model.transformer_decoder.query_proj[0],
                   model.pixel_decoder.layers[0].fc1, model.transformer_decoder.decoder.layers[0].fc1):  # fmt: skip
        assert_uniform(linear.weight, 1 / math.sqrt(linear.in_features))
        assert linear.bias.abs().max() <= 1 / math.sqrt(linear.in_features) and linear.bias.abs().max() > 0


def test_attention_follows_nn_multihead_attention(model):
    dim = model.config.hidden_dim
    cross = model.pixel_decoder.layers[0].cross_attn
    assert_uniform(cross.in_proj_weight, math.sqrt(6 / (dim + 3 * dim)))
    assert_uniform(cross.out_proj.weight, 1 / math.sqrt(dim))
    assert not cross.in_proj_bias.any() and not cross.out_proj.bias.any()
    self_attention = model.transformer_decoder.decoder.layers[0].self_attn
    joint = torch.cat([self_attention.q_proj.weight, self_attention.k_proj.weight, self_attention.v_proj.weight])
    assert_uniform(joint, math.sqrt(6 / (dim + 3 * dim)))
    assert_uniform(self_attention.out_proj.weight, 1 / math.sqrt(dim))
    assert not self_attention.q_proj.bias.any() and not self_attention.out_proj.bias.any()


def test_context_decoder_linears_are_truncated_normal(model):
    weight = model.context_decoder.layers[0].mlp[0].weight
    assert weight.std().item() == pytest.approx(0.02, rel=0.1)
    assert not model.context_decoder.out_proj[1].bias.any()


def test_convolutions_as_released(model):
    # mmcv ConvModule: kaiming normal, fan-out; plain Conv2d (mask projection): PyTorch default
    conv = model.pixel_decoder.input_projections[0][0]
    fan_out = conv.out_channels * conv.kernel_size[0] * conv.kernel_size[1]
    assert conv.weight.std().item() == pytest.approx(math.sqrt(2 / fan_out), rel=0.1)
    mask_projection = model.pixel_decoder.mask_projection
    assert_uniform(mask_projection.weight, 1 / math.sqrt(mask_projection.in_channels))
