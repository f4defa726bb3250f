"""Tests of `tdos.convert_clip` against open_clip, which builds CLIP ViTs in OpenAI's key layout."""

import json
import logging

import pytest
import torch


open_clip = pytest.importorskip("open_clip")
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg  # noqa: E402
from open_clip.tokenizer import SimpleTokenizer, default_bpe  # noqa: E402
from transformers import AutoProcessor, AutoTokenizer, CLIPModel  # noqa: E402

from tdos.convert_clip import convert_openai_clip, main, openai_state_dict_to_hf  # noqa: E402
from tdos.convert_clip_common import CheckpointError, tokenizer_from_bpe  # noqa: E402
from tdos.text_cleaning import clean_text  # noqa: E402


TOLERANCE = 1e-5
TEXTS = [
    "traffic light",
    "motorcycle",
    "a clean origami of a ood.",
    "Rider's bicycle; truck/bus -- (on-road) 3.14 m!",
    "  PERSON   walking,   dog's  CAR?? ",
]
BPE_PATH = default_bpe()


class NotATensor:
    """A custom class: a checkpoint pickling it must be refused."""

    def __init__(self):
        self.payload = "anything"


@pytest.fixture(scope="module")
def reference_clip():
    """Tiny random open_clip ViT in OpenAI's layout. Widths are multiples of 64: 3 vision heads, 2 text heads."""
    torch.manual_seed(0)
    model = CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=2, width=192, head_width=64, patch_size=16, image_size=64),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=49408, width=128, heads=2, layers=2),
        quick_gelu=True,
    )
    with torch.no_grad():
        model.logit_scale.fill_(3.5)
    return model.eval()


@pytest.fixture(scope="module")
def checkpoints(reference_clip, tmp_path_factory):
    """The reference model saved as a plain state dict and as a TorchScript archive."""
    folder = tmp_path_factory.mktemp("checkpoints")
    paths = {"plain": folder / "plain.pt", "torchscript": folder / "torchscript.pt"}
    torch.save(reference_clip.state_dict(), paths["plain"])
    torch.jit.script(reference_clip).save(str(paths["torchscript"]))
    return paths


@pytest.fixture(scope="module")
def inputs():
    torch.manual_seed(1)
    return torch.randn(2, 3, 64, 64), SimpleTokenizer()(TEXTS)


def max_feature_differences(hf_model, reference_clip, pixel_values, input_ids):
    with torch.no_grad():
        image = hf_model.get_image_features(pixel_values=pixel_values).pooler_output
        text = hf_model.get_text_features(input_ids=input_ids).pooler_output
        image_diff = (image - reference_clip.encode_image(pixel_values)).abs().max().item()
        text_diff = (text - reference_clip.encode_text(input_ids)).abs().max().item()
    return image_diff, text_diff


@pytest.mark.parametrize(
    "kind, loader", [("plain", "torch.load, weights_only=True"), ("torchscript", "torch.jit.load")]
)
def test_conversion_matches_open_clip(kind, loader, reference_clip, checkpoints, inputs, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tdos")
    model = convert_openai_clip(checkpoints[kind], tmp_path / "out", bpe_path=BPE_PATH)
    assert loader in caplog.text

    image_diff, text_diff = max_feature_differences(model, reference_clip, *inputs)
    assert image_diff <= TOLERANCE and text_diff <= TOLERANCE, (image_diff, text_diff)
    assert model.logit_scale.item() == pytest.approx(3.5)

    reloaded = CLIPModel.from_pretrained(tmp_path / "out").eval()
    assert max(max_feature_differences(reloaded, reference_clip, *inputs)) <= TOLERANCE
    assert (tmp_path / "out" / "model.safetensors").is_file()


def test_inferred_config_and_dtypes(reference_clip):
    state_dict = {key: value.half() for key, value in reference_clip.state_dict().items()}
    # OpenAI's archives also carry integer metadata that is not a weight.
    state_dict.update(
        input_resolution=torch.tensor(64), context_length=torch.tensor(77), vocab_size=torch.tensor(49408)
    )
    config, hf_state_dict = openai_state_dict_to_hf(state_dict)

    vision, text = config.vision_config, config.text_config
    assert (vision.image_size, vision.patch_size, vision.hidden_size) == (64, 16, 192)
    assert (vision.num_hidden_layers, vision.num_attention_heads, vision.intermediate_size) == (2, 3, 768)
    assert (text.hidden_size, text.num_hidden_layers, text.num_attention_heads) == (128, 2, 2)
    assert (text.max_position_embeddings, text.vocab_size, text.eos_token_id) == (77, 49408, 49407)
    assert config.projection_dim == vision.projection_dim == text.projection_dim == 32
    assert vision.hidden_act == text.hidden_act == "quick_gelu"
    assert vision.layer_norm_eps == text.layer_norm_eps == 1e-5
    assert all(value.dtype == torch.float32 for value in hf_state_dict.values())
    assert hf_state_dict["visual_projection.weight"].shape == (32, 192)
    torch.testing.assert_close(
        hf_state_dict["text_model.encoder.layers.1.self_attn.v_proj.weight"],
        state_dict["transformer.resblocks.1.attn.in_proj_weight"][256:].float(),
    )


def test_vit_b16_shapes_infer_the_published_config():
    """ViT-B/16's shapes (meta tensors, no weights) give openai/clip-vit-base-patch16's architecture."""
    with torch.device("meta"):
        vit_b16 = CLIP(
            embed_dim=512,
            vision_cfg=CLIPVisionCfg(layers=12, width=768, patch_size=16, image_size=224),
            text_cfg=CLIPTextCfg(),
            quick_gelu=True,
        )
    config, _ = openai_state_dict_to_hf(vit_b16.state_dict())
    vision, text = config.vision_config, config.text_config
    assert (vision.image_size, vision.patch_size, vision.hidden_size, vision.intermediate_size) == (224, 16, 768, 3072)
    assert (vision.num_hidden_layers, vision.num_attention_heads) == (12, 12)
    assert (text.hidden_size, text.intermediate_size) == (512, 2048)
    assert (text.num_hidden_layers, text.num_attention_heads) == (12, 8)
    assert (text.max_position_embeddings, text.vocab_size, config.projection_dim) == (77, 49408, 512)


def test_tokenizer_matches_simple_tokenizer():
    reference = SimpleTokenizer()
    tokenizer = tokenizer_from_bpe(BPE_PATH)
    assert len(tokenizer) == 49408
    for text in TEXTS:
        expected = [reference.sot_token_id, *reference.encode(text), reference.eot_token_id]
        assert tokenizer(text).input_ids == expected, text


UNCLEAN_TEXTS = [
    "a photo of salt &amp; pepper",  # HTML entity
    "AT&amp;amp;T road sign",  # escaped twice
    "rock &#39;n&#39; roll &lt;3",  # numeric and named entities
    "a \u201cstop\u201d sign and a driver\u2019s seat",  # curly quotes
    "caf\u00c3\u00a9 on the street",  # mojibake (UTF-8 read as Latin-1)
    "  two\u00a0 spaces\tand\nlines  ",  # whitespace of every kind
]


def test_cleaned_text_gets_openai_ids_for_every_kind_of_unclean_text():
    reference = SimpleTokenizer()
    tokenizer = tokenizer_from_bpe(BPE_PATH)
    for text in UNCLEAN_TEXTS:
        expected = [reference.sot_token_id, *reference.encode(text), reference.eot_token_id]
        assert tokenizer(clean_text(text)).input_ids == expected, text
    # without the cleaning, transformers' tokenizer alone differs on the entities, quotes and mojibake
    differing = [text for text in UNCLEAN_TEXTS if tokenizer(text).input_ids[1:-1] != reference.encode(text)]
    assert differing == UNCLEAN_TEXTS[:5]


def test_refuses_arbitrary_pickle(reference_clip, tmp_path):
    path = tmp_path / "unsafe.pt"
    torch.save({"logit_scale": reference_clip.logit_scale.detach(), "extra": NotATensor()}, path)
    with pytest.raises(CheckpointError, match=r"Refused to load .*unsafe\.pt.*arbitrary code"):
        convert_openai_clip(path, tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_unknown_missing_and_rn50_keys(reference_clip, tmp_path):
    state_dict = dict(reference_clip.state_dict())
    state_dict["visual.extra.weight"] = torch.zeros(1)
    del state_dict["ln_final.bias"], state_dict["visual.transformer.resblocks.1.mlp.c_proj.weight"]
    with pytest.raises(CheckpointError) as error:
        openai_state_dict_to_hf(state_dict)
    message = str(error.value)
    assert "missing keys ['ln_final.bias', 'visual.transformer.resblocks.1.mlp.c_proj.weight']" in message
    assert "unknown keys ['visual.extra.weight']" in message

    # A ResNet key sends the state dict to the RN50 converter, which lists what a ResNet lacks.
    rn50 = {"visual.layer1.0.conv1.weight": torch.zeros(64, 64, 1, 1), **reference_clip.state_dict()}
    with pytest.raises(CheckpointError, match="ResNet"):
        openai_state_dict_to_hf(rn50)
    torch.save(rn50, tmp_path / "rn50.pt")
    with pytest.raises(CheckpointError, match=r"Cannot convert .*rn50\.pt: .*ResNet.*visual\.attnpool"):
        convert_openai_clip(tmp_path / "rn50.pt", tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_overwrite(checkpoints, tmp_path):
    output_dir = tmp_path / "out"
    output_dir.mkdir()
    (output_dir / "keep.txt").write_text("user data")
    with pytest.raises(FileExistsError, match="not empty"):
        convert_openai_clip(checkpoints["plain"], output_dir)
    assert (output_dir / "keep.txt").read_text() == "user data"

    convert_openai_clip(checkpoints["plain"], output_dir, overwrite=True)
    assert not (output_dir / "keep.txt").exists()
    assert (output_dir / "model.safetensors").is_file()
    # The temporary build and backup folders are gone.
    assert sorted(path.name for path in tmp_path.iterdir()) == ["out"]


def test_cli_end_to_end(reference_clip, checkpoints, inputs, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="tdos")
    main([str(checkpoints["torchscript"]), str(tmp_path / "no-tokenizer")])
    assert "gets no tokenizer" in caplog.text
    assert not (tmp_path / "no-tokenizer" / "tokenizer.json").exists()

    output_dir = tmp_path / "clip"
    main([str(checkpoints["torchscript"]), str(output_dir), "--bpe", BPE_PATH])
    merges = (output_dir / "merges.txt").read_text().splitlines()
    assert len(merges) == 1 + 48894 and len(json.loads((output_dir / "vocab.json").read_text())) == 49408

    model = CLIPModel.from_pretrained(output_dir).eval()
    processor = AutoProcessor.from_pretrained(output_dir)
    open_clip_ids = [token for token in inputs[1][2].tolist() if token != 0]
    assert AutoTokenizer.from_pretrained(output_dir)(TEXTS[2]).input_ids == open_clip_ids
    assert processor.image_processor.crop_size == {"height": 64, "width": 64}

    # HF tokenisation (padded with <|endoftext|>, not 0) gives the same text features as open_clip's.
    tokens = processor.tokenizer(TEXTS, padding="max_length", max_length=77, return_tensors="pt")
    image = torch.randint(0, 256, (3, 80, 96), dtype=torch.uint8)
    pixel_values = processor.image_processor(image, return_tensors="pt").pixel_values
    with torch.no_grad():
        text_features = model.get_text_features(**tokens).pooler_output
        image_features = model.get_image_features(pixel_values=pixel_values).pooler_output
        assert (text_features - reference_clip.encode_text(inputs[1])).abs().max() <= TOLERANCE
        assert (image_features - reference_clip.encode_image(pixel_values)).abs().max() <= TOLERANCE
