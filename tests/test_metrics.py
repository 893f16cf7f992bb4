"""Tests of bamir.metrics against scikit-learn, torchmetrics and brute-force references.

torchmetrics' retrieval recall, MRR and MAP treat a score <= 0 as "not retrieved" since
1.7.4, so they are fed scores shifted to be strictly positive (a monotone map, same
ranking). They, and sklearn's ``ndcg_score`` (which averages over ties), only agree with
the pessimistic tie rule on tie-free scores, so they are compared on continuous scores;
tied and negative scores are checked against sklearn's AUC / AP and a brute-force loop.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import average_precision_score, ndcg_score, roc_auc_score
from torchmetrics.retrieval import RetrievalMAP, RetrievalMRR, RetrievalNormalizedDCG, RetrievalRecall

from bamir.metrics import RankingMetrics, per_query_metrics, ranking_metrics

ATOL = 1e-5


def _random_case(seed: int, b: int = 12, c: int = 80, ties: bool = False, p: float = 0.1):
    g = torch.Generator().manual_seed(seed)
    if ties:
        scores = torch.randint(-3, 4, (b, c), generator=g).float()
    else:
        scores = torch.randn(b, c, generator=g) * 3
    labels = torch.rand(b, c, generator=g) < p
    labels[torch.arange(b), torch.randint(0, c, (b,), generator=g)] = True  # >= 1 positive per row
    hard = (torch.rand(b, c, generator=g) < 0.2) & ~labels
    return scores, labels, hard


def _brute_force(scores: torch.Tensor, labels: torch.Tensor, hard: torch.Tensor | None, ks=(10, 50)):
    """Loop-per-brand reference of the definitions in bamir.metrics' docstring."""
    s, y = scores.double().numpy(), labels.numpy()
    h = None if hard is None else (hard & ~labels).numpy()
    rows = {k: [] for k in ("auc", "cauc", "mrr", "map", "first", *(f"recall@{k}" for k in ks))}
    wins_total = pairs_total = 0.0
    for si, yi, hi in zip(s, y, h if h is not None else [None] * len(s)):
        if not yi.any():
            continue
        pos, neg = si[yi], si[~yi]
        cmp = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
        if len(neg):
            rows["auc"].append(cmp.mean())
            wins_total += cmp.sum()
            pairs_total += cmp.size
        if hi is not None and hi.any():
            hn = si[hi]
            rows["cauc"].append(((pos[:, None] > hn) + 0.5 * (pos[:, None] == hn)).mean())
        rank = np.array([(si >= v).sum() for v in pos])
        rows["first"].append(rank.min())
        rows["mrr"].append(1 / rank.min())
        rows["map"].append(np.mean([(pos >= v).sum() / r for v, r in zip(pos, rank)]))
        for k in ks:
            rows[f"recall@{k}"].append((rank <= k).mean())
    out = {k: np.mean(v) if v else math.nan for k, v in rows.items() if k != "first"}
    out["medr"] = np.median(rows["first"]) if rows["first"] else math.nan
    out["auc_pairs"] = wins_total / pairs_total if pairs_total else math.nan
    return out


def _close(a, b, atol=ATOL):
    a = float(a)
    assert (math.isnan(a) and math.isnan(b)) or abs(a - b) <= atol, (a, b)


def _assert_references(out, scores, labels, hard):
    """``out`` (bamir's metrics of ``scores``) is sklearn's AUCs and AP and the brute-force loop's rest."""
    s, y = scores.double().numpy(), labels.numpy()
    _close(out["auc_global"], roc_auc_score(y.ravel(), s.ravel()))
    _close(out["auc_brand"], np.mean([roc_auc_score(yi, si) for si, yi in zip(s, y)]))
    _close(out["map"], np.mean([average_precision_score(yi, si) for si, yi in zip(s, y)]))
    ref = _brute_force(scores, labels, hard)
    for key in ("auc_pairs", "cauc", "mrr", "medr", "recall@10", "recall@50"):
        _close(out[key], ref[key])


@pytest.mark.parametrize("ties", [False, True])
@pytest.mark.parametrize("seed", range(4))
def test_auc_and_ap_match_sklearn(seed, ties):
    scores, labels, hard = _random_case(seed, ties=ties)
    scores = scores - 1.5  # negative and zero scores included
    out = ranking_metrics(scores, labels, hard)
    _assert_references(out, scores, labels, hard)
    assert out["n_queries"] == len(scores) and out["n_queries_without_positives"] == 0


@pytest.mark.parametrize("seed", range(2))
def test_per_query_rows_match_sklearn_brand_by_brand(seed):
    scores, labels, hard = _random_case(seed, ties=True)
    rows = per_query_metrics(scores, labels, hard, curve_k=10)
    s, y = scores.numpy(), labels.numpy()
    for b in range(len(s)):
        _close(rows["auc"][b], roc_auc_score(y[b], s[b]))
        _close(rows["ap"][b], average_precision_score(y[b], s[b]))
    assert torch.equal(rows["recall_curve"][:, 9], rows["recall@10"])  # the curve at k = 10 is recall@10
    assert torch.equal(rows["rr"], 1 / rows["first"])


@pytest.mark.parametrize("seed", range(3))
def test_rank_metrics_match_torchmetrics_and_sklearn_without_ties(seed):
    scores, labels, _ = _random_case(seed, b=10, c=120)
    out = ranking_metrics(scores, labels, ks=(5, 10, 50), ndcg_ks=(5, 10))
    preds = (scores - scores.min() + 1).flatten()  # strictly positive, same order
    target = labels.flatten()
    indexes = torch.arange(scores.shape[0]).repeat_interleave(scores.shape[1])
    checks = {
        "mrr": RetrievalMRR(empty_target_action="skip"),
        "map": RetrievalMAP(empty_target_action="skip"),
        "recall@5": RetrievalRecall(top_k=5, empty_target_action="skip"),
        "recall@10": RetrievalRecall(top_k=10, empty_target_action="skip"),
        "recall@50": RetrievalRecall(top_k=50, empty_target_action="skip"),
        "ndcg@5": RetrievalNormalizedDCG(top_k=5, empty_target_action="skip"),
        "ndcg@10": RetrievalNormalizedDCG(top_k=10, empty_target_action="skip"),
    }
    for key, metric in checks.items():
        _close(out[key], metric(preds, target, indexes=indexes).item())
    for k in (5, 10):
        _close(out[f"ndcg@{k}"], ndcg_score(labels.numpy(), scores.numpy(), k=k))


def test_constant_scorer_gets_no_rank_credit():
    c = 20
    labels = torch.zeros(3, c, dtype=torch.bool)
    labels[0, 0] = labels[1, 5] = labels[2, :4] = True
    out = ranking_metrics(torch.zeros(3, c), labels, ks=(10, 50))
    _close(out["mrr"], 1 / c)
    _close(out["recall@10"], 0.0)
    _close(out["recall@50"], 1.0)  # k >= C: everything is retrieved
    _close(out["medr"], c)
    _close(out["ndcg@10"], 0.0)
    _close(out["map"], np.mean([1 / c, 1 / c, 4 / c]))
    for key in ("auc_global", "auc_brand", "auc_pairs"):
        _close(out[key], 0.5)


def test_pessimistic_ties_hand_case():
    scores = torch.tensor([[3.0, 3.0, 1.0, 0.0, -1.0], [5.0, 4.0, 4.0, 4.0, 0.0]])
    labels = torch.tensor([[1, 0, 0, 0, 0], [0, 0, 1, 1, 0]], dtype=torch.bool)
    out = ranking_metrics(scores, labels, ks=(1, 2, 3), ndcg_ks=(4,))
    # Row 0: the positive ties the top negative -> rank 2. Row 1: positives tied at ranks 2-4 -> rank 4.
    _close(out["mrr"], (1 / 2 + 1 / 4) / 2)
    _close(out["medr"], 3.0)  # median of {2, 4}
    _close(out["recall@1"], 0.0)
    _close(out["recall@2"], 0.5)
    _close(out["recall@3"], 0.5)
    _close(out["map"], (1 / 2 + 2 / 4) / 2)
    idcg = [1.0, 1 + 1 / math.log2(3)]
    _close(out["ndcg@4"], ((1 / math.log2(3)) / idcg[0] + (2 / math.log2(5)) / idcg[1]) / 2)
    # AUC: row 0 = (3 + 0.5) / 4; row 1 = 2 * (1 + 0.5) / 6.
    _close(out["auc_brand"], (3.5 / 4 + 3 / 6) / 2)
    _close(out["auc_pairs"], (3.5 + 3) / (4 + 6))


def test_cauc_hand_case():
    scores = torch.tensor([[4.0, 3.0, 2.0, 1.0], [1.0, 2.0, 3.0, 4.0], [1.0, 2.0, 3.0, 4.0]])
    labels = torch.tensor([[0, 1, 0, 0], [0, 0, 0, 1], [1, 0, 0, 0]], dtype=torch.bool)
    hard = torch.tensor([[1, 0, 0, 1], [0, 0, 0, 1], [0, 0, 0, 0]], dtype=torch.bool)
    # Row 0: the positive loses to hard 4.0 and beats hard 1.0 -> 0.5. Row 1: the only flag is
    # on the positive (ignored) -> skipped. Row 2: no hard negative -> skipped.
    out = ranking_metrics(scores, labels, hard)
    _close(out["cauc"], 0.5)
    _close(out["auc_brand"], (2 / 3 + 1 + 0) / 3)
    assert "cauc" not in ranking_metrics(scores, labels)
    tied = ranking_metrics(torch.tensor([[2.0, 2.0, 2.0]]), torch.tensor([[1, 0, 0]]).bool(),
                           torch.tensor([[0, 1, 0]]).bool())
    _close(tied["cauc"], 0.5)


def test_rows_without_positives_are_skipped_and_counted():
    scores, labels, hard = _random_case(7)
    base = ranking_metrics(scores, labels, hard)
    g = torch.Generator().manual_seed(0)
    extra = torch.randn(2, scores.shape[1], generator=g)
    no, yes = torch.zeros(1, scores.shape[1], dtype=torch.bool), torch.ones(1, scores.shape[1], dtype=torch.bool)
    out = ranking_metrics(
        torch.cat([extra[:1], scores, extra[1:]]), torch.cat([no, labels, no]), torch.cat([yes, hard, yes])
    )
    assert out["n_queries_without_positives"] == 2 and out["n_queries"] == base["n_queries"]
    for key in base:
        if key not in ("auc_global", "n_queries_without_positives"):  # the global AUC sees every row
            _close(out[key], float(base[key]))
    empty = ranking_metrics(torch.randn(2, 5), torch.zeros(2, 5, dtype=torch.bool))
    assert all(math.isnan(float(empty[k])) for k in ("auc_global", "auc_brand", "mrr", "medr", "map"))


def test_metric_accumulates_and_resets():
    scores, labels, hard = _random_case(3, b=15)
    full = ranking_metrics(scores, labels, hard)
    metric = RankingMetrics()
    for chunk in ((0, 4), (4, 5), (5, 15)):
        sl = slice(*chunk)
        metric.update(scores[sl], labels[sl], hard[sl])
    out = metric.compute()
    assert out.keys() == full.keys()
    for key in full:
        _close(out[key], float(full[key]), atol=0)
    metric.reset()
    metric.update(scores[:3], labels[:3])
    out = metric.compute()
    assert "cauc" not in out and out["n_queries"] == 3
    _close(out["mrr"], float(ranking_metrics(scores[:3], labels[:3])["mrr"]), atol=0)


def test_input_validation():
    metric = RankingMetrics()
    metric.update(torch.randn(2, 5), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="same candidates"):
        metric.update(torch.randn(2, 6), torch.ones(2, 6, dtype=torch.bool))
    with pytest.raises(ValueError, match="hard_negatives"):
        metric.update(torch.randn(2, 5), torch.ones(2, 5, dtype=torch.bool), torch.ones(2, 5, dtype=torch.bool))
    with pytest.raises(ValueError, match="shape"):
        ranking_metrics(torch.randn(2, 5), torch.ones(2, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match="bool"):
        ranking_metrics(torch.randn(2, 5), torch.ones(2, 5))
    with pytest.raises(ValueError, match="NaN"):
        ranking_metrics(torch.tensor([[0.0, math.nan]]), torch.tensor([[True, False]]))
    with pytest.raises(ValueError, match="cut-offs"):
        ranking_metrics(torch.randn(2, 5), torch.ones(2, 5, dtype=torch.bool), ks=(0,))
    with pytest.raises(ValueError, match="before any update"), pytest.warns(UserWarning, match="before"):
        RankingMetrics().compute()


def test_low_precision_scores_follow_the_tie_rules_on_their_rounded_values():
    """bf16 scores (rounding turns near values into ties) get sklearn's and the brute-force loop's
    metrics of those rounded values: the metric loses no precision of its own."""
    scores, labels, hard = _random_case(5, ties=False)
    low = scores.bfloat16()
    rounded = low.double()
    assert rounded.unique().numel() < scores.unique().numel()  # ties were made
    _assert_references(ranking_metrics(low, labels, hard), rounded, labels, hard)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_matches_cpu():
    scores, labels, hard = _random_case(6, ties=True)
    ref = ranking_metrics(scores, labels, hard)
    metric = RankingMetrics().cuda()
    metric.update(scores.cuda().bfloat16(), labels.cuda(), hard.cuda())
    out = metric.compute()
    for key in ref:
        assert out[key].device.type == "cuda"
        _close(out[key], float(ref[key]))


@settings(max_examples=60, deadline=None)
@given(
    arrays(np.int8, st.tuples(st.integers(1, 5), st.integers(2, 8)), elements=st.integers(-2, 2)),
    st.data(),
)
def test_property_matches_brute_force(int_scores, data):
    labels = data.draw(arrays(np.bool_, int_scores.shape))
    hard = data.draw(arrays(np.bool_, int_scores.shape))
    scores, labels, hard = torch.tensor(int_scores).float(), torch.tensor(labels), torch.tensor(hard)
    out = ranking_metrics(scores, labels, hard, ks=(1, 3))
    ref = _brute_force(scores, labels, hard, ks=(1, 3))
    n_pos = labels.any(dim=1).sum().item()
    assert out["n_queries"] == n_pos
    if n_pos == 0:
        return
    for key in ("auc", "cauc", "mrr", "map", "medr", "recall@1", "recall@3"):
        _close(out["auc_brand" if key == "auc" else key], ref[key])
    if not math.isnan(ref["auc"]):
        _close(out["auc_pairs"], ref["auc_pairs"])
