import json

import datasets
import numpy as np
import pytest
import torch
from PIL import Image
from transformers import TrainingArguments

from tdos.training import (
    IGNORE_INDEX,
    TDOSTrainer,
    TrainingStream,
    TrainTransform,
    collate_segmentation_batch,
    example_generator,
    last_complete_checkpoint,
)


def scene(seed: int, height: int = 48, width: int = 96):
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    label = np.zeros((height, width), np.uint8)
    label[height // 2 :] = 7
    label[:, : width // 4] = 255
    label[5:15, 40:60] = 19
    return image, label


def in_memory_stream(count: int = 5):
    def generate(indices):
        for index in indices:
            image, label = scene(index)
            yield {"image": Image.fromarray(image), "label": Image.fromarray(label), "id": f"scene{index}"}

    features = datasets.Features(
        {"image": datasets.Image(), "label": datasets.Image(), "id": datasets.Value("string")}
    )
    return datasets.IterableDataset.from_generator(
        generate, gen_kwargs={"indices": list(range(count))}, features=features
    )


def test_transform_shapes_values_and_normalisation():
    image, label = scene(0)
    transform = TrainTransform(crop_size=64, scale_range=(1.0, 1.0), photometric_distortion=False, flip_probability=0)
    out = transform(image, label, torch.Generator().manual_seed(0))
    assert out["pixel_values"].shape == (3, 64, 64) and out["pixel_values"].dtype == torch.float32
    assert out["labels"].shape == (64, 64) and out["labels"].dtype == torch.int64
    # 48 rows < 64: the bottom is padded with ignore labels and, after normalisation, zeros (mmseg's Pad)
    assert (out["labels"][48:] == IGNORE_INDEX).all()
    assert (out["pixel_values"][:, 48:] == 0).all()
    mean = torch.tensor(transform.mean)[:, None, None]
    std = torch.tensor(transform.std)[:, None, None]
    normalised = (torch.from_numpy(image).permute(2, 0, 1) / 255 - mean) / std  # (3, 48, 96); the crop is 64 wide
    assert any(torch.allclose(out["pixel_values"][:, :48], normalised[:, :, left : left + 64]) for left in range(33))
    # nearest resampling keeps label values; no new classes appear
    assert set(out["labels"].unique().tolist()) <= {0, 7, 19, IGNORE_INDEX}


def test_transform_is_deterministic_per_generator_and_varies_across_seeds():
    image, label = scene(1, 120, 200)
    transform = TrainTransform(crop_size=64)
    a = transform(image, label, torch.Generator().manual_seed(3))
    b = transform(image, label, torch.Generator().manual_seed(3))
    c = transform(image, label, torch.Generator().manual_seed(4))
    assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(a["pixel_values"], c["pixel_values"])


def test_crop_respects_cat_max_ratio_when_possible():
    label = np.zeros((200, 200), np.uint8)
    label[:, 150:] = 3  # only crops touching the right quarter have two classes
    transform = TrainTransform(crop_size=64, cat_max_ratio=0.75)
    for seed in range(5):
        top, left = transform.crop_box(torch.from_numpy(label)[None], torch.Generator().manual_seed(seed))
        window = label[top : top + 64, left : left + 64]
        counts = np.bincount(window.ravel())
        assert counts.max() < 0.75 * counts.sum()


def test_crop_box_follows_mmseg_random_crop_draws():
    label = torch.zeros(1, 200, 300, dtype=torch.uint8)  # one class: no box passes, the 11th draw is kept
    box = TrainTransform(crop_size=64, cat_max_ratio=0.75).crop_box(label, torch.Generator().manual_seed(0))
    generator = torch.Generator().manual_seed(0)
    draws = [
        (int(torch.randint(0, 137, (), generator=generator)), int(torch.randint(0, 237, (), generator=generator)))
        for _ in range(11)
    ]
    assert box == draws[-1]


def test_rescale_uses_mmseg_sizes():
    # mmseg: target int(side * ratio) = (77, 155); mmcv keep-ratio factor min(155 / 200, 77 / 100) = 0.77;
    # sides int(side * 0.77 + 0.5) = (77, 154)
    transform = TrainTransform(scale_range=(0.777, 0.777))
    image, label = torch.zeros(3, 100, 200, dtype=torch.uint8), torch.zeros(1, 100, 200, dtype=torch.uint8)
    resized, resized_label = transform.rescale(image, label, torch.Generator())
    assert resized.shape[-2:] == (77, 154) and resized_label.shape[-2:] == (77, 154)


def test_transform_rejects_bad_arguments():
    with pytest.raises(ValueError, match="scale_range"):
        TrainTransform(scale_range=(2.0, 1.0))
    with pytest.raises(ValueError, match="crop_size"):
        TrainTransform(crop_size=0)


def test_training_stream_is_endless_deterministic_and_epoch_dependent():
    transform = TrainTransform(crop_size=32)
    stream = TrainingStream(in_memory_stream(3), transform, seed=5)
    first = [example["pixel_values"] for _, example in zip(range(7), stream)]  # crosses two epoch boundaries
    again = [example["pixel_values"] for _, example in zip(range(7), TrainingStream(in_memory_stream(3), transform, seed=5))]
    assert all(torch.equal(x, y) for x, y in zip(first, again))
    # epoch 1 of the same example gets another augmentation than epoch 0
    assert not torch.equal(first[0], first[3])
    stream.set_epoch(1)
    assert torch.equal(next(iter(stream))["pixel_values"], first[3])


def test_training_stream_reports_empty_and_mismatched_data():
    with pytest.raises(ValueError, match="no examples"):
        next(iter(TrainingStream(in_memory_stream(0), TrainTransform(crop_size=32))))

    def generate():
        yield {"image": Image.new("RGB", (10, 8)), "label": Image.new("L", (9, 8)), "id": "bad"}

    source = datasets.IterableDataset.from_generator(generate)
    with pytest.raises(ValueError, match="'bad'.*does not match"):
        next(iter(TrainingStream(source, TrainTransform(crop_size=32))))


def test_paste_hook_receives_the_example_generator():
    calls = []

    def paste(image, label, generator):
        calls.append(torch.rand((), generator=generator).item())
        label = label.copy()
        label[:4, :4] = 19
        return image, label

    stream = TrainingStream(in_memory_stream(2), TrainTransform(crop_size=32, scale_range=(1, 1)), seed=1, paste_objects=paste)
    next(iter(stream))
    expected = torch.rand((), generator=example_generator(1, 0, "scene0")).item()
    assert calls == [expected]


def test_last_complete_checkpoint_skips_partial_folders(tmp_path):
    assert last_complete_checkpoint(tmp_path) is None
    for step in (2, 4):
        (tmp_path / f"checkpoint-{step}").mkdir()
        (tmp_path / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-6").mkdir()  # killed while saving: no trainer_state.json
    (tmp_path / "checkpoint-8").mkdir()
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text('{"global_st')  # truncated
    (tmp_path / "checkpoint-x").mkdir()
    assert last_complete_checkpoint(tmp_path) == tmp_path / "checkpoint-4"


def test_trainer_uses_parameter_groups_and_decreases_loss_on_a_fixed_batch(tiny_model, tmp_path):
    tiny_model.config.ood_augmentation = False
    generator = torch.Generator().manual_seed(0)
    batch = {
        "pixel_values": torch.randn(2, 3, 64, 128, generator=generator),
        "labels": torch.randint(0, 20, (2, 64, 128), generator=generator),
    }
    args = TrainingArguments(
        output_dir=str(tmp_path),
        max_steps=8,
        learning_rate=1e-3,
        weight_decay=1e-5,
        per_device_train_batch_size=2,
        report_to=[],
        save_strategy="no",
        logging_steps=4,
        use_cpu=True,
        remove_unused_columns=False,
    )
    examples = [{"pixel_values": batch["pixel_values"][i], "labels": batch["labels"][i]} for i in range(2)]
    trainer = TDOSTrainer(
        model=tiny_model, args=args, train_dataset=examples * 8, data_collator=collate_segmentation_batch
    )

    def fixed_batch_loss():
        tiny_model.eval()
        torch.manual_seed(0)  # the point sampling of the mask losses
        with torch.no_grad():
            return tiny_model(**batch).loss.item()

    before = fixed_batch_loss()
    trainer.train()
    after = fixed_batch_loss()
    assert after < before
    optimizer_parameters = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not any(id(p) in optimizer_parameters for p in tiny_model.text_encoder.parameters())
    assert {group["weight_decay"] for group in trainer.optimizer.param_groups} == {0.0, 1e-5}
    logged = [entry for entry in trainer.state.log_history if "loss" in entry]
    assert len(logged) == 2
    assert {"loss_cls", "loss_mask", "loss_dice", "loss_identity", "loss_textual", "loss_visual"} <= set(logged[0])
    assert not any(key.startswith("d0.") for key in logged[0])


def test_photometric_steps_are_mmseg_photometric_distortion():
    from tdos.training import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation

    def pixels(*rgb):
        return torch.tensor(rgb, dtype=torch.uint8).T[:, :, None]  # (3, n, 1)

    # brightness adds (clipped, truncated); contrast multiplies, without blending toward the mean
    assert adjust_brightness(pixels([10, 250, 100]), 20.7).flatten().tolist() == [30, 255, 120]
    assert adjust_contrast(pixels([100, 100, 100], [200, 10, 0]), 1.5).flatten().tolist() == [150, 255, 150, 15, 150, 0]
    # saturation and hue act on OpenCV's 8-bit HSV (H in units of 2 degrees, modulo 180); the expected values are
    # OpenCV 5.1's `cvtColor` results for these pixels (mmcv's bgr2hsv / hsv2bgr)
    grey, colour = pixels([90, 90, 90]), pixels([200, 100, 50])  # colour: H 10, S 191, V 200
    assert torch.equal(adjust_saturation(grey, 0.5), grey)
    assert adjust_saturation(colour, 0.5).flatten().tolist() == [200, 150, 125]  # S int(95.5) = 95
    assert adjust_hue(colour, 18).flatten().tolist() == [200, 190, 50]
    assert adjust_hue(colour, -18).flatten().tolist() == [200, 50, 90]
    assert adjust_hue(pixels([255, 0, 0]), 18).flatten().tolist() == [255, 153, 0]


def test_photometric_draws_follow_mmseg_order():
    """mmseg: brightness, a coin for contrast first/last, contrast (first), saturation, hue, contrast (last)."""
    from tdos.training import adjust_brightness, adjust_contrast, adjust_hue, adjust_saturation

    image = torch.from_numpy(scene(2)[0]).permute(2, 0, 1).contiguous()
    transform = TrainTransform()
    orders = set()
    for seed in range(40):
        got = transform.photometric(image, torch.Generator().manual_seed(seed))
        generator = torch.Generator().manual_seed(seed)

        def coin():
            return torch.rand((), generator=generator).item() < 0.5

        def uniform(low, high):
            return low + (high - low) * torch.rand((), generator=generator).item()

        expected = image
        if coin():
            expected = adjust_brightness(expected, uniform(-32, 32))
        first = coin()
        if first and coin():
            expected = adjust_contrast(expected, uniform(0.5, 1.5))
        if coin():
            expected = adjust_saturation(expected, uniform(0.5, 1.5))
        if coin():
            expected = adjust_hue(expected, int(torch.randint(-18, 18, (), generator=generator)))
        if not first and coin():
            expected = adjust_contrast(expected, uniform(0.5, 1.5))
        orders.add(first)
        assert torch.equal(got, expected)
    assert orders == {True, False}
