"""Brand categories of the release, inferred from its triplet file (the release names the categories
but not which brand is in which)."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Mapping

import numpy as np

from bamir.data.release.layout import HARD_POSITION, NEGATIVES_PER_POSITIVE

@dataclass
class CategoryInference:
    """Brand groups inferred from the same-category negatives of the triplet file.

    ``train_groups[r]`` / ``test_groups[r]``: the group of training / test brand row ``r``
    (-1: could not be linked). Groups are numbered by their smallest training brand row.
    """

    train_groups: list[int]
    test_groups: list[int]
    n_groups: int
    inferred: bool
    reason: str | None = None
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def group_sizes(self) -> list[int]:
        counts = Counter(g for g in self.train_groups if g >= 0)
        return [counts[g] for g in range(self.n_groups)]


def infer_categories(
    triplets: np.ndarray,
    n_brands: int,
    *,
    n_test_brands: int = 0,
    test_brands_of: Mapping[int, set[int]] | None = None,
    group: int = NEGATIVES_PER_POSITIVE,
    hard_position: int = HARD_POSITION,
) -> CategoryInference:
    """Group training brands by category from the triplet file's same-category negatives.

    In the release, every (brand, positive) has ``group`` consecutive triplets whose negative
    at ``hard_position`` is an influencer of another brand of the same category. When that
    negative is a training positive of exactly one other training brand b', it is evidence
    that b and b' share a category (an edge b -> b', weighted by how often it is seen).

    The literal rule -- union every such edge, take connected components -- collapses the
    real release into a single group (kept as ``stats["groups_union_all_edges"]``): a hard
    negative drawn through a *test* brand of b's category that is also the sole training
    positive of a brand of another category gives a false edge (about 100 of the 15,079
    single-owner hard negatives of the real file). So:

    1. groups are the Louvain modularity communities (networkx, fixed seed) of the
       undirected graph whose edge weight is the evidence in both directions; a community
       of one brand, or a brand without any evidence, is left unlabelled (-1). On the real
       training file this gives 12 groups of 23-24 brands, the same partition as unioning
       only the edges seen in both directions;
    2. with the test side, hard negatives that are test candidates (``test_brands_of``:
       train influencer row -> test brand rows it is a positive of) are kept out of step 1
       (they are the source of the false edges) and used to link test brands: such a
       negative of b, not explained by a training brand of b's group, that is a positive
       of a single test brand t, is a vote for t in b's group; t takes the group with the
       strictly largest vote.
    """
    test_brands_of = test_brands_of or {}
    none = CategoryInference([-1] * n_brands, [-1] * n_test_brands, 0, False)
    t = np.asarray(triplets)
    if t.shape[0] == 0 or t.shape[0] % group:
        none.reason = f"{t.shape[0]} triplets is not a multiple of {group} negatives per positive"
        return none
    blocks = t.reshape(-1, group, 3)
    if not ((blocks[:, :, 0] == blocks[:, :1, 0]).all() and (blocks[:, :, 1] == blocks[:, :1, 1]).all()):
        none.reason = f"the triplets do not come in runs of {group} sharing one (brand, positive)"
        return none

    owners: dict[int, set[int]] = defaultdict(set)  # influencer row -> training brands it is a positive of
    for b, p in t[:, :2].tolist():
        owners[p].add(b)

    stats: Counter[str] = Counter()
    edges: Counter[tuple[int, int]] = Counter()
    via_test: list[tuple[int, int]] = []
    for b, n in zip(blocks[:, 0, 0].tolist(), blocks[:, hard_position, 2].tolist()):
        stats["hard_negatives"] += 1
        if n in test_brands_of:
            stats["hard_negatives_test_candidates"] += 1
            via_test.append((b, n))
            continue
        others = owners.get(n, set()) - {b}
        if len(others) == 1:
            edges[(b, next(iter(others)))] += 1
            stats["hard_negatives_single_owner"] += 1
        else:
            stats["hard_negatives_ambiguous" if others else "hard_negatives_no_owner"] += 1

    # the literal rule (union every edge), kept as a diagnostic
    literal = _UnionFind(n_brands)
    for a, b in edges:
        literal.union(a, b)
    stats["groups_union_all_edges"] = len({literal.find(x) for x in range(n_brands) if literal.size(x) > 1})

    stats["edges"] = len(edges)
    stats["mutual_edges"] = sum(1 for a, b in edges if a < b and (b, a) in edges)
    groups = sorted((c for c in _communities(edges, n_brands) if len(c) > 1), key=min)
    train_groups = [-1] * n_brands
    for g, members in enumerate(groups):
        for b in members:
            train_groups[b] = g
    stats["unlabelled_train_brands"] = train_groups.count(-1)

    votes: dict[int, Counter[int]] = defaultdict(Counter)
    for b, n in via_test:
        g = train_groups[b]
        if g < 0 or any(train_groups[o] == g for o in owners.get(n, set()) - {b}):
            continue
        test_owners = test_brands_of[n]
        if len(test_owners) == 1:
            votes[next(iter(test_owners))][g] += 1
    test_groups = [-1] * n_test_brands
    for tb, counter in votes.items():
        ranked = counter.most_common(2)
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            test_groups[tb] = ranked[0][0]
    stats["linked_test_brands"] = sum(g >= 0 for g in test_groups)
    return CategoryInference(train_groups, test_groups, len(groups), True, None, dict(stats))


def _communities(edges: Mapping[tuple[int, int], int], n: int, seed: int = 0) -> list[set[int]]:
    """Louvain communities of the undirected graph summing the directed edge weights."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for (a, b), w in sorted(edges.items()):
        if graph.has_edge(a, b):
            graph[a][b]["weight"] += w
        else:
            graph.add_edge(a, b, weight=w)
    return [set(c) for c in nx.community.louvain_communities(graph, weight="weight", seed=seed)]


class _UnionFind:
    """Union-find whose root is always the smallest member."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.sizes = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo
            self.sizes[lo] += self.sizes[hi]

    def size(self, x: int) -> int:
        return self.sizes[self.find(x)]
