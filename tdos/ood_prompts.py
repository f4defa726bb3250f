"""Distance-banded OOD words for TDOS's learnable OOD prompts (docs/method.md §2).

Each of TDOS's `M` learnable OOD prompts is pulled toward the mean CLIP text embedding of a band of words at a given
semantic distance from the in-distribution (ID) classes. This module makes those bands, ordered farthest first and
split into `M` equal consecutive bands:

* recipe B (`generate_wordnet_bands`, the shipped default): Wu–Palmer distance in the WordNet noun taxonomy to the
  nearest ID class, over concrete noun synsets that are neither ID (an ID synset or one of its hyponyms) nor too
  generic (on an ID synset's hypernym paths);
* recipe A (`generate_clip_bands`, NegLabel-style, code-faithful): CLIP text similarity of WordNet lemmas to the ID
  class prompts.

Bands are saved as a versioned JSON file (`save_bands` / `load_ood_bands`); `tdos/data/` ships the recipe-B bands of
the 19 Cityscapes classes, which `TDOSForOODSegmentation.from_clip` uses by default. WordNet comes from Debian's
`wordnet-base` and `wordnet-sense-index` packages, copied into an nltk data folder (`install_wordnet`), so nothing is
downloaded. Command line: `tdos-ood-words --cityscapes --num-bands 50 --recipe wordnet --output bands.json`.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import shutil
import sys
import zlib
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import NamedTuple

import numpy as np

from .atomic_io import write_atomically
from .text_cleaning import clean_texts


logger = logging.getLogger(__name__)

BANDS_FORMAT = "tdos-ood-bands"
BANDS_FORMAT_VERSION = 1
DEFAULT_BANDS_FILE = "ood_bands_cityscapes_wordnet.json"

CITYSCAPES_CLASSES = [
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light", "traffic sign", "vegetation", "terrain",
    "sky", "person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle",
]  # fmt: skip

# Explicit WordNet 3.0 senses of the Cityscapes classes (docs/method.md §2); "traffic sign" has no synset of its own.
CITYSCAPES_SYNSETS = {
    "road": "road.n.01", "sidewalk": "sidewalk.n.01", "building": "building.n.01", "wall": "wall.n.01",
    "fence": "fence.n.01", "pole": "pole.n.01", "traffic light": "traffic_light.n.01",
    "traffic sign": "street_sign.n.01", "vegetation": "vegetation.n.01", "terrain": "terrain.n.01", "sky": "sky.n.01",
    "person": "person.n.01", "rider": "rider.n.01", "car": "car.n.01", "truck": "truck.n.01", "bus": "bus.n.01",
    "train": "train.n.01", "motorcycle": "motorcycle.n.01", "bicycle": "bicycle.n.01",
}  # fmt: skip

# Candidate pool of recipe B: concrete things one could see on or near a road.
CONCRETE_LEXNAMES = frozenset(
    {"noun.artifact", "noun.animal", "noun.object", "noun.plant", "noun.food", "noun.substance", "noun.body"}
)
TAXONOMIC_PREFIXES = ("genus_", "family_", "order_", "class_", "phylum_", "division_", "subfamily_", "suborder_")

# The 45 lexicographer files of WordNet 3.0, in file-number order (lexnames(5WN)); nltk needs them in `lexnames`.
LEXNAMES = [
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact", "noun.attribute",
    "noun.body", "noun.cognition", "noun.communication", "noun.event", "noun.feeling", "noun.food", "noun.group",
    "noun.location", "noun.motive", "noun.object", "noun.person", "noun.phenomenon", "noun.plant", "noun.possession",
    "noun.process", "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition", "verb.consumption",
    "verb.contact", "verb.creation", "verb.emotion", "verb.motion", "verb.perception", "verb.possession",
    "verb.social", "verb.stative", "verb.weather", "adj.ppl",
]  # fmt: skip
DEBIAN_WORDNET_DIR = "/usr/share/wordnet"
WORDNET_FIX = (
    "sudo apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index && tdos-ood-words --install-wordnet"
)

# Recipe A (NegLabel) prompts.
NEGLABEL_NOUN_TEMPLATE = "the nice {}"
NEGLABEL_ADJECTIVE_TEMPLATE = "This is a {} photo"


class WordNetNotFoundError(LookupError):
    """WordNet 3.0 is not installed where nltk looks for it."""


# ---------------------------------------------------------------------------------------------------- WordNet access
def wordnet():
    """nltk's WordNet reader, loaded; raises `WordNetNotFoundError` with the fix when WordNet is not installed."""
    from nltk.corpus import wordnet as reader
    import nltk

    try:
        reader.ensure_loaded()
    except LookupError as error:
        raise WordNetNotFoundError(
            f"WordNet 3.0 for nltk was not found (nltk searched: {', '.join(map(str, nltk.data.path))}). Install it "
            f"offline from Debian's packages with:\n    {WORDNET_FIX}\n(in a TDOS-HF checkout, `bash scripts/setup.sh` "
            "does the same)."
        ) from error
    return reader


def install_wordnet(target: str | os.PathLike | None = None, source: str | os.PathLike = DEBIAN_WORDNET_DIR) -> Path:
    """
    Copies a WordNet 3.0 database (Debian's `wordnet-base` + `wordnet-sense-index` files) into an nltk data folder and
    writes the `lexnames` file nltk needs. nltk refuses paths outside its data roots, hence a copy, not a link.

    Args:
        target (`str` or `os.PathLike`, *optional*):
            nltk data root; the files go to `<target>/corpora/wordnet`. Defaults to `<sys.prefix>/nltk_data`, one of
            nltk's default roots (the virtual environment's).
        source (`str` or `os.PathLike`, *optional*, defaults to `/usr/share/wordnet`):
            Folder holding `data.noun`, `index.noun`, ..., `index.sense`.

    Returns:
        `Path`: the `corpora/wordnet` folder written.
    """
    source = Path(source)
    missing = [name for name in ("data.noun", "index.noun", "index.sense") if not (source / name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{source} lacks {', '.join(missing)}: install Debian's WordNet first with "
            "`sudo apt-get install -y --no-install-recommends wordnet-base wordnet-sense-index`"
        )
    folder = Path(target if target is not None else Path(sys.prefix) / "nltk_data") / "corpora" / "wordnet"
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        if path.is_file() and path.name != "lexnames":
            shutil.copyfile(path, folder / path.name)
    categories = {"adj": 3, "adv": 4, "noun": 1, "verb": 2}
    lines = [f"{index:02d}\t{name}\t{categories[name.split('.')[0]]}\n" for index, name in enumerate(LEXNAMES)]
    write_atomically(folder / "lexnames", lambda handle: handle.write("".join(lines).encode()))
    return folder


# ---------------------------------------------------------------------------------------------------- recipe B
@dataclass(frozen=True)
class OODCandidate:
    """
    One ranked recipe-B candidate.

    Args:
        synset (`str`): WordNet synset name, e.g. `"snout.n.01"`.
        word (`str`): its label (first lemma, `_` replaced by a space).
        distance (`float`): `1 - max_c wup_similarity(synset, c)` over the ID synsets `c`.
        path_distance (`int`): shortest hypernym-path length to the nearest ID synset (tie-breaker).
    """

    synset: str
    word: str
    distance: float
    path_distance: int


class _Noun(NamedTuple):
    """A WordNet noun synset reduced to what recipe B needs."""

    lexname: str
    lemma: str  # first lemma name
    hypernyms: tuple[str, ...]
    instance_hypernyms: tuple[str, ...]


@functools.lru_cache(maxsize=1)
def noun_graph() -> dict[str, _Noun]:
    """Every WordNet noun synset by name, with its hypernym names; read once per process (a few seconds)."""
    return {
        synset.name(): _Noun(
            synset.lexname(),
            synset.lemma_names()[0],
            tuple(parent.name() for parent in synset.hypernyms()),
            tuple(parent.name() for parent in synset.instance_hypernyms()),
        )
        for synset in wordnet().all_synsets("n")
    }


class Taxonomy:
    """
    Hypernym distances and depths of WordNet noun synsets, computed once per synset and kept, and Wu–Palmer
    similarity from them. nltk's `wup_similarity` re-runs breadth-first searches of both synsets' hypernym graphs
    and depth recursions for every pair; with them cached the same numbers come many times faster.

    Args:
        graph (`dict[str, _Noun]`, *optional*): the noun graph; defaults to `noun_graph()`.
    """

    def __init__(self, graph: dict | None = None):
        self.graph = noun_graph() if graph is None else graph
        self._ancestors = {}  # name -> {ancestor name (itself included): shortest hypernym distance}
        self._min_depths = {}
        self._max_depths = {}
        self._lengths = {}  # (name, ancestor name) -> shortest path length between them

    def parents(self, name: str) -> tuple[str, ...]:
        noun = self.graph[name]
        return noun.hypernyms + noun.instance_hypernyms

    def ancestors(self, name: str) -> dict[str, int]:
        distances = self._ancestors.get(name)
        if distances is None:
            distances, queue = {}, deque([(name, 0)])
            while queue:  # breadth first, as nltk's `_shortest_hypernym_paths`
                node, depth = queue.popleft()
                if node not in distances:
                    distances[node] = depth
                    queue.extend((parent, depth + 1) for parent in self.parents(node))
            self._ancestors[name] = distances
        return distances

    def descendants(self, names: Iterable[str]) -> set[str]:
        """The hyponym and instance-hyponym closure of `names` (themselves excluded)."""
        children = {}
        for name, noun in self.graph.items():
            for parent in noun.hypernyms + noun.instance_hypernyms:
                children.setdefault(parent, []).append(name)
        found, stack = set(), [child for name in names for child in children.get(name, ())]
        while stack:
            node = stack.pop()
            if node not in found:
                found.add(node)
                stack.extend(children.get(node, ()))
        return found

    def min_depth(self, name: str) -> int:
        """Length of the shortest hypernym path to the root (nltk's `min_depth`)."""
        return self._depth(name, min, self._min_depths)

    def max_depth(self, name: str) -> int:
        """Length of the longest hypernym path to the root (nltk's `max_depth`)."""
        return self._depth(name, max, self._max_depths)

    def _depth(self, name: str, pick, cache: dict) -> int:
        depth = cache.get(name)
        if depth is None:
            parents = self.parents(name)
            depth = 1 + pick(self._depth(parent, pick, cache) for parent in parents) if parents else 0
            cache[name] = depth
        return depth

    def path_length(self, name: str, ancestor: str) -> int:
        """Shortest path between a synset and one of its hypernyms (nltk's `shortest_path_distance`)."""
        key = (name, ancestor)
        length = self._lengths.get(key)
        if length is None:
            own = self.ancestors(name)
            length = 0 if name == ancestor else min(own[node] + depth for node, depth in self.ancestors(ancestor).items())
            self._lengths[key] = length
        return length

    def similarity(self, name: str, other: str) -> tuple[float, int]:
        """Wu–Palmer similarity exactly as nltk computes it for nouns, and the shortest path length between the two."""
        own, theirs = self.ancestors(name), self.ancestors(other)
        common = own.keys() & theirs.keys()
        deepest = max(map(self.min_depth, common))
        subsumers = sorted(node for node in common if self.min_depth(node) == deepest)  # nltk sorts synsets by name
        subsumer = name if name in subsumers else subsumers[0]
        depth = self.max_depth(subsumer) + 1
        length = self.path_length(name, subsumer) + self.path_length(other, subsumer) + 2 * depth
        return 2.0 * depth / length, min(own[node] + theirs[node] for node in common)


def resolve_synsets(class_names: Sequence[str], synsets: Sequence[str] | None = None) -> list[str]:
    """
    WordNet synset names of the ID classes: `synsets` when given (one per class), else the Cityscapes sense for a
    Cityscapes class name and the first noun sense for any other name.
    """
    reader = wordnet()
    if synsets is not None:
        if len(synsets) != len(class_names):
            raise ValueError(f"got {len(synsets)} synsets for {len(class_names)} class names; pass one per class")
        names = list(synsets)
    else:
        names = []
        for name in class_names:
            if name in CITYSCAPES_SYNSETS:
                names.append(CITYSCAPES_SYNSETS[name])
                continue
            senses = reader.synsets(name.replace(" ", "_"), pos="n")
            if not senses:
                raise ValueError(f"class name {name!r} has no WordNet noun sense; pass its synset explicitly")
            logger.info("class %r -> %s (first noun sense)", name, senses[0].name())
            names.append(senses[0].name())
    for name in names:
        try:
            synset = reader.synset(name)
        except Exception as error:  # nltk raises WordNetError or ValueError for malformed or unknown names
            raise ValueError(f"{name!r} is not a WordNet synset name such as 'car.n.01'") from error
        if synset.pos() != "n":
            raise ValueError(f"{name!r} is not a noun synset; recipe B measures distances in the noun taxonomy")
    return names


def excluded_synsets(id_synsets: Sequence[str], taxonomy: Taxonomy) -> set[str]:
    """The ID synsets, their hyponym and instance-hyponym closure, and every synset on their hypernym paths."""
    excluded = taxonomy.descendants(id_synsets)
    for name in id_synsets:
        excluded.update(taxonomy.ancestors(name))
    return excluded


def candidate_pool(class_names: Sequence[str], id_synsets: Sequence[str], taxonomy: Taxonomy) -> list[str]:
    """
    Recipe-B candidates, sorted by name: concrete noun synsets (`CONCRETE_LEXNAMES`) that are not excluded
    (`excluded_synsets`), not instances (proper nouns), not taxonomic names (`genus_...`), and whose word is not an ID
    class name or a lemma of an ID synset (CLIP only sees the word: "car" as in railway car would be an ID prompt).
    """
    excluded = excluded_synsets(id_synsets, taxonomy)
    reader = wordnet()
    id_words = {name.lower() for name in class_names}
    id_words.update(lemma.replace("_", " ").lower() for name in id_synsets for lemma in reader.synset(name).lemma_names())
    return [
        name
        for name, noun in sorted(taxonomy.graph.items())
        if name not in excluded
        and noun.lexname in CONCRETE_LEXNAMES
        and not noun.instance_hypernyms
        and not noun.lemma.lower().startswith(TAXONOMIC_PREFIXES)
        and noun.lemma.replace("_", " ").lower() not in id_words
    ]


def rank_wordnet_candidates(
    class_names: Sequence[str], synsets: Sequence[str] | None = None, taxonomy: Taxonomy | None = None
) -> list[OODCandidate]:
    """
    Recipe B (docs/method.md §2) up to the banding: the candidate pool ranked farthest first by Wu–Palmer distance to
    the nearest ID synset. Distances take few values, so ties are broken deterministically: by the longer shortest path
    to the ID synsets, then by the CRC-32 of the synset name (a fixed pseudo-random order, so a band that cuts a tie
    samples it evenly instead of taking one alphabetical slice), then by the name.

    Args:
        class_names (`Sequence[str]`): ID class names, e.g. `CITYSCAPES_CLASSES`.
        synsets (`Sequence[str]`, *optional*): their WordNet synset names (see `resolve_synsets`).
        taxonomy (`Taxonomy`, *optional*): distance caches to reuse; a fresh one by default.

    Returns:
        `list[OODCandidate]`, farthest first.
    """
    id_synsets = resolve_synsets(class_names, synsets)
    taxonomy = Taxonomy() if taxonomy is None else taxonomy
    ranked = []
    for name in candidate_pool(class_names, id_synsets, taxonomy):
        scores = [taxonomy.similarity(name, id_synset) for id_synset in id_synsets]
        similarity = max(score for score, _ in scores)
        word = taxonomy.graph[name].lemma.replace("_", " ")
        ranked.append(OODCandidate(name, word, 1.0 - similarity, min(path for _, path in scores)))
    ranked.sort(key=lambda item: (-item.distance, -item.path_distance, zlib.crc32(item.synset.encode()), item.synset))
    return ranked


def split_into_bands(words: Sequence, num_bands: int = 50, words_per_band: int | None = None) -> list[list]:
    """
    Splits an ordered word list (or values aligned with it, such as distances) into `num_bands` equal consecutive
    bands of `len(words) // num_bands` items (the remainder, at the end of the list, is dropped). With
    `words_per_band`, each band keeps that many items evenly spread over its span (first and last included), so it
    still covers the band's distance range.
    """
    if num_bands < 1:
        raise ValueError(f"num_bands must be >= 1, got {num_bands}")
    span = len(words) // num_bands
    if span == 0:
        raise ValueError(f"{len(words)} words cannot fill {num_bands} bands")
    size = span if words_per_band is None else words_per_band
    if not 1 <= size <= span:
        raise ValueError(f"words_per_band must be in [1, {span}] for {len(words)} words in {num_bands} bands, got {size}")
    offsets = np.linspace(0, span - 1, size).round().astype(int) if size < span else np.arange(span)
    return [[words[band * span + offset] for offset in offsets] for band in range(num_bands)]


def generate_wordnet_bands(
    class_names: Sequence[str],
    synsets: Sequence[str] | None = None,
    num_bands: int = 50,
    words_per_band: int | None = None,
) -> list[list[str]]:
    """
    Recipe B: WordNet words in `num_bands` equal bands of decreasing Wu–Palmer distance to the ID classes.

    Args:
        class_names (`Sequence[str]`): ID class names, e.g. `CITYSCAPES_CLASSES`.
        synsets (`Sequence[str]`, *optional*):
            One WordNet synset name per class; defaults to the Cityscapes senses / first noun senses.
        num_bands (`int`, *optional*, defaults to 50): number of bands (TDOS's learnable OOD prompts).
        words_per_band (`int`, *optional*): words kept per band; defaults to all (`len(pool) // num_bands`).

    Returns:
        `list[list[str]]`: the bands, farthest first, all of the same length.
    """
    ranked = rank_wordnet_candidates(class_names, synsets)
    return split_into_bands([item.word for item in ranked], num_bands, words_per_band)


# ---------------------------------------------------------------------------------------------------- recipe A
def wordnet_lemmas(pos: str) -> list[str]:
    """Unique WordNet lemma strings of a part of speech (`"n"` or `"a"`, satellites included), `_` -> space, sorted."""
    return sorted({name.replace("_", " ") for name in wordnet().all_lemma_names(pos)})


def _text_features(model, tokenizer, prompts: Sequence[str], batch_size: int):
    """L2-normalised CLIP text features `(N, C)` of `prompts`, in batches."""
    import torch

    max_length = model.config.text_config.max_position_embeddings
    features = []
    with torch.inference_mode():
        for start in range(0, len(prompts), batch_size):
            batch = tokenizer(
                clean_texts(prompts[start : start + batch_size]),
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            ).to(model.device)
            output = model.get_text_features(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
            features.append(torch.nn.functional.normalize(output.pooler_output.float(), dim=-1))
    return torch.cat(features)


def rank_by_clip_similarity(
    words: Sequence[str], template: str, id_features, model, tokenizer, quantile: float, batch_size: int
) -> list[str]:
    """Words sorted by ascending `quantile` of their prompts' cosine similarities to the ID features (ties: word)."""
    import torch

    features = _text_features(model, tokenizer, [template.format(word) for word in words], batch_size)
    similarity = torch.quantile(features @ id_features.T, quantile, dim=1).tolist()
    return [word for _, word in sorted(zip(similarity, words))]


def generate_clip_bands(
    class_names: Sequence[str],
    clip_model_or_path,
    tokenizer=None,
    num_bands: int = 50,
    words_per_band: int | None = None,
    candidates: dict[str, Sequence[str]] | None = None,
    include_nouns: bool = False,
    keep_fraction: float = 0.15,
    quantile: float = 0.95,
    batch_size: int = 256,
) -> list[list[str]]:
    """
    Recipe A (NegLabel re-run, docs/method.md §2): WordNet lemmas ranked by CLIP text similarity to the ID classes.

    ID prompts and noun prompts use `"the nice {}"`, adjective prompts `"This is a {} photo"`. A word's similarity
    is the `quantile` of its cosine similarities to the ID prompts; the `keep_fraction` least similar nouns and
    adjectives are kept, most distant first (nouns, then adjectives, as NegLabel's dump lists them).

    Args:
        class_names (`Sequence[str]`): ID class names; exact matches are dropped from the candidates.
        clip_model_or_path (`CLIPModel`, `str` or `os.PathLike`): a transformers CLIP model, Hub id or local folder.
        tokenizer (`CLIPTokenizer`, *optional*): needed with a model instance; loaded from the path otherwise.
        num_bands (`int`, *optional*, defaults to 50): number of bands.
        words_per_band (`int`, *optional*): words kept per band (see `split_into_bands`).
        candidates (`dict[str, Sequence[str]]`, *optional*):
            `{"noun": [...], "adjective": [...]}` candidate words; defaults to all WordNet noun and adjective lemmas.
        include_nouns (`bool`, *optional*, defaults to `False`):
            Also use the kept nouns. TDOS's release used the adjectives only.
        keep_fraction (`float`, *optional*, defaults to 0.15): fraction of each part of speech kept (NegLabel).
        quantile (`float`, *optional*, defaults to 0.95): quantile of the similarities to the ID prompts.
        batch_size (`int`, *optional*, defaults to 256): prompts per text-encoder batch.

    Returns:
        `list[list[str]]`: the bands, farthest (least similar) first, all of the same length.
    """
    from transformers import CLIPModel, CLIPTokenizer

    if not 0.0 < keep_fraction <= 1.0:
        raise ValueError(f"keep_fraction must be in (0, 1], got {keep_fraction}")
    if isinstance(clip_model_or_path, (str, os.PathLike)):
        tokenizer = tokenizer or CLIPTokenizer.from_pretrained(clip_model_or_path)
        model = CLIPModel.from_pretrained(clip_model_or_path)
    else:
        model = clip_model_or_path
    if tokenizer is None:
        raise ValueError("generate_clip_bands with a CLIPModel instance needs its tokenizer")
    model.eval()
    parts = ["noun", "adjective"] if include_nouns else ["adjective"]
    if candidates is None:
        candidates = {part: wordnet_lemmas(part[0]) for part in parts}
    id_names = {name.lower() for name in class_names}
    id_features = _text_features(
        model, tokenizer, [NEGLABEL_NOUN_TEMPLATE.format(name) for name in class_names], batch_size
    )
    templates = {"noun": NEGLABEL_NOUN_TEMPLATE, "adjective": NEGLABEL_ADJECTIVE_TEMPLATE}
    words = []
    for part in parts:
        pool = sorted({word for word in candidates.get(part, ()) if word.lower() not in id_names})
        ranked = rank_by_clip_similarity(pool, templates[part], id_features, model, tokenizer, quantile, batch_size)
        words.extend(ranked[: int(len(ranked) * keep_fraction)])
    return split_into_bands(words, num_bands, words_per_band)


# ---------------------------------------------------------------------------------------------------- files
def save_bands(bands: Sequence[Sequence[str]], path: str | os.PathLike, metadata: dict | None = None) -> Path:
    """
    Writes bands as versioned JSON (`{"format", "version", "metadata", "bands"}`), atomically.

    Args:
        bands (`Sequence[Sequence[str]]`): the word bands, farthest first.
        path (`str` or `os.PathLike`): output file.
        metadata (`dict`, *optional*): JSON-serialisable description (recipe, classes, ...).
    """
    bands = [list(band) for band in bands]
    _validate_bands(bands, path)
    header = {"format": BANDS_FORMAT, "version": BANDS_FORMAT_VERSION, "metadata": metadata or {}}
    # One key, then one band, per line: a readable, diffable file that is still plain JSON.
    fields = "".join(f" {json.dumps(key)}: {json.dumps(value, ensure_ascii=False)},\n" for key, value in header.items())
    lines = ",\n".join(json.dumps(band, ensure_ascii=False) for band in bands)
    text = f'{{\n{fields} "bands": [\n{lines}\n ]\n}}\n'
    path = Path(path)
    write_atomically(path, lambda handle: handle.write(text.encode("utf-8")))
    return path


def _validate_bands(bands, path):
    if not bands or not all(isinstance(band, list) and band for band in bands):
        raise ValueError(f"{path}: bands must be a non-empty list of non-empty word lists")
    if not all(isinstance(word, str) and word for band in bands for word in band):
        raise ValueError(f"{path}: every word must be a non-empty string")


def load_ood_bands(path: str | os.PathLike | None = None) -> list[list[str]]:
    """
    Reads a bands file written by `save_bands`; `None` reads the shipped recipe-B bands of the 19 Cityscapes classes
    (`tdos/data/ood_bands_cityscapes_wordnet.json`).
    """
    if path is None:
        text = resources.files("tdos").joinpath("data", DEFAULT_BANDS_FILE).read_text(encoding="utf-8")
        path = f"tdos/data/{DEFAULT_BANDS_FILE}"
    else:
        text = Path(path).read_text(encoding="utf-8")
    try:
        document = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path} is not JSON: {error}") from error
    if not isinstance(document, dict) or document.get("format") != BANDS_FORMAT:
        raise ValueError(f"{path} is not a {BANDS_FORMAT!r} file (written by tdos.ood_prompts.save_bands)")
    if document.get("version") != BANDS_FORMAT_VERSION:
        raise ValueError(f"{path} has format version {document.get('version')!r}; expected {BANDS_FORMAT_VERSION}")
    _validate_bands(document.get("bands"), path)
    return document["bands"]


# ---------------------------------------------------------------------------------------------------- command line
def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tdos-ood-words",
        description="Make distance-banded OOD words for TDOS's learnable OOD prompts (docs/method.md §2), or install "
        "WordNet.",
    )
    classes = parser.add_mutually_exclusive_group()
    classes.add_argument("--classes", nargs="+", metavar="NAME", help="ID class names")
    classes.add_argument("--cityscapes", action="store_true", help="the 19 Cityscapes classes and their synsets")
    parser.add_argument("--synsets", nargs="+", metavar="SYNSET", help="one WordNet synset per class (recipe wordnet)")
    parser.add_argument("--num-bands", type=int, default=50, help="number of bands (default: 50)")
    parser.add_argument("--words-per-band", type=int, help="words kept per band (default: all)")
    parser.add_argument("--recipe", choices=["wordnet", "clip"], default="wordnet", help="B: WordNet, A: CLIP text")
    parser.add_argument("--clip-model", help="transformers CLIP folder or Hub id (recipe clip)")
    parser.add_argument("--include-nouns", action="store_true", help="recipe clip: nouns as well as adjectives")
    parser.add_argument("--output", type=Path, help="output JSON file")
    parser.add_argument(
        "--install-wordnet", action="store_true", help=f"copy Debian's WordNet ({DEBIAN_WORDNET_DIR}) for nltk and exit"
    )
    parser.add_argument("--nltk-data", type=Path, help="nltk data root for --install-wordnet (default: <prefix>/nltk_data)")
    return parser


def main(argv: Sequence[str] | None = None) -> None:
    """Console script `tdos-ood-words` (see `--help`)."""
    parser = _parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    if args.install_wordnet:
        try:
            logger.info("WordNet installed for nltk in %s", install_wordnet(args.nltk_data))
        except FileNotFoundError as error:
            raise SystemExit(f"tdos-ood-words: {error}") from error
        return
    if not (args.classes or args.cityscapes) or args.output is None:
        parser.error("give --classes NAME... or --cityscapes, and --output FILE")
    class_names = CITYSCAPES_CLASSES if args.cityscapes else args.classes
    metadata = {"recipe": args.recipe, "class_names": list(class_names), "num_bands": args.num_bands}
    try:
        if args.recipe == "wordnet":
            if args.clip_model:
                parser.error("--clip-model is for --recipe clip")
            synsets = resolve_synsets(class_names, args.synsets)
            ranked = rank_wordnet_candidates(class_names, synsets)
            bands = split_into_bands([item.word for item in ranked], args.num_bands, args.words_per_band)
            distances = split_into_bands([item.distance for item in ranked], args.num_bands, args.words_per_band)
            metadata.update(
                synsets=synsets, wordnet_version=wordnet().get_version(), pool_size=len(ranked),
                band_distances=[[round(band[0], 4), round(band[-1], 4)] for band in distances],
            )  # fmt: skip
        else:
            if not args.clip_model or args.synsets:
                parser.error("--recipe clip needs --clip-model PATH (and takes no --synsets)")
            bands = generate_clip_bands(
                class_names, args.clip_model, num_bands=args.num_bands, words_per_band=args.words_per_band,
                include_nouns=args.include_nouns,
            )  # fmt: skip
            metadata.update(clip_model=str(args.clip_model), include_nouns=args.include_nouns)
    except (WordNetNotFoundError, ValueError) as error:  # missing WordNet, or bad classes, synsets or band sizes
        raise SystemExit(f"tdos-ood-words: {error}") from error
    metadata["words_per_band"] = len(bands[0])
    save_bands(bands, args.output, metadata)
    logger.info("wrote %d bands of %d words to %s", len(bands), len(bands[0]), args.output)


if __name__ == "__main__":
    main()
