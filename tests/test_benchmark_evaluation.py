"""SMIYC rows of the evaluation tables come from the official protocol and say so; the others from the exact one."""

import json

import numpy as np
import pytest
from conftest import build_tiny_model
from PIL import Image

import datasets_scripts
from tdos import TDOSImageProcessor
from tdos.benchmark_evaluation import BenchmarkEvaluator, BenchmarkSpec, evaluate_benchmarks, format_results_table
from tdos.evaluation import ComponentOODMetrics, PixelOODMetrics


def anomaly_track(root, num_frames=2, shape=(64, 128)):
    """An AnomalyTrack folder of validation frames with one 12 x 40 OOD object each and a void band."""
    rng = np.random.default_rng(0)
    base = root / "dataset_AnomalyTrack"
    (base / "images").mkdir(parents=True)
    (base / "labels_masks").mkdir()
    for index in range(num_frames):
        fid = f"validation{index:04d}"
        Image.fromarray(rng.integers(0, 256, (*shape, 3), dtype=np.uint8)).save(base / "images" / f"{fid}.jpg")
        label = np.zeros(shape, np.uint8)
        label[20 + 10 * index : 32 + 10 * index, 60:100] = 1
        label[-8:] = 255
        Image.fromarray(label).save(base / "labels_masks" / f"{fid}_labels_semantic.png")
    return root


SCALE = (128, 64)  # the frames' own size (the SMIYC test scale would only slow the tiny model down)


@pytest.fixture(scope="module")
def model_and_processor():
    return build_tiny_model().eval(), TDOSImageProcessor(size_divisor=16)


@pytest.mark.filterwarnings("ignore:No (ground-truth|predicted) OOD component")
def test_smiyc_rows_use_the_official_protocol_and_say_so(tmp_path, model_and_processor):
    model, processor = model_and_processor
    spec = BenchmarkSpec("smiyc_anomaly", str(anomaly_track(tmp_path / "data")))
    synthetic = BenchmarkSpec("synthetic", split="anomaly")
    options = {"synthetic": {"num_examples": 1, "height": 64, "width": 128}}
    results = evaluate_benchmarks(
        model, processor, [spec, synthetic], tmp_path / "out", dataset_options=options, num_overlays=0, scale=SCALE
    )
    row = results["smiyc_anomaly"]
    assert row["protocol"] == "smiyc" and results["synthetic:anomaly"]["protocol"] == "exact"
    assert json.loads((tmp_path / "out" / "eval_results.json").read_text())["smiyc_anomaly"].keys() == row.keys()
    # the same numbers from the library on the same predictions, official protocol end to end
    evaluator = BenchmarkEvaluator(model, processor, tmp_path / "again")
    frames = []
    for example in datasets_scripts.load_benchmark("smiyc_anomaly", spec.root):
        label = np.asarray(example["label"])
        anomaly, _ = evaluator.predict(example["image"].convert("RGB"), label.shape, SCALE)
        frames.append((anomaly, label))
    pixel = PixelOODMetrics(protocol="smiyc")
    for anomaly, label in frames:
        pixel.update(anomaly, label)
    pixel_result = pixel.compute()
    components = ComponentOODMetrics.from_pixel_result(pixel_result, track="AnomalyTrack")
    for anomaly, label in frames:
        components.update(anomaly.astype(np.float16).astype(np.float32), label)
    expected = pixel_result.to_dict() | components.compute().to_dict()
    for key, value in expected.items():
        assert row[key] == pytest.approx(value, nan_ok=True), key
    table = format_results_table(results)
    assert table.index("Protocol: exact protocol") < table.index("| synthetic:anomaly |")
    assert table.index("Protocol: official SegmentMeIfYouCan protocol") < table.index("| smiyc_anomaly | 2 |")
    exact = evaluate_benchmarks(
        model, processor, [spec], tmp_path / "exact", num_overlays=0, scale=SCALE, smiyc_protocol="exact"
    )["smiyc_anomaly"]
    assert exact["protocol"] == "exact" and exact["average_precision"] != row["average_precision"]
