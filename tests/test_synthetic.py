"""The synthetic road-scene generator and `load_benchmark("synthetic")`."""

import colorsys

import datasets
import numpy as np
import pytest
import torch
from datasets.distributed import split_dataset_by_node

from datasets_scripts import BENCHMARKS, benchmark_kind, load_benchmark
from datasets_scripts import synthetic
from datasets_scripts.synthetic import ANOMALY_FAMILIES, TRAIN_OOD_FAMILIES, generate_scene


def _saturation(pixels):
    return np.array([colorsys.rgb_to_hsv(*(pixel / 255.0))[1] for pixel in pixels])


@pytest.mark.parametrize("split", ["train", "validation", "anomaly"])
@pytest.mark.parametrize("size", [(64, 128), (37, 53), (96, 32)])
def test_shapes_dtypes_and_label_values(split, size):
    image, label = generate_scene(3, split=split, height=size[0], width=size[1], seed=1)
    assert image.shape == (*size, 3) and image.dtype == np.uint8
    assert label.shape == size and label.dtype == np.uint8
    allowed = {0, 1, 255} if split == "anomaly" else set(range(20)) | {255}
    assert set(np.unique(label).tolist()) <= allowed


def test_deterministic_by_seed_split_and_index():
    first = generate_scene(5, split="train", height=64, width=128, seed=2)
    again = generate_scene(5, split="train", height=64, width=128, seed=2)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[1], again[1])
    for other in (
        generate_scene(6, split="train", height=64, width=128, seed=2),
        generate_scene(5, split="validation", height=64, width=128, seed=2),
        generate_scene(5, split="train", height=64, width=128, seed=3),
    ):
        assert not np.array_equal(first[0], other[0])


def test_training_scenes_cover_the_cityscapes_classes_and_ood_objects():
    labels = [generate_scene(index, "train", 128, 256)[1] for index in range(12)]
    present = set(np.unique(np.stack(labels)).tolist())
    assert {0, 1, 2, 5, 8, 9, 10, 11, 13, 19, 255} <= present
    assert len(present - {19, 255}) >= 15
    assert 3 <= sum((label == 19).any() for label in labels) < 12


def test_anomaly_scenes_have_one_to_five_percent_anomaly_pixels():
    fractions = [(generate_scene(index, "anomaly", 128, 256)[1] == 1).mean() for index in range(16)]
    assert min(fractions) >= 0.01 and max(fractions) <= 0.05


def test_anomalies_are_vivid_but_not_one_colour():
    anomaly_pixels, known_pixels = [], []
    for index in range(6):
        image, label = generate_scene(index, "anomaly", 96, 192)
        anomaly_pixels.append(image[label == 1])
        known_pixels.append(image[label == 0][::97])
    anomaly_pixels = np.concatenate(anomaly_pixels)
    assert len(np.unique(anomaly_pixels // 32, axis=0)) >= 8
    assert np.median(_saturation(anomaly_pixels[::13])) > 0.5 > np.median(_saturation(np.concatenate(known_pixels)))


def test_anomaly_families_never_appear_in_training(monkeypatch):
    drawn = []
    shapes = dict(synthetic._SHAPES)
    recording = {name: (lambda rng, name=name: drawn.append(name) or shapes[name](rng)) for name in shapes}
    monkeypatch.setattr(synthetic, "_SHAPES", recording)
    for index in range(10):
        generate_scene(index, "train", 64, 128)
        generate_scene(index, "validation", 64, 128)
    assert drawn and set(drawn) <= set(TRAIN_OOD_FAMILIES)
    drawn.clear()
    for index in range(5):
        generate_scene(index, "anomaly", 64, 128)
    assert drawn and set(drawn) <= set(ANOMALY_FAMILIES)
    assert not set(TRAIN_OOD_FAMILIES) & set(ANOMALY_FAMILIES)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"split": "test"},
        {"index": -1},
        {"index": 1.5},
        {"index": True},
        {"height": 16},
        {"width": 0},
        {"seed": -3},
    ],
)
def test_bad_arguments_are_rejected(kwargs):
    arguments = {"index": 0, "split": "train", "height": 64, "width": 128, "seed": 0} | kwargs
    with pytest.raises(ValueError, match="ynthetic"):
        generate_scene(**arguments)


def test_load_benchmark_streams_the_generated_scenes():
    dataset = load_benchmark("synthetic", split="anomaly", num_examples=4, height=32, width=64, seed=7)
    assert isinstance(dataset, datasets.IterableDataset)
    string = datasets.Value("string")
    expected = {"image": datasets.Image(), "label": datasets.Image(), "id": string, "dataset": string}
    assert dataset.features == datasets.Features(expected)
    assert dataset.num_shards == 4
    examples = list(dataset)
    assert [example["dataset"] for example in examples] == ["synthetic"] * 4
    assert len({example["id"] for example in examples}) == 4
    for index, example in enumerate(examples):
        image, label = generate_scene(index, "anomaly", 32, 64, seed=7)
        assert example["image"].mode == "RGB" and example["label"].mode == "L"
        np.testing.assert_array_equal(np.asarray(example["image"]), image)
        np.testing.assert_array_equal(np.asarray(example["label"]), label)


def test_load_benchmark_without_streaming_returns_a_dataset(tmp_path):
    dataset = load_benchmark(
        "synthetic", split="train", streaming=False, cache_dir=tmp_path, num_examples=3, height=32, width=64
    )
    assert isinstance(dataset, datasets.Dataset) and len(dataset) == 3
    assert any(tmp_path.rglob("*.arrow"))
    np.testing.assert_array_equal(np.asarray(dataset[2]["label"]), generate_scene(2, "train", 32, 64)[1])


def _ids(batch):
    return batch["id"]


def test_two_workers_and_two_nodes_split_without_loss_or_duplication():
    dataset = load_benchmark("synthetic", split="validation", num_examples=6, height=32, width=64)
    expected = sorted(example["id"] for example in dataset)
    loader = torch.utils.data.DataLoader(dataset, batch_size=None, num_workers=2, collate_fn=_ids)
    assert sorted(loader) == expected
    per_node = [[example["id"] for example in split_dataset_by_node(dataset, rank, 2)] for rank in range(2)]
    assert not set(per_node[0]) & set(per_node[1])
    assert sorted(per_node[0] + per_node[1]) == expected


def test_benchmark_kind_and_registry():
    assert "synthetic" in BENCHMARKS
    assert benchmark_kind("synthetic") == "semantic"
    assert benchmark_kind("synthetic", "train") == "semantic"
    assert benchmark_kind("synthetic", "anomaly") == "ood"
    with pytest.raises(ValueError, match="no split 'test'"):
        benchmark_kind("synthetic", "test")
    with pytest.raises(ValueError, match="Unknown benchmark 'nope'"):
        benchmark_kind("nope")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"root": "/data"}, "takes no root"),
        ({"split": "test"}, "no split 'test'"),
        ({"num_examples": 0}, "num_examples=0"),
        ({"height": 8}, "height=8"),
    ],
)
def test_load_benchmark_rejects_bad_options(kwargs, message):
    with pytest.raises(ValueError, match=message):
        load_benchmark("synthetic", **kwargs)
