import copy
import subprocess
import sys
import textwrap

import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_OOD_BANDS, build_tiny_model
from transformers import AutoConfig, AutoModel, AutoModelForSemanticSegmentation, CLIPModel

from tdos import TDOSConfig, TDOSForOODSegmentation
from tdos.modeling_tdos_ood_slot import merge_ood_slot, reduce_score_map, semantic_map_from_queries
from tdos.optimization import get_parameter_groups
from tdos.random_clip import random_clip


def test_output_shapes_match_method_scaled_to_tiny(tiny_model, tiny_batch):
    pixel_values, _ = tiny_batch
    config = tiny_model.config
    K, K_id, C = config.num_queries, config.num_id_classes, config.projection_dim
    tiny_model.eval()
    with torch.no_grad():
        image = tiny_model.image_encoder(pixel_values)
        features = tiny_model.feature_pyramid(image.feature_maps)
        output = tiny_model(pixel_values)
    grid = (64 // 8, 128 // 8)  # patch 8
    width = config.clip_config.vision_config.hidden_size
    assert [tuple(f.shape) for f in features] == [
        (2, width, grid[0] * 4, grid[1] * 4),
        (2, width, grid[0] * 2, grid[1] * 2),
        (2, width, *grid),
        (2, width, grid[0] // 2, grid[1] // 2),
    ]
    assert image.global_embedding.shape == (2, 1, C)
    assert image.dense_embeddings.shape == (2, C, *grid)
    mask_size = (grid[0] * 4, grid[1] * 4)
    assert output.text_embeddings.shape == (2, K, C)
    assert output.score_map.shape == (2, K, *grid)
    assert output.class_queries_logits.shape == (2, K_id, K_id + 1)
    assert output.masks_queries_logits.shape == (2, K_id, *mask_size)
    assert output.semantic_map.shape == (2, K_id, *mask_size)
    assert output.anomaly_score.shape == (2, *mask_size)
    assert len(output.auxiliary_logits) == config.decoder_layers
    assert K == 20 + config.num_ood_prompts


def test_non_square_inputs_and_other_sizes(tiny_model):
    tiny_model.eval()
    with torch.no_grad():
        output = tiny_model(torch.randn(1, 3, 48, 96))
    assert output.anomaly_score.shape == (1, 24, 48)
    assert torch.isfinite(output.semantic_map).all()


def test_corrected_prompts_give_distinct_class_embeddings(tiny_model):
    tiny_model.eval()
    with torch.no_grad():
        text = tiny_model.compute_text_embeddings()
    K_id = tiny_model.config.num_id_classes
    distances = torch.cdist(text[:K_id], text[:K_id])
    off_diagonal = distances[~torch.eye(K_id, dtype=torch.bool)]
    # The release bug made 18 of 20 class embeddings bit-identical; here every pair differs clearly.
    assert off_diagonal.min() > 1e-3
    # The negatives depend on all their vectors, not only the first.
    with torch.no_grad():
        last = tiny_model.prompt_learner.negative_prompts[:, -1]
        last += torch.randn(last.shape, generator=torch.Generator().manual_seed(0))  # not a constant: LayerNorm removes those
        changed = tiny_model.compute_text_embeddings()
    assert (changed[K_id:] - text[K_id:]).abs().amax(-1).min() > 1e-4
    assert torch.equal(changed[:K_id], text[:K_id])


def test_class_prompts_depend_on_the_class_name_tokens(tiny_model):
    tiny_model.eval()
    with torch.no_grad():
        before = tiny_model.compute_text_embeddings()[0].clone()
        tiny_model.prompt_learner.class_input_ids[0, 1] += 1  # change the first token of "road"
        after = tiny_model.compute_text_embeddings()[0]
    assert not torch.allclose(before, after)


def test_text_encoder_plain_path_equals_clip_text_features():
    config = TDOSConfig.from_preset("tiny")
    clip, tokenizer = random_clip(config.clip_config, seed=3)
    model = TDOSForOODSegmentation.from_clip(clip, tokenizer, ood_bands=TEST_OOD_BANDS, config=config).eval()
    texts = ["a clean origami of a road", "traffic light", "ood"]
    encoded = tokenizer(texts, padding="max_length", max_length=config.text_context_length, return_tensors="pt")
    with torch.no_grad():
        ours = model.text_encoder.encode_input_ids(encoded["input_ids"], tokenizer.eos_token_id)
        reference = clip.get_text_features(input_ids=encoded["input_ids"])
    reference = getattr(reference, "pooler_output", reference)
    torch.testing.assert_close(ours, reference, atol=1e-5, rtol=1e-5)
    # Class anchors are those features of the anchor template, normalised.
    anchor = model.text_encoder.encode_input_ids(encoded["input_ids"][:1], tokenizer.eos_token_id)
    torch.testing.assert_close(model.text_anchors[0], F.normalize(anchor, dim=-1)[0], atol=1e-5, rtol=1e-5)


def test_text_embeddings_computed_once_and_cached_in_eval(tiny_model, tiny_batch, monkeypatch):
    calls = []
    original = tiny_model.text_encoder.forward
    monkeypatch.setattr(tiny_model.text_encoder, "forward", lambda *a, **k: calls.append(1) or original(*a, **k))
    pixel_values, labels = tiny_batch
    tiny_model.train()
    tiny_model(pixel_values, labels=labels)
    tiny_model(pixel_values, labels=labels)
    assert len(calls) == 2  # once per forward in training, whatever the batch size
    tiny_model.eval()
    with torch.no_grad():
        tiny_model(pixel_values)
        tiny_model(pixel_values[:1])
    assert len(calls) == 3  # cached in eval
    with torch.no_grad():
        tiny_model.prompt_learner.contexts.add_(0.1)  # an in-place update invalidates the cache
        tiny_model(pixel_values[:1])
    assert len(calls) == 4


def test_ood_augmentation_changes_ood_tokens_in_training_only():
    model = build_tiny_model(ood_augmentation_probability=1.0)
    encoder = model.image_encoder
    pixel_values = torch.randn(1, 3, 64, 128)
    ood_mask = torch.zeros(1, 64, 128)
    ood_mask[:, 16:48, 32:96] = 1.0  # token rows 2..5, columns 4..11 fully OOD
    with torch.no_grad():
        plain = encoder(pixel_values)
        augmented = encoder(pixel_values, ood_mask=ood_mask)
    difference = (augmented.dense_embeddings - plain.dense_embeddings).abs().amax(1)[0]  # (8, 16)
    token_mask = F.interpolate(ood_mask[:, None], size=(8, 16), mode="bilinear")[0, 0]
    assert difference[token_mask == 1].min() > 1e-4
    assert difference[token_mask == 0].max() < 1e-5
    torch.testing.assert_close(augmented.global_embedding, plain.global_embedding)

    # Through the model: the augmentation is applied in training only, never in eval.
    calls = []
    original = encoder.augmented_layer
    encoder.augmented_layer = lambda *a, **k: calls.append(1) or original(*a, **k)
    labels = torch.zeros(1, 64, 128, dtype=torch.long)
    labels[:, 16:48, 32:96] = 19
    model.train()
    model(pixel_values, labels=labels)
    assert len(calls) == 1
    model.eval()
    with torch.no_grad():
        model(pixel_values, labels=labels)
        model(pixel_values)
    assert len(calls) == 1


def test_all_loss_terms_present_and_finite(tiny_model, tiny_batch):
    pixel_values, labels = tiny_batch
    tiny_model.train()
    output = tiny_model(pixel_values, labels=labels)
    expected = {"loss_cls", "loss_mask", "loss_dice", "loss_identity", "loss_textual", "loss_visual"}
    expected |= {f"d{i}.{name}" for i in range(tiny_model.config.decoder_layers) for name in ("loss_cls", "loss_mask", "loss_dice")}
    assert set(output.loss_dict) == expected
    assert all(torch.isfinite(value) for value in output.loss_dict.values())
    torch.testing.assert_close(output.loss, sum(output.loss_dict.values()))
    # The textual regulariser's floor is log(1 + (K-1) e^-2) with raw cosine logits.
    K = tiny_model.config.num_queries
    assert output.loss_dict["loss_textual"] > 0.9 * torch.log(torch.tensor(1 + (K - 1) * torch.e**-2))


def test_visual_regularizer():
    pixel_values = torch.randn(1, 3, 64, 128)
    labels = torch.zeros(1, 64, 128, dtype=torch.long)
    labels[:, :32] = 19
    frozen = build_tiny_model(ood_augmentation_probability=1.0).train()
    output = frozen(pixel_values, labels=labels)
    assert output.loss_dict["loss_visual"] == 0  # query noise never reaches the class token of a frozen tower
    trained = build_tiny_model(train_image_tower=True, ood_augmentation_probability=1.0).train()
    # same weights as the reference: zero up to float32 rounding (w_cos * (1 - cos) moves in steps of ~1e-7; the
    # towers run with and without autograd, which may pick different attention kernels)
    assert trained(pixel_values, labels=labels).loss_dict["loss_visual"] < 1e-6
    with torch.no_grad():
        trained.image_encoder.visual_projection.weight.mul_(1.5)
    loss = trained(pixel_values, labels=labels).loss_dict["loss_visual"]
    assert loss > 1e-3 and loss.requires_grad
    loss.backward()
    assert trained.image_encoder.visual_projection.weight.grad.abs().sum() > 0


def test_one_step_updates_trainable_parts_only(tiny_model, tiny_batch):
    pixel_values, labels = tiny_batch
    frozen_before = {
        name: tensor.clone()
        for name, tensor in tiny_model.state_dict().items()
        if name.startswith(("image_encoder.", "text_encoder."))
    }
    tiny_model.train()
    optimizer = torch.optim.AdamW(get_parameter_groups(tiny_model, 1e-3, 1e-5))
    output = tiny_model(pixel_values, labels=labels)
    output.loss.backward()
    trainable = {name: p for name, p in tiny_model.named_parameters() if p.requires_grad}
    for prefix in ("prompt_learner.", "context_decoder.", "context_gamma", "feature_pyramid.", "pixel_decoder.", "transformer_decoder."):
        parts = [name for name in trainable if name.startswith(prefix)]
        assert parts, prefix
        assert all(trainable[name].grad is not None for name in parts), prefix
        assert any(trainable[name].grad.abs().sum() > 0 for name in parts), prefix
    assert not any(name.startswith(("image_encoder.", "text_encoder.")) for name in trainable)
    optimizer.step()
    for name, tensor in tiny_model.state_dict().items():
        if name in frozen_before:
            assert torch.equal(tensor, frozen_before[name]), name
    # Frozen CLIP towers stay in eval mode while the model trains.
    assert tiny_model.training and not tiny_model.image_encoder.training and not tiny_model.text_encoder.training


def test_parameter_groups():
    model = build_tiny_model()
    groups = get_parameter_groups(model, learning_rate=1e-4, weight_decay=1e-5)
    grouped = {id(p): group for group in groups for p in group["params"]}
    named = dict(model.named_parameters())
    assert set(grouped) == {id(p) for p in named.values() if p.requires_grad}
    assert grouped[id(named["pixel_decoder.level_embed.weight"])]["weight_decay"] == 0.0
    assert grouped[id(named["transformer_decoder.query_position_embeddings.weight"])]["weight_decay"] == 0.0
    assert grouped[id(named["context_decoder.out_proj.0.weight"])]["weight_decay"] == 0.0  # a LayerNorm
    assert grouped[id(named["context_decoder.out_proj.1.weight"])]["weight_decay"] == 1e-5
    trained = build_tiny_model(train_image_tower=True)
    groups = get_parameter_groups(trained, learning_rate=1e-4, weight_decay=1e-5)
    patch = dict(trained.named_parameters())["image_encoder.vision_model.embeddings.patch_embedding.weight"]
    group = next(g for g in groups if any(p is patch for p in g["params"]))
    assert group["lr"] == pytest.approx(1e-5)
    assert not any(p.requires_grad for p in trained.reference_image_encoder.parameters())


def test_identity_assignment(tiny_model):
    labels = torch.full((2, 4, 4), 255)
    labels[0, 0, 0], labels[0, 1, 1], labels[1, 2, 2] = 0, 19, 5
    targets, masks = tiny_model.criterion.identity_targets(labels)
    no_object = tiny_model.config.num_id_classes
    expected = torch.full((2, 20), no_object)
    expected[0, 0], expected[0, 19], expected[1, 5] = 0, 19, 5
    assert torch.equal(targets, expected)
    assert masks[0, 19].sum() == 1 and masks[0, 19, 1, 1]
    assert not masks[0][:, labels[0] == 255].any()
    assert not masks[1, 0].any()


def test_ood_slot_merge_and_semantic_map():
    class_logits = torch.randn(1, 6, 5)  # K_id = 4 (ood id 3), 2 prompts, 4 + 1 logits
    mask_logits = torch.randn(1, 6, 3, 3)
    merged_class, merged_mask = merge_ood_slot(class_logits, mask_logits, ood_label_id=3)
    assert merged_class.shape == (1, 4, 5) and merged_mask.shape == (1, 4, 3, 3)
    torch.testing.assert_close(merged_class[0, 3], class_logits[0, 3:].mean(0))
    torch.testing.assert_close(merged_mask[0, 3], mask_logits[0, 3:].amax(0))
    semantic = semantic_map_from_queries(merged_class, merged_mask)
    direct = sum(merged_class[0, q].softmax(-1)[2] * merged_mask[0, q].sigmoid() for q in range(4))
    torch.testing.assert_close(semantic[0, 2], direct)
    score_map = torch.randn(1, 6, 2, 2)
    torch.testing.assert_close(reduce_score_map(score_map, 3)[0, 3], score_map[0, 3:].amax(0))


def test_save_load_round_trip_is_bit_exact(tiny_model, tmp_path):
    tiny_model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = TDOSForOODSegmentation.from_pretrained(tmp_path)
    original, restored = tiny_model.state_dict(), loaded.state_dict()
    assert original.keys() == restored.keys()
    for name in original:
        assert torch.equal(original[name], restored[name]), name
    pixel_values = torch.randn(1, 3, 64, 128)
    tiny_model.eval()
    loaded.eval()
    with torch.no_grad():
        assert torch.equal(tiny_model(pixel_values).anomaly_score, loaded(pixel_values).anomaly_score)


def test_auto_classes(tiny_model_dir):
    config = AutoConfig.from_pretrained(tiny_model_dir)
    assert isinstance(config, TDOSConfig)
    assert isinstance(AutoModel.from_pretrained(tiny_model_dir), TDOSForOODSegmentation)
    assert isinstance(AutoModelForSemanticSegmentation.from_pretrained(tiny_model_dir), TDOSForOODSegmentation)
    assert config.auto_map["AutoModel"] == "modeling_tdos.TDOSForOODSegmentation"


@pytest.mark.parametrize("kernel", ["pytorch", "triton"])
def test_remote_code_load_without_the_package(kernel, tiny_model_dir, tmp_path):
    folder = tiny_model_dir
    if kernel == "triton":  # the Triton kernel's file travels with the code, and triton stays optional
        folder = tmp_path / "triton_kernel"
        build_tiny_model(deformable_attention_kernel="triton").save_pretrained(folder)
        assert (folder / "deformable_attention_triton.py").is_file()
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["tdos"] = None  # the package must not be importable
        sys.modules["triton"] = None  # nor triton
        import torch
        from transformers import AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True).eval()
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        assert model.config.deformable_attention_kernel == {kernel!r}
        with torch.no_grad():
            output = model(torch.zeros(1, 3, 64, 128))
        print("OK", tuple(output.anomaly_score.shape))
        """
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "OK (1, 32, 64)" in result.stdout


@pytest.mark.parametrize(
    "pixel_values, message",
    [
        (torch.randn(1, 1, 64, 128), "pixel_values must have shape"),
        (torch.randn(3, 64, 128), "pixel_values must have shape"),
        (torch.randn(1, 3, 60, 128), "multiples of the patch size"),
        (torch.randn(1, 3, 8, 128), "at least 16"),
    ],
)
def test_bad_images(tiny_model, pixel_values, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(pixel_values)


def test_bad_labels(tiny_model):
    pixel_values = torch.randn(2, 3, 64, 128)
    labels = torch.zeros(2, 64, 128, dtype=torch.long)
    labels[0, 0, 0], labels[1, 0, 0] = 20, 254
    with pytest.raises(ValueError, match=r"labels contain values \[20, 254\]"):
        tiny_model(pixel_values, labels=labels)
    with pytest.raises(ValueError, match=r"\(batch, H, W\) = \(2, 64, 128\), got \(3, 64, 128\)"):
        tiny_model(pixel_values, labels=torch.zeros(3, 64, 128, dtype=torch.long))
    with pytest.raises(ValueError, match=r"\(batch, H, W\) = \(2, 64, 128\), got \(2, 32, 64\)"):
        tiny_model(pixel_values, labels=torch.zeros(2, 32, 64, dtype=torch.long))
    with pytest.raises(ValueError, match="integer"):
        tiny_model(pixel_values, labels=torch.zeros(2, 64, 128))


def test_without_ood_prompts_the_model_builds_trains_and_predicts(tiny_batch):
    model = build_tiny_model(num_ood_prompts=0)
    assert model.text_anchors.shape[0] == model.config.num_id_classes
    pixel_values, labels = tiny_batch
    outputs = model.train()(pixel_values, labels=labels)
    assert torch.isfinite(outputs.loss)
    outputs.loss.backward()
    assert model.eval().predict(pixel_values).anomaly_score.shape == (2, 64, 128)


def test_without_the_context_decoder_the_decoders_see_the_text_embeddings_themselves(tiny_batch, tmp_path):
    model = build_tiny_model(use_context_decoder=False)
    assert model.context_decoder is None and model.context_gamma is None
    assert not [name for name, _ in model.named_parameters() if "context_decoder" in name or "context_gamma" in name]
    pixel_values, labels = tiny_batch
    outputs = model.train()(pixel_values, labels=labels)
    assert torch.isfinite(outputs.loss)
    outputs.loss.backward()
    model.eval()
    seen = []
    model.pixel_decoder.register_forward_hook(lambda module, inputs, output: seen.append(inputs[1]))
    prediction = model.predict(pixel_values)
    text = model.compute_text_embeddings()
    torch.testing.assert_close(seen[0][0], text)  # T, not T + gamma * Delta T
    model.save_pretrained(tmp_path)
    reloaded = TDOSForOODSegmentation.from_pretrained(tmp_path).eval()
    assert reloaded.context_decoder is None
    torch.testing.assert_close(reloaded.predict(pixel_values).anomaly_score, prediction.anomaly_score)


def test_clip_weights_that_do_not_fit_are_refused(tiny_model):
    from tdos.from_clip import load_clip_weights
    from tdos.random_clip import random_clip

    clip, _ = random_clip(tiny_model.config.clip_config)
    clip.vision_model.extra = torch.nn.Linear(1, 1)  # a key TDOS's vision tower does not have
    with pytest.raises(ValueError, match=r"unexpected \['extra.weight', 'extra.bias'\]"):
        load_clip_weights(tiny_model, clip)


def test_non_finite_loss_raises(tiny_model, tiny_batch):
    pixel_values, labels = tiny_batch
    with torch.no_grad():
        tiny_model.transformer_decoder.class_predictor.bias.fill_(float("nan"))
    tiny_model.train()
    with pytest.raises(FloatingPointError, match="loss_cls"):
        tiny_model(pixel_values, labels=labels)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"hidden_dim": 48}, "multiple of 32"),
        ({"anomaly_score": "energy"}, "anomaly_score must be one of"),
        ({"inference_mode": "tiles"}, "inference_mode"),
        ({"stride": 100}, "stride"),
        ({"crop_size": 60}, "multiple of the patch size"),
        ({"vision_feature_layers": [0, 1, 2]}, "vision_feature_layers"),
        ({"prompt_context_length": 47}, "prompt_context_length"),
        ({"text_context_length": 100}, "max_position_embeddings"),
        ({"ood_augmentation_probability": 1.5}, r"\[0, 1\]"),
        ({"decoder_num_heads": 5}, "not divisible"),
        ({"anchor_template": "a photo"}, "anchor_template"),
    ],
)
def test_invalid_configs(overrides, message):
    with pytest.raises(ValueError, match=message):
        TDOSConfig.from_preset("tiny", **overrides)


def test_presets():
    paper = TDOSConfig.from_preset("tdos-vit-b16")
    assert paper.num_queries == 70 and paper.vision_feature_layers == [3, 5, 7, 11]
    assert paper.clip_config.vision_config.patch_size == 16 and paper.projection_dim == 512
    assert (paper.hidden_dim, paper.decoder_layers, paper.pixel_decoder_layers, paper.train_num_points) == (256, 9, 6, 12544)
    assert (paper.crop_size, paper.stride, paper.score_map_temperature) == (512, 341, 0.07)
    tiny = TDOSConfig.from_preset("tiny")
    dims = [tiny.hidden_dim, tiny.context_decoder_hidden_size, tiny.clip_config.vision_config.hidden_size,
            tiny.clip_config.text_config.hidden_size, tiny.decoder_ffn_dim, tiny.pixel_decoder_ffn_dim]  # fmt: skip
    assert max(dims) <= 64
    with pytest.raises(ValueError, match="unknown preset"):
        TDOSConfig.from_preset("huge")


def test_from_clip_loads_folders_and_resizes_positions(tmp_path):
    config = TDOSConfig.from_preset("tiny")
    clip_config = config.clip_config.to_dict()
    clip_config["vision_config"]["image_size"] = 32  # a 4x4 position grid, resized to 64 / 8 = 8x8
    clip, tokenizer = random_clip(clip_config, seed=1)
    clip.save_pretrained(tmp_path / "clip")
    tokenizer.save_pretrained(tmp_path / "clip")
    model = TDOSForOODSegmentation.from_clip(tmp_path / "clip", ood_bands=TEST_OOD_BANDS, config=config)
    positions = model.image_encoder.vision_model.embeddings.position_embedding.weight
    assert positions.shape[0] == 8 * 8 + 1
    reloaded = CLIPModel.from_pretrained(tmp_path / "clip")
    torch.testing.assert_close(positions[0], reloaded.vision_model.embeddings.position_embedding.weight[0])
    grid = reloaded.vision_model.embeddings.position_embedding.weight[1:].reshape(1, 4, 4, -1).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(8, 8), mode="bilinear", align_corners=False).permute(0, 2, 3, 1).reshape(64, -1)
    torch.testing.assert_close(positions[1:], expected)
    assert model.config.clip_config.vision_config.image_size == 64


def test_pixel_decoder_feed_forward_in_chunks_at_inference_equals_the_whole(monkeypatch, tiny_model):
    from tdos import modeling_tdos_pixel_decoder

    layer = tiny_model.pixel_decoder.layers[0].eval()
    dim = layer.fc1.in_features
    inputs = [torch.randn(2, 50, dim, generator=torch.Generator().manual_seed(0)) for _ in range(2)]
    inputs = (inputs[0], inputs[1], torch.rand(2, 50, 3, 2), [(2, 5), (4, 5), (2, 10)], torch.randn(2, 7, dim))
    inputs = inputs + (inputs[-1],)
    with torch.no_grad():
        whole = layer(*inputs)
        monkeypatch.setattr(modeling_tdos_pixel_decoder, "FEED_FORWARD_CHUNK_TOKENS", 7)  # 8 chunks, the last short
        chunked = layer(*inputs)
    torch.testing.assert_close(chunked, whole, atol=1e-6, rtol=1e-6)  # products of fewer rows may round differently
    expected = layer.fc2(torch.relu(layer.fc1(inputs[0])))
    assert torch.equal(layer.feed_forward(inputs[0]), expected)  # the in-place ReLU changes nothing


def test_folded_lateral_convolution_equals_the_pyramid_then_the_lateral_convolution(tiny_model, tiny_batch):
    from tdos.modeling_tdos_vit import fold_projection

    pixel_values, _ = tiny_batch
    tiny_model.eval()
    lateral = tiny_model.pixel_decoder.lateral_convolution[0]
    pyramid = tiny_model.feature_pyramid
    maps = tiny_model.image_encoder(pixel_values).feature_maps
    with torch.no_grad():
        plain = tiny_model.feature_pyramid(maps)
        folded = pyramid(maps, lateral)  # inference: folded
    trained = pyramid(maps, lateral)  # gradients: the modules in turn
    assert trained[0].requires_grad
    expected = lateral(plain[0])
    assert folded[0].shape == expected.shape == (2, lateral.out_channels, *plain[0].shape[-2:])
    torch.testing.assert_close(folded[0], expected, atol=1e-5, rtol=1e-5)
    assert torch.equal(trained[0], lateral(pyramid.fpn1(maps[0])))
    torch.testing.assert_close(trained[0].detach(), expected, atol=1e-5, rtol=1e-5)
    for folded_map, plain_map in zip(folded[1:], plain[1:]):
        assert torch.equal(folded_map, plain_map)
    weight, bias = fold_projection(pyramid.fpn1[-1], lateral)
    assert weight.shape == (pyramid.fpn1[-1].in_channels, lateral.out_channels, 2, 2)
    assert bias.shape == (lateral.out_channels,)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert fold_projection(pyramid.fpn1[-1], lateral)[0].dtype == torch.float32  # folded outside autocast
    with torch.no_grad():  # copies: .double() converts a module in place
        double = fold_projection(copy.deepcopy(pyramid.fpn1[-1]).double(), copy.deepcopy(lateral).double())
    assert double[0].dtype == torch.float64
    torch.testing.assert_close(double[0].float(), weight)


def test_upsampling_convolution_is_the_transposed_convolution_as_one_matrix_product():
    from tdos.modeling_tdos_vit import upsampling_convolution

    generator = torch.Generator().manual_seed(3)
    tokens = torch.randn(2, 7 * 5, 12, dtype=torch.float64, generator=generator)
    for features in (
        tokens.transpose(1, 2).reshape(2, 12, 7, 5),  # the ViT taps: a channels-last view of the tokens
        torch.randn(2, 12, 7, 5, dtype=torch.float64, generator=generator),  # contiguous
    ):
        for kernel in ((2, 2), (2, 3)):  # a rectangular kernel checks how the blocks interleave
            weight = torch.randn(12, 4, *kernel, dtype=torch.float64, generator=generator)
            bias = torch.randn(4, dtype=torch.float64, generator=generator)
            output = upsampling_convolution(features, weight, bias)
            expected = F.conv_transpose2d(features, weight, bias, stride=kernel)
            assert output.shape == expected.shape == (2, 4, 7 * kernel[0], 5 * kernel[1])
            torch.testing.assert_close(output, expected, rtol=1e-12, atol=1e-12)
            assert output.is_contiguous(memory_format=torch.channels_last)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert upsampling_convolution(features.float(), weight.float(), bias.float()).dtype == torch.bfloat16


def test_pyramid_at_inference_runs_its_transposed_convolutions_as_matrix_products(tiny_model, tiny_batch, monkeypatch):
    from tdos import modeling_tdos_vit

    calls = []
    shipped = modeling_tdos_vit.upsampling_convolution
    monkeypatch.setattr(modeling_tdos_vit, "upsampling_convolution", lambda *args: calls.append(1) or shipped(*args))
    pixel_values, _ = tiny_batch
    pyramid = tiny_model.eval().feature_pyramid
    maps = tiny_model.image_encoder(pixel_values).feature_maps
    trained = pyramid(maps)
    assert trained[0].requires_grad and not calls  # training: the modules
    with torch.no_grad():
        inferred = pyramid(maps)
    assert len(calls) == 3  # fpn1's two transposed convolutions and fpn2's
    for index in (0, 1):  # fpn1 and fpn2: channels-last products, equal up to rounding
        assert inferred[index].is_contiguous(memory_format=torch.channels_last)
        torch.testing.assert_close(inferred[index], trained[index].detach(), rtol=1e-5, atol=1e-5)
    for index in (2, 3):
        assert torch.equal(inferred[index], trained[index].detach())


def test_pixel_decoder_gives_the_same_maps_for_a_channels_last_finest_map(tiny_model):
    """The folded pyramid's finest map is channels-last; the pixel decoder then upsamples its coarsest output in that
    format (a view of the same values): the same mask features as from a contiguous finest map."""
    decoder = tiny_model.pixel_decoder.eval()
    width = tiny_model.config.feature_pyramid_channels
    generator = torch.Generator().manual_seed(6)
    features = [torch.randn(2, width, size, size, generator=generator) for size in (32, 16, 8, 4)]
    text = torch.randn(2, tiny_model.config.num_queries, tiny_model.config.projection_dim, generator=generator)
    with torch.no_grad():
        contiguous = decoder(features, text).mask_features
        channels_last = [features[0].contiguous(memory_format=torch.channels_last), *features[1:]]
        from_channels_last = decoder(channels_last, text).mask_features
    torch.testing.assert_close(from_channels_last, contiguous, rtol=1e-6, atol=1e-6)


def test_decoder_last_prediction_alone_equals_the_last_of_every_prediction(tiny_model):
    """`forward_last` builds each masked attention's mask from the mask features resized to the level instead of the
    resized full-resolution logits: the same masks (float64, so no logit rounds across 0) and the same last
    prediction, without the earlier predictions' full-resolution masks."""
    decoder = copy.deepcopy(tiny_model.transformer_decoder).double().eval()
    dim = decoder.class_predictor.in_features
    generator = torch.Generator().manual_seed(4)
    features = tuple(torch.randn(2, dim, size, size, generator=generator).double() for size in (4, 8, 16))
    mask_features = torch.randn(2, dim, 32, 32, generator=generator).double()
    text = torch.randn(2, tiny_model.config.num_queries, tiny_model.config.projection_dim, generator=generator)
    with torch.no_grad():
        every_class, every_mask = decoder(text.double(), features, mask_features)
        last_class, last_mask = decoder(text.double(), features, mask_features, every_prediction=False)
        states = torch.randn(tiny_model.config.num_queries, 2, dim, generator=generator).double()
        predictor = decoder.decoder.mask_predictor
        resized = F.interpolate(mask_features, size=(8, 8), mode="bilinear", align_corners=False)
        attention_mask = predictor(states, resized, (8, 8))[1]  # what forward_last asks of the predictor
        expected = predictor(states, mask_features, (8, 8))[1]  # what transformers' forward asks
    assert len(every_class) == tiny_model.config.decoder_layers + 1 and len(last_class) == len(last_mask) == 1
    assert last_mask[0].shape == every_mask[-1].shape == (2, tiny_model.config.num_queries, 32, 32)
    torch.testing.assert_close(last_class[0], every_class[-1], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(last_mask[0], every_mask[-1], rtol=1e-12, atol=1e-12)
    assert attention_mask.dtype == torch.bool and torch.equal(attention_mask, expected)
    assert 0 < attention_mask.float().mean() < 1
    decoder.train()
    assert len(decoder(text.double(), features, mask_features, every_prediction=False)[0]) == len(every_class)


def test_forward_without_auxiliary_logits_gives_the_same_prediction(tiny_model, tiny_batch):
    pixel_values, labels = tiny_batch
    tiny_model.eval()
    with torch.no_grad():
        full = tiny_model(pixel_values)
        lean = tiny_model(pixel_values, output_auxiliary_logits=False)
        trained = tiny_model(pixel_values, labels=labels, output_auxiliary_logits=False)
    assert lean.auxiliary_logits is None and len(full.auxiliary_logits) == tiny_model.config.decoder_layers
    for key in ("class_queries_logits", "masks_queries_logits", "semantic_map", "anomaly_score"):
        assert torch.equal(getattr(lean, key), getattr(full, key))
    assert len(trained.auxiliary_logits) == tiny_model.config.decoder_layers  # the loss needs them: kept with labels
    assert any(key.startswith("d0.") for key in trained.loss_dict)
