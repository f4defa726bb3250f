import numpy as np
import pytest
import torch
from PIL import Image

import run_ood_segmentation
from tdos import TDOSForOODSegmentation, TDOSImageProcessor
from tdos.benchmark_evaluation import BenchmarkEvaluator
from tdos.evaluation import PixelOODMetrics
from tdos.smiyc_export import read_anomaly_map, submission_path, write_anomaly_map


h5py = pytest.importorskip("h5py")
FIDS = ("validation0000", "validation0001", "airplane0000", "zebra0001")


def _anomaly_track(base):
    rng = np.random.default_rng(0)
    for index, fid in enumerate(FIDS):
        (base / "images").mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 256, (36, 70, 3), dtype=np.uint8)).save(base / "images" / f"{fid}.jpg")
        if fid.startswith("validation"):
            (base / "labels_masks").mkdir(exist_ok=True)
            label = np.zeros((36, 70), np.uint8)
            label[10:20, 20 + index : 40] = 1
            label[:3] = 255
            Image.fromarray(label).save(base / "labels_masks" / f"{fid}_labels_semantic.png")


def test_file_format_is_the_official_one(tmp_path):
    score = np.random.default_rng(0).random((5, 7)).astype(np.float32)
    path = write_anomaly_map(submission_path(tmp_path, "TDOS", "smiyc_obstacle", "validation_1"), score)
    assert path == tmp_path / "anomaly_p" / "TDOS" / "ObstacleTrack-all" / "validation_1.hdf5"
    with h5py.File(path, "r") as file:  # as road_anomaly_benchmark's ChannelLoaderHDF5 reads it
        stored = file["value"]
        assert stored.dtype == np.float16 and stored.shape == (5, 7) and stored.compression == "gzip"
        np.testing.assert_array_equal(stored[:], score.astype(np.float16))
    np.testing.assert_array_equal(read_anomaly_map(path), score.astype(np.float16))
    with pytest.raises(ValueError, match="frame id"):
        submission_path(tmp_path, "TDOS", "smiyc_anomaly", "../escape")
    with pytest.raises(ValueError, match="not a SMIYC track"):
        submission_path(tmp_path, "TDOS", "road_anomaly", "x")
    with pytest.raises(ValueError, match="finite"):
        write_anomaly_map(tmp_path / "bad.hdf5", np.full((2, 2), np.nan))


def test_do_predict_exports_every_frame_and_round_trips(tiny_model_dir, tmp_path):
    root = tmp_path / "smiyc"
    _anomaly_track(root / "dataset_AnomalyTrack")
    export = tmp_path / "submission"
    run_ood_segmentation.main([
        "--model_name_or_path", str(tiny_model_dir), "--do_predict", "--smiyc_export", str(export),
        "--smiyc_method", "TDOS-tiny", "--eval_benchmarks", f"smiyc_anomaly:test={root}",
        f"smiyc_anomaly:validation={root}", "--eval_scale", "128", "64", "--output_dir", str(tmp_path / "out"),
        "--use_cpu", "--report_to", "none",
    ])  # fmt: skip
    folder = export / "anomaly_p" / "TDOS-tiny" / "AnomalyTrack-all"
    assert sorted(path.stem for path in folder.iterdir()) == sorted(FIDS)
    # round trip: the files read back give the metrics of the float16 predictions made here
    model = TDOSForOODSegmentation.from_pretrained(tiny_model_dir).eval()
    evaluator = BenchmarkEvaluator(model, TDOSImageProcessor(size_divisor=16), tmp_path / "eval")
    from_files, direct = PixelOODMetrics(), PixelOODMetrics()
    for fid in FIDS[:2]:
        image = Image.open(root / "dataset_AnomalyTrack" / "images" / f"{fid}.jpg").convert("RGB")
        label = np.asarray(Image.open(root / "dataset_AnomalyTrack" / "labels_masks" / f"{fid}_labels_semantic.png"))
        stored = read_anomaly_map(folder / f"{fid}.hdf5")
        assert stored.dtype == np.float16 and stored.shape == (36, 70)
        with torch.no_grad():
            predicted, _ = evaluator.predict(image, (36, 70), (128, 64))
        np.testing.assert_array_equal(stored, predicted.astype(np.float16))
        from_files.update(stored.astype(np.float32), label)
        direct.update(predicted.astype(np.float16).astype(np.float32), label)
    assert from_files.compute().average_precision == direct.compute().average_precision


def test_do_predict_needs_an_export_folder_and_a_track(tmp_path):
    base = ["--random_clip_init", "--preset", "tiny", "--do_predict", "--output_dir", str(tmp_path), "--use_cpu"]
    with pytest.raises(ValueError, match="--smiyc_export"):
        run_ood_segmentation.main(base + ["--eval_benchmarks", "synthetic"])
    with pytest.raises(ValueError, match="smiyc_anomaly or smiyc_obstacle"):
        run_ood_segmentation.main(base + ["--smiyc_export", str(tmp_path / "s"), "--eval_benchmarks", "synthetic"])
