"""Knowledge files: a ConceptNet-format edge list, the concept set, related hashtags.

The edges link biography words (topic roles and words), profile business-category words
and concepts to the concept set through ``/r/IsA`` and ``/r/RelatedTo`` edges, in the
layout of ConceptNet's assertions CSV (edge URI, relation, start, end, JSON info; tab
separated, no header). Like the real file it also holds what a pipeline must ignore:
edges to concepts outside the set, other relations (Antonym, Synonym, HasContext,
ExternalURL), sense-tagged node URIs (``/c/en/runner/n``), noisy cross-topic edges of low
weight, and rows in other languages (``/c/fr/...``, including cross-lingual ones).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from bamir.data import schema
from bamir.data.schema import CATEGORIES
from bamir.data.synthetic.vocabulary import (BRAND_BUSINESS, CATEGORY_PROFILES, CLUSTERS, FOREIGN_EDGES,
                                             GENERIC_BUSINESS, OUTSIDE_CONCEPTS, SPAM_TAGS, TOPIC_INDEX, TOPICS)

#: Concepts in the set that no topic uses (the real set is broader than any one dataset).
EXTRA_CONCEPTS = ("science", "history", "politics", "education", "religion", "medicine", "law",
                  "literature", "poetry", "dance", "theater", "comedy", "astronomy", "gardening", "fishing")

#: Words of brand business categories -> category concept.
BUSINESS_WORDS = {
    "airline": "airline", "aviation": "airline", "automotive": "auto", "vehicle": "auto", "motor": "auto",
    "clothing": "clothing", "apparel": "clothing", "drink": "drink", "beverage": "drink", "brewery": "drink",
    "electronics": "electronics", "computers": "electronics", "entertainment": "entertainment",
    "media": "entertainment", "tv": "entertainment", "food": "food", "restaurant": "food", "bakery": "food",
    "jewelry": "jewelry", "watches": "jewelry", "accessories": "jewelry", "cosmetics": "makeup",
    "cosmetic": "makeup", "makeup": "makeup", "beauty": "makeup", "nonprofit": "nonprofit",
    "charity": "nonprofit", "ngo": "nonprofit", "service": "services", "consulting": "services",
    "business": "services", "shoe": "shoes", "footwear": "shoes", "sportswear": "shoes",
}
#: Generic words of profile categories that map to no concept of the set.
GENERIC_WORDS = {"personal", "blog", "blogger", "public", "figure", "digital", "creator", "just", "for", "fun",
                 "company", "store", "brand", "industry", "website", "organization", "manufacturer",
                 "dealership", "network", "news", "care", "and", "non", "governmental", "agency", "shop",
                 "center", "studio", "physical", "recreation", "retail", "shopping", "goods", "sporting",
                 "video", "science", "technology", "engineering", "planning", "planner", "design", "decor",
                 "home", "outdoor", "community", "environmental", "conservation", "band", "film", "director",
                 "health", "sports", "enthusiast", "skin", "hair", "salon", "barber", "pet", "animal",
                 "shelter", "family", "interior", "art", "gallery", "event", "wedding", "coffee", "bar",
                 "nightlife", "chef", "gym", "fitness", "trainer", "yoga", "actor", "artist", "model",
                 "fashion", "designer", "musician", "photographer", "athlete", "gamer", "pilot",
                 "nutritionist", "collector", "entrepreneur", "automotive"}


def tokens(text: str) -> list[str]:
    """Lower-case word tokens of a business category or biography (what the edges start from)."""
    return re.findall(r"[a-z][a-z']*", text.lower())


def concept_set() -> list[str]:
    concepts = {c for topic in TOPICS for c in topic.concepts} | set(CATEGORIES) | set(EXTRA_CONCEPTS)
    return sorted(concepts)


def _node(lang: str, word: str, sense: str = "") -> str:
    return f"/c/{lang}/{word}" + (f"/{sense}" if sense else "")


def _row(rel: str, start: str, end: str, weight: float) -> str:
    info = json.dumps({"dataset": "/d/synthetic", "weight": round(float(weight), 3)}, sort_keys=True)
    return f"/a/[/r/{rel}/,{start}/,{end}/]\t/r/{rel}\t{start}\t{end}\t{info}"


def conceptnet_rows(rng: np.random.Generator, noise: float = 0.1) -> list[str]:
    """All edge rows, sorted by edge URI as in the real assertions file."""
    concepts = concept_set()
    rows: dict[str, str] = {}

    def add(rel, start_word, end_word, weight, start_lang="en", end_lang="en"):
        s_sense = "n" if rng.random() < 0.15 else ""
        e_sense = "n" if rng.random() < 0.1 else ""
        if start_lang == "en" and end_lang == "en" and start_word == end_word:
            return
        row = _row(rel, _node(start_lang, start_word, s_sense), _node(end_lang, end_word, e_sense), weight)
        rows.setdefault(row.split("\t", 1)[0], row)

    for topic in TOPICS:
        main = topic.concepts[0]
        for role in topic.roles:
            add("RelatedTo", role, main, rng.uniform(1.0, 3.0))
            for concept in topic.concepts[1:]:
                if rng.random() < 0.6:
                    add("RelatedTo", role, concept, rng.uniform(0.5, 2.0))
            add("IsA", role, OUTSIDE_CONCEPTS[int(rng.integers(len(OUTSIDE_CONCEPTS)))], rng.uniform(0.5, 2.0))
        for word in topic.words:
            for concept in rng.choice(topic.concepts, size=int(rng.integers(1, 3)), replace=False):
                add("RelatedTo", word, str(concept), rng.uniform(0.5, 2.5))
            if rng.random() < 0.3:
                add("IsA", word, OUTSIDE_CONCEPTS[int(rng.integers(len(OUTSIDE_CONCEPTS)))], rng.uniform(0.5, 2.0))
        for concept in topic.concepts[1:]:
            add("IsA", concept, main, rng.uniform(1.0, 2.0))
        for business in topic.business:
            for token in tokens(business):
                if token not in GENERIC_WORDS or token in topic.concepts:
                    add("RelatedTo", token, main, rng.uniform(0.5, 2.0))
            # the profile category as one word, e.g. "makeup artist" -> makeup_artist
            add("RelatedTo", "_".join(tokens(business)), main, rng.uniform(1.0, 2.0))
    # profile categories of influencers that carry no interest
    for business in GENERIC_BUSINESS:
        add("IsA", "_".join(tokens(business)), "profession", 1.0)
    # brand business categories -> category concepts
    for category, names in BRAND_BUSINESS.items():
        for name in names:
            for token in tokens(name):
                if token in BUSINESS_WORDS:
                    add("RelatedTo", token, BUSINESS_WORDS[token], rng.uniform(1.0, 3.0))
            add("IsA", "_".join(tokens(name)), "organization", 1.0)
    # topic concepts -> the categories whose brands talk about them
    for category, profile in CATEGORY_PROFILES.items():
        for topic_name, weight in profile.items():
            if weight >= 2:
                add("RelatedTo", TOPICS[TOPIC_INDEX[topic_name]].concepts[0], category, weight / 2)
    # lifestyle clusters show in the graph as weak RelatedTo edges between their main concepts
    for cluster in CLUSTERS:
        mains = [TOPICS[TOPIC_INDEX[name]].concepts[0] for name in cluster]
        for a in mains:
            b = mains[int(rng.integers(len(mains)))]
            add("RelatedTo", a, b, rng.uniform(0.3, 1.0))
    # noise: words of one topic linked, weakly, to concepts of another
    words = sorted({w for topic in TOPICS for w in topic.words})
    for word in rng.choice(words, size=int(noise * len(words)), replace=False):
        add("RelatedTo", str(word), concepts[int(rng.integers(len(concepts)))], rng.uniform(0.1, 0.5))
    # other relations and nodes that must be ignored
    for word in rng.choice(words, size=max(5, len(words) // 10), replace=False):
        other = words[int(rng.integers(len(words)))]
        rel = ("Antonym", "Synonym", "HasContext", "DerivedFrom")[int(rng.integers(4))]
        add(rel, str(word), other, rng.uniform(0.5, 2.0))
    for concept in concepts[:: max(1, len(concepts) // 12)]:
        uri = f"/a/[/r/ExternalURL/,/c/en/{concept}/,http://dbpedia.org/resource/{concept.capitalize()}/]"
        rows[uri] = (f"{uri}\t/r/ExternalURL\t/c/en/{concept}\thttp://dbpedia.org/resource/{concept.capitalize()}"
                     f"\t{json.dumps({'dataset': '/d/dbpedia/en', 'weight': 0.5}, sort_keys=True)}")
    # other languages, and cross-lingual edges in both directions
    for lang, start, end in FOREIGN_EDGES:
        add("RelatedTo", start, end, rng.uniform(0.5, 2.0), lang, lang)
        target = concepts[int(rng.integers(len(concepts)))]
        add("Synonym", start, target, 1.0, lang, "en")
        add("Synonym", target, start, 1.0, "en", lang)
    return [rows[uri] for uri in sorted(rows)]


def related_hashtags(rng: np.random.Generator) -> list[tuple[str, str, float]]:
    """(concept, hashtag, weight) rows: what a hashtag-analysis site lists for each concept."""
    out: dict[tuple[str, str], float] = {}
    concept_topics: dict[str, list[int]] = {}
    for t, topic in enumerate(TOPICS):
        for concept in topic.concepts:
            concept_topics.setdefault(concept, []).append(t)
    for category, profile in CATEGORY_PROFILES.items():
        total = sum(profile.values())
        for topic_name, weight in profile.items():
            for tag in TOPICS[TOPIC_INDEX[topic_name]].hashtags[:3]:
                out[(category, tag)] = max(out.get((category, tag), 0), round(weight / total, 3))
    for concept, topic_ids in concept_topics.items():
        for t in topic_ids:
            topic = TOPICS[t]
            main = concept == topic.concepts[0]
            for tag in topic.hashtags:
                if main or rng.random() < 0.6:
                    w = 1.0 if main else round(float(rng.uniform(0.4, 0.9)), 3)
                    out[(concept, tag)] = max(out.get((concept, tag), 0), w)
            for cluster in CLUSTERS:
                if topic.name in cluster and rng.random() < 0.5:
                    other = TOPICS[TOPIC_INDEX[cluster[int(rng.integers(len(cluster)))]]]
                    tag = other.hashtags[int(rng.integers(len(other.hashtags)))]
                    out.setdefault((concept, tag), round(float(rng.uniform(0.2, 0.4)), 3))
        if rng.random() < 0.3:
            out.setdefault((concept, SPAM_TAGS[int(rng.integers(len(SPAM_TAGS)))]), 0.05)
    return sorted((c, h, w) for (c, h), w in out.items())


def write_files(root: str | Path, seed: int) -> None:
    """Write the three knowledge files into ``root/knowledge`` (deterministic for ``seed``)."""
    from bamir.utils import atomic_write_text

    rng = np.random.default_rng([int(seed), 9])
    kdir = Path(root) / schema.KNOWLEDGE_DIR
    kdir.mkdir(parents=True, exist_ok=True)
    atomic_write_text(kdir / schema.CONCEPTNET_FILES[0], "\n".join(conceptnet_rows(rng)) + "\n")
    atomic_write_text(kdir / schema.CONCEPTS_FILE, pd.DataFrame({"concept": concept_set()}).to_csv(index=False))
    related = pd.DataFrame(related_hashtags(rng), columns=["concept", "hashtag", "weight"])
    atomic_write_text(kdir / schema.RELATED_HASHTAGS_FILE, related.to_csv(index=False))
