import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch
from conftest import build_tiny_model, save_tiny_inference_folder
from PIL import Image
from transformers import pipeline

from tdos import OODSegmentationPipeline, TDOSImageProcessor


@pytest.fixture(scope="module")
def inference_dir(tmp_path_factory):
    """A saved tiny model folder with its image processor and the ood-segmentation pipeline code."""
    return save_tiny_inference_folder(tmp_path_factory.mktemp("tiny_tdos_inference"))


@pytest.fixture(scope="module")
def image_path(tmp_path_factory):
    path = tmp_path_factory.mktemp("images") / "road.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 130, 3), dtype=np.uint8)).save(path)
    return path


def test_saved_folder_carries_processor_and_pipeline(inference_dir):
    config = json.loads((inference_dir / "config.json").read_text())
    assert config["custom_pipelines"]["ood-segmentation"]["impl"] == "pipeline_tdos.OODSegmentationPipeline"
    processor_config = json.loads((inference_dir / "preprocessor_config.json").read_text())
    assert processor_config["auto_map"]["AutoImageProcessor"].endswith("image_processing_tdos.TDOSImageProcessor")
    for name in ("pipeline_tdos.py", "image_processing_tdos.py", "modeling_tdos.py", "configuration_tdos.py"):
        assert (inference_dir / name).exists(), name


def check_ood_output(output, size=(50, 130)):
    assert set(output) == {"anomaly_score", "anomaly_mask", "semantic", "labels"}
    assert output["anomaly_score"].dtype == np.float32 and output["anomaly_score"].shape == size
    assert np.isfinite(output["anomaly_score"]).all()
    assert output["anomaly_mask"].mode == "L" and output["anomaly_mask"].size == size[::-1]
    assert set(np.unique(np.asarray(output["anomaly_mask"]))) <= {0, 255}
    assert output["semantic"].mode == "P" and output["semantic"].size == size[::-1]
    assert output["labels"][19] == "ood" and len(output["labels"]) == 20
    assert np.asarray(output["semantic"]).max() < 20


def test_ood_pipeline_from_a_model_object(image_path):
    model = build_tiny_model().eval()
    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    pipe = pipeline("ood-segmentation", model=model, image_processor=processor)
    assert isinstance(pipe, OODSegmentationPipeline)
    output = pipe(str(image_path))
    check_ood_output(output)
    # The pipeline's maps are the model's predict() post-processed to the original size.
    pixel_values = processor(Image.open(image_path), return_tensors="pt")["pixel_values"]
    expected = processor.post_process_anomaly_map(model.predict(pixel_values), [(50, 130)])[0]
    np.testing.assert_allclose(output["anomaly_score"], expected.numpy(), atol=1e-6)


def test_ood_pipeline_threshold_and_modes(inference_dir, image_path):
    pipe = pipeline("ood-segmentation", model=str(inference_dir), trust_remote_code=True)
    output = pipe(Image.open(image_path))
    check_ood_output(output)
    score = output["anomaly_score"]
    threshold = float(np.median(score))
    mask = np.asarray(pipe(Image.open(image_path), threshold=threshold)["anomaly_mask"]) == 255
    np.testing.assert_array_equal(mask, score >= threshold)
    whole = pipe(Image.open(image_path), inference_mode="whole")["anomaly_score"]
    assert not np.allclose(whole, score)  # 64x168 input: slide (crop 64) differs from whole
    batch = pipe([str(image_path), str(image_path)])
    assert len(batch) == 2
    np.testing.assert_allclose(batch[1]["anomaly_score"], score, atol=1e-6)


def test_stock_image_segmentation_pipeline(inference_dir, image_path):
    pipe = pipeline("image-segmentation", model=str(inference_dir), trust_remote_code=True)
    segments = pipe(str(image_path))
    id2label = pipe.model.config.id2label
    assert segments and all(segment["label"] in id2label.values() for segment in segments)
    coverage = sum(np.asarray(segment["mask"]) // 255 for segment in segments)
    assert coverage.shape == (50, 130) and (coverage == 1).all()  # the segments tile the image


def test_both_pipelines_without_the_package(inference_dir, image_path, tmp_path):
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tdos"] = None  # the package must not be importable
        import numpy as np
        from transformers import pipeline
        pipe = pipeline(model={str(inference_dir)!r}, trust_remote_code=True)
        assert type(pipe).__module__.startswith("transformers_modules"), type(pipe).__module__
        output = pipe({str(image_path)!r}, threshold=0.0)
        assert output["anomaly_score"].dtype == np.float32 and output["anomaly_score"].shape == (50, 130)
        assert (np.asarray(output["anomaly_mask"]) == 255).all()
        segments = pipeline("image-segmentation", model={str(inference_dir)!r}, trust_remote_code=True)({str(image_path)!r})
        print("OK", type(pipe).__name__, len(segments))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK OODSegmentationPipeline" in result.stdout


def test_pipeline_uses_the_processor_scale(inference_dir, image_path, monkeypatch):
    pipe = pipeline("ood-segmentation", model=str(inference_dir), trust_remote_code=True)
    shapes = []
    predict = pipe.model.predict
    monkeypatch.setattr(pipe.model, "predict", lambda pixel_values, **k: shapes.append(pixel_values.shape) or predict(pixel_values, **k))
    pipe(str(image_path))
    assert shapes == [torch.Size([1, 3, 48, 128])]


def test_stock_pipeline_runs_the_configured_inference_mode_and_agrees_on_the_anomaly(inference_dir, image_path):
    """The stock pipeline loads TDOSForSemanticSegmentation, whose inference forward is `predict` (the tiny model is
    configured to slide); at the same threshold its "ood" segment is the ood-segmentation pipeline's anomaly mask."""
    from tdos import TDOSForSemanticSegmentation

    ours = pipeline("ood-segmentation", model=str(inference_dir), trust_remote_code=True)
    reference = ours(str(image_path))
    threshold = float(np.quantile(reference["anomaly_score"], 0.7))
    expected = np.asarray(ours(str(image_path), threshold=threshold)["anomaly_mask"]) == 255
    processor = TDOSImageProcessor.from_pretrained(inference_dir, anomaly_threshold=threshold)
    stock = pipeline("image-segmentation", model=str(inference_dir), trust_remote_code=True, image_processor=processor)
    assert isinstance(stock.model, TDOSForSemanticSegmentation) and stock.model.config.inference_mode == "slide"
    calls = []
    predict = stock.model.predict
    stock.model.predict = lambda pixel_values, **kwargs: calls.append(pixel_values.shape) or predict(pixel_values, **kwargs)
    segments = stock(str(image_path))
    assert calls == [torch.Size([1, 3, 48, 128])]  # one predict call per image, at the processor's scale
    (anomaly,) = [segment for segment in segments if segment["label"] == "ood"]
    mask = np.asarray(anomaly["mask"]) == 255
    np.testing.assert_array_equal(mask, expected)
    assert anomaly["score"] == pytest.approx(float(reference["anomaly_score"][mask].mean()), rel=1e-5)
    # training and the window passes still run the plain forward (mask-resolution logits)
    pixel_values = torch.randn(1, 3, 64, 128)
    with torch.no_grad():
        window = stock.model(pixel_values, prompt_embeddings=stock.model.compute_text_embeddings())
    assert window.class_queries_logits is not None and window.semantic_map.shape[-2:] == (32, 64)
