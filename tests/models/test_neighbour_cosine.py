"""Neighbour cosine ranker: the brand-neighbour transfer, its self-exclusion, brand-side-only image
vectors, the factorisation, the residual cosine at initialisation, and a short training run."""

import pytest
import torch
import torch.nn.functional as F

from bamir.models.neighbour_cosine import NeighbourCosine
from bamir.models.residual_cosine import ResidualCosine
from tests.helpers.training import fit_fixed_batch, planted_run

DIMS = {"topic": 5, "concept": 7, "object": 6}
GROUPS = {"image": {"similarity": ["object"], "k": 2, "temperature": 0.5},
          "text": {"similarity": ["topic", "concept"], "k": 3, "temperature": 1.0}}
N = 20  # accounts: 0-5 brands, 6-19 influencers
BRANDS = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])  # brands 0-3 fit, two positives each among influencers 6-13
POSITIVES = torch.tensor([6, 7, 8, 9, 10, 11, 12, 6])


def _features(seed=0):
    g = torch.Generator().manual_seed(seed)
    return {k: torch.randn(N, d, generator=g) for k, d in DIMS.items()}


def _model(features=None, **kwargs):
    kwargs.setdefault("neighbours", GROUPS)
    model = NeighbourCosine(DIMS, **kwargs)
    model.attach_features(features or _features())
    model.set_pool(torch.unique(POSITIVES), torch.unique(BRANDS * N + POSITIVES), N)
    model.set_reference(torch.unique(BRANDS))
    model.set_neighbours(BRANDS, POSITIVES)
    return model.eval()


def test_branches_shapes_and_the_factorisation():
    model = _model(hub_k=2, neighbour_init=0.7)
    brands, cands = torch.tensor([0, 4, 5]), torch.tensor([14, 15, 16, 6])
    scores = model.branch_scores(brands, cands)
    assert set(scores) == {"cos_topic", "cos_concept", "hub", "nb_image_topic", "nb_image_concept",
                           "nb_text_topic", "nb_text_concept"}
    emb_b, emb_c = model.branch_embeddings(brands, "brand"), model.branch_embeddings(cands, "candidate")
    assert emb_b["nb_image_concept"].shape == (3, 7) and emb_c["nb_text_topic"].shape == (4, 5)
    for k in scores:  # the ranking app's fast path: the scores factorise
        assert scores[k].shape == (3, 4)
        assert torch.allclose(emb_b[k] @ emb_c[k].T, scores[k], atol=1e-5)
    assert model.modalities == ["concept", "object", "topic"]
    assert model.requested_modalities == ("concept", "object", "topic")


def test_the_neighbour_score_is_the_neighbours_positives_mean_cosine():
    """nb_g_m(b, c) = gamma sum_b' a_g(b, b') mean_{p in P(b')} cos_m(p, c), a_g the softmax over the k
    nearest training brands by the group's similarity, a training brand never its own neighbour."""
    model = _model(neighbour_init=0.7)
    feats = model.feature_matrices()
    u = {m: F.normalize(feats[m], dim=-1) for m in DIMS}
    cands = torch.arange(6, N)
    positives_of = {b: POSITIVES[BRANDS == b] for b in range(4)}
    for brand in (4, 0):  # a new brand; a training brand (brand 0 left out of its own neighbours)
        others = [b for b in range(4) if b != brand]
        sims = torch.stack([u["topic"][brand] @ u["topic"][b] + u["concept"][brand] @ u["concept"][b] for b in others])
        top = sims.topk(3)
        weights = torch.softmax(top.values / 1.0, 0)
        expected = sum(w * (u["concept"][positives_of[others[i]]] @ u["concept"][cands].T).mean(0)
                       for w, i in zip(weights, top.indices.tolist()))
        got = model.branch_scores(torch.tensor([brand]), cands)["nb_text_concept"][0]
        assert torch.allclose(got, 0.7 * expected, atol=1e-5)
        a = model.neighbour_weights_of(torch.tensor([brand]), "image")[0]
        assert (a > 0).sum() == 2 and torch.allclose(a.sum(), torch.tensor(1.0))  # k = 2 neighbours
        if brand == 0:
            assert a[0] == 0  # reference row 0 is brand 0 itself


def test_candidates_image_vectors_are_never_read():
    """The release's influencers have no image vectors: only brands' rows of the similarity group count."""
    features = _features()
    model = _model(features, neighbour_init=1.0, hub_k=2)
    brands, cands = torch.tensor([4, 5, 1]), torch.arange(6, N)
    before = model.score_matrix(brands, cands)
    features["object"][6:] = float("nan")  # influencers' rows: anything
    model.attach_features(features)
    assert torch.allclose(model.score_matrix(brands, cands), before)
    # and the brands' image vectors do matter: another brand-side object vector, other neighbours
    features["object"][4] = -features["object"][4]
    model.attach_features(features)
    assert not torch.allclose(model.score_matrix(brands, cands)[0], before[0])


def test_at_initialisation_the_score_is_the_residual_cosine():
    model = _model(hub_k=2, hub_init=0.5)
    plain = ResidualCosine(DIMS, hub_k=2, hub_init=0.5)
    plain.attach_features(model.feature_matrices())
    plain.set_reference(torch.unique(BRANDS))
    brands, cands = torch.tensor([0, 4, 5]), torch.arange(6, N)
    assert torch.allclose(model.score_matrix(brands, cands), plain.score_matrix(brands, cands), atol=1e-6)


def test_a_planted_transfer_is_found():
    """Topic and concept say nothing about brand -> influencer; the brands' image vectors group them
    (two groups), and each group's influencers share a topic. A new brand of group 1 ranks group 1's
    influencers first through its image neighbours, and the cosine alone does not."""
    g = torch.Generator().manual_seed(1)
    feats = {"topic": torch.randn(N, 5, generator=g) * 0.05, "concept": torch.randn(N, 7, generator=g),
             "object": torch.randn(N, 6, generator=g) * 0.05}
    group_of_brand = torch.tensor([0, 0, 1, 1, 0, 1])  # brands 0-3 fit, 4 and 5 new
    feats["object"][:6] += torch.eye(6)[group_of_brand] * 3
    infl_group = torch.tensor([0, 1] * 7)  # influencers 6-19
    feats["topic"][6:] += torch.eye(5)[infl_group] * 3
    brands = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    positives = torch.tensor([6, 8, 10, 12, 7, 9, 11, 13])  # group-0 brands chose even influencers
    model = NeighbourCosine({"topic": 5, "concept": 7, "object": 6}, neighbour_init=5.0,
                            neighbours={"image": {"similarity": ["object"], "k": 2, "temperature": 0.1}})
    model.attach_features(feats)
    model.set_neighbours(brands, positives)
    cands = torch.arange(14, N)  # 14, 16, 18 in group 0; 15, 17, 19 in group 1
    scores = model.score_matrix(torch.tensor([4, 5]), cands)
    truth = (infl_group[cands - 6][None, :] == group_of_brand[torch.tensor([4, 5])][:, None])
    assert (scores[truth].view(2, 3).min(1).values > scores[~truth].view(2, 3).max(1).values).all()
    cosine_only = model.branch_scores(torch.tensor([4, 5]), cands)
    cos = cosine_only["cos_topic"] + cosine_only["cos_concept"]
    assert not (cos[truth].view(2, 3).min(1).values > cos[~truth].view(2, 3).max(1).values).all()


def test_a_group_whose_modalities_are_not_served_is_dropped_but_requested():
    model = NeighbourCosine({"topic": 5, "concept": 7}, neighbours=GROUPS)
    assert list(model.groups) == ["text"]
    assert {"object", "topic", "concept"} <= set(model.requested_modalities)
    assert sorted(n for n, _ in model.named_parameters() if n.startswith("neighbour")) == [
        "neighbour_weights.text_concept", "neighbour_weights.text_topic"]


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="k must be"):
        NeighbourCosine(DIMS, neighbours={"x": {"similarity": ["object"], "k": 0}})
    with pytest.raises(ValueError, match="similarity"):
        NeighbourCosine(DIMS, neighbours={"x": {"similarity": []}})
    model = NeighbourCosine(DIMS, neighbours=GROUPS)
    model.attach_features(_features())
    with pytest.raises(RuntimeError, match="training pairs"):
        model.branch_scores(torch.tensor([4]), torch.tensor([6]))
    with pytest.raises(ValueError, match="two training brands"):
        model.set_neighbours(torch.tensor([0, 0]), torch.tensor([6, 7]))


def test_training_lowers_the_loss_and_moves_the_neighbour_weights():
    model = _model(cosine_weights="scalar", hub_k=2, hub_init=0.5).train()
    first, last = fit_fixed_batch(model, torch.tensor([[0, 6, 13], [1, 8, 12], [2, 10, 6], [3, 12, 9]]), 0.05, 30)
    assert last < first
    assert all(torch.isfinite(p).all() for p in model.parameters())
    assert any(p.item() != 0.0 for p in model.neighbour_weights.values())


def test_training_on_the_planted_store(tmp_path, shared_data):
    """A short bamir-train run on the planted store (image vectors for every account there): the epoch
    loss falls and the test split is scored."""
    metrics, losses = planted_run(tmp_path, shared_data, ["model=neighbour_cosine", "model.hub_k=5",
                                                          "model.neighbours.image.k=3", "model.neighbours.text.k=3"])
    assert 0.0 <= metrics["test/auc_global"] <= 1.0
    assert len(losses) == 3 and losses[-1] < losses[0]
