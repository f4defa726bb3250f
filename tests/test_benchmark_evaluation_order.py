"""Benchmark evaluation as released (docs/method.md §7): exact keep-ratio test sizes padded by the model, and the semantic
map resized to the original image before the softmax; the earlier order and rounding stay selectable."""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from tdos.benchmark_evaluation import BenchmarkEvaluator
from tdos.image_processing_tdos import TDOSImageProcessor


class RecordingModel(nn.Module):
    """Returns a fixed low-resolution semantic map (steep, so that softmax and resizing do not commute) and records the
    size of the images it is given."""

    def __init__(self, input_stride=16):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))
        self.config = SimpleNamespace(ood_label_id=2, anomaly_score="ood_probability", input_stride=input_stride)
        generator = torch.Generator().manual_seed(0)
        self.semantic_map = torch.rand(1, 3, 4, 6, generator=generator) * 8
        self.input_sizes = []

    def predict(self, pixel_values, inference_mode=None):
        self.input_sizes.append(tuple(pixel_values.shape[-2:]))
        semantic_map = self.semantic_map
        return SimpleNamespace(semantic_map=semantic_map, anomaly_score=semantic_map.softmax(1)[:, 2])


def evaluator(tmp_path, **options):
    return BenchmarkEvaluator(RecordingModel(), TDOSImageProcessor(), tmp_path, **options)


def test_semantic_map_is_resized_to_the_image_before_the_softmax(tmp_path):
    release = evaluator(tmp_path)
    anomaly, labels = release.predict(Image.new("RGB", (60, 40)), (40, 60), scale=(60, 40))
    resized = F.interpolate(release.model.semantic_map, size=(40, 60), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(anomaly, resized.softmax(1)[0, 2].numpy(), rtol=1e-6, atol=1e-7)
    np.testing.assert_array_equal(labels, resized[0].argmax(0).numpy())

    scores_first = evaluator(tmp_path, resize_order="anomaly_score")
    anomaly_after, _ = scores_first.predict(Image.new("RGB", (60, 40)), (40, 60), scale=(60, 40))
    score = F.interpolate(scores_first.model.semantic_map.softmax(1)[:, 2:], size=(40, 60), mode="bilinear")
    np.testing.assert_allclose(anomaly_after, score[0, 0].numpy(), rtol=1e-6, atol=1e-7)
    assert np.abs(anomaly - anomaly_after).max() > 1e-3  # the two orders differ


@pytest.mark.parametrize(
    "size, scale, padded, rounded",
    [
        ((1920, 1080), (1920, 1080), (1080, 1920), (1088, 1920)),  # SMIYC ObstacleTrack
        ((1280, 720), (1280, 720), (720, 1280), (720, 1280)),
        ((1280, 720), (512, 512), (288, 512), (288, 512)),  # Road Anomaly
    ],
)
def test_test_sizes_are_mmcv_keep_ratio_sizes_not_rounded_to_the_stride(tmp_path, size, scale, padded, rounded):
    release = evaluator(tmp_path)
    release.predict(Image.new("RGB", size), size[::-1], scale=scale)
    assert release.model.input_sizes == [padded]
    rounding = evaluator(tmp_path, round_to_stride=True)
    rounding.predict(Image.new("RGB", size), size[::-1], scale=scale)
    assert rounding.model.input_sizes == [rounded]


def test_rn50_anomaly_track_size_is_padded_not_rounded(tmp_path):
    # the training script saves a processor that rounds to the model's input stride (32 for RN50)
    release = BenchmarkEvaluator(RecordingModel(input_stride=32), TDOSImageProcessor(size_divisor=32), tmp_path)
    release.predict(Image.new("RGB", (1280, 720)), (720, 1280), scale=(1280, 720))
    assert release.model.input_sizes == [(720, 1280)]  # rounding to 32 gave 704


def test_unknown_resize_order_is_rejected(tmp_path):
    with pytest.raises(ValueError, match="resize_order must be one of"):
        evaluator(tmp_path, resize_order="logits")
