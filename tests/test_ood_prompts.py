"""Tests of `tdos.ood_prompts`: WordNet (recipe B) and CLIP-text (recipe A) OOD word bands, files, CLI, set-up."""

import json
import subprocess
import sys
from pathlib import Path

import nltk
import pytest
import torch
from nltk.corpus.reader import WordNetCorpusReader

from tdos import TDOSConfig, TDOSForOODSegmentation
from tdos import ood_prompts
from tdos.ood_prompts import (
    CITYSCAPES_CLASSES,
    CITYSCAPES_SYNSETS,
    WORDNET_FIX,
    generate_clip_bands,
    generate_wordnet_bands,
    install_wordnet,
    load_ood_bands,
    main,
    rank_wordnet_candidates,
    resolve_synsets,
    save_bands,
    split_into_bands,
    wordnet,
)
from tdos.random_clip import random_clip


SHIPPED = Path(ood_prompts.__file__).parent / "data" / ood_prompts.DEFAULT_BANDS_FILE
REPO_ROOT = Path(__file__).resolve().parents[1]
SMALL = {"class_names": ["car", "dog"], "num_bands": 5, "words_per_band": 4}


@pytest.fixture(scope="module")
def cityscapes_ranking():
    """The one full recipe-B generation of this file (the 19 Cityscapes classes over the ~34k-synset pool)."""
    return rank_wordnet_candidates(CITYSCAPES_CLASSES)


@pytest.fixture(scope="module")
def small_bands():
    return generate_wordnet_bands(**SMALL)


# ---------------------------------------------------------------------------------------------------- recipe B
def test_id_synsets_their_hyponyms_and_hypernyms_are_excluded(cityscapes_ranking):
    names = {item.synset for item in cityscapes_ranking}
    for name in ["sports_car.n.01", "pedestrian.n.01", "vehicle.n.01", "car.n.01", "person.n.01", "ambulance.n.01",
                 "motor_vehicle.n.01", "entity.n.01", "street_sign.n.01", "tandem_bicycle.n.01"]:  # fmt: skip
        assert name not in names, name
    words = {item.word.lower() for item in cityscapes_ranking}
    assert not words & {name.lower() for name in CITYSCAPES_CLASSES}  # e.g. "car" as in railway car
    assert not words & {"automobile", "auto", "human"}  # lemmas of the ID synsets
    assert {"snout.n.01", "turnstile.n.01", "pit_viper.n.01"} <= names  # concrete OOD things stay
    assert not any(item.synset.startswith(("genus_", "family_")) for item in cityscapes_ranking)
    assert len(cityscapes_ranking) > 30_000


def test_distances_equal_nltk_wu_palmer(cityscapes_ranking):
    reader = wordnet()
    id_synsets = [reader.synset(name) for name in CITYSCAPES_SYNSETS.values()]
    for item in cityscapes_ranking[::1500]:
        synset = reader.synset(item.synset)
        assert item.distance == 1 - max(synset.wup_similarity(other) for other in id_synsets), item
        assert item.path_distance == min(synset.shortest_path_distance(other) for other in id_synsets), item
        assert item.word == synset.lemma_names()[0].replace("_", " ")


def test_distances_are_monotone_across_bands(cityscapes_ranking):
    distances = split_into_bands([item.distance for item in cityscapes_ranking], 50)
    assert len(distances) == 50
    for farther, nearer in zip(distances, distances[1:]):
        assert min(farther) >= max(nearer)
    assert distances[0][0] > 0.7 and distances[-1][-1] < 0.25  # farthest first, spanning the range


def test_bands_have_equal_sizes(cityscapes_ranking):
    words = [item.word for item in cityscapes_ranking]
    full = split_into_bands(words, 50)
    assert {len(band) for band in full} == {len(words) // 50}
    thinned = split_into_bands(words, 50, words_per_band=40)
    assert {len(band) for band in thinned} == {40}
    for whole, part in zip(full, thinned):  # evenly spread over the band: its ends are kept
        assert (part[0], part[-1]) == (whole[0], whole[-1])
        assert set(part) <= set(whole)
    with pytest.raises(ValueError, match="words_per_band must be in"):
        split_into_bands(words, 50, words_per_band=len(words))
    with pytest.raises(ValueError, match="cannot fill 5 bands"):
        split_into_bands(words[:4], 5)


def test_shipped_default_equals_a_fresh_generation(cityscapes_ranking):
    """Also checks determinism across processes: the shipped file was written by another process and hash seed."""
    metadata = json.loads(SHIPPED.read_text(encoding="utf-8"))["metadata"]
    assert metadata["recipe"] == "wordnet"
    assert metadata["synsets"] == [CITYSCAPES_SYNSETS[name] for name in CITYSCAPES_CLASSES]
    assert metadata["pool_size"] == len(cityscapes_ranking)
    shipped = load_ood_bands()
    fresh = split_into_bands([item.word for item in cityscapes_ranking], 50, metadata["words_per_band"])
    assert len(shipped) == metadata["num_bands"] == 50
    assert shipped == fresh


def test_generate_wordnet_bands_for_other_classes(small_bands):
    """Determinism: the CLI test compares a second generation with these bands, the shipped-file test another process's."""
    assert len(small_bands) == 5 and {len(band) for band in small_bands} == {4}
    assert not {"car", "dog"} & {word for band in small_bands for word in band}


def test_resolve_synsets():
    assert resolve_synsets(["traffic sign", "dog"]) == ["street_sign.n.01", "dog.n.01"]
    assert resolve_synsets(["hound"], ["dog.n.01"]) == ["dog.n.01"]
    with pytest.raises(ValueError, match="one per class"):
        resolve_synsets(["car", "dog"], ["car.n.01"])
    with pytest.raises(ValueError, match="not a noun synset"):
        resolve_synsets(["run"], ["run.v.01"])
    with pytest.raises(ValueError, match="not a WordNet synset name"):
        resolve_synsets(["car"], ["no_such_thing.n.01"])
    with pytest.raises(ValueError, match="no WordNet noun sense"):
        resolve_synsets(["qwzx"])


# ---------------------------------------------------------------------------------------------------- recipe A
@pytest.fixture(scope="module")
def tiny_clip():
    return random_clip(TDOSConfig.from_preset("tiny").clip_config, seed=0)


CANDIDATES = {
    "noun": ["anvil", "banana", "cello", "dolphin", "eel", "fern", "gong", "harp", "igloo", "jade"],
    "adjective": ["azure", "brisk", "car", "calm", "dusty", "eager", "faint", "giddy", "hollow", "icy", "jolly",
                  "keen", "lush", "mellow", "noisy", "odd", "plush", "quiet", "rusty", "shiny", "tidy"],
}  # fmt: skip


def neglabel_order(model, tokenizer, template, words, class_names):
    """Reference: words by ascending 95th percentile of cosine similarity to the ID prompts."""

    def features(texts):
        batch = tokenizer(texts, padding=True, return_tensors="pt")
        with torch.no_grad():
            return torch.nn.functional.normalize(model.get_text_features(**batch).pooler_output, dim=-1)

    ids = features([f"the nice {name}" for name in class_names])
    scores = torch.quantile(features([template.format(word) for word in words]) @ ids.T, 0.95, dim=1)
    return [words[index] for index in scores.argsort(stable=True).tolist()]


def test_clip_bands_follow_neglabel(tiny_clip):
    model, tokenizer = tiny_clip
    adjectives = [word for word in CANDIDATES["adjective"] if word != "car"]
    expected = neglabel_order(model, tokenizer, "This is a {} photo", adjectives, ["car", "road"])[:10]
    bands = generate_clip_bands(["car", "road"], model, tokenizer, num_bands=2, candidates=CANDIDATES, keep_fraction=0.5)
    assert bands == [expected[:5], expected[5:]]  # the ID name "car" is dropped, nouns are not used by default

    nouns = neglabel_order(model, tokenizer, "the nice {}", CANDIDATES["noun"], ["car", "road"])[:5]
    with_nouns = generate_clip_bands(
        ["car", "road"], model, tokenizer, num_bands=3, candidates=CANDIDATES, keep_fraction=0.5, include_nouns=True
    )
    assert with_nouns == [nouns[:5], expected[:5], expected[5:]]


def test_clip_bands_from_a_saved_folder(tiny_clip, tmp_path):
    model, tokenizer = tiny_clip
    model.save_pretrained(tmp_path / "clip")
    tokenizer.save_pretrained(tmp_path / "clip")
    arguments = {"num_bands": 2, "candidates": CANDIDATES, "keep_fraction": 0.5}
    assert generate_clip_bands(["car"], str(tmp_path / "clip"), **arguments) == generate_clip_bands(
        ["car"], model, tokenizer, **arguments
    )
    with pytest.raises(ValueError, match="needs its tokenizer"):
        generate_clip_bands(["car"], model, **arguments)


# ---------------------------------------------------------------------------------------------------- files and CLI
def test_save_and_load_bands(tmp_path):
    path = tmp_path / "out" / "bands.json"
    bands = [["anvil", "Windsor tie"], ["crème brûlée", "eel"]]
    save_bands(bands, path, {"recipe": "manual"})
    assert load_ood_bands(path) == bands
    assert json.loads(path.read_text(encoding="utf-8"))["metadata"] == {"recipe": "manual"}
    assert [p.name for p in path.parent.iterdir()] == ["bands.json"]  # no temporary file left behind
    with pytest.raises(ValueError, match="non-empty list"):
        save_bands([["a"], []], tmp_path / "bad.json")
    assert not (tmp_path / "bad.json").exists()
    (tmp_path / "other.json").write_text(json.dumps({"format": "something", "bands": bands}))
    with pytest.raises(ValueError, match="is not a 'tdos-ood-bands' file"):
        load_ood_bands(tmp_path / "other.json")
    (tmp_path / "future.json").write_text(json.dumps({"format": "tdos-ood-bands", "version": 99, "bands": bands}))
    with pytest.raises(ValueError, match="version 99"):
        load_ood_bands(tmp_path / "future.json")
    (tmp_path / "broken.json").write_text("{")
    with pytest.raises(ValueError, match="broken.json is not JSON"):
        load_ood_bands(tmp_path / "broken.json")


def test_cli_writes_the_bands_file(small_bands, tmp_path):
    output = tmp_path / "bands.json"
    arguments = ["--num-bands", "5", "--words-per-band", "4", "--recipe", "wordnet", "--output", str(output)]
    main(["--classes", "car", "dog", *arguments])
    assert load_ood_bands(output) == small_bands
    metadata = json.loads(output.read_text(encoding="utf-8"))["metadata"]
    assert metadata["class_names"] == ["car", "dog"] and metadata["synsets"] == ["car.n.01", "dog.n.01"]
    assert metadata["words_per_band"] == 4 and len(metadata["band_distances"]) == 5
    with pytest.raises(SystemExit):
        main(["--classes", "car"])  # no --output
    with pytest.raises(SystemExit):
        main(["--cityscapes", "--recipe", "clip", "--output", str(output)])  # no --clip-model
    with pytest.raises(SystemExit, match="'qwzx' has no WordNet noun sense"):
        main(["--classes", "qwzx", "--output", str(tmp_path / "none.json")])
    assert not (tmp_path / "none.json").exists()


def test_missing_wordnet_gives_the_fix(tmp_path):
    code = "import sys, nltk; nltk.data.path[:] = [sys.argv[1]]; from tdos.ood_prompts import main; main(sys.argv[2:])"
    (tmp_path / "empty").mkdir()
    output = tmp_path / "bands.json"
    command = [sys.executable, "-c", code, str(tmp_path / "empty"), "--cityscapes", "--output", str(output)]
    result = subprocess.run(command, cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 1, result.stderr
    assert "WordNet 3.0 for nltk was not found" in result.stderr
    assert WORDNET_FIX in result.stderr
    assert not output.exists()


@pytest.mark.filterwarnings("ignore:The multilingual functions are not available")
def test_install_wordnet_writes_a_folder_nltk_reads(tmp_path, monkeypatch):
    source = Path(nltk.data.find("corpora/wordnet"))
    folder = install_wordnet(tmp_path / "nltk_data", source=source)
    monkeypatch.setattr(nltk.data, "path", [str(tmp_path / "nltk_data"), *nltk.data.path])  # nltk reads its roots only
    assert folder == tmp_path / "nltk_data" / "corpora" / "wordnet"
    lexnames = (folder / "lexnames").read_text().splitlines()
    assert len(lexnames) == 45
    assert (lexnames[0], lexnames[6], lexnames[44]) == ("00\tadj.all\t3", "06\tnoun.artifact\t1", "44\tadj.ppl\t3")
    reader = WordNetCorpusReader(str(folder), None)
    assert reader.get_version() == "3.0"
    assert reader.synset("car.n.01").lexname() == "noun.artifact"
    with pytest.raises(FileNotFoundError, match="wordnet-base wordnet-sense-index"):
        install_wordnet(tmp_path / "elsewhere", source=tmp_path / "no_wordnet")


# ---------------------------------------------------------------------------------------------------- model
def test_from_clip_uses_the_shipped_bands(tiny_clip):
    model, tokenizer = tiny_clip
    config = TDOSConfig.from_preset("tiny")
    default = TDOSForOODSegmentation.from_clip(model, tokenizer, config=config)
    # 50 shipped bands -> the tiny preset's 8 prompts: consecutive regrouping of the farthest-first word list.
    words = [word for band in load_ood_bands() for word in band]
    regrouped = split_into_bands(words, config.num_ood_prompts)
    explicit = TDOSForOODSegmentation.from_clip(model, tokenizer, ood_bands=regrouped, config=config)
    torch.testing.assert_close(default.text_anchors, explicit.text_anchors, rtol=0, atol=0)
    band_anchors = default.text_anchors[config.num_id_classes :]
    assert band_anchors.shape[0] == config.num_ood_prompts == 8
    assert torch.cdist(band_anchors, band_anchors).add(torch.eye(8)).min() > 0  # eight different bands
