import pytest
import torch
import torch.nn.functional as F

from tdos import sliding_window
from tdos.modeling_tdos_ood_slot import anomaly_score_from_semantic
from tdos.sliding_window import semantic_map_at_input_size, sliding_window_starts


@pytest.fixture
def eval_model(tiny_model):
    return tiny_model.eval()  # tiny preset: patch 8, crop 64, stride 48


@pytest.mark.parametrize(
    "length, crop, stride, expected",
    [
        (2048, 512, 341, [0, 341, 682, 1023, 1364, 1536]),
        (1024, 512, 341, [0, 341, 512]),
        (512, 512, 341, [0]),
        (288, 512, 341, [0]),
        (100, 64, 48, [0, 36]),
        (64, 64, 48, [0]),
    ],
)
def test_sliding_window_starts_follow_mmseg(length, crop, stride, expected):
    assert sliding_window_starts(length, crop, stride) == expected


def test_cityscapes_scale_gives_eighteen_windows():
    assert len(sliding_window_starts(1024, 512, 341)) * len(sliding_window_starts(2048, 512, 341)) == 18


@pytest.mark.parametrize("size", [(64, 64), (40, 56), (44, 61)])
def test_slide_equals_whole_when_the_image_fits_one_window(eval_model, size):
    pixel_values = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    slide = eval_model.predict(pixel_values, inference_mode="slide")
    whole = eval_model.predict(pixel_values, inference_mode="whole")
    assert slide.semantic_map.shape == (2, 20, *size)
    assert slide.anomaly_score.shape == (2, *size)
    torch.testing.assert_close(slide.semantic_map, whole.semantic_map)
    torch.testing.assert_close(slide.anomaly_score, whole.anomaly_score)


def test_whole_mode_matches_forward_upsampled(eval_model):
    pixel_values = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        reference = F.interpolate(eval_model(pixel_values).semantic_map, size=(64, 128), mode="bilinear")
    output = eval_model.predict(pixel_values, inference_mode="whole")
    torch.testing.assert_close(output.semantic_map, reference)


def test_overlap_averaging_covers_every_pixel(eval_model, monkeypatch):
    # A window semantic map equal to 1 everywhere must average to exactly 1 everywhere (no pixel left uncovered
    # or counted twice), for sides shorter than, equal to and longer than the crop.
    def ones(model, pixel_values, prompt_embeddings):
        return pixel_values.new_ones(pixel_values.shape[0], 20, *pixel_values.shape[-2:])

    monkeypatch.setattr(sliding_window, "semantic_map_at_input_size", ones)
    for size in [(64, 200), (100, 130), (40, 150), (64, 64)]:
        output = eval_model.predict(torch.zeros(2, 3, *size), window_batch_size=4)
        torch.testing.assert_close(output.semantic_map, torch.ones(2, 20, *size))


def test_slide_averages_the_windows(eval_model):
    # 64x100 with crop 64 / stride 48: windows at columns 0 and 36 overlap on columns 36..63.
    pixel_values = torch.randn(1, 3, 64, 100, generator=torch.Generator().manual_seed(1))
    output = eval_model.predict(pixel_values, inference_mode="slide", window_batch_size=1)
    text = eval_model.compute_text_embeddings()
    left = semantic_map_at_input_size(eval_model, pixel_values[..., :64], text)
    right = semantic_map_at_input_size(eval_model, pixel_values[..., 36:], text)
    expected = torch.zeros(1, 20, 64, 100)
    expected[..., :64] += left
    expected[..., 36:] += right
    expected[..., 36:64] /= 2
    torch.testing.assert_close(output.semantic_map, expected)
    assert not torch.allclose(left[..., 36:], right[..., :28])  # the overlap really mixes two different maps


def test_window_batch_size_does_not_change_the_result(eval_model):
    pixel_values = torch.randn(2, 3, 72, 150, generator=torch.Generator().manual_seed(2))
    one = eval_model.predict(pixel_values, window_batch_size=1)
    many = eval_model.predict(pixel_values, window_batch_size=16)
    torch.testing.assert_close(one.semantic_map, many.semantic_map, atol=1e-5, rtol=1e-5)


def test_text_branch_runs_once_per_call(eval_model, monkeypatch):
    calls = []
    original = eval_model.text_encoder.forward
    monkeypatch.setattr(eval_model.text_encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    eval_model.train()  # no cache in training mode: every compute_text_embeddings() call runs the text tower
    eval_model.predict(torch.randn(1, 3, 100, 200), window_batch_size=2)  # 2 x 4 windows in 4 batches
    assert len(calls) == 1


@pytest.mark.parametrize("method", ["ood_probability", "ood_logit", "rba", "max_softmax"])
def test_anomaly_score_from_the_averaged_semantic_map(eval_model, method):
    output = eval_model.predict(torch.randn(1, 3, 64, 100), anomaly_score=method)
    expected = anomaly_score_from_semantic(output.semantic_map, method, 19)
    torch.testing.assert_close(output.anomaly_score, expected)


def test_max_softmax_ranks_a_confident_known_class_below_an_undecided_pixel():
    semantic_map = torch.zeros(1, 20, 1, 2)
    semantic_map[0, 3, 0, 0] = 1.0  # pixel 0: class 3; pixel 1: all known classes alike
    semantic_map[0, 19] = 5.0  # the OOD channel is not looked at
    score = anomaly_score_from_semantic(semantic_map, "max_softmax", 19)[0, 0]
    assert score[0] < score[1]
    torch.testing.assert_close(score[1], torch.tensor(-1 / 19))
    with pytest.raises(ValueError, match="expected ood_probability, ood_logit, rba or max_softmax"):
        anomaly_score_from_semantic(semantic_map, "entropy", 19)


def test_defaults_come_from_the_config(eval_model):
    pixel_values = torch.randn(1, 3, 64, 100)
    eval_model.config.inference_mode = "whole"
    eval_model.config.anomaly_score = "ood_logit"
    default = eval_model.predict(pixel_values)
    explicit = eval_model.predict(pixel_values, inference_mode="whole", anomaly_score="ood_logit")
    torch.testing.assert_close(default.anomaly_score, explicit.anomaly_score)
    slide = eval_model.predict(pixel_values, inference_mode="slide")
    assert not torch.allclose(default.semantic_map, slide.semantic_map)


def test_bf16_autocast_returns_float32(eval_model):
    with torch.autocast("cpu", dtype=torch.bfloat16):
        output = eval_model.predict(torch.randn(1, 3, 64, 100))
    assert output.semantic_map.dtype == torch.float32
    assert torch.isfinite(output.anomaly_score).all()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"inference_mode": "tiles"}, "inference_mode must be one of"),
        ({"anomaly_score": "energy"}, "anomaly_score must be one of"),
        ({"window_batch_size": 0}, "window_batch_size must be >= 1"),
    ],
)
def test_bad_arguments(eval_model, kwargs, message):
    with pytest.raises(ValueError, match=message):
        eval_model.predict(torch.randn(1, 3, 64, 64), **kwargs)


def test_bad_pixel_values(eval_model):
    with pytest.raises(ValueError, match="pixel_values must have shape"):
        eval_model.predict(torch.randn(3, 64, 64))


def test_predict_runs_in_eval_mode_and_restores_the_mode(tiny_model):
    pixel_values = torch.randn(1, 3, 64, 128, generator=torch.Generator().manual_seed(1))
    expected = tiny_model.eval().predict(pixel_values, inference_mode="whole").semantic_map
    modes = []
    handle = tiny_model.context_decoder.register_forward_pre_hook(lambda module, args: modes.append(module.training))
    tiny_model.train()
    got = tiny_model.predict(pixel_values, inference_mode="whole").semantic_map
    handle.remove()
    assert modes == [False]  # context-decoder dropout off: test-time code
    torch.testing.assert_close(got, expected)
    assert tiny_model.training and tiny_model.context_decoder.training
    assert not tiny_model.text_encoder.training  # frozen towers stay in eval mode
