"""Tests of the CLIP ResNet conversion (`tdos.convert_clip_rn50`) against open_clip, which builds CLIP ResNets in
OpenAI's key layout."""

import logging

import pytest
import torch
import torch.nn.functional as F
from conftest import TEST_OOD_BANDS


open_clip = pytest.importorskip("open_clip")
pytest.importorskip("timm")
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg  # noqa: E402
from open_clip.tokenizer import SimpleTokenizer, default_bpe  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

from tdos import TDOSConfig, TDOSForOODSegmentation  # noqa: E402
from tdos.convert_clip import convert_openai_clip, main  # noqa: E402
from tdos.convert_clip_common import CheckpointError  # noqa: E402
from tdos.convert_clip_rn50 import openai_resnet_state_dict_to_towers, resnet_architecture  # noqa: E402
from tdos.clip_resnet_towers import CLIPResNetTowers  # noqa: E402


TOLERANCE = 1e-5
TEXTS = ["traffic light", "a clean origami of a ood.", "Rider's bicycle; truck/bus -- (on-road) 3.14 m!"]


@pytest.fixture(scope="module")
def reference_clip():
    """Tiny random open_clip ModifiedResNet (width 16: 8 attention-pool heads of 64) with a 2-layer text tower; the
    BatchNorm statistics and affine terms are randomised so that a wrong mapping of any of them shows."""
    torch.manual_seed(0)
    model = CLIP(
        embed_dim=48,
        vision_cfg=CLIPVisionCfg(layers=(1, 2, 1, 1), width=16, image_size=64),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=128, heads=2, layers=2),
        quick_gelu=True,
    )
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.normal_()
                module.running_var.uniform_(0.5, 2.0)
                module.weight.normal_(1.0, 0.1)
                module.bias.normal_()
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(reference_clip, tmp_path_factory):
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {"plain": folder / "plain.pt", "torchscript": folder / "torchscript.pt"}
    torch.save(reference_clip.state_dict(), paths["plain"])
    torch.jit.script(reference_clip).save(str(paths["torchscript"]))
    return paths


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64), SimpleTokenizer()(TEXTS)


def max_feature_differences(towers: CLIPResNetTowers, reference_clip, pixel_values, input_ids) -> tuple[float, float]:
    with torch.no_grad():
        image = towers.image_trunk(pixel_values)
        text = towers.text_model(input_ids=input_ids).text_embeds
        image_diff = (image - reference_clip.encode_image(pixel_values)).abs().max().item()
        text_diff = (text - reference_clip.encode_text(input_ids)).abs().max().item()
    return image_diff, text_diff


@pytest.mark.parametrize("kind, loader", [("plain", "weights_only=True"), ("torchscript", "torch.jit.load")])
def test_conversion_matches_open_clip(kind, loader, reference_clip, checkpoints, inputs, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tdos")
    towers = convert_openai_clip(checkpoints[kind], tmp_path / "out", bpe_path=default_bpe())
    assert loader in caplog.text and "Inferred CLIP ResNet" in caplog.text
    assert isinstance(towers, CLIPResNetTowers)
    assert max(max_feature_differences(towers, reference_clip, *inputs)) <= TOLERANCE

    reloaded = CLIPResNetTowers.from_pretrained(tmp_path / "out")
    assert max(max_feature_differences(reloaded, reference_clip, *inputs)) <= TOLERANCE
    assert (tmp_path / "out" / "image" / "model.safetensors").is_file()
    assert (tmp_path / "out" / "text" / "model.safetensors").is_file()
    # Every stage equals open_clip's ModifiedResNet stage.
    visual = reference_clip.visual
    with torch.no_grad():
        ours, theirs = reloaded.image_trunk.stem(inputs[0]), visual.stem(inputs[0])
        for stage, layer in zip(reloaded.image_trunk.stages, (visual.layer1, visual.layer2, visual.layer3, visual.layer4)):
            ours, theirs = stage(ours), layer(theirs)
            assert (ours - theirs).abs().max() <= TOLERANCE


def test_tdos_embeddings_match_v_v_attention_of_open_clip(reference_clip, checkpoints, inputs, tmp_path):
    """End to end: converted folder -> from_clip -> TDOS dense/global embeddings equal the release's v-v attention
    (q, k, v all `attnpool.v_proj`) computed from open_clip's own modules; text features equal open_clip's."""
    convert_openai_clip(checkpoints["plain"], tmp_path / "clip", bpe_path=default_bpe())
    config = TDOSConfig.from_preset("tiny-rn50", num_ood_prompts=4)
    model = TDOSForOODSegmentation.from_clip(tmp_path / "clip", ood_bands=TEST_OOD_BANDS, config=config).eval()
    assert (model.config.resnet_layers, model.config.resnet_width, model.config.projection_dim) == ([1, 2, 1, 1], 16, 48)
    visual, pixel_values = reference_clip.visual, inputs[0]
    pool = visual.attnpool
    with torch.no_grad():
        output = model.image_encoder(pixel_values)
        layer4 = visual.layer4(visual.layer3(visual.layer2(visual.layer1(visual.stem(pixel_values)))))
        tokens = layer4.flatten(2).permute(2, 0, 1)
        tokens = torch.cat([tokens.mean(0, keepdim=True), tokens]) + pool.positional_embedding[:, None]
        v = pool.v_proj
        reference, _ = F.multi_head_attention_forward(
            tokens, tokens, tokens, tokens.shape[-1], pool.num_heads,
            in_proj_weight=None, in_proj_bias=torch.cat([v.bias] * 3), bias_k=None, bias_v=None, add_zero_attn=False,
            dropout_p=0.0, out_proj_weight=pool.c_proj.weight, out_proj_bias=pool.c_proj.bias,
            use_separate_proj_weight=True, q_proj_weight=v.weight, k_proj_weight=v.weight, v_proj_weight=v.weight,
            need_weights=False,
        )  # fmt: skip
        tokenizer = AutoTokenizer.from_pretrained(tmp_path / "clip")
        ids = tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt").input_ids
        text = model.text_encoder.encode_input_ids(ids, tokenizer.eos_token_id)
        text_reference = reference_clip.encode_text(inputs[1])
    assert (output.global_embedding[:, 0] - reference[0]).abs().max() <= TOLERANCE
    assert (output.dense_embeddings.flatten(2) - reference[1:].permute(1, 2, 0)).abs().max() <= TOLERANCE
    assert (text - text_reference).abs().max() <= TOLERANCE


def test_rn50_shapes_infer_the_published_architecture():
    """RN50's shapes (meta tensors, no weights) give CLIP RN50: layers 3-4-6-3, width 64, 1024-d, 224 px."""
    with torch.device("meta"):
        rn50 = CLIP(
            embed_dim=1024,
            vision_cfg=CLIPVisionCfg(layers=(3, 4, 6, 3), width=64, image_size=224),
            text_cfg=CLIPTextCfg(),
            quick_gelu=True,
        )
    state_dict = rn50.state_dict()
    assert resnet_architecture(state_dict) == {"layers": [3, 4, 6, 3], "width": 64, "output_dim": 1024, "image_size": 224}


def test_inferred_text_config_and_dtypes(reference_clip):
    state_dict = {key: value.half() if value.is_floating_point() else value for key, value in reference_clip.state_dict().items()}
    state_dict.update(input_resolution=torch.tensor(64), context_length=torch.tensor(77), vocab_size=torch.tensor(49408))
    towers = openai_resnet_state_dict_to_towers(state_dict)
    text = towers.text_model.config
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads, text.projection_dim) == (128, 2, 2, 48)
    assert (towers.layers, towers.width, towers.image_size) == ([1, 2, 1, 1], 16, 64)
    assert all(p.dtype == torch.float32 for p in towers.image_trunk.parameters())
    assert towers.image_trunk.head.num_heads == 8


def test_missing_and_unknown_keys(reference_clip, tmp_path):
    state_dict = dict(reference_clip.state_dict())
    state_dict["visual.extra.weight"] = torch.zeros(1)
    del state_dict["visual.layer2.1.bn3.running_var"]
    with pytest.raises(CheckpointError) as error:
        openai_resnet_state_dict_to_towers(state_dict)
    message = str(error.value)
    assert "image tower" in message and "stages.1.1.conv3_1x1.bn.running_var" in message
    assert "visual.extra.weight" in message

    state_dict = dict(reference_clip.state_dict())
    del state_dict["ln_final.bias"]
    torch.save(state_dict, tmp_path / "broken.pt")
    with pytest.raises(CheckpointError, match=r"Cannot convert .*broken\.pt: .*text tower.*ln_final\.bias"):
        convert_openai_clip(tmp_path / "broken.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_cli_end_to_end(checkpoints, tmp_path):
    main([str(checkpoints["torchscript"]), str(tmp_path / "clip"), "--bpe", default_bpe()])
    assert CLIPResNetTowers.is_folder(tmp_path / "clip")
    assert len(AutoTokenizer.from_pretrained(tmp_path / "clip")) == 49408
    with pytest.raises(FileExistsError, match="not empty"):
        main([str(checkpoints["plain"]), str(tmp_path / "clip")])
    main([str(checkpoints["plain"]), str(tmp_path / "clip"), "--overwrite"])
    assert not (tmp_path / "clip" / "tokenizer.json").exists()  # rewritten without --bpe
    assert sorted(path.name for path in tmp_path.iterdir()) == ["clip"]
