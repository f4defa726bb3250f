import numpy as np
import pytest
import torch
from PIL import Image
from transformers import AutoImageProcessor
from transformers.image_utils import OPENAI_CLIP_MEAN, OPENAI_CLIP_STD, SizeDict

from tdos import TDOSImageProcessor, TDOSImageProcessorPil
from tdos.image_processing_tdos import keep_ratio_size, remap_labels
from tdos.modeling_tdos import TDOSOutput


SMALL = {"shortest_edge": 64, "longest_edge": 128}
BACKENDS = [TDOSImageProcessor, TDOSImageProcessorPil]


def random_rgb(height, width, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    "size, scale, divisor, expected",
    [
        ((1024, 2048), (1024, 2048), 16, (1024, 2048)),  # Cityscapes
        ((1080, 1920), (1024, 2048), 16, (1024, 1824)),  # short side binds: 1820 -> 1824
        ((720, 1280), (512, 512), 16, (288, 512)),  # Road Anomaly at (512, 512)
        ((2048, 1024), (1024, 2048), 16, (2048, 1024)),  # portrait
        ((5, 7), (64, 128), 8, (64, 88)),  # tiny images are upscaled
    ],
)
def test_keep_ratio_size(size, scale, divisor, expected):
    target = keep_ratio_size(*size, SizeDict(shortest_edge=scale[0], longest_edge=scale[1]), divisor)
    assert target == expected
    assert all(side % divisor == 0 for side in target)


def test_defaults_are_the_paper_test_scale_and_clip_normalisation():
    processor = TDOSImageProcessor()
    assert (processor.size.shortest_edge, processor.size.longest_edge) == (1024, 2048)
    assert tuple(processor.image_mean) == tuple(OPENAI_CLIP_MEAN)
    assert processor.size_divisor == 16
    pixel_values = processor(Image.fromarray(random_rgb(512, 1024)), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 1024, 2048)


@pytest.mark.parametrize("cls", BACKENDS)
def test_normalisation_round_trip(cls):
    image = random_rgb(64, 128)
    processor = cls(size=SMALL, size_divisor=8)
    pixel_values = processor(Image.fromarray(image), return_tensors="pt")["pixel_values"][0]
    assert pixel_values.shape == (3, 64, 128)  # already at the scale: no resize
    mean, std = torch.tensor(OPENAI_CLIP_MEAN)[:, None, None], torch.tensor(OPENAI_CLIP_STD)[:, None, None]
    restored = (pixel_values * std + mean) * 255
    torch.testing.assert_close(restored, torch.from_numpy(image).permute(2, 0, 1).float(), atol=1e-3, rtol=0)


def test_backends_agree():
    image = Image.fromarray(random_rgb(50, 130))
    fast = TDOSImageProcessor(size=SMALL, size_divisor=8)(image, return_tensors="pt")["pixel_values"]
    slow = TDOSImageProcessorPil(size=SMALL, size_divisor=8)(image, return_tensors="pt")["pixel_values"]
    assert fast.shape == slow.shape == (1, 3, 48, 128)
    assert (fast - slow).abs().mean() < 0.05  # PIL and torchvision bilinear differ slightly


def odd_inputs():
    rgb = random_rgb(30, 40)
    gray = rgb[..., 0]
    sixteen = gray.astype(np.uint16) * 257
    rgba = np.concatenate([rgb, np.full((30, 40, 1), 255, np.uint8)], -1)
    return {
        "gray PIL": (Image.fromarray(gray), gray),
        "gray array": (gray, gray),
        "RGBA PIL (opaque)": (Image.fromarray(rgba, "RGBA"), rgb),
        "RGBA array (opaque)": (rgba, rgb),
        "16-bit PIL": (Image.fromarray(sixteen), gray),
        "16-bit array": (sixteen, gray),
        "16-bit RGB array": (np.repeat(sixteen[..., None], 3, -1), gray),
        "16-bit tensor": (torch.from_numpy(sixteen.astype(np.int32)).to(torch.uint16), gray),
    }


@pytest.mark.parametrize("cls", BACKENDS)
@pytest.mark.parametrize("name", list(odd_inputs()))
def test_odd_inputs_become_the_same_rgb_image(cls, name):
    image, expected = odd_inputs()[name]
    expected = expected if expected.ndim == 3 else np.repeat(expected[..., None], 3, -1)
    processor = cls(size={"shortest_edge": 30, "longest_edge": 40}, size_divisor=2)  # no resize: 30x40 fits
    pixel_values = processor(image, return_tensors="pt")["pixel_values"]
    reference = processor(Image.fromarray(expected), return_tensors="pt")["pixel_values"]
    assert pixel_values.shape == (1, 3, 30, 40)
    torch.testing.assert_close(pixel_values, reference, atol=1e-4, rtol=0)


@pytest.mark.parametrize("cls", BACKENDS)
def test_tiny_images_and_non_multiples_of_the_patch_size(cls):
    processor = cls(size=SMALL, size_divisor=8)
    for height, width in [(5, 7), (1, 1), (63, 129), (100, 37)]:
        pixel_values = processor(Image.fromarray(random_rgb(height, width)), return_tensors="pt")["pixel_values"]
        assert pixel_values.shape[-2] % 8 == 0 and pixel_values.shape[-1] % 8 == 0
        assert max(pixel_values.shape[-2:]) <= 128 + 4 and min(pixel_values.shape[-2:]) >= 8


@pytest.mark.parametrize("cls", BACKENDS)
def test_segmentation_maps_nearest_and_remapped(cls):
    labels = np.zeros((32, 64), np.uint8)
    labels[:, 32:] = 7  # Cityscapes labelId 7 = road (trainId 0)
    labels[:16, :8] = 26  # car (trainId 13)
    labels[16:, :8] = 3  # not mapped -> ignore
    processor = cls(size=SMALL, size_divisor=8, label_mapping={7: 0, 26: 13})
    output = processor(Image.fromarray(random_rgb(32, 64)), segmentation_maps=Image.fromarray(labels), return_tensors="pt")
    assert output["labels"].dtype == torch.int64
    assert output["labels"].shape == (1, 64, 128) == output["pixel_values"].shape[:1] + output["pixel_values"].shape[2:]
    assert set(output["labels"].unique().tolist()) == {0, 13, 255}
    assert output["labels"][0, 0, 0] == 13 and output["labels"][0, -1, 0] == 255 and output["labels"][0, 0, -1] == 0


def test_label_mapping_survives_save_and_load(tmp_path):
    TDOSImageProcessor(label_mapping={7: 0, 26: 13}).save_pretrained(tmp_path)
    loaded = AutoImageProcessor.from_pretrained(tmp_path)
    assert isinstance(loaded, TDOSImageProcessor)
    assert remap_labels(np.array([7, 26, 1]), loaded.label_mapping).tolist() == [0, 13, 255]


def test_pil_backend_selected_by_auto_class(tmp_path):
    TDOSImageProcessor(size=SMALL).save_pretrained(tmp_path)
    assert isinstance(AutoImageProcessor.from_pretrained(tmp_path, backend="pil"), TDOSImageProcessorPil)


def test_clear_errors():
    processor = TDOSImageProcessor(size=SMALL, size_divisor=8)
    with pytest.raises(ValueError, match="expected the size of its image"):
        processor(Image.fromarray(random_rgb(32, 64)), segmentation_maps=Image.fromarray(np.zeros((30, 64), np.uint8)))
    with pytest.raises(ValueError, match="different aspect ratios"):
        processor([Image.fromarray(random_rgb(32, 64)), Image.fromarray(random_rgb(64, 64))], return_tensors="pt")
    with pytest.raises(ValueError, match="shortest_edge"):
        processor(Image.fromarray(random_rgb(32, 64)), size={"height": 64, "width": 64})


def fake_outputs():
    semantic = torch.zeros(1, 20, 4, 8)
    semantic[0, 0] = 0.9  # road everywhere ...
    semantic[0, 19, :2, :2] = 1.0  # ... but OOD at the top-left
    anomaly = torch.linspace(0, 1, 32).reshape(1, 4, 8)
    return TDOSOutput(semantic_map=semantic, anomaly_score=anomaly)


def test_post_process_semantic_and_anomaly_maps():
    processor = TDOSImageProcessor()
    outputs = fake_outputs()
    (labels,) = processor.post_process_semantic_segmentation(outputs, target_sizes=[(40, 80)])
    assert labels.shape == (40, 80) and labels.dtype == torch.int64
    assert labels[0, 0] == 19 and labels[-1, -1] == 0
    (scores,) = processor.post_process_anomaly_map(outputs, target_sizes=[(40, 80)])
    assert scores.shape == (40, 80) and scores.dtype == torch.float32
    assert scores[0, 0] < scores[-1, -1]
    (unresized,) = processor.post_process_anomaly_map(outputs)
    torch.testing.assert_close(unresized, outputs.anomaly_score[0])
    with pytest.raises(ValueError, match="target_sizes"):
        processor.post_process_anomaly_map(outputs, target_sizes=[(4, 8), (4, 8)])


def test_panoptic_post_processing_ids_are_labels():
    processor = TDOSImageProcessor()
    (result,) = processor.post_process_panoptic_segmentation(fake_outputs(), target_sizes=[(4, 8)], threshold=0.9)
    info = {segment["label_id"]: segment for segment in result["segments_info"]}
    assert set(info) == {0, 19}
    segmentation = result["segmentation"]
    assert (segmentation == info[19]["id"]).sum() == 4
    assert info[19]["score"] == pytest.approx(fake_outputs().anomaly_score[0, :2, :2].mean().item())
    assert info[0]["score"] == pytest.approx(0.9)
    (thresholded,) = processor.post_process_panoptic_segmentation(fake_outputs(), anomaly_threshold=0.5)
    ood = [s for s in thresholded["segments_info"] if s["label_id"] == 19][0]
    assert (thresholded["segmentation"] == ood["id"]).sum() == 16  # the upper half of the linspace
    # below the threshold the top-left OOD arg-max pixels take their best in-distribution class (road), not class 18
    assert {s["label_id"] for s in thresholded["segments_info"]} == {0, 19}
