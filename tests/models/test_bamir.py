"""BAMIR model: branch construction, scores, and the published loss."""

import math

import pytest
import torch
import torch.nn.functional as F

from bamir.models.bamir import BamirModel
from tests.helpers.training import fit_fixed_batch

BRANCHES = {
    "content": {"fusion": "product", "margin": 4.0, "encoders": {
        "topic": {"inputs": ["topic"], "hidden": [8, 6]},
        "image": {"inputs": ["object", "scene"], "hidden": [8, 6]}}},
    "concept": {"fusion": "product", "margin": 2.0, "encoders": {
        "concept": {"inputs": ["concept"], "hidden": [6]}}},
}
DIMS = {"topic": 5, "object": 4, "scene": 3, "concept": 7}


def _model(dims=DIMS, **kwargs):
    torch.manual_seed(0)
    model = BamirModel(dims, BRANCHES, dropout=0.0, **kwargs)
    model.attach_features({k: torch.randn(10, d) for k, d in dims.items()})
    return model.eval()


def test_missing_modality_drops_its_encoder_not_the_model():
    model = _model({"topic": 5, "concept": 7})  # the release: no influencer image vectors
    assert list(model.encoders["content"]) == ["topic"]
    assert model.modalities == ["concept", "topic"]
    with pytest.raises(ValueError, match="no branch"):
        BamirModel({"hashtag": 3}, BRANCHES)


def test_score_is_sum_of_branch_inner_products():
    model = _model()
    brands, cands = torch.tensor([0, 1]), torch.tensor([2, 3, 4])
    content = (model.encoders["content"]["topic"](model.features("topic", brands))
               * model.encoders["content"]["image"](torch.cat([model.features("object", brands),
                                                               model.features("scene", brands)], -1)))
    content_c = (model.encoders["content"]["topic"](model.features("topic", cands))
                 * model.encoders["content"]["image"](torch.cat([model.features("object", cands),
                                                                 model.features("scene", cands)], -1)))
    concept = model.encoders["concept"]["concept"](model.features("concept", brands))
    concept_c = model.encoders["concept"]["concept"](model.features("concept", cands))
    expected = content @ content_c.T + concept @ concept_c.T
    assert torch.allclose(model.score_matrix(brands, cands), expected, atol=1e-5)
    # the training-row scores agree with the matrix
    rows = torch.tensor([[0, 2, 3, 4]])
    row_total = sum(model.row_scores(rows).values())
    assert torch.allclose(row_total, expected[:1], atol=1e-5)


def test_triplet_loss_matches_the_published_formula():
    model = _model(l1=0.001)
    rows = torch.tensor([[0, 2, 3], [1, 4, 5]])
    s = model.row_scores(rows)
    total = s["content"] + s["concept"]
    hinge = F.relu(4 - s["content"][:, 0] + s["content"][:, 1]).sum() + F.relu(2 - s["concept"][:, 0] + s["concept"][:, 1]).sum()
    ce = F.cross_entropy(total, torch.zeros(2, dtype=torch.long), reduction="sum")
    l1 = 0.001 * sum(p.abs().sum() for p in model.parameters())
    terms = model.loss(rows)
    assert torch.allclose(terms["cross_entropy"], ce, atol=1e-5)
    assert torch.allclose(terms["loss"], hinge + ce + l1, atol=1e-5)


def test_listwise_loss_is_softmax_cross_entropy_over_the_group():
    model = _model(loss="listwise", l1=0.0)
    rows = torch.tensor([[0, 2, 3, 4, 5]])
    total = sum(model.row_scores(rows).values())
    expected = -torch.log_softmax(total, dim=1)[0, 0]
    assert torch.allclose(model.loss(rows)["loss"], expected, atol=1e-5)


def test_training_lowers_the_loss_on_a_fixed_batch():
    model = _model().train()
    first, last = fit_fixed_batch(model, torch.tensor([[0, 2, 3], [1, 4, 5], [0, 6, 7]]), 0.01, 50)
    assert last < first


def test_encoder_dropout_placement_and_init_options():
    from bamir.models.encoders import MLPEncoder

    kinds = lambda enc: [type(m).__name__ for m in enc]  # noqa: E731
    assert kinds(MLPEncoder(4, [8, 8, 2])) == ["Linear", "LeakyReLU", "Dropout", "Linear", "LeakyReLU", "Dropout",
                                               "Linear"]
    assert kinds(MLPEncoder(4, [8, 8, 2], dropout_after=[1])) == ["Linear", "LeakyReLU", "Linear", "LeakyReLU",
                                                                  "Dropout", "Linear"]
    assert "Dropout" not in kinds(MLPEncoder(4, [8, 2], dropout_after=[]))
    with pytest.raises(ValueError, match="hidden layers"):
        MLPEncoder(4, [8, 2], dropout_after=[1])  # the output layer is never followed by dropout
    torch.manual_seed(0)
    wide = MLPEncoder(400, [500, 2], init_std=0.5)
    assert wide[0].weight.std().item() == pytest.approx(0.5, rel=0.02)
    assert wide[0].bias.std().item() == pytest.approx(0.5, rel=0.15)


def test_cross_entropy_options():
    """reduction mean = sum / (B n); eps: -log(sigmoid(s_p - s_n) + eps), which saturates at -log(eps)."""
    rows = torch.tensor([[0, 2, 3], [1, 4, 5], [0, 6, 7]])
    summed, mean = _model(), _model(cross_entropy_reduction="mean")
    assert torch.allclose(mean.loss(rows)["cross_entropy"] * 3, summed.loss(rows)["cross_entropy"], atol=1e-5)
    assert torch.allclose(mean.loss(rows)["hinge_content"], summed.loss(rows)["hinge_content"])
    eps = _model(cross_entropy_eps=1e-16)
    total = torch.tensor([[1.0, 0.5], [0.0, 200.0]])
    assert torch.allclose(eps.triplet_cross_entropy(total)[0], F.softplus(torch.tensor(-0.5)), atol=1e-6)
    assert eps.triplet_cross_entropy(total)[1].item() == pytest.approx(-math.log(1e-16), rel=1e-6)
    assert summed.triplet_cross_entropy(total)[1].item() == pytest.approx(200.0)
    with pytest.raises(ValueError, match="cross_entropy_reduction"):
        _model(cross_entropy_reduction="max")


def test_l1_on_weights_leaves_biases_out():
    model = _model(l1=1.0, l1_on="weights")
    expected = sum(m.weight.abs().sum() for m in model.modules() if isinstance(m, torch.nn.Linear))
    assert torch.allclose(model.loss(torch.tensor([[0, 2, 3]]))["l1"], expected)
    with pytest.raises(ValueError, match="l1_on"):
        _model(l1_on="biases")


def test_two_towers_and_the_candidate_bias():
    shared = _model()
    model = _model(shared_encoders=False, candidate_bias=True)
    brands, cands = torch.tensor([0, 1]), torch.tensor([2, 3, 4])
    # both start as the published model: the brands' tower a copy of the candidates', the bias zero
    assert torch.allclose(model.score_matrix(brands, cands), shared.score_matrix(brands, cands), atol=1e-6)
    assert sum(p.numel() for p in model.parameters()) == \
        2 * sum(p.numel() for p in shared.parameters()) + sum(DIMS.values()) + 1
    with torch.no_grad():
        for p in model.brand_encoders.parameters():
            p.add_(0.3 * torch.randn_like(p))
        model.bias.weight.normal_()
    concept = model.brand_encoders["concept"]["concept"](model.features("concept", brands)) \
        @ model.encoders["concept"]["concept"](model.features("concept", cands)).T
    x = torch.cat([model.features(m, cands) for m in sorted(DIMS)], -1)
    scores = model.branch_scores(brands, cands)
    assert torch.allclose(scores["concept"], concept, atol=1e-5)
    assert torch.allclose(scores["bias"], (x @ model.bias.weight.T + model.bias.bias).T.expand(2, 3), atol=1e-5)
    # a brand scored as a brand differs from the same account scored as a candidate (asymmetric)
    assert not torch.allclose(scores["concept"][:, :2], model.branch_scores(cands[:2], brands)["concept"].T)
    # the rows' scores, the embeddings' factorisation and the matrix agree
    rows = torch.tensor([[0, 2, 3, 4]])
    assert torch.allclose(sum(model.row_scores(rows).values()), model.score_matrix(brands, cands)[:1], atol=1e-5)
    b, c = model.branch_embeddings(brands, "brand"), model.branch_embeddings(cands, "candidate")
    assert torch.allclose(sum(b[k] @ c[k].T for k in b), model.score_matrix(brands, cands), atol=1e-5)
    # the bias has no hinge: it enters the cross-entropy only
    assert set(model.loss(rows)) == {"hinge_content", "hinge_concept", "cross_entropy", "l1", "loss"}
    first, last = fit_fixed_batch(model.train(), torch.tensor([[0, 2, 3], [1, 4, 5], [0, 6, 7]]), 0.01, 50)
    assert last < first
