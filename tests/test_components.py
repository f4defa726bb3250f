import json
import logging

import numpy as np
import pytest
import torch
from conftest import build_tiny_model
from PIL import Image
from transformers import pipeline

from tdos import TDOSImageProcessor, save_for_inference
from tdos.components import ComponentNamer, find_components
from tdos.random_clip import byte_level_clip_tokenizer


WORDS = ["crate", "ball", "tyre", "dog", "mattress", "cone"]


@pytest.fixture(scope="module")
def model():
    return build_tiny_model().eval()


@pytest.fixture(scope="module")
def namer(model):
    return ComponentNamer(model, byte_level_clip_tokenizer(), WORDS)


def test_find_components_areas_scores_boxes_and_order():
    mask = np.zeros((10, 12), bool)
    mask[1:3, 1:4] = True  # 6 px
    mask[5:9, 6:8] = True  # 8 px
    mask[9, 11] = True  # 1 px, diagonal to nothing
    mask[4, 5] = True  # 8-connected to the second block
    score = np.where(mask, 0.5, 0.0).astype(np.float32)
    score[1, 1] = 0.9
    found = find_components(mask, score)
    assert [c.area for c in found] == [6, 9, 1]  # highest max score first, then the larger
    first, second, _ = found
    assert first.bbox == (1, 1, 4, 3) and first.max_score == pytest.approx(0.9)
    assert first.mean_score == pytest.approx((0.9 + 5 * 0.5) / 6)
    assert second.bbox == (5, 4, 8, 9) and second.mask.sum() == 9
    assert [c.area for c in find_components(mask, score, min_area=2)] == [6, 9]
    assert json.dumps(first.to_dict())  # plain values
    with pytest.raises(ValueError, match="same shape"):
        find_components(mask, score[:5])


def _set_dense(model, region_embedding, rest_embedding, rows):
    """Forward hook: the image encoder's dense embeddings become `region_embedding` on grid rows `rows` and
    `rest_embedding` elsewhere."""

    def hook(module, inputs, output):
        dense = output.dense_embeddings
        dense[:] = rest_embedding.to(dense.dtype)[None, :, None, None]
        dense[:, :, rows] = region_embedding.to(dense.dtype)[None, :, None, None]
        return output

    return model.image_encoder.register_forward_hook(hook)


def test_a_region_embedded_as_a_word_is_named_that_word_first(model, namer):
    """The mechanism: dense embeddings V over a region set to a word's text embedding name that word first; the
    cosine is 1; the rest of the image (another word) does not leak into the component's mean."""
    pixel_values = torch.randn(1, 3, 64, 128)
    words = namer.word_embeddings
    handle = _set_dense(model, words[WORDS.index("mattress")], words[WORDS.index("dog")], slice(0, 4))
    try:
        dense = namer.dense_embeddings(pixel_values)
    finally:
        handle.remove()
    grid_rows = dense.shape[1]
    top = np.zeros((64, 128), bool)
    top[: 64 * 4 // grid_rows] = True  # exactly the grid rows set to "mattress"
    named = namer.nearest_words(dense, top, k=3)
    assert named[0][0] == "mattress" and named[0][1] == pytest.approx(1.0, abs=1e-5)
    assert [word for word, _ in named] == [w for w, _ in sorted(named, key=lambda x: -x[1])]
    assert namer.nearest_words(dense, ~top, k=1)[0][0] == "dog"
    for word in WORDS:  # every word of the vocabulary is recoverable, not only two lucky ones
        handle = _set_dense(model, words[WORDS.index(word)], words[WORDS.index(word)], slice(None))
        try:
            dense = namer.dense_embeddings(pixel_values)
        finally:
            handle.remove()
        assert namer.nearest_words(dense, np.ones((64, 128), bool), k=1)[0][0] == word


def test_pipeline_returns_named_components(tmp_path):
    model = build_tiny_model().eval()
    tokenizer = byte_level_clip_tokenizer()
    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    save_for_inference(model, processor, tmp_path, tokenizer=tokenizer)
    pipe = pipeline("ood-segmentation", model=str(tmp_path), trust_remote_code=True)  # the tokenizer: from the folder
    assert (tmp_path / "components.py").is_file()  # the pipeline code needs it, without the tdos package
    image = Image.fromarray(np.random.default_rng(0).integers(0, 256, (50, 130, 3), dtype=np.uint8))
    plain = pipe(image, threshold=0.05)
    assert "components" not in plain
    threshold = float(np.quantile(plain["anomaly_score"], 0.9))
    output = pipe(image, threshold=threshold, components=True, top_k=2, vocabulary=WORDS)
    mask = np.asarray(output["anomaly_mask"]) == 255
    found = output["components"]
    assert found and sum(c.area for c in found) == mask.sum()
    union = np.zeros_like(mask)
    for component in found:
        assert not (union & component.mask).any()
        union |= component.mask
        assert len(component.words) == 2 and {w for w, _ in component.words} <= set(WORDS)
        assert component.max_score >= component.mean_score >= threshold
    assert np.array_equal(union, mask)
    # the named word is the one whose text embedding the region's dense embedding equals
    embedding = pipe.component_namer(tuple(WORDS)).word_embeddings[WORDS.index("cone")]
    handle = _set_dense(pipe.model, embedding, embedding, slice(None))
    try:
        named = pipe(image, threshold=threshold, components=True, top_k=1, vocabulary=WORDS)["components"]
    finally:
        handle.remove()
    assert all(component.words[0][0] == "cone" for component in named)


def test_components_without_a_tokenizer_name_the_problem(tiny_model_dir):
    processor = TDOSImageProcessor(size={"shortest_edge": 32, "longest_edge": 64}, size_divisor=8)
    pipe = pipeline("ood-segmentation", model=str(tiny_model_dir), image_processor=processor)
    image = Image.new("RGB", (64, 32), (90, 90, 90))
    with pytest.raises(ValueError, match="needs the model's CLIP tokenizer"):
        pipe(image, threshold=0.0, components=True, vocabulary=WORDS)


def test_predict_cli_writes_components(tmp_path, caplog):
    from tdos.predict import main

    model_dir = tmp_path / "model"
    processor = TDOSImageProcessor(size={"shortest_edge": 64, "longest_edge": 128}, size_divisor=8)
    save_for_inference(build_tiny_model(), processor, model_dir, tokenizer=byte_level_clip_tokenizer())
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (48, 96, 3), dtype=np.uint8)).save(tmp_path / "a.png")
    vocabulary = tmp_path / "words.txt"
    vocabulary.write_text("\n".join(WORDS) + "\n")
    caplog.set_level(logging.INFO, logger="tdos.predict")
    out = tmp_path / "out"
    arguments = [str(tmp_path / "a.png"), "--model", str(model_dir), "--output-dir", str(out), "--threshold", "0.0"]
    assert main(arguments + ["--components", "--vocabulary", str(vocabulary), "--top-k", "2"]) == 0
    report = json.loads((out / "a_components.json").read_text())
    assert report["threshold"] == 0.0 and len(report["components"]) == 1  # every pixel >= 0: one component
    component = report["components"][0]
    assert component["area"] == 48 * 96 and component["bbox"] == [0, 0, 96, 48]
    assert [w["word"] in WORDS for w in component["words"]] == [True, True]
    assert "1 component" in caplog.text
    with pytest.raises(SystemExit):  # --components needs --threshold
        main(arguments[:-2] + ["--components"])
