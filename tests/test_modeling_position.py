"""The decoders' parameter-free maps, computed once per shape: equal to transformers' own, shared while cached,
bounded, and recomputed when sharing is off."""

import pytest
import torch
from transformers.models.mask2former.modeling_mask2former import (
    Mask2FormerPixelDecoderEncoderOnly,
    Mask2FormerSinePositionEmbedding,
)

from tdos import modeling_tdos_position
from tdos.modeling_tdos_position import TDOSSinePositionEmbedding, reference_points


def test_sine_maps_equal_transformers_and_are_shared_per_shape_and_dtype():
    ours = TDOSSinePositionEmbedding(num_position_features=16)
    theirs = Mask2FormerSinePositionEmbedding(num_position_features=16, normalize=True)
    shape = torch.Size([2, 32, 5, 7])
    first = ours(shape, "cpu", torch.float32)
    assert torch.equal(first, theirs(shape, "cpu", torch.float32))
    assert ours(shape, torch.device("cpu"), torch.float32) is first  # shared, not rebuilt
    other = ours(torch.Size([2, 32, 7, 5]), "cpu", torch.float32)
    assert other is not first and torch.equal(other, theirs(torch.Size([2, 32, 7, 5]), "cpu", torch.float32))
    assert ours(shape, "cpu", torch.bfloat16).dtype == torch.bfloat16


def test_cache_is_bounded_and_can_be_turned_off(monkeypatch):
    ours = TDOSSinePositionEmbedding(num_position_features=16)
    monkeypatch.setattr(modeling_tdos_position, "MAX_CACHED_MAPS", 2)
    maps = [ours(torch.Size([1, 32, side, side]), "cpu", torch.float32) for side in (2, 3, 4)]
    assert len(ours._maps) == 2
    assert ours(torch.Size([1, 32, 4, 4]), "cpu", torch.float32) is maps[2]  # most recent kept
    assert ours(torch.Size([1, 32, 2, 2]), "cpu", torch.float32) is not maps[0]  # least recent dropped
    monkeypatch.setattr(modeling_tdos_position, "MAX_CACHED_MAPS", 0)
    fresh = TDOSSinePositionEmbedding(num_position_features=16)
    shape = torch.Size([1, 32, 3, 3])
    assert torch.equal(fresh(shape, "cpu", torch.float32), maps[1])
    assert not fresh._maps  # nothing kept


@pytest.mark.parametrize("batch", [1, 3])
def test_reference_points_equal_transformers(batch):
    shapes = [(2, 3), (4, 6), (8, 12)]
    expected = Mask2FormerPixelDecoderEncoderOnly.get_reference_points(shapes, torch.ones(batch, 3, 2), "cpu")
    points = reference_points(shapes, batch, "cpu", torch.float32)
    assert points.shape == (batch, 6 + 24 + 96, 3, 2) and torch.equal(points, expected)
    assert reference_points(shapes, batch, torch.device("cpu"), torch.float32) is points
