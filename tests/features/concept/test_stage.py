"""The concept stage end to end on a small hand-built raw dataset; graph building; no test leakage."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import scipy.sparse as sp
import torch
import yaml

from bamir.data.schema import RawDataset
from bamir.features.base import Stage
from bamir.features.concept.conceptnet import ConceptNetNotFound
from bamir.features.concept.graph import build_graph, hashtag_cooccurrence, mention_cooccurrence
from bamir.features.concept.linking import related_matrix
from bamir.features.concept.stage import ConceptStage, FittedConcepts
from bamir.features.hashtags import parse_captions

# ----------------------------------------------------------------------------- fixture
INTERESTS = {
    "fitness": (["gym", "workout", "fitfam", "gains"], "gym lover and runner, daily workout"),
    "food": (["foodie", "recipe", "yum", "homemade"], "chef sharing recipes"),
    "travel": (["wanderlust", "travelgram", "beach", "passport"], "traveler chasing adventure"),
    "fashion": (["ootd", "style", "streetstyle", "lookbook"], "stylist and model"),
    "coffee": (["coffeetime", "latteart", "espresso", "brew"], "barista, espresso addict"),
    "dog": (["dogsofinstagram", "puppy", "woof", "doglife"], "puppy mom"),
    "music": (["livemusic", "guitar", "concert", "vinyl"], "singer and guitarist"),
    "makeup": (["mua", "lipstick", "glam", "beauty"], "lipstick collector"),
}
CONCEPTS = list(INTERESTS) + ["clothing", "drink"]
CONCEPTNET = [
    ("/r/RelatedTo", "gym", "fitness", 1.0), ("/r/RelatedTo", "workout", "fitness", 2.0),
    ("/r/RelatedTo", "runner", "fitness", 0.5), ("/r/RelatedTo", "chef", "food", 1.0),
    ("/r/RelatedTo", "recipe", "food", 1.0), ("/r/RelatedTo", "traveler", "travel", 1.0),
    ("/r/RelatedTo", "adventure", "travel", 1.0), ("/r/RelatedTo", "stylist", "fashion", 1.0),
    ("/r/RelatedTo", "model", "fashion", 0.5), ("/r/IsA", "clothing", "fashion", 1.0),
    ("/r/RelatedTo", "barista", "coffee", 1.0), ("/r/IsA", "espresso", "coffee", 2.0),
    ("/r/IsA", "puppy", "dog", 2.0), ("/r/RelatedTo", "singer", "music", 1.0),
    ("/r/RelatedTo", "guitarist", "music", 1.0), ("/r/IsA", "lipstick", "makeup", 1.0),
    ("/r/RelatedTo", "beauty", "makeup", 1.0), ("/r/IsA", "coffee", "drink", 1.0),
    ("/r/Antonym", "gym", "food", 1.0),  # filtered by relation
]
SPAM = ["like4like", "instagood", "followforfollow"]


def _assertion(rel, start, end, weight, lang="en"):
    info = json.dumps({"weight": weight, "dataset": "/d/test"})
    return f"/a/[{rel}/,/c/{lang}/{start}/,/c/en/{end}/]\t{rel}\t/c/{lang}/{start}/n\t/c/en/{end}\t{info}\n"


def make_raw(root: Path, seed: int = 0, related_table: bool = True) -> Path:
    """4 brands (2 train, 2 test), 24 influencers with two interests each (16 train, 8 test
    candidates), a blank influencer, 8 posts per account with interest and spam hashtags,
    a generic tag everyone uses, and mentions."""
    rng = random.Random(seed)
    names = list(INTERESTS)
    accounts = []
    brands = [("b0", "food", ["food", "coffee"]), ("b1", "clothing", ["fashion", "makeup"]),
              ("b2", "drink", ["coffee", "travel"]), ("b3", "clothing", ["fashion", "fitness"])]
    interests = {}
    for aid, category, likes in brands:
        accounts.append(dict(account_id=aid, username=f"brand_{aid}", kind="brand", category=category,
                             biography=f"We love {likes[0]}", business_category=category, followers=100000))
        interests[aid] = likes
    for i in range(24):
        likes = [names[i % 8], names[(i + 1) % 8]]
        bio = " and ".join(INTERESTS[k][1] for k in likes)
        accounts.append(dict(account_id=f"i{i}", username=f"user_{i}", kind="influencer", category="",
                             biography=bio, business_category="Personal blog", followers=10000 + i))
        interests[f"i{i}"] = likes
    accounts.append(dict(account_id="blank", username="blank", kind="influencer", category="", biography="",
                         business_category="", followers=5000))
    interests["blank"] = []
    ids = [a["account_id"] for a in accounts]
    posts = []
    username = {a["account_id"]: a["username"] for a in accounts}
    for aid in ids:
        likes = interests[aid]
        peers = [b for b in ids if b != aid and set(interests[b]) & set(likes)]
        for j in range(8):
            tags = []
            if likes:  # a post is mostly about one interest, sometimes touching the other
                main = rng.choice(likes)
                tags = rng.sample(INTERESTS[main][0], 3)
                if rng.random() < 0.5:
                    tags.append(rng.choice(INTERESTS[likes[0] if main == likes[1] else likes[1]][0]))
            if rng.random() < 0.5:
                tags.append(rng.choice(SPAM))
            if aid != "blank":
                tags.append("sunday")
            mention = f" with @{username[rng.choice(peers)]}" if peers and rng.random() < 0.3 else ""
            caption = "Great day" + mention + " " + " ".join(f"#{t}" for t in tags)
            posts.append(dict(post_id=f"{aid}_{j}", account_id=aid, timestamp=f"2024-01-{j + 1:02d}T10:00:00",
                              caption=caption, image="", likes=10 + j, comments=j))
    pairs = [("b0", "i1"), ("b0", "i4"), ("b1", "i3"), ("b1", "i7"), ("b2", "i16"), ("b2", "i20"),
             ("b3", "i18"), ("b3", "i23")]
    splits = {"discover": {"train_brands": ["b0", "b1"], "test_brands": ["b2", "b3"],
                           "test_candidates": [f"i{i}" for i in range(16, 24)] + ["blank"]}}
    root.mkdir(parents=True, exist_ok=True)
    (root / "knowledge").mkdir(exist_ok=True)
    pd.DataFrame(accounts).to_csv(root / "accounts.csv", index=False)
    pd.DataFrame(posts).to_csv(root / "posts.csv", index=False)
    pd.DataFrame(pairs, columns=["brand", "influencer"]).to_csv(root / "pairs.csv", index=False)
    (root / "splits.json").write_text(json.dumps(splits))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"name": "concept-fixture", "schema_version": 1}))
    lines = [_assertion(*row) for row in CONCEPTNET] + [_assertion("/r/IsA", "chien", "dog", 1.0, lang="fr")]
    (root / "knowledge" / "conceptnet.csv").write_text("".join(lines))
    pd.DataFrame({"concept": CONCEPTS}).to_csv(root / "knowledge" / "concepts.csv", index=False)
    if related_table:
        rows = [(k, t, 1.0) for k, (tags, _) in INTERESTS.items() for t in tags]
        pd.DataFrame(rows, columns=["concept", "hashtag", "weight"]).to_csv(
            root / "knowledge" / "related_hashtags.csv", index=False)
    return root


TRAIN = {"b0", "b1"} | {f"i{i}" for i in range(16)}
FAST = dict(dim=16, walks_per_node=10, walk_length=10, window=3, steps=100, hashtag_threshold=3,
            spam_min_accounts=10, related_min_count=2)


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory) -> Path:
    return make_raw(tmp_path_factory.mktemp("raw") / "ds")


def _load(root: Path) -> RawDataset:
    return RawDataset.load(root)


# ----------------------------------------------------------------------------- the stage
def test_stage_runs_and_encodes(raw_root, tmp_path):
    raw = _load(raw_root)
    stage = ConceptStage(**FAST)
    for member in ("config", "inputs_hash", "run"):  # the Stage protocol (not runtime-checkable)
        assert callable(getattr(stage, member)) and member in Stage.__dict__
    accounts = raw.accounts["account_id"].tolist() + ["ghost"]
    out = stage.run(raw, accounts, TRAIN, tmp_path / "work")
    concept = out["concept"]
    assert stage.modalities == ("concept",)
    assert concept.features.shape == (len(accounts), 16) and concept.features.dtype == torch.float32
    assert concept.present.dtype == torch.bool
    rows = {a: i for i, a in enumerate(accounts)}
    for missing in ("blank", "ghost"):
        assert not concept.present[rows[missing]] and torch.all(concept.features[rows[missing]] == 0)
    assert int(concept.present.sum()) == len(accounts) - 2
    assert concept.counts["no_concept"] == 2 and concept.skipped == {"no_concept": 2, "not_in_accounts_table": 1}
    assert concept.counts["concepts"] == len(CONCEPTS) and concept.counts["graph_edges"] > 0
    assert concept.counts["conceptnet_edges"] == 18  # Antonym and the French edge are filtered out
    assert concept.counts["linked_biography"] >= 28 and concept.counts["spam_tags"] >= 4
    assert "timings" in concept.note and "related hashtags: table" in concept.note
    assert torch.isfinite(concept.features).all()
    # influencers sharing an interest are closer, on average, than influencers with disjoint interests
    influencers = [f"i{i}" for i in range(24)]
    x = torch.nn.functional.normalize(concept.features[[rows[a] for a in influencers]], dim=1)
    sim = x @ x.T
    same, disjoint = [], []
    for i in range(24):
        for j in range(i + 1, 24):
            shared = {i % 8, (i + 1) % 8} & {j % 8, (j + 1) % 8}
            (same if shared else disjoint).append(float(sim[i, j]))
    assert np.mean(same) > np.mean(disjoint) + 0.05
    # the fitted model is saved and re-encodes the same vectors
    fitted = FittedConcepts.load(tmp_path / "work" / "concept")
    frame = raw.accounts.set_index("account_id").reindex(accounts).reset_index().fillna("")
    again, present, _ = fitted.encode(frame, parse_captions(raw.posts))
    assert torch.allclose(again, concept.features) and torch.equal(present, concept.present)
    # and the run is reproducible
    twice = ConceptStage(**FAST).run(raw, accounts, TRAIN, tmp_path / "work2")["concept"]
    assert torch.equal(twice.features, concept.features)


def test_missing_vector_mean_and_source_weights(raw_root, tmp_path):
    raw = _load(raw_root)
    accounts = raw.accounts["account_id"].tolist()
    out = ConceptStage(**FAST, missing="mean").run(raw, accounts, TRAIN, tmp_path)["concept"]
    blank = accounts.index("blank")
    assert not out.present[blank] and out.features[blank].abs().sum() > 0
    only_bio = ConceptStage(**FAST, source_weights={"business_category": 0, "hashtags": 0})
    fitted = only_bio.fit(raw, TRAIN)
    link = fitted.weights(raw.accounts, parse_captions(raw.posts))
    assert torch.allclose(link.weights, link.weights.sum(1, keepdim=True).clamp(min=1e-9) * link.weights
                          / link.weights.sum(1, keepdim=True).clamp(min=1e-9))
    i0 = accounts.index("i0")
    assert set(torch.nonzero(link.weights[i0]).view(-1).tolist()) == {CONCEPTS.index("fitness"),
                                                                      CONCEPTS.index("food")}
    with pytest.raises(ValueError, match="unknown sources"):
        ConceptStage(source_weights={"captions": 1.0})


def test_config_and_inputs_hash(raw_root, tmp_path):
    from omegaconf import OmegaConf

    raw = _load(raw_root)
    stage = ConceptStage(**FAST)
    config = stage.config()
    json.dumps(config)
    assert config["dim"] == 16 and config["walks_per_node"] == 10 and config["hashtag_threshold"] == 3
    assert config["source_weights"] == {"biography": 1.0, "business_category": 1.0, "hashtags": 1.0}
    hydra_like = OmegaConf.create({"mention_kinds": ["brand-influencer"], "source_weights": {"hashtags": 2}})
    assert ConceptStage(**hydra_like).config()["mention_kinds"] == ["brand-influencer"]
    base = stage.inputs_hash(raw)
    assert base == ConceptStage(**FAST).inputs_hash(_load(raw_root))
    changed = _load(raw_root)
    changed.posts.loc[0, "likes"] = "999"  # not read by the stage
    assert stage.inputs_hash(changed) == base
    changed.posts.loc[0, "caption"] = "#new"
    assert stage.inputs_hash(changed) != base
    other = make_raw(tmp_path / "other")
    (other / "knowledge" / "related_hashtags.csv").write_text("concept,hashtag\nfood,yum\n")
    assert stage.inputs_hash(_load(other)) != base


def test_missing_conceptnet_names_the_config_key(tmp_path):
    root = make_raw(tmp_path / "ds")
    (root / "knowledge" / "conceptnet.csv").unlink()
    raw = _load(root)
    with pytest.raises(ConceptNetNotFound, match=r"features\.concept\.conceptnet_path"):
        ConceptStage(**FAST).run(raw, ["i0"], TRAIN, tmp_path / "w")
    with pytest.raises(ConceptNetNotFound, match=r"features\.concept\.conceptnet_path"):
        ConceptStage(**FAST, conceptnet_path=str(tmp_path / "elsewhere.csv.gz")).fit(raw, TRAIN, embed=False)
    # explicitly without ConceptNet: exact concept names only
    fitted = ConceptStage(**FAST, use_conceptnet=False).fit(raw, TRAIN, embed=False)
    assert fitted.counts["conceptnet_edges"] == 0 and "gym" not in fitted.lexicon.entries
    (root / "knowledge" / "concepts.csv").unlink()
    with pytest.raises(FileNotFoundError, match=r"features\.concept\.concepts_path"):
        ConceptStage(**FAST, use_conceptnet=False).fit(raw, TRAIN, embed=False)


def test_learned_related_hashtags(tmp_path):
    root = make_raw(tmp_path / "ds", related_table=False)
    raw = _load(root)
    fitted = ConceptStage(**FAST).fit(raw, TRAIN, embed=False)
    assert fitted.related_source == "learned"
    related = fitted.related
    # seeds: a tag that is a ConceptNet neighbour (or the name) of the concept
    assert related["fitness"]["gym"] == pytest.approx(0.5) and related["fitness"]["workout"] == pytest.approx(0.5)
    assert related["coffee"]["espresso"] == pytest.approx(0.5)
    # expansion: tags that co-occur with the seeds in training captions
    assert {"fitfam", "gains"} & set(related["fitness"])
    assert {"latteart", "coffeetime", "brew"} & set(related["coffee"])
    # account level: no tag names "music", but its biography-linked accounts share tags
    assert {"concert", "livemusic", "vinyl", "guitar"} & set(related["music"])
    # the generic tag and the spam tags are filtered before learning
    assert all(t not in tags for tags in related.values() for t in ["sunday", *SPAM])
    assert "sunday" in fitted.spam.frequent
    assert fitted.graph.num_edges > 0
    with pytest.raises(FileNotFoundError, match="related_hashtags_path"):
        ConceptStage(**FAST, related_source="table").fit(raw, TRAIN, embed=False)


# ----------------------------------------------------------------------------- no test leakage
def _tamper_test_side(root: Path, accounts: set[str], seed: int) -> None:
    """Rewrite the captions of ``accounts``: other hashtags, spam, mentions of training accounts."""
    rng = random.Random(seed)
    posts = pd.read_csv(root / "posts.csv", dtype=str, keep_default_na=False)
    all_tags = [t for tags, _ in INTERESTS.values() for t in tags] + ["brandnew", "sunday", *SPAM]
    users = pd.read_csv(root / "accounts.csv", dtype=str)["username"].tolist()
    mask = posts["account_id"].isin(accounts)
    posts.loc[mask, "caption"] = [
        " ".join(f"#{t}" for t in rng.sample(all_tags, 6)) + f" @{rng.choice(users)} @{rng.choice(users)}"
        for _ in range(int(mask.sum()))
    ]
    posts.to_csv(root / "posts.csv", index=False)


@pytest.mark.parametrize("related, unit", [("table", "post"), ("learn", "post"), ("table", "account")])
def test_graph_does_not_change_when_only_test_accounts_change(tmp_path, related, unit):
    settings = dict(FAST, related_source=related, hashtag_unit=unit, hashtag_threshold=2, mention_top_k=2)
    base_root = make_raw(tmp_path / "base")
    base = ConceptStage(**settings).fit(_load(base_root), TRAIN, embed=False)
    assert base.graph.num_edges > 0 and base.counts["train_mentions"] > 0

    test_side = {a for a in _load(base_root).accounts["account_id"] if a not in TRAIN}
    tampered_root = make_raw(tmp_path / "tampered")
    _tamper_test_side(tampered_root, test_side, seed=1)
    tampered = ConceptStage(**settings).fit(_load(tampered_root), TRAIN, embed=False)
    assert base.graph.same_as(tampered.graph)
    assert base.related == tampered.related and base.spam.frequent == tampered.spam.frequent
    assert base.counts == tampered.counts

    # control: the same change on training accounts does change the graph
    control_root = make_raw(tmp_path / "control")
    _tamper_test_side(control_root, {"i0", "i1", "i2", "i3", "b0"}, seed=1)
    control = ConceptStage(**settings).fit(_load(control_root), TRAIN, embed=False)
    assert not base.graph.same_as(control.graph)


# ----------------------------------------------------------------------------- graph pieces
def test_hashtag_cooccurrence_threshold_and_weight():
    vocab, rel = related_matrix({"a": {"x": 1.0, "both": 1.0}, "b": {"y": 1.0, "both": 1.0}, "c": {"z": 1.0}},
                                ["a", "b", "c"])
    units = [("x", "y")] * 9 + [("both",)] * 3 + [("x", "z")] * 7 + [("unknown",)]
    h = hashtag_cooccurrence(units, vocab, rel).toarray()
    assert h.tolist() == [[0, 12, 7], [12, 0, 0], [7, 0, 0]]
    graph = build_graph(["a", "b", "c"], sp.csr_matrix(h), None, threshold=8)
    assert graph.num_edges == 1 and graph.edge_index.tolist() == [[0, 1], [1, 0]]
    assert graph.edge_weight.tolist() == pytest.approx([np.sqrt(6.0)] * 2)
    assert graph.isolated().tolist() == [False, False, True]
    loose = build_graph(["a", "b", "c"], sp.csr_matrix(h), None, threshold=7)
    assert loose.num_edges == 2 and loose.counts["isolated_concepts"] == 0
    assert loose.to_networkx().number_of_edges() == 2


def test_mention_cooccurrence_kinds_and_top_k():
    weights = torch.tensor([[0.9, 0.1, 0.0], [0.0, 0.0, 1.0], [0.5, 0.5, 0.0]])
    row_of = {"b": 0, "i": 1, "j": 2}
    kinds = {"b": "brand", "i": "influencer", "j": "influencer"}
    m = mention_cooccurrence([("b", "i"), ("b", "i"), ("i", "j"), ("i", "i")], weights, row_of, kinds, top_k=1)
    # b -> i twice: (a, c) + 2; i -> j: top-1 of j is concept 0 (tie broken by index): (c, a) + 1
    assert m.toarray().tolist() == [[0, 0, 3], [0, 0, 0], [3, 0, 0]]
    only_ii = mention_cooccurrence([("b", "i"), ("i", "j")], weights, row_of, kinds, ["influencer-influencer"], 2)
    assert only_ii.toarray().tolist() == [[0, 0, 1], [0, 0, 1], [1, 1, 0]]
    combined = build_graph(["a", "b", "c"], None, sp.csr_matrix(m), mention_threshold=1)
    assert combined.edge_weight.tolist() == pytest.approx([np.sqrt(1.5)] * 2)


def test_prepare_pipeline_writes_the_concept_modality(raw_root, tmp_path):
    from bamir.features import pipeline
    from bamir.store import FeatureStore

    cfg = {"concept": {"_target_": "bamir.features.concept.stage.ConceptStage", **FAST,
                       "mention_kinds": ["brand-influencer", "influencer-influencer"]}}
    report: dict = {}
    store = pipeline.prepare(raw_root, tmp_path / "store", cfg, report=report, progress=False)
    assert report["concept"]["status"] == "computed"
    modality = FeatureStore(tmp_path / "store").load_modality("concept")
    assert modality.dim == 16 and int((~modality.present).sum()) == 1
    pipeline.prepare(raw_root, tmp_path / "store", cfg, report=report, progress=False)
    assert report["concept"]["status"] == "fresh"
    assert store.record("concept")["counts"]["no_concept"] == 1


def test_account_weights_tolerate_missing_text():
    from bamir.features.concept.linking import ConceptLexicon, account_concept_weights

    lexicon = ConceptLexicon(["fitness", "food"], {"fitness": {"fitness": 1.0}, "gym": {"fitness": 0.5},
                                                   "food": {"food": 1.0}})
    frame = pd.DataFrame({"account_id": ["a", "b", "c", "d"],
                          "biography": pd.array([None, pd.NA, "Gym rat", "food"], dtype="string"),
                          "business_category": [None, "Food", "", float("nan")]})
    link = account_concept_weights(frame, {"a": {"yum": 2}, "d": {"yum": 1}}, lexicon, {"food": {"yum": 1.0}})
    assert link.weights.tolist() == [[0, 1], [0, 1], [1, 0], [0, 2]]
    assert link.linked() == {"any": 4, "biography": 2, "business_category": 1, "hashtags": 2}
