"""The weighted concept co-occurrence graph, built from training-split accounts only.

BAMIR (Brand-Aware Micro-Influencer Ranking, 2023; step 5 of its concept pipeline,
``docs/method.md`` section 7) joins two concepts when they co-occur through
hashtags or through mentions between accounts:

* **hashtags**: with ``R`` the related-hashtag table (tags x concepts) and ``X`` the
  binary unit x tag matrix of the training accounts' spam-filtered hashtags (a unit is a
  post, or an account with the stage's ``hashtag_unit="account"``), ``Y = [X R > 0]`` marks the concepts each
  unit touches and ``H = Y^T Y`` (diagonal zeroed) counts the units in which both
  concepts occur. Pairs with ``H < threshold`` are dropped (published: 8).
* **mentions**: every caption mention ``a -> b`` between two *training* accounts of an
  allowed kind pair (brand-brand, brand-influencer, influencer-influencer by default)
  adds one co-occurrence to every pair ``(c, c')`` with ``c`` among ``a``'s top
  ``top_k`` concepts and ``c'`` among ``b``'s: ``M = sum K_a^T K_b``, symmetrised as
  ``M + M^T`` (diagonal zeroed); pairs with less than ``mention_threshold`` dropped.

The edge weight is ``w(c, c') = sqrt((H + M)(c, c') / 2)`` (the published form). Accounts
outside the training split contribute nothing, so changing a test account's captions
cannot change the graph (tested).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from bamir.features.settings import MENTION_KINDS


def _kind_pair(a: str, b: str) -> str:
    return "-".join(sorted((a, b)))


@dataclass
class ConceptGraph:
    """An undirected weighted graph over ``concepts``; ``edge_index`` holds both directions, sorted."""

    concepts: list[str]
    edge_index: torch.Tensor  # long [2, E]
    edge_weight: torch.Tensor  # float [E]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def num_nodes(self) -> int:
        return len(self.concepts)

    @property
    def num_edges(self) -> int:
        """Undirected edges (each stored twice in ``edge_index``)."""
        return int(self.edge_index.shape[1]) // 2

    def isolated(self) -> torch.Tensor:
        """bool [C]: concepts with no edge."""
        mask = torch.ones(self.num_nodes, dtype=torch.bool)
        mask[self.edge_index.reshape(-1)] = False
        return mask

    def to_networkx(self):
        import networkx as nx

        graph = nx.Graph()
        graph.add_nodes_from(range(self.num_nodes))
        for (u, v), w in zip(self.edge_index.t().tolist(), self.edge_weight.tolist()):
            if u < v:
                graph.add_edge(u, v, weight=w)
        return graph

    def same_as(self, other: "ConceptGraph") -> bool:
        return (
            self.concepts == other.concepts
            and torch.equal(self.edge_index, other.edge_index)
            and torch.equal(self.edge_weight, other.edge_weight)
        )


def hashtag_cooccurrence(
    unit_tags: Iterable[Iterable[str]], tag_vocab: Mapping[str, int], related: sp.spmatrix
) -> sp.csr_matrix:
    """``H = Y^T Y`` with ``Y = [X R > 0]`` (diagonal zeroed), as a symmetric int64 sparse matrix.

    ``unit_tags`` are the tags of each unit (post or account), ``related`` the
    ``[n_tags, C]`` related-hashtag matrix over ``tag_vocab``.
    """
    rows, cols = [], []
    n_units = 0
    for i, tags in enumerate(unit_tags):
        n_units = i + 1
        for tag in set(tags):
            j = tag_vocab.get(tag)
            if j is not None:
                rows.append(i)
                cols.append(j)
    n_concepts = related.shape[1]
    if not rows:
        return sp.csr_matrix((n_concepts, n_concepts), dtype=np.int64)
    x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_units, related.shape[0]))
    y = (x @ (related != 0).astype(np.float64)).tocsr()
    y.data = (y.data > 0).astype(np.float64)
    y.eliminate_zeros()
    h = (y.T @ y).tocsr()
    h.setdiag(0)
    h.eliminate_zeros()
    return h.astype(np.int64)


def mention_cooccurrence(
    mentions: Iterable[tuple[str, str]],
    weights: torch.Tensor,
    row_of: Mapping[str, int],
    kinds: Mapping[str, str],
    allowed: Iterable[str] = tuple(MENTION_KINDS),
    top_k: int = 3,
) -> sp.csr_matrix:
    """``M + M^T`` with ``M = sum over mentions a -> b of K_a^T K_b`` (diagonal zeroed).

    ``mentions`` are ``(a, b)`` account-id pairs (already restricted to training accounts),
    ``weights`` the ``[N, C]`` account-concept weights whose rows ``row_of`` indexes, and
    ``K_a`` the indicator of ``a``'s ``top_k`` concepts with positive weight.
    """
    n_concepts = int(weights.shape[1])
    allowed = {_kind_pair(*k.split("-", 1)) for k in allowed}
    pairs: dict[tuple[int, int], int] = {}
    for a, b in mentions:
        if a == b or a not in row_of or b not in row_of:
            continue
        if _kind_pair(kinds.get(a, ""), kinds.get(b, "")) not in allowed:
            continue
        key = (row_of[a], row_of[b])
        pairs[key] = pairs.get(key, 0) + 1
    if not pairs or n_concepts == 0 or top_k <= 0:
        return sp.csr_matrix((n_concepts, n_concepts), dtype=np.int64)
    k = min(top_k, n_concepts)
    values, index = torch.topk(weights, k, dim=1)
    indicator = torch.zeros_like(weights, dtype=torch.float64)
    indicator.scatter_(1, index, (values > 0).to(torch.float64))
    ka = sp.csr_matrix(indicator.numpy())
    src = np.fromiter((p[0] for p in pairs), dtype=np.int64, count=len(pairs))
    dst = np.fromiter((p[1] for p in pairs), dtype=np.int64, count=len(pairs))
    count = np.fromiter(pairs.values(), dtype=np.float64, count=len(pairs))
    n = int(weights.shape[0])
    a = sp.csr_matrix((count, (src, dst)), shape=(n, n))
    m = (ka.T @ a @ ka).tocsr()
    m = (m + m.T).tocsr()
    m.setdiag(0)
    m.eliminate_zeros()
    return m.astype(np.int64)


def build_graph(
    concepts: Sequence[str],
    hashtag_counts: sp.spmatrix | None,
    mention_counts: sp.spmatrix | None = None,
    threshold: float = 8,
    mention_threshold: float = 1,
) -> ConceptGraph:
    """Threshold the two co-occurrence matrices and weight edges ``sqrt((H + M) / 2)``."""
    n = len(concepts)
    total = sp.csr_matrix((n, n), dtype=np.float64)
    counts = {"hashtag_pairs": 0, "mention_pairs": 0}
    for name, matrix, limit in (("hashtag", hashtag_counts, threshold), ("mention", mention_counts, mention_threshold)):
        if matrix is None:
            continue
        kept = sp.triu(matrix.astype(np.float64), k=1).tocsr()
        kept.data[kept.data < limit] = 0
        kept.eliminate_zeros()
        counts[f"{name}_pairs"] = int(kept.nnz)
        total = total + kept
    total = total.tocoo()
    src = np.concatenate([total.row, total.col]).astype(np.int64)
    dst = np.concatenate([total.col, total.row]).astype(np.int64)
    weight = np.sqrt(np.concatenate([total.data, total.data]) / 2.0)
    order = np.lexsort((dst, src))
    edge_index = torch.from_numpy(np.stack([src[order], dst[order]]))
    edge_weight = torch.from_numpy(weight[order].astype(np.float32))
    graph = ConceptGraph(list(concepts), edge_index, edge_weight)
    graph.counts = dict(counts, edges=graph.num_edges, isolated_concepts=int(graph.isolated().sum()))
    return graph
