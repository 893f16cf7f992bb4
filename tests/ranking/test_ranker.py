"""Ranking at scale (bamir.ranking): chunked exact top-k, faiss, per-branch shares, filters, names."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from bamir.ranking import (CandidateFilter, CandidateIndex, FaissSearch, Ranker, UnknownNameError, account_profiles,
                           auto_candidate_chunk, branch_embedder, candidate_rows, chunked_topk, choose_method,
                           faiss_available, format_table, linked_exclusions, ranking_frame, resolve_names)

needs_faiss = pytest.mark.skipif(not faiss_available(), reason="faiss-cpu is not installed (pip install faiss-cpu)")


def _reference_topk(q, k_, k, banned=None):
    scores = q @ k_.T
    if banned is not None:
        scores = scores.masked_fill(banned, -math.inf)
    return scores.topk(min(k, k_.shape[0]), dim=1)


@pytest.mark.parametrize("brand_chunk,candidate_chunk", [(1024, 65536), (3, 7), (1, 1), (5, 100)])
def test_chunked_topk_equals_full_topk(brand_chunk, candidate_chunk):
    g = torch.Generator().manual_seed(0)
    q, keys = torch.randn(11, 16, generator=g), torch.randn(53, 16, generator=g)
    values, idx = chunked_topk(q, keys, 10, brand_chunk=brand_chunk, candidate_chunk=candidate_chunk)
    ref_v, ref_i = _reference_topk(q, keys, 10)
    assert torch.allclose(values, ref_v, atol=1e-5)
    assert torch.equal(idx, ref_i)


def test_chunked_topk_exclusions_and_short_pools():
    g = torch.Generator().manual_seed(1)
    q, keys = torch.randn(4, 8, generator=g), torch.randn(9, 8, generator=g)
    full = (q @ keys.T).argsort(dim=1, descending=True)
    # ban each query's current best two
    ex_q = torch.arange(4).repeat_interleave(2)
    ex_k = full[:, :2].reshape(-1)
    banned = torch.zeros(4, 9, dtype=torch.bool)
    banned[ex_q, ex_k] = True
    values, idx = chunked_topk(q, keys, 5, candidate_chunk=4, exclude=(ex_q, ex_k))
    ref_v, ref_i = _reference_topk(q, keys, 5, banned)
    assert torch.equal(idx, ref_i) and torch.allclose(values, ref_v)
    assert not banned.gather(1, idx).any()
    # k larger than the admissible pool: the tail is -inf / -1
    values, idx = chunked_topk(q, keys, 20, exclude=(ex_q, ex_k))
    assert values.shape == (4, 9)
    assert torch.isinf(values[:, -2:]).all() and (idx[:, -2:] == -1).all()
    assert (idx[:, :7] >= 0).all()


def test_auto_candidate_chunk_bounds_the_block():
    assert auto_candidate_chunk("cpu", brands=1000, brand_chunk=1024, budget=1 << 26) == (1 << 26) // 1000
    assert auto_candidate_chunk("cpu", brands=5000, brand_chunk=1024, budget=1 << 26) == (1 << 26) // 1024
    assert auto_candidate_chunk("cpu", brands=1, budget=1 << 20) == 1 << 20
    assert auto_candidate_chunk("cpu", brands=10**6, budget=10) == 4096  # never tiny blocks


@needs_faiss
def test_faiss_flat_is_exact_and_ivf_is_close(tmp_path):
    g = torch.Generator().manual_seed(2)
    centres = torch.randn(8, 32, generator=g) * 2
    keys = centres[torch.randint(8, (3000,), generator=g)] + 0.1 * torch.randn(3000, 32, generator=g)
    q = centres[torch.randint(8, (20,), generator=g)] + 0.1 * torch.randn(20, 32, generator=g)
    ref_v, ref_i = _reference_topk(q, keys, 25)
    flat = FaissSearch(keys, kind="flat")
    v, i = flat.search(q, 25)
    assert torch.allclose(v, ref_v, atol=1e-3)
    assert (i == ref_i).float().mean() > 0.99  # ties aside, the same order
    ivf = FaissSearch(keys, kind="ivf", nlist=16, nprobe=8, niter=5)
    _, i2 = ivf.search(q, 25)
    recall = np.mean([len(set(a.tolist()) & set(b.tolist())) / 25 for a, b in zip(i2, ref_i)])
    assert recall > 0.9
    # exclusions: banned pairs never come back, the rest still fill k
    ex_q, ex_k = torch.zeros(5, dtype=torch.long), ref_i[0, :5]
    v3, i3 = flat.search(q, 25, exclude=(ex_q, ex_k))
    assert not set(i3[0].tolist()) & set(ex_k.tolist())
    assert (i3 >= 0).all() and torch.equal(i3[1:], i[1:])
    # an index kept on disk answers the same
    ivf.save(tmp_path / "ivf.faiss")
    again = FaissSearch.load(tmp_path / "ivf.faiss")
    again.index.nprobe = 8
    assert again.kind == "ivf" and torch.equal(again.search(q, 25)[1], i2)


def test_choose_method():
    assert choose_method(1000, 10**6, "cuda") == "exact"
    assert choose_method(10, 1000, "cpu") == "exact"
    assert choose_method(1000, 10**6, "cpu", ivf_from=None) == "exact"
    expected = "faiss_ivf" if faiss_available() else "exact"
    assert choose_method(1000, 10**6, "cpu") == expected
    assert choose_method(10, 10**6, "cpu") == "exact"  # 1e7 pairs: below the cross-over


# --------------------------------------------------------------------------- with a model on the planted store
@pytest.fixture(scope="module")
def planted_model(planted_store, tmp_path_factory):
    from omegaconf import open_dict

    from bamir.train import build_data, build_model
    from tests.helpers.compose import compose_config

    root = tmp_path_factory.mktemp("rank_model")
    cfg = compose_config("train", root)
    with open_dict(cfg):
        cfg.paths.data_dir = str(planted_store.root.parent.parent)
    dm = build_data(cfg)
    torch.manual_seed(0)
    model = build_model(cfg, dm).eval()
    return model, dm


def test_ranker_matches_the_model_scores(planted_model):
    model, dm = planted_model
    ranker = Ranker(model, device="cpu", method="exact", candidate_chunk=17, brand_chunk=2)
    brands = dm.test_split.brands
    index = ranker.index(dm.test_split.candidates)
    assert index.keys is not None and set(index.slices) == set(model.encoders)
    ranking = ranker.rank(brands, index, 10)
    full = model.score_matrix(brands, dm.test_split.candidates)
    ref_v, ref_i = full.topk(10, dim=1)
    assert torch.allclose(ranking.scores, ref_v, atol=1e-4)
    assert torch.equal(ranking.candidates, dm.test_split.candidates[ref_i])
    # contributions are the branch scores of the chosen pairs, and sum to the score
    branch = model.branch_scores(brands, dm.test_split.candidates)
    for name, c in ranking.contributions.items():
        assert torch.allclose(c, branch[name].gather(1, ref_i), atol=1e-4)
    assert torch.allclose(sum(ranking.contributions.values()), ranking.scores, atol=1e-4)
    shares = ranking.shares
    assert torch.allclose(sum(s.abs() for s in shares.values()), torch.ones_like(ranking.scores), atol=1e-5)


def test_ranker_generic_path_for_models_without_embeddings(planted_model):
    from bamir.models.random import RandomRanker

    _, dm = planted_model
    scorer = RandomRanker(dm.dims, seed=3)
    scorer.attach_features(dm.features)
    assert branch_embedder(scorer) is None
    ranker = Ranker(scorer, device="cpu", candidate_chunk=13, brand_chunk=3)
    brands = dm.test_split.brands[:4]
    index = ranker.index(dm.test_split.candidates)
    assert index.keys is None
    ranking = ranker.rank(brands, index, 5)
    ref_v, ref_i = scorer.score_matrix(brands, dm.test_split.candidates).topk(5, dim=1)
    assert ranking.method == "branch_scores"
    assert torch.allclose(ranking.scores, ref_v, atol=1e-5)
    assert torch.equal(ranking.candidates, dm.test_split.candidates[ref_i])
    assert torch.allclose(sum(ranking.contributions.values()), ranking.scores, atol=1e-5)


@pytest.mark.parametrize("kind", ["cosine", "cosine_signed", "sbr", "mir", "popularity"])
def test_every_factorising_ranker_ranks_through_its_embeddings_like_its_scores(planted_model, kind):
    """The ranker contract: ``branch_embeddings(rows, side)`` reproduces ``branch_scores`` as inner
    products, so the ranking app precomputes candidates and gets the exact top-k and contributions."""
    from bamir.models.cosine import CosineBaseline
    from bamir.models.mir import MirModel
    from bamir.models.popularity import PopularityRanker
    from bamir.models.sbr import SBR

    _, dm = planted_model
    scorer = {"cosine": lambda: CosineBaseline(dm.dims, ["topic", "concept"]),
              "cosine_signed": lambda: CosineBaseline(dm.dims, ["topic", "concept"], weights={"concept": -0.5}),
              "sbr": lambda: SBR(dm.dims), "mir": lambda: MirModel(dm.dims, score_scale=-3.0),
              "popularity": lambda: PopularityRanker(dm.dims, source="degree")}[kind]()
    scorer.attach_features(dm.features)
    scorer.attach_data(dm)
    assert branch_embedder(scorer, torch.arange(10)) is not None
    brands, cands = dm.test_split.brands, dm.test_split.candidates
    ranking = Ranker(scorer.eval(), device="cpu").rank(brands, Ranker(scorer, device="cpu").index(cands), 5)
    assert ranking.method == "exact"
    want = scorer.score_matrix(brands, cands)
    assert torch.allclose(ranking.scores, want.gather(1, (ranking.candidates[:, :, None] == cands).float()
                                                      .argmax(-1)), atol=1e-4)
    assert torch.allclose(ranking.scores, want.topk(5, dim=1).values, atol=1e-4)
    assert torch.allclose(sum(ranking.contributions.values()), ranking.scores, atol=1e-4)


def test_a_wrong_factorisation_falls_back(planted_model):
    model, dm = planted_model

    class Skewed(type(model)):
        def branch_scores(self, brands, candidates):  # not an inner product of encode() any more
            return {b: s + 1.0 for b, s in super().branch_scores(brands, candidates).items()}

    skewed = Skewed.__new__(Skewed)
    skewed.__dict__ = model.__dict__
    assert branch_embedder(model, torch.arange(8)) is not None
    assert branch_embedder(skewed, torch.arange(8)) is None


@needs_faiss
def test_ranker_faiss_paths_agree_with_exact(planted_model):
    model, dm = planted_model
    brands, cands = dm.test_split.brands, dm.test_split.candidates
    exact = Ranker(model, device="cpu", method="exact")
    flat = Ranker(model, device="cpu", method="faiss")
    ivf = Ranker(model, device="cpu", method="faiss_ivf", faiss={"nlist": 4, "nprobe": 4})
    a = exact.rank(brands, exact.index(cands), 8)
    b = flat.rank(brands, flat.index(cands), 8)
    c = ivf.rank(brands, ivf.index(cands), 8)
    assert torch.allclose(a.scores, b.scores, atol=1e-4)
    assert torch.allclose(a.scores, c.scores, atol=1e-4)  # every cell probed: exact
    assert b.method == "faiss" and c.method == "faiss_ivf"


def test_candidate_index_cache_roundtrip(planted_model, tmp_path):
    model, dm = planted_model
    ranker = Ranker(model, device="cpu")
    index = ranker.index(dm.test_split.candidates)
    index.save(tmp_path / "emb.safetensors", key="k1")
    loaded = CandidateIndex.load(tmp_path / "emb.safetensors", key="k1")
    assert torch.equal(loaded.keys, index.keys) and torch.equal(loaded.rows, index.rows)
    assert loaded.slices == index.slices
    assert CandidateIndex.load(tmp_path / "emb.safetensors", key="other") is None
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    assert CandidateIndex.load(tmp_path / "bad.safetensors", key="k1") is None
    sub = index.subset(torch.tensor([3, 0]))
    assert torch.equal(sub.rows, index.rows[[3, 0]]) and torch.equal(sub.keys, index.keys[[3, 0]])


# --------------------------------------------------------------------------- filters and names
def _profiles() -> pd.DataFrame:
    return pd.DataFrame({
        "account_id": ["b0", "b1", "i0", "i1", "i2", "i3"],
        "username": ["acme_air", "fizzdrink", "anna", "ben", "carla", "dave"],
        "kind": ["brand", "brand", "influencer", "influencer", "influencer", "influencer"],
        "category": ["airline", "drink", "", "", "", ""],
        "followers": [1e6, 2e6, 5000, 20000, 80000, np.nan],
        "engagement": [0.01, 0.02, 0.05, 0.03, 0.02, np.nan],
        "business_category": ["Airline", "Brewery", "Blogger", "Travel Company", "Blogger", ""],
        "posts": [5] * 6,
    })


PAIRS = (torch.tensor([0, 1]), torch.tensor([2, 4]))  # acme_air-anna, fizzdrink-carla


def test_candidate_filters():
    prof = _profiles()
    rows = lambda **kw: candidate_rows(prof, PAIRS, CandidateFilter(**kw)).tolist()  # noqa: E731
    assert rows() == [2, 3, 4, 5]
    assert rows(min_followers=10000) == [3, 4]
    assert rows(min_followers=10000, max_followers=50000) == [3]
    assert rows(category=["airline"]) == [2]
    assert rows(business_category=["blogger"]) == [2, 4]
    assert rows(influencers=["ben", "@DAVE"]) == [3, 5]
    assert candidate_rows(prof, PAIRS, CandidateFilter(), pool=torch.tensor([3, 4])).tolist() == [3, 4]
    with pytest.raises(UnknownNameError, match="closest: airline"):
        rows(category=["airlines"])
    with pytest.raises(UnknownNameError, match="closest: Blogger"):
        rows(business_category=["bloger"])
    flt = CandidateFilter.from_config({"category": "airline,drink", "exclude_linked": True, "min_followers": None})
    assert flt.category == ["airline", "drink"] and flt.exclude_linked
    assert flt.describe() == {"category": ["airline", "drink"], "exclude_linked": True}
    with pytest.raises(ValueError, match="unknown candidate filters"):
        CandidateFilter.from_config({"colour": "red"})


def test_follower_filter_without_followers_is_refused():
    prof = _profiles().assign(followers=np.nan)
    with pytest.raises(ValueError, match="follower counts"):
        candidate_rows(prof, PAIRS, CandidateFilter(min_followers=10))


def test_linked_exclusions():
    index = CandidateIndex(torch.tensor([2, 3, 4, 5]), None, {})
    bp, cp = linked_exclusions(torch.tensor([1, 0]), index, PAIRS, num_accounts=6)
    assert sorted(zip(bp.tolist(), cp.tolist())) == [(0, 2), (1, 0)]


def test_names_resolve_with_closest_suggestions():
    prof = _profiles()
    assert resolve_names(["ACME_AIR", "b1", "@fizzdrink"], prof, "brand") == [0, 1, 1]
    with pytest.raises(UnknownNameError, match=r"unknown brand 'acme_ari'; closest: acme_air"):
        resolve_names(["acme_ari"], prof, "brand")
    with pytest.raises(UnknownNameError, match="'anna' is a influencer, not a brand"):
        resolve_names(["anna"], prof, "brand")
    with pytest.raises(UnknownNameError, match="no close name"):
        resolve_names(["zzzzzzzzzz"], prof, "influencer")
    with pytest.raises(UnknownNameError) as err:  # every unknown name reported at once
        resolve_names(["bne", "carl"], prof, "influencer")
    assert "closest: ben" in str(err.value) and "closest: carla" in str(err.value)


def test_ranking_frame_and_table(planted_model):
    model, dm = planted_model
    ranker = Ranker(model, device="cpu")
    brands = dm.test_split.brands[:2]
    ranking = ranker.rank(brands, ranker.index(dm.test_split.candidates), 4)
    prof = account_profiles(dm.store)  # the planted store has no raw data: no followers
    assert prof["followers"].isna().all()
    frame = ranking_frame(ranking, prof, dm.pair_rows)
    assert len(frame) == 8 and list(frame["rank"][:4]) == [1, 2, 3, 4]
    assert {"share_content", "share_concept", "contrib_content", "contrib_concept", "linked"} <= set(frame.columns)
    known = set(zip(dm.pair_rows[0].tolist(), dm.pair_rows[1].tolist()))
    row_of = dm.row_of
    for rec in frame.itertuples():
        assert rec.linked == ((row_of[rec.brand_id], row_of[rec.influencer_id]) in known)
    text = format_table(frame[frame["brand_id"] == frame["brand_id"].iloc[0]])
    lines = text.splitlines()
    assert lines[0].split()[:5] == ["rank", "influencer", "score", "followers", "engagement"]
    assert "content share" in lines[0] and len(lines) == 6
    assert " - " in lines[2] or lines[2].rstrip().split()[3] == "-"
