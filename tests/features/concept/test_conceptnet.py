"""ConceptNet reader: language and relation filter, gzip, cache, missing-file error, lexicon."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from bamir.features.concept.conceptnet import (
    CONFIG_KEY,
    ConceptNetIndex,
    ConceptNetNotFound,
    iter_assertions,
    normalise_relation,
)
from bamir.features.concept.linking import ConceptLexicon


def _line(rel: str, start: str, end: str, weight: float | None = 1.0) -> str:
    info = {"dataset": "/d/test", "license": "cc:by/4.0"}
    if weight is not None:
        info["weight"] = weight
    return "\t".join([f"/a/[{rel}/,{start}/,{end}/]", rel, start, end, json.dumps(info)]) + "\n"


LINES = [
    _line("/r/IsA", "/c/en/puppy/n", "/c/en/dog", 2.0),
    _line("/r/RelatedTo", "/c/en/gym", "/c/en/fitness", 0.5),
    _line("/r/RelatedTo", "/c/en/espresso/n/wn/food", "/c/en/coffee", None),  # weight absent -> 1
    _line("/r/IsA", "/c/en/ice_cream/n", "/c/en/dessert"),
    _line("/r/Antonym", "/c/en/hot", "/c/en/cold"),  # relation filtered out
    _line("/r/IsA", "/c/fr/chien/n", "/c/en/dog"),  # language filtered out
    _line("/r/RelatedTo", "/c/en/chien", "/c/fr/chien"),  # language filtered out
    _line("/r/ExternalURL", "/c/en/dog", "http://dbpedia.org/resource/Dog"),  # relation filtered out
    "garbage line without tabs\n",
    "\n",
    _line("/r/Synonym", "/c/en/doggo", "/c/en/dog", 1.0),
]


@pytest.fixture
def assertions(tmp_path) -> dict[str, Path]:
    plain = tmp_path / "plain" / "conceptnet.csv"
    plain.parent.mkdir()
    plain.write_text("".join(LINES), encoding="utf-8")
    packed = tmp_path / "gz" / "assertions.csv"  # gzip detected by content, not by suffix
    packed.parent.mkdir()
    with gzip.open(packed, "wt", encoding="utf-8") as handle:
        handle.write("".join(LINES))
    return {"plain": plain, "gzip": packed}


@pytest.mark.parametrize("kind", ["plain", "gzip"])
def test_reader_filters_language_and_relations(assertions, kind):
    stats: dict[str, int] = {}
    rows = list(iter_assertions(assertions[kind], ["IsA", "/r/RelatedTo", "Synonym/"], ["en"], stats))
    assert rows == [
        ("/r/IsA", "puppy", "dog", 2.0),
        ("/r/RelatedTo", "gym", "fitness", 0.5),
        ("/r/RelatedTo", "espresso", "coffee", 1.0),
        ("/r/IsA", "ice cream", "dessert", 1.0),
        ("/r/Synonym", "doggo", "dog", 1.0),
    ]
    assert stats == {"lines": len(LINES), "kept": 5, "malformed": 1}
    only_isa = list(iter_assertions(assertions[kind], ["IsA"], ["en"]))
    assert [r[1] for r in only_isa] == ["puppy", "ice cream"]
    with_fr = list(iter_assertions(assertions[kind], ["IsA", "RelatedTo"], ["en", "fr"]))
    assert ("/r/IsA", "chien", "dog", 1.0) in with_fr and ("/r/RelatedTo", "chien", "chien", 1.0) in with_fr


def test_index_and_cache(assertions, tmp_path):
    cache = tmp_path / "cache"
    first = ConceptNetIndex.load(assertions["gzip"], ["IsA", "RelatedTo", "Synonym"], cache_dir=cache)
    assert "cached" not in first.stats and first.num_edges == 5
    assert len(list(cache.glob("*.npz"))) == 1
    second = ConceptNetIndex.load(assertions["gzip"], ["IsA", "RelatedTo", "Synonym"], cache_dir=cache)
    assert second.stats.get("cached") == 1
    assert list(second.edges()) == list(first.edges())
    assert second.neighbours("dog") == {"puppy": 2.0, "doggo": 1.0}
    assert second.neighbours("Ice_Cream") == {"dessert": 1.0}
    assert "ice cream" in second and "cat" not in second
    # another filter is another cache entry
    ConceptNetIndex.load(assertions["gzip"], ["IsA"], cache_dir=cache)
    assert len(list(cache.glob("*.npz"))) == 2


def test_default_cache_is_next_to_the_file(assertions):
    ConceptNetIndex.load(assertions["plain"])
    cached = list(assertions["plain"].parent.glob(".conceptnet.csv.index-*.npz"))
    assert len(cached) == 1
    assert ConceptNetIndex.load(assertions["plain"]).stats.get("cached") == 1


def test_changed_file_is_reindexed(assertions, tmp_path):
    path = assertions["plain"]
    ConceptNetIndex.load(path, cache_dir=tmp_path / "c")
    path.write_text("".join(LINES[:2]), encoding="utf-8")
    index = ConceptNetIndex.load(path, cache_dir=tmp_path / "c")
    assert "cached" not in index.stats and index.num_edges == 2


def test_missing_file_names_the_config_key(tmp_path):
    with pytest.raises(ConceptNetNotFound, match=CONFIG_KEY.replace(".", r"\.")) as err:
        ConceptNetIndex.load(tmp_path / "nope.csv.gz")
    assert "nope.csv.gz" in str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    with pytest.raises(ConceptNetNotFound, match="features.concept.conceptnet_path"):
        ConceptNetIndex.load(None)


def test_lexicon_links_terms_to_concepts(assertions):
    index = ConceptNetIndex.load(assertions["plain"], cache_dir=assertions["plain"].parent / "c")
    lexicon = ConceptLexicon.build(["dog", "fitness", "coffee", "ice cream"], index, edge_factor=0.5)
    assert lexicon.lookup("puppy") == {"dog": 0.5}
    assert lexicon.lookup("gym") == {"fitness": 0.25}
    assert lexicon.lookup("dog") == {"dog": 1.0}
    scores = lexicon.link_text("Puppies, espresso and ice cream at the gym!")
    assert scores == {"dog": 0.5, "coffee": 0.5, "ice cream": 1.0, "fitness": 0.25}
    assert lexicon.link_text("Coffee Shop", best_only=True) == {"coffee": 1.0}


def test_relation_names():
    assert normalise_relation("IsA") == normalise_relation("/r/IsA/") == normalise_relation("r/IsA") == "/r/IsA"
