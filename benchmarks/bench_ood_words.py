"""Recipe-B OOD word generation (WordNet Wu–Palmer distance to the 19 Cityscapes classes): naive vs cached.

Both ways rank the same candidate pool (~34k concrete noun synsets) by the same distance and tie-breakers:
  * naive: nltk's `Synset.wup_similarity` / `shortest_path_distance` per (candidate, class) pair, which re-run
    breadth-first searches of both hypernym graphs every call (this script measures how slow that is);
  * cached: `tdos.ood_prompts.rank_wordnet_candidates`, with hypernym distances and depths computed once per synset.
The shared set-up (reading the noun graph once per process, building the pool) is timed once and added to both
end-to-end figures; the cached figure also rebuilds its own pool. The rankings must be identical. The machine is
shared and noisy: read the ratios, not the absolute times. The naive way takes minutes.

Usage: python benchmarks/bench_ood_words.py
"""

from __future__ import annotations

import argparse
import time
import zlib

from tdos.ood_prompts import (
    CITYSCAPES_CLASSES,
    OODCandidate,
    Taxonomy,
    candidate_pool,
    rank_wordnet_candidates,
    resolve_synsets,
    wordnet,
)


def rank_naive(pool: list[str], id_synsets: list[str]) -> list[OODCandidate]:
    """The same ranking as `rank_wordnet_candidates`, with nltk's per-pair similarity functions."""
    reader = wordnet()
    classes = [reader.synset(name) for name in id_synsets]
    ranked = []
    for name in pool:
        synset = reader.synset(name)
        distance = 1.0 - max(synset.wup_similarity(other) for other in classes)
        path = min(synset.shortest_path_distance(other) for other in classes)
        ranked.append(OODCandidate(name, synset.lemma_names()[0].replace("_", " "), distance, path))
    ranked.sort(key=lambda item: (-item.distance, -item.path_distance, zlib.crc32(item.synset.encode()), item.synset))
    return ranked


def main():
    argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter).parse_args()
    wordnet()  # load the corpus outside the timings
    start = time.perf_counter()
    id_synsets = resolve_synsets(CITYSCAPES_CLASSES)
    taxonomy = Taxonomy()
    pool = candidate_pool(CITYSCAPES_CLASSES, id_synsets, taxonomy)
    setup = time.perf_counter() - start

    start = time.perf_counter()
    naive = rank_naive(pool, id_synsets)
    naive_seconds = time.perf_counter() - start

    start = time.perf_counter()
    cached = rank_wordnet_candidates(CITYSCAPES_CLASSES, taxonomy=Taxonomy())
    cached_seconds = time.perf_counter() - start
    if cached != naive:
        raise SystemExit("the cached ranking differs from nltk's")

    print(f"Cityscapes: {len(pool)} candidates x {len(id_synsets)} classes; rankings identical")
    print(f"shared set-up (noun graph + pool): {setup:.1f} s\n")
    print("| way | scoring + ranking (s) | end to end (s) | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| naive (nltk per pair) | {naive_seconds:.1f} | {setup + naive_seconds:.1f} | 1.0x |")
    print(
        f"| cached (`rank_wordnet_candidates`) | {cached_seconds:.1f} | {setup + cached_seconds:.1f} | "
        f"{naive_seconds / cached_seconds:.1f}x |"
    )


if __name__ == "__main__":
    main()
