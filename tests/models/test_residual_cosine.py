"""Residual cosine ranker: shapes, the cosine baseline at initialisation, the hubness term, the losses."""

import pytest
import torch
import torch.nn.functional as F

from bamir.models.cosine import CosineBaseline
from bamir.models.residual_cosine import ResidualCosine
from tests.helpers.training import fit_fixed_batch, planted_run

DIMS = {"topic": 5, "concept": 7}
BRANCHES = {"topic": {"inputs": ["topic"], "hidden": [8, 4]}, "concept": {"inputs": ["concept"], "hidden": [6]}}
N = 20  # accounts: 0-5 brands, 6-19 influencers


def _model(**kwargs):
    torch.manual_seed(0)
    kwargs.setdefault("branches", BRANCHES)
    model = ResidualCosine(DIMS, dropout=0.0, **kwargs)
    model.attach_features({k: torch.randn(N, d) for k, d in DIMS.items()})
    # brands 0-3 fit, each with two positives among influencers 6-13
    brands = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3])
    positives = torch.tensor([6, 7, 8, 9, 10, 11, 12, 6])
    pool = torch.unique(positives)
    model.set_pool(pool, torch.unique(brands * N + positives), N)
    model.set_reference(torch.tensor([0, 1, 2, 3]))
    return model.eval()


def test_shapes_and_branches():
    model = _model(hub_k=2, cosine_weights="diagonal", shared=False)
    brands, cands = torch.tensor([4, 5]), torch.tensor([14, 15, 16])
    scores = model.branch_scores(brands, cands)
    assert set(scores) == {"cos_topic", "cos_concept", "hub", "res_topic", "res_concept"}
    assert all(s.shape == (2, 3) for s in scores.values())
    emb_b, emb_c = model.branch_embeddings(brands, "brand"), model.branch_embeddings(cands, "candidate")
    assert emb_b["cos_concept"].shape == (2, 7) and emb_b["res_topic"].shape == (2, 4) and emb_b["hub"].shape == (2, 1)
    for k in scores:  # the ranking app's fast path: the scores factorise
        assert torch.allclose(emb_b[k] @ emb_c[k].T, scores[k], atol=1e-6)
    assert model.modalities == ["concept", "topic"]
    assert model.hubness(cands).shape == (3, 1)


def test_the_score_is_the_cosine_baseline_at_initialisation():
    model = _model()
    cosine = CosineBaseline(DIMS, modalities=["topic", "concept"])
    cosine.attach_features(model.feature_matrices())
    brands, cands = torch.tensor([0, 4, 5]), torch.arange(6, N)
    assert torch.allclose(model.score_matrix(brands, cands), cosine.score_matrix(brands, cands), atol=1e-6)


def test_the_hubness_term_is_the_mean_of_the_k_nearest_training_brands():
    model = _model(hub_k=2, hub_init=0.5, branches={})
    cands = torch.arange(6, N)
    u = {m: F.normalize(model.features(m, torch.arange(N)), dim=-1) for m in DIMS}
    sims = sum(u[m][cands] @ u[m][:4].T for m in DIMS)  # [C, 4 reference brands]
    r = sims.topk(2, dim=1).values.mean(1)
    cosine = sum(u[m][torch.tensor([4])] @ u[m][cands].T for m in DIMS)
    assert torch.allclose(model.score_matrix(torch.tensor([4]), cands), cosine - 0.5 * r[None, :], atol=1e-5)
    # a reference brand is not its own neighbour
    own = model.hubness(torch.tensor([0]))
    expected = sum(u[m][0] @ u[m][1:4].T for m in DIMS).topk(2).values.mean()
    assert torch.allclose(own[0, 0], expected, atol=1e-5)


def test_the_pool_softmax_masks_the_brands_other_positives():
    model = _model(branches={}, temperature=1.0)
    rows = torch.tensor([[0, 6, 13]])  # brand 0's positive 6; its other positive, 7, is no negative
    pool = torch.tensor([6, 7, 8, 9, 10, 11, 12])
    s = model.score_matrix(torch.tensor([0]), pool)[0]
    logits = torch.cat([s[:1], s[2:]])  # positive 6, then the pool without 6 and 7
    expected = -torch.log_softmax(logits, 0)[0]
    assert torch.allclose(model.loss(rows)["loss"], expected, atol=1e-5)


def test_the_column_softmax_is_over_the_reference_brands():
    model = _model(branches={}, temperature=1.0, direction="column")
    rows = torch.tensor([[1, 8, 13]])  # influencer 8 is a positive of brand 1 only
    s = model.score_matrix(torch.tensor([0, 1, 2, 3]), torch.tensor([8]))[:, 0]
    assert torch.allclose(model.loss(rows)["loss"], -torch.log_softmax(s, 0)[1], atol=1e-5)
    rows = torch.tensor([[0, 6, 13]])  # influencer 6 is a positive of brands 0 and 3: 3 is left out
    s = model.score_matrix(torch.tensor([0, 1, 2]), torch.tensor([6]))[:, 0]
    assert torch.allclose(model.loss(rows)["loss"], -torch.log_softmax(s, 0)[0], atol=1e-5)


@pytest.mark.parametrize("kwargs", [{}, {"negatives": "rows"}, {"negatives": "rows", "loss": "bpr"},
                                    {"direction": "both", "hub_k": 2}])
def test_training_lowers_the_loss_on_a_fixed_batch(kwargs):
    model = _model(cosine_weights="scalar", **kwargs).train()
    first, last = fit_fixed_batch(model, torch.tensor([[0, 6, 13], [1, 8, 12], [2, 10, 6], [3, 12, 9]]), 0.05, 30)
    assert last < first
    assert all(torch.isfinite(p).all() for p in model.parameters())


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="cosine_weights"):
        ResidualCosine(DIMS, cosine_weights="full")
    with pytest.raises(ValueError, match="negatives=rows"):
        ResidualCosine(DIMS, loss="bpr", negatives="pool")
    with pytest.raises(ValueError, match="direction"):
        ResidualCosine(DIMS, negatives="rows", direction="column")
    with pytest.raises(ValueError, match="nothing to score"):
        ResidualCosine({"hashtag": 3})


def test_training_on_the_planted_store_lowers_the_loss(tmp_path, shared_data):
    """A short bamir-train run on the planted store: the epoch loss falls and the test split is scored."""
    metrics, losses = planted_run(tmp_path, shared_data, ["model=residual_cosine", "model.hub_k=5",
                                                          "model.optimizer.lr=0.01"])
    assert 0.0 <= metrics["test/auc_global"] <= 1.0
    assert len(losses) == 3 and losses[-1] < losses[0]
