"""node2vec: CSR graph, biased walks following p and q, skip-gram embedding of the karate club."""

from __future__ import annotations

from collections import Counter

import networkx as nx
import pytest
import torch

from bamir.features.concept import node2vec as n2v
from bamir.features.concept.node2vec import (
    CSRGraph,
    random_walks,
    reference_random_walks,
    train_node2vec,
    walk_pairs,
)


def _probe_graph(weighted: bool) -> CSRGraph:
    """0-1, 0-2, 1-2, 1-3: from t=0 at v=1, x=0 returns, x=2 stays at distance 1, x=3 moves out."""
    index = torch.tensor([[0, 0, 1, 1], [1, 2, 2, 3]])
    weight = torch.tensor([1.0, 1.0, 1.0, 2.0]) if weighted else None
    return CSRGraph.from_edge_index(index, weight, num_nodes=4, undirected=True)


def _expected(p: float, q: float, weighted: bool) -> dict[int, float]:
    w13 = 2.0 if weighted else 1.0
    raw = {0: 1.0 / p, 2: 1.0, 3: w13 / q}
    total = sum(raw.values())
    return {k: v / total for k, v in raw.items()}


def _second_step(walks: list[list[int]]) -> tuple[dict[int, float], int]:
    chosen = [w[2] for w in walks if w[1] == 1]
    counts = Counter(chosen)
    return {k: counts.get(k, 0) / len(chosen) for k in (0, 2, 3)}, len(chosen)


def test_csr_from_edge_index():
    g = _probe_graph(weighted=True)
    assert g.num_nodes == 4
    assert g.rowptr.tolist() == [0, 2, 5, 7, 8]
    assert g.col.tolist() == [1, 2, 0, 2, 3, 0, 1, 1]
    assert g.weight.tolist() == [1, 1, 1, 1, 2, 1, 1, 2]
    assert g.strength().tolist() == [2, 4, 2, 2]
    assert g.has_edge(torch.tensor([0, 0, 3, 3]), torch.tensor([1, 3, 1, 0])).tolist() == [True, False, True, False]
    # duplicates are summed; equal weights mean unweighted
    dup = CSRGraph.from_edge_index(torch.tensor([[0, 0], [1, 1]]), torch.tensor([1.0, 2.0]), 2, undirected=True)
    assert dup.weight is None and dup.col.tolist() == [1, 0]
    assert CSRGraph.from_edge_index(torch.tensor([[0], [1]]), torch.tensor([5.0]), 2).weight is None


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("p, q", [(1.0, 1.0), (0.25, 4.0), (4.0, 0.25), (2.0, 0.5), (0.5, 0.5)])
def test_walk_return_and_in_out_frequencies_follow_p_q(p, q, weighted):
    g = _probe_graph(weighted)
    expected = _expected(p, q, weighted)
    # default (exact: few slots), rejection rounds + exact tail, rejection only, exact draws only
    for options in ({}, {"exact_slots": 0}, {"exact_slots": 0, "tail": 0.0, "max_rounds": 1000},
                    {"exact_slots": 0, "max_rounds": 0}):
        gen = torch.Generator().manual_seed(1)
        walks = random_walks(g, torch.zeros(40_000, dtype=torch.long), 3, p=p, q=q, generator=gen, **options)
        freq, n = _second_step(walks.tolist())
        assert n > 15_000
        for node, prob in expected.items():  # 5 standard errors at n = 20k is about 0.018
            assert abs(freq[node] - prob) < 0.02, (options, node, freq, expected)
    # the plain-Python reference walker follows the same law
    ref = reference_random_walks(g, [0] * 10_000, 3, p=p, q=q, seed=2)
    freq, n = _second_step(ref)
    for node, prob in expected.items():
        assert abs(freq[node] - prob) < 0.04, (node, freq, expected)


@pytest.mark.parametrize("options", [{}, {"exact_slots": 0}, {"exact_slots": 0, "tail": 0.0, "max_rounds": 1000}])
def test_directed_graph_distance_is_measured_from_t(options):
    # 0->1, 0->2, 1->2, 1->3, no way back to 0: from t=0 at v=1, x=2 is at distance 1 (0->2), x=3 at 2
    g = CSRGraph.from_edge_index(torch.tensor([[0, 0, 1, 1], [1, 2, 2, 3]]), None, num_nodes=4)
    walks = random_walks(g, torch.zeros(40_000, dtype=torch.long), 3, p=0.1, q=4.0,
                         generator=torch.Generator().manual_seed(0), **options)
    chosen = walks[walks[:, 1] == 1, 2]
    assert abs(float((chosen == 2).double().mean()) - 1 / 1.25) < 0.02
    assert not bool((chosen == 0).any())


def test_first_step_is_weight_proportional():
    g = _probe_graph(weighted=True)
    walks = random_walks(g, torch.ones(40_000, dtype=torch.long), 2, p=0.5, q=3.0,
                         generator=torch.Generator().manual_seed(0))
    counts = Counter(walks[:, 1].tolist())
    for node, prob in {0: 0.25, 2: 0.25, 3: 0.5}.items():
        assert abs(counts[node] / 40_000 - prob) < 0.015


def test_walks_follow_edges_and_isolated_nodes_stay():
    g = CSRGraph.from_networkx(nx.karate_club_graph())
    walks = random_walks(g, torch.arange(34).repeat(5), 12, p=0.5, q=2.0, generator=torch.Generator().manual_seed(0))
    assert walks.shape == (170, 12) and walks[:, 0].tolist() == list(range(34)) * 5
    assert bool(g.has_edge(walks[:, :-1].reshape(-1), walks[:, 1:].reshape(-1)).all())
    lonely = CSRGraph.from_edge_index(torch.tensor([[0], [1]]), None, num_nodes=3, undirected=True)
    w = random_walks(lonely, torch.tensor([2, 0]), 5, p=0.3, q=3.0)
    assert w[0].tolist() == [2] * 5 and w[1].tolist() == [0, 1, 0, 1, 0]
    assert reference_random_walks(lonely, [2], 4)[0] == [2, 2, 2, 2]
    assert random_walks(lonely, torch.tensor([1]), 1).tolist() == [[1]]
    with pytest.raises(ValueError):
        random_walks(lonely, torch.tensor([1]), 3, p=0.0)


def test_walks_are_reproducible():
    g = CSRGraph.from_networkx(nx.karate_club_graph())
    a = random_walks(g, torch.arange(34), 10, p=0.5, q=2.0, generator=torch.Generator().manual_seed(3))
    b = random_walks(g, torch.arange(34), 10, p=0.5, q=2.0, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_pyg_backend_only_when_it_applies(monkeypatch):
    g = CSRGraph.from_networkx(nx.karate_club_graph(), weight=None)
    monkeypatch.setattr(n2v, "WITH_PYG_LIB", True)
    assert n2v._use_pyg(g, 1.0, 1.0, "auto")
    assert not n2v._use_pyg(g, 1.0, 2.0, "auto") and not n2v._use_pyg(g, 1.0, 1.0, "torch")
    weighted = CSRGraph.from_networkx(nx.karate_club_graph(), weight="weight")
    assert not n2v._use_pyg(weighted, 1.0, 1.0, "auto")
    monkeypatch.setattr(n2v, "WITH_PYG_LIB", False)
    assert not n2v._use_pyg(g, 1.0, 1.0, "auto")
    with pytest.raises(RuntimeError):
        n2v._use_pyg(g, 1.0, 1.0, "pyg")


def test_walk_pairs():
    center, context = walk_pairs(torch.tensor([[0, 1, 2]]), window=2)
    assert sorted(zip(center.tolist(), context.tolist())) == [(0, 1), (0, 2), (1, 0), (1, 2), (2, 0), (2, 1)]


def _faction_accuracy(embedding: torch.Tensor, labels: list[int]) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_score

    folds = StratifiedKFold(n_splits=5, shuffle=True, random_state=0)
    return float(cross_val_score(LogisticRegression(max_iter=2000), embedding.numpy(), labels, cv=folds).mean())


@pytest.mark.parametrize(
    "objective, weighted, extra",
    [
        ("expected", None, {}),
        ("expected", "weight", {}),
        ("sampled", "weight", {"batch_size": 1024, "lr": 0.05, "epochs": 2}),
    ],
)
def test_embedding_separates_karate_factions(objective, weighted, extra):
    graph = nx.karate_club_graph()
    labels = [int(graph.nodes[i]["club"] != "Mr. Hi") for i in range(graph.number_of_nodes())]
    csr = CSRGraph.from_networkx(graph, weight=weighted)
    result = train_node2vec(csr, dim=32, walks_per_node=20, walk_length=20, window=5, p=1.0, q=0.5,
                            objective=objective, seed=0, **extra)
    assert result.embedding.shape == (34, 32) and result.objective == objective
    assert torch.isfinite(result.embedding).all()
    assert result.losses[-1] < result.losses[0]
    assert _faction_accuracy(result.embedding, labels) >= 0.85


def test_training_is_deterministic_and_handles_empty_graphs():
    csr = CSRGraph.from_networkx(nx.karate_club_graph())
    a = train_node2vec(csr, dim=8, walks_per_node=2, walk_length=6, steps=20, seed=5).embedding
    b = train_node2vec(csr, dim=8, walks_per_node=2, walk_length=6, steps=20, seed=5).embedding
    assert torch.equal(a, b)
    empty = CSRGraph.from_edge_index(torch.empty(2, 0, dtype=torch.long), None, num_nodes=3)
    out = train_node2vec(empty, dim=4, walks_per_node=2, walk_length=4, steps=5)
    assert out.embedding.shape == (3, 4) and torch.isfinite(out.embedding).all()
    assert train_node2vec(CSRGraph.from_edge_index(torch.empty(2, 0, dtype=torch.long), None, 0), dim=4).embedding.shape == (0, 4)
