"""The `clip-rn50` backbone (docs/method.md §3) on the `tiny-rn50` preset, mirroring tests/test_modeling.py."""

import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_OOD_BANDS


pytest.importorskip("timm")
from transformers import AutoModel  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos.clip_resnet_towers import CLIPResNetTowers  # noqa: E402
from tdos.modeling_tdos_rn50 import masked_mean_std  # noqa: E402
from tdos.optimization import get_parameter_groups  # noqa: E402
from tdos.random_clip import random_clip_resnet  # noqa: E402


def build_tiny_rn50_model(clip_image_size: int = 64, **overrides) -> TDOSForOODSegmentation:
    """A tiny RN50 TDOS model around random CLIP ResNet towers, created through the real `from_clip` path."""
    config = TDOSConfig.from_preset("tiny-rn50", **overrides)
    towers, tokenizer = random_clip_resnet(
        config.clip_config, config.resnet_layers, config.resnet_width, image_size=clip_image_size, seed=0
    )
    torch.manual_seed(0)
    return TDOSForOODSegmentation.from_clip(towers, tokenizer, ood_bands=TEST_OOD_BANDS, config=config)


@pytest.fixture
def rn50_model():
    return build_tiny_rn50_model()


@pytest.fixture(scope="module")
def rn50_model_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny_rn50")
    build_tiny_rn50_model().save_pretrained(path)
    return path


def ood_labels(batch: int = 2) -> torch.Tensor:
    labels = torch.randint(0, 19, (batch, 64, 128), generator=torch.Generator().manual_seed(0))
    labels[:, 16:48, 32:96] = 19  # an OOD object
    labels[-1, :4] = 255
    return labels


def test_shapes(rn50_model):
    config = rn50_model.config
    K, K_id, C = config.num_queries, config.num_id_classes, config.projection_dim
    pixel_values = torch.randn(2, 3, 64, 128)
    rn50_model.eval()
    with torch.no_grad():
        image = rn50_model.image_encoder(pixel_values)
        output = rn50_model(pixel_values)
        features = rn50_model.feature_pyramid(image.feature_maps, output.score_map)
    width = config.resnet_width  # 8: layer1..4 have 32, 64, 128, 256 channels at strides 4..32
    assert [tuple(f.shape) for f in image.feature_maps] == [
        (2, 4 * width, 16, 32), (2, 8 * width, 8, 16), (2, 16 * width, 4, 8), (2, 32 * width, 2, 4),
    ]  # fmt: skip
    neck = config.resnet_neck_hidden_size
    assert [tuple(f.shape) for f in features] == [(2, neck, 16, 32), (2, neck, 8, 16), (2, neck, 4, 8), (2, neck, 2, 4)]
    assert image.global_embedding.shape == (2, 1, C)
    assert image.dense_embeddings.shape == (2, C, 2, 4)
    assert output.score_map.shape == (2, K, 2, 4)
    assert output.text_embeddings.shape == (2, K, C)
    assert output.class_queries_logits.shape == (2, K_id, K_id + 1)
    assert output.masks_queries_logits.shape == output.semantic_map.shape[:1] + (K_id, 16, 32)
    assert output.anomaly_score.shape == (2, 16, 32)
    assert rn50_model.feature_pyramid.lateral_convolutions[-1].in_channels == 32 * width + K


def test_score_map_feeds_the_neck(rn50_model):
    """Layer4 and the score map are concatenated: changing the score map changes the pyramid."""
    rn50_model.eval()
    with torch.no_grad():
        image = rn50_model.image_encoder(torch.randn(1, 3, 64, 128))
        score_map = torch.zeros(1, rn50_model.config.num_queries, 2, 4)
        plain = rn50_model.feature_pyramid(image.feature_maps, score_map)
        shifted = rn50_model.feature_pyramid(image.feature_maps, score_map + 1)
    assert all((a - b).abs().amax() > 1e-4 for a, b in zip(plain, shifted))


def test_attention_pool_is_v_v_attention_with_non_square_positions(rn50_model):
    """Global and dense embeddings equal a v-v attention (q, k, v all CLIP's v_proj, as released) computed with
    PyTorch's multi-head attention, positions bilinearly resized to the non-square 2x4 map."""
    encoder = rn50_model.image_encoder.eval()
    head = encoder.trunk.head
    pixel_values = torch.randn(2, 3, 64, 128)
    with torch.no_grad():
        output = encoder(pixel_values)
        layer4 = output.feature_maps[-1]  # (2, 256, 2, 4); the crop grid is 2x2
        grid = head.pos_embed[1:].reshape(1, 2, 2, -1).permute(0, 3, 1, 2)
        grid = F.interpolate(grid, size=(2, 4), mode="bilinear", align_corners=False).flatten(2)[0].t()
        tokens = layer4.flatten(2).permute(2, 0, 1)  # (8, 2, 256)
        tokens = torch.cat([tokens.mean(0, keepdim=True), tokens]) + torch.cat([head.pos_embed[:1], grid])[:, None]
        reference, _ = F.multi_head_attention_forward(
            tokens, tokens, tokens, head.embed_dim, head.num_heads,
            in_proj_weight=None, in_proj_bias=torch.cat([head.v.bias] * 3), bias_k=None, bias_v=None,
            add_zero_attn=False, dropout_p=0.0, out_proj_weight=head.proj.weight, out_proj_bias=head.proj.bias,
            use_separate_proj_weight=True, q_proj_weight=head.v.weight, k_proj_weight=head.v.weight,
            v_proj_weight=head.v.weight, need_weights=False,
        )  # fmt: skip
    torch.testing.assert_close(output.global_embedding[:, 0], reference[0], atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(output.dense_embeddings.flatten(2), reference[1:].permute(1, 2, 0), atol=1e-5, rtol=1e-5)


def test_masked_statistics_use_only_masked_pixels():
    features = torch.randn(2, 3, 5, 6) * 3 + 1
    mask = torch.zeros(2, 1, 5, 6)
    mask[0, :, :2], mask[1, :, 3:, 1:] = 1, 1
    mean, std = masked_mean_std(features, mask)
    for sample in range(2):
        selected = features[sample][:, mask[sample, 0].bool()]  # (3, n)
        torch.testing.assert_close(mean[sample, :, 0, 0], selected.mean(1))
        torch.testing.assert_close(std[sample, :, 0, 0], (selected.var(1, unbiased=False) + 1e-5).sqrt())


def test_ood_augmentation_changes_ood_pixels_in_training_only():
    model = build_tiny_rn50_model(ood_augmentation_probability=1.0, resnet_style_probability=1.0)
    encoder = model.image_encoder
    pixel_values = torch.randn(1, 3, 64, 128)
    ood_mask = torch.zeros(1, 64, 128)
    ood_mask[:, 16:48, 32:96] = 1.0  # layer1 (16x32) rows 4..11, columns 8..23
    layer1 = {}
    encoder.trunk.stages[1].register_forward_pre_hook(lambda module, args: layer1.setdefault(len(layer1), args[0]))
    with torch.no_grad():
        plain = encoder(pixel_values)
        augmented = encoder(pixel_values, ood_mask=ood_mask)
    difference = (layer1[1] - layer1[0]).abs().amax(1)[0]  # (16, 32)
    ood = F.interpolate(ood_mask[:, None], size=(16, 32), mode="nearest")[0, 0].bool()
    scale = layer1[0].abs().amax()
    assert difference[ood].min() > 1e-3 * scale  # pulled toward the in-distribution style
    assert difference[~ood].max() < 1e-2 * scale  # only 1e-4-sigma noise on in-distribution pixels
    assert difference[~ood].max() > 0
    change = (augmented.dense_embeddings - plain.dense_embeddings).abs().amax()
    assert change > 1e-4 * plain.dense_embeddings.abs().amax()  # it propagates through layer4 and the pool

    # Without the style draw only the in-distribution noise remains: OOD pixels are untouched.
    encoder.config.resnet_style_probability = 0.0
    with torch.no_grad():
        encoder(pixel_values, ood_mask=ood_mask)
    assert torch.equal(layer1[2][..., ood], layer1[0][..., ood])

    # Through the model: applied in training only, never in eval.
    calls = []
    original = encoder.augment_layer1
    encoder.augment_layer1 = lambda *a, **k: calls.append(1) or original(*a, **k)
    labels = ood_labels(1)
    model.train()
    model(pixel_values, labels=labels)
    assert len(calls) == 1
    model.eval()
    with torch.no_grad():
        model(pixel_values, labels=labels)
        model(pixel_values)
    assert len(calls) == 1


def test_training_step_updates_trainable_parts_only(rn50_model):
    pixel_values, labels = torch.randn(2, 3, 64, 128), ood_labels()
    frozen_before = {
        name: tensor.clone()
        for name, tensor in rn50_model.state_dict().items()
        if name.startswith(("image_encoder.", "text_encoder."))
    }
    rn50_model.train()
    optimizer = torch.optim.AdamW(get_parameter_groups(rn50_model, 1e-3, 1e-5))
    output = rn50_model(pixel_values, labels=labels)
    expected = {"loss_cls", "loss_mask", "loss_dice", "loss_identity", "loss_textual", "loss_visual"}
    expected |= {f"d{i}.{n}" for i in range(rn50_model.config.decoder_layers) for n in ("loss_cls", "loss_mask", "loss_dice")}
    assert set(output.loss_dict) == expected
    assert all(torch.isfinite(value) for value in output.loss_dict.values())
    output.loss.backward()
    trainable = {name: p for name, p in rn50_model.named_parameters() if p.requires_grad}
    for prefix in ("prompt_learner.", "context_decoder.", "context_gamma", "feature_pyramid.", "pixel_decoder."):
        parts = [name for name in trainable if name.startswith(prefix)]
        assert parts and any(trainable[name].grad.abs().sum() > 0 for name in parts), prefix
    assert not any(name.startswith(("image_encoder.", "text_encoder.")) for name in trainable)
    optimizer.step()
    for name, tensor in rn50_model.state_dict().items():
        if name in frozen_before:  # weights and BatchNorm statistics of the frozen towers
            assert torch.equal(tensor, frozen_before[name]), name
    assert rn50_model.training and not rn50_model.image_encoder.training
    assert not any(module.training for module in rn50_model.image_encoder.modules())


def test_trainable_image_tower_gets_the_lower_rate_and_a_reference():
    model = build_tiny_rn50_model(train_image_tower=True)
    groups = get_parameter_groups(model, learning_rate=1e-4, weight_decay=1e-5)
    stem = model.image_encoder.trunk.stem.conv1.conv.weight
    assert next(g for g in groups if any(p is stem for p in g["params"]))["lr"] == pytest.approx(1e-5)
    assert not any(p.requires_grad for p in model.reference_image_encoder.parameters())
    torch.testing.assert_close(model.reference_image_encoder.state_dict(), model.image_encoder.state_dict())


def test_from_clip_folder_resizes_the_attention_pool_grid(tmp_path):
    config = TDOSConfig.from_preset("tiny-rn50")
    towers, tokenizer = random_clip_resnet(config.clip_config, config.resnet_layers, config.resnet_width, image_size=128)
    towers.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    assert CLIPResNetTowers.is_folder(tmp_path)
    model = TDOSForOODSegmentation.from_clip(tmp_path, ood_bands=TEST_OOD_BANDS, config=config)
    assert model.config.backbone == "clip-rn50" and model.config.resnet_layers == [1, 1, 1, 1]
    positions = model.image_encoder.trunk.head.pos_embed  # 4x4 CLIP grid -> 2x2 crop grid
    source = towers.image_trunk.head.pos_embed
    assert positions.shape[0] == 1 + 2 * 2
    expected = F.interpolate(source[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2), size=(2, 2), mode="bilinear")
    torch.testing.assert_close(positions[1:], expected.flatten(2)[0].t())
    torch.testing.assert_close(positions[0], source[0])
    text = model.text_encoder.text_projection.weight
    torch.testing.assert_close(text, towers.text_model.text_projection.weight)
    with pytest.raises(FileNotFoundError, match="not a CLIP ResNet folder"):
        CLIPResNetTowers.from_pretrained(tmp_path / "text")


def test_save_load_round_trip_is_bit_exact(rn50_model, tmp_path):
    rn50_model.save_pretrained(tmp_path)
    loaded = TDOSForOODSegmentation.from_pretrained(tmp_path)
    original, restored = rn50_model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    pixel_values = torch.randn(1, 3, 64, 96)
    rn50_model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(rn50_model(pixel_values).anomaly_score, loaded(pixel_values).anomaly_score)


def test_remote_code_load_without_the_package(rn50_model_dir, tmp_path):
    assert (rn50_model_dir / "modeling_tdos_rn50.py").is_file()
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tdos"] = None  # the package must not be importable
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(rn50_model_dir)!r}, trust_remote_code=True).eval()
        assert type(model.image_encoder).__module__.startswith("transformers_modules"), type(model).__module__
        with torch.no_grad():
            output = model(torch.zeros(1, 3, 64, 128))
        print("OK", model.config.backbone, tuple(output.anomaly_score.shape))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK clip-rn50 (1, 16, 32)" in result.stdout


def test_auto_model(rn50_model_dir):
    assert isinstance(AutoModel.from_pretrained(rn50_model_dir), TDOSForOODSegmentation)


@pytest.mark.parametrize(
    "shape, message",
    [((1, 3, 48, 128), "multiples of the ResNet stride 32"), ((1, 3, 32, 128), "at least 64")],
)
def test_bad_images(rn50_model, shape, message):
    with pytest.raises(ValueError, match=message):
        rn50_model(torch.randn(*shape))


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"backbone": "clip-rn101"}, "backbone must be one of"),
        ({"resnet_layers": [1, 1, 1]}, "resnet_layers"),
        ({"resnet_layers": [1, 0, 1, 1]}, "resnet_layers"),
        ({"resnet_width": 12}, "resnet_width"),
        ({"resnet_style_mix": 1.5}, "resnet_style_mix"),
        ({"resnet_style_probability": -0.1}, "resnet_style_probability"),
        ({"resnet_noise_scale": -1.0}, "resnet_noise_scale"),
        ({"crop_size": 80, "stride": 48}, "multiple of the ResNet stride"),
    ],
)
def test_invalid_configs(overrides, message):
    with pytest.raises(ValueError, match=message):
        TDOSConfig.from_preset("tiny-rn50", **overrides)


def test_presets():
    paper = TDOSConfig.from_preset("tdos-rn50")
    assert paper.backbone == "clip-rn50" and paper.resnet_layers == [3, 4, 6, 3] and paper.resnet_width == 64
    assert paper.projection_dim == 1024 and paper.clip_config.text_config.projection_dim == 1024
    assert paper.clip_config.text_config.hidden_size == 512 and paper.clip_config.text_config.num_hidden_layers == 12
    assert (paper.feature_pyramid_channels, paper.input_stride, paper.num_queries) == (768, 32, 70)
    assert (paper.resnet_noise_scale, paper.resnet_style_mix, paper.resnet_style_probability) == (1e-4, 0.2, 0.5)
    vit = TDOSConfig.from_preset("tdos-vit-b16")
    assert vit.backbone == "clip-vit" and (vit.feature_pyramid_channels, vit.input_stride) == (768, 16)
    reloaded = TDOSConfig.from_dict(TDOSConfig.from_preset("tiny-rn50").to_dict())
    assert (reloaded.backbone, reloaded.resnet_layers, reloaded.resnet_width) == ("clip-rn50", [1, 1, 1, 1], 8)


def test_predict_pads_to_the_resnet_stride(rn50_model):
    """Sliding-window and whole-image prediction at sizes that are not multiples of 32."""
    rn50_model.eval()
    pixel_values = torch.randn(1, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    slide = rn50_model.predict(pixel_values, inference_mode="slide")
    whole = rn50_model.predict(pixel_values, inference_mode="whole")
    assert slide.semantic_map.shape == (1, 20, 40, 56)
    torch.testing.assert_close(slide.semantic_map, whole.semantic_map)
    large = rn50_model.predict(torch.randn(1, 3, 70, 150), inference_mode="slide")
    assert large.anomaly_score.shape == (1, 70, 150) and torch.isfinite(large.anomaly_score).all()
