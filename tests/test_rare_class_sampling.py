"""Rare-class sampling (docs/method.md §6, DAFormer's RCS as the release configures it)."""

import json
import math
import sys
from pathlib import Path

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from torch.utils.data import DataLoader

import datasets_scripts
from tdos.rare_class_sampling import (
    ClassStatistics,
    RareClassSampler,
    RareClassTrainingStream,
    compute_class_statistics,
    label_class_pixels,
    load_or_compute_class_statistics,
)
from tdos.training import TrainTransform, collate_segmentation_batch


REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def daformer_probabilities(class_pixels: dict[int, int], temperature: float) -> dict[int, float]:
    """`get_rcs_class_probs`: softmax of (1 - pixel frequency) / T over the classes present."""
    total = sum(class_pixels.values())
    logits = {c: (1 - n / total) / temperature for c, n in class_pixels.items()}
    norm = sum(math.exp(v) for v in logits.values())
    return {c: math.exp(v) / norm for c, v in logits.items()}


STATISTICS = ClassStatistics(
    [
        (0, 0, "a", {0: 200_000, 13: 5_000}),
        (1, 0, "b", {0: 150_000, 19: 3_500}),
        (2, 0, "c", {0: 100_000, 13: 2_000, 11: 3_001}),
        (3, 0, "d", {0: 50_000, 11: 2_999, 19: 2_000}),
    ]
)


@pytest.mark.parametrize("temperature", [100.0, 0.05])
def test_sampled_class_frequencies_follow_the_rcs_probabilities(temperature):
    sampler = RareClassSampler(STATISTICS, temperature=temperature)
    expected = daformer_probabilities(STATISTICS.class_pixels, temperature)
    assert dict(zip(sampler.classes, sampler.probabilities.tolist())) == pytest.approx(expected, rel=1e-9)
    assert 19 in sampler.classes  # the OOD class is in the statistics
    draws = 20_000
    counts = {c: 0 for c in expected}
    examples = {c: set() for c in expected}
    for index in range(draws):
        c, example = sampler.draw(torch.Generator().manual_seed(index))
        counts[c] += 1
        examples[c].add(example)
    for c, p in expected.items():
        assert abs(counts[c] / draws - p) < 4 * math.sqrt(p * (1 - p) / draws) + 1e-3, (c, counts[c] / draws, p)
    # an example is drawn for a class only with more than min_pixels (3000) pixels of it
    allowed = {0: {0, 1, 2, 3}, 13: {0}, 19: {1}, 11: {2}}
    assert all(examples[c] <= allowed[c] for c in allowed)
    if temperature == 100.0:
        assert examples == allowed


def test_release_temperature_is_almost_uniform_and_a_low_one_favours_rare_classes():
    uniform = RareClassSampler(STATISTICS, temperature=100.0).probabilities
    assert (uniform - 0.25).abs().max() < 0.005
    sharp = RareClassSampler(STATISTICS, temperature=0.05)
    probabilities = dict(zip(sharp.classes, sharp.probabilities.tolist()))
    assert probabilities[0] < 0.01 and probabilities[11] > probabilities[13]


def test_classes_without_an_example_above_min_pixels_fail_clearly():
    with pytest.raises(ValueError, match="min_pixels=10000"):
        RareClassSampler(ClassStatistics([(0, 0, "a", {3: 500})]), min_pixels=10_000)


def blob_scene(index: int, height: int = 256, width: int = 512, side: int = 60):
    """Road (0) with one square of class 5 (`side`² pixels) at an index-dependent place."""
    rng = np.random.default_rng(index)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = np.zeros((height, width), np.uint8)
    top, left = rng.integers(0, height - side), rng.integers(0, width - side)
    label[top : top + side, left : left + side] = 5
    return image, label


def scene_source(count: int):
    def generate(indices):
        for index in indices:
            image, label = blob_scene(index)
            yield {"image": Image.fromarray(image), "label": Image.fromarray(label), "id": f"scene{index}"}

    features = datasets.Features({"image": datasets.Image(), "label": datasets.Image(), "id": datasets.Value("string")})
    return datasets.IterableDataset.from_generator(generate, gen_kwargs={"indices": list(range(count))}, features=features)


def read_scene(shard: int, position: int) -> dict:
    image, label = blob_scene(shard)
    return {"image": Image.fromarray(image), "label": Image.fromarray(label), "id": f"scene{shard}"}


def test_class_statistics_of_a_stream_count_every_class_and_locate_every_example():
    statistics = compute_class_statistics(scene_source(3), num_classes=20)
    assert [(shard, position, id_) for shard, position, id_, _ in statistics.examples] == [
        (index, 0, f"scene{index}") for index in range(3)
    ]
    assert statistics.examples[1][3] == {0: 256 * 512 - 60 * 60, 5: 60 * 60}


def test_statistics_are_computed_once_and_cached_where_asked(tmp_path, monkeypatch):
    cache = tmp_path / "out" / "stats.json"
    description = {"name": "scenes", "root": None}
    first = load_or_compute_class_statistics(scene_source(2), 20, cache, description)
    assert json.loads(cache.read_text())["description"] == description

    def no_second_pass(*args):
        raise AssertionError("statistics recomputed")

    monkeypatch.setattr("tdos.rare_class_sampling.compute_class_statistics", no_second_pass)
    assert load_or_compute_class_statistics(scene_source(2), 20, cache, description).examples == first.examples
    with pytest.raises(AssertionError, match="recomputed"):  # other data: a new pass
        load_or_compute_class_statistics(scene_source(2), 20, cache, {"name": "other"})


def rcs_stream(min_crop_ratio=0.5, seed=0, count=6):
    statistics = compute_class_statistics(scene_source(count), num_classes=20)
    sampler = RareClassSampler(statistics, temperature=0.01, min_crop_ratio=min_crop_ratio)  # mostly class 5
    # no cat_max_ratio re-crops: they would favour crops touching the square by themselves
    transform = TrainTransform(crop_size=160, scale_range=(1.0, 1.0), cat_max_ratio=1.0)
    return RareClassTrainingStream(sampler, read_scene, transform, seed=seed)


def test_crops_hold_more_than_min_pixels_times_ratio_of_the_sampled_class():
    stream = rcs_stream()
    samples = [stream.sample(index) for index in range(40)]
    drawn = [sample for sample in samples if sample["rcs_class"] == 5]
    assert len(drawn) >= 30
    held = [(sample["labels"] == 5).sum().item() > 1500 for sample in drawn]
    # a 160² crop of a 256x512 scene misses most of a 60² square most of the time; 10 tries almost never
    assert all(h for h, sample in zip(held, drawn) if sample["crop_tries"] <= 10)  # the 11th is kept unchecked
    assert max(sample["crop_tries"] for sample in samples) <= 11
    assert sum(held) >= 0.95 * len(drawn)
    single_stream = rcs_stream(min_crop_ratio=0.0)
    single = [single_stream.sample(index) for index in range(40)]
    single_held = [(s["labels"] == 5).sum().item() > 1500 for s in single if s["rcs_class"] == 5]
    assert sum(single_held) < 0.8 * len(single_held)
    assert any(sample["crop_tries"] > 1 for sample in drawn)


def test_stream_is_deterministic_per_seed_and_split_across_workers_without_repeats():
    stream = rcs_stream()
    expected = [stream.sample(index)["pixel_values"] for index in range(8)]
    first = [sample["pixel_values"] for _, sample in zip(range(8), iter(rcs_stream()))]
    assert all(torch.equal(a, b) for a, b in zip(first, expected))
    other_seed = rcs_stream(seed=1).sample(0)["pixel_values"]
    assert not torch.equal(other_seed, expected[0])
    loader = DataLoader(rcs_stream(), batch_size=2, num_workers=2, collate_fn=collate_segmentation_batch)
    batches = [batch["pixel_values"] for _, batch in zip(range(4), loader)]
    # worker 0 takes samples 0, 2, 4, ...; worker 1 samples 1, 3, 5, ...; batches alternate between workers
    order = [0, 2, 1, 3, 4, 6, 5, 7]
    got = [image for batch in batches for image in batch]
    assert all(torch.equal(got[i], expected[k]) for i, k in enumerate(order))


def test_changed_data_is_reported_instead_of_sampled():
    stream = rcs_stream()
    stream.read_example = lambda shard, position: {**read_scene(shard, position), "id": "renamed"}
    with pytest.raises(ValueError, match="training data changed"):
        stream.sample(0)


def test_shard_reader_reads_the_examples_of_the_streamed_shards():
    options = {"num_examples": 4, "height": 32, "width": 64}
    source = datasets_scripts.load_benchmark("synthetic", split="train", **options)
    statistics = compute_class_statistics(source, num_classes=20)
    reader = datasets_scripts.ShardReader("synthetic", split="train", **options)
    for shard, position, id_, counts in statistics.examples:
        example = reader.example(shard, position)
        assert example["id"] == id_
        assert label_class_pixels(np.asarray(example["label"]), 20) == counts


def test_training_script_samples_rare_classes_and_caches_the_statistics_in_the_output_folder(tmp_path, caplog):
    import run_ood_segmentation
    from test_run_ood_segmentation import TINY

    arguments = [*TINY, "--output_dir", str(tmp_path), "--do_train", "--max_steps", "2", "--rare_class_sampling", "true",
                 "--rcs_min_pixels", "50"]  # fmt: skip
    run_ood_segmentation.main(arguments)
    caches = list(tmp_path.glob("rcs_class_stats-synthetic-*.json"))
    assert len(caches) == 1 and len(json.loads(caches[0].read_text())["examples"]) == 16
    caplog.clear()
    with caplog.at_level("INFO", logger="tdos"):
        run_ood_segmentation.main(arguments)
    assert any("rare-class statistics read from" in record.getMessage() for record in caplog.records)
