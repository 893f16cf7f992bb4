r"""node2vec on a weighted graph: vectorised biased random walks and a skip-gram trainer.

node2vec (Grover & Leskovec, "node2vec: Scalable Feature Learning for Networks", KDD 2016)
embeds the nodes of a graph by training skip-gram with negative sampling on second-order
random walks. BAMIR (step 6 of the concept pipeline, ``docs/method.md`` section 7) runs it
on the weighted concept graph (128-d, 50 walks per node).

**Walk.** A walker that came from ``t`` and stands at ``v`` moves to a neighbour ``x``
with probability proportional to

.. math::
    \pi(x \mid v, t) = \alpha_{pq}(t, x)\, w_{vx}, \qquad
    \alpha_{pq}(t, x) = \begin{cases} 1/p & d_{tx} = 0 \ (x = t,\ \text{return}) \\
                                      1   & d_{tx} = 1 \ (x \text{ a neighbour of } t) \\
                                      1/q & d_{tx} = 2 \ (\text{in-out: moving away}) \end{cases}

and the first step is first-order, :math:`\propto w_{vx}`. :func:`random_walks` advances
all walkers one step together over the graph's CSR arrays. Per step it either

* draws exactly (:func:`_exact_step`): every walker's neighbour slots are laid out flat,
  weighed by :math:`\alpha_{pq} w`, and one binary search in their running sum picks
  each walker's move (used when the walkers' neighbour lists are short in all), or
* samples by rejection (KnightKing, Yang et al., SOSP 2019): propose
  :math:`x \propto w_{vx}` by a binary search in the cumulative weights (a uniform pick
  when unweighted), accept with probability :math:`\alpha_{pq}(t, x) / c` under the
  envelope :math:`c = \max(1, 1/q)`, the return move getting its own extra area
  :math:`(1/p - c)\, w_{vt}` when :math:`1/p > c` (outlier folding); rejected walkers
  re-propose, and the last few take one exact draw.

Both give exactly :math:`\pi`. The test :math:`d_{tx} = 1` is a binary search for the key
``t * N + x`` among the sorted CSR keys ``row * N + col``. A walker at a node without
neighbours stays there. When pyg-lib is installed, ``p = q = 1`` and the graph is
unweighted, PyG's own walker (``torch.ops.pyg.random_walk``, what
``torch_geometric.nn.Node2Vec`` uses) runs instead. :func:`reference_random_walks` is a
plain-Python walker that computes :math:`\pi` exactly at every step, for tests and the
benchmark.

**Skip-gram with negative sampling** (Mikolov et al., NeurIPS 2013). For every pair of
nodes ``(u, c)`` at most ``window`` steps apart in a walk, and ``K`` negatives ``n_k``
drawn from the noise distribution :math:`P_n(v) \propto s_v^{3/4}` (``s_v`` the weighted
degree, to which a walk's visit frequency is proportional),

.. math::
    \ell = -\log \sigma(z_u^\top z'_c) - \sum_{k=1}^{K} \log \sigma(-z_u^\top z'_{n_k}),

with input embeddings ``z`` (the result) and output embeddings ``z'``. :func:`train_node2vec`
minimises it either as word2vec does (shuffled mini-batches of pairs, sampled negatives,
fresh walks every epoch) or, for graphs of a few thousand nodes such as BAMIR's concept
graph, exactly in expectation over the negatives from the walks' pair counts, full-batch
(see its docstring).
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

try:  # PyG's data utilities; the walker itself needs only torch
    from torch_geometric.typing import WITH_PYG_LIB
    from torch_geometric.utils import coalesce, to_undirected
    from torch_geometric.utils.sparse import index2ptr
except Exception:  # pragma: no cover - torch_geometric is a declared dependency
    WITH_PYG_LIB = False
    coalesce = to_undirected = index2ptr = None  # type: ignore[assignment]


# ---------------------------------------------------------------------------- graph
@dataclass
class CSRGraph:
    """A directed graph in CSR form (store both directions for an undirected one).

    ``rowptr`` long [N + 1], ``col`` long [E] (sorted within each row), ``weight`` float
    [E] or None (unweighted). ``cumweight`` (float64 [E + 1], 0 first) and ``keys``
    (``row * N + col``, long [E], sorted) are derived for sampling.
    """

    rowptr: Tensor
    col: Tensor
    weight: Tensor | None
    num_nodes: int
    cumweight: Tensor | None = field(default=None, repr=False)
    keys: Tensor = field(default=None, repr=False)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        row = torch.repeat_interleave(torch.arange(self.num_nodes, device=self.col.device), self.degree())
        self.keys = row * max(self.num_nodes, 1) + self.col
        if self.weight is not None:
            if self.weight.numel() and float(self.weight.min()) < 0:
                raise ValueError("edge weights must be non-negative")
            zero = torch.zeros(1, dtype=torch.float64, device=self.col.device)
            self.cumweight = torch.cat([zero, torch.cumsum(self.weight.to(torch.float64), 0)])

    @classmethod
    def from_edge_index(
        cls,
        edge_index: Tensor,
        edge_weight: Tensor | None = None,
        num_nodes: int | None = None,
        undirected: bool = False,
        device: torch.device | str | None = None,
    ) -> "CSRGraph":
        """Coalesce (duplicate edges: weights summed) and compress ``edge_index`` [2, E].

        ``undirected=True`` adds the reverse of every edge first. An all-equal weight
        vector is dropped (the graph is then treated as unweighted).
        """
        edge_index = edge_index.long().cpu()
        n = int(num_nodes if num_nodes is not None else (int(edge_index.max()) + 1 if edge_index.numel() else 0))
        weight = None if edge_weight is None else edge_weight.double().cpu()
        if undirected:
            edge_index, weight = to_undirected(edge_index, weight, num_nodes=n)
        edge_index, weight = coalesce(edge_index, weight, num_nodes=n)
        if weight is not None and weight.numel() and bool((weight == weight[0]).all()):
            weight = None
        rowptr = index2ptr(edge_index[0], n)
        graph = cls(rowptr.to(device or "cpu"), edge_index[1].to(device or "cpu"),
                    None if weight is None else weight.to(device or "cpu"), n)
        return graph

    @classmethod
    def from_networkx(cls, graph, weight: str | None = "weight") -> "CSRGraph":
        """An undirected networkx graph with nodes ``0..N-1``."""
        edges = list(graph.edges(data=True))
        index = torch.tensor([[u for u, _, _ in edges], [v for _, v, _ in edges]], dtype=torch.long).reshape(2, -1)
        w = None
        if weight is not None and edges and any(weight in d for _, _, d in edges):
            w = torch.tensor([float(d.get(weight, 1.0)) for _, _, d in edges], dtype=torch.float64)
        return cls.from_edge_index(index, w, graph.number_of_nodes(), undirected=not graph.is_directed())

    def degree(self) -> Tensor:
        return self.rowptr[1:] - self.rowptr[:-1]

    def strength(self) -> Tensor:
        """Weighted degree (float64 [N])."""
        if self.weight is None:
            return self.degree().double()
        return self.cumweight[self.rowptr[1:]] - self.cumweight[self.rowptr[:-1]]

    def to(self, device: torch.device | str) -> "CSRGraph":
        return CSRGraph(self.rowptr.to(device), self.col.to(device),
                        None if self.weight is None else self.weight.to(device), self.num_nodes)

    def has_edge(self, src: Tensor, dst: Tensor) -> Tensor:
        """bool: whether each ``src[i] -> dst[i]`` is an edge (vectorised binary search)."""
        if self.keys.numel() == 0:
            return torch.zeros_like(src, dtype=torch.bool)
        key = src * max(self.num_nodes, 1) + dst
        pos = torch.searchsorted(self.keys, key).clamp_(max=self.keys.numel() - 1)
        return self.keys[pos] == key

    def edge_weight(self, src: Tensor, dst: Tensor) -> Tensor:
        """float64: the weight of each edge ``src[i] -> dst[i]`` (1 when unweighted), 0 where there is none."""
        if self.keys.numel() == 0:
            return torch.zeros(src.shape, dtype=torch.float64, device=src.device)
        key = src * max(self.num_nodes, 1) + dst
        pos = torch.searchsorted(self.keys, key).clamp_(max=self.keys.numel() - 1)
        found = self.keys[pos] == key
        w = torch.ones(pos.shape, dtype=torch.float64, device=src.device) if self.weight is None \
            else self.weight[pos].to(torch.float64)
        return torch.where(found, w, torch.zeros_like(w))

    def adjacency(self) -> list[tuple[list[int], list[float]]]:
        """Per node, its neighbours and edge weights as Python lists (for the reference walker)."""
        rowptr, col = self.rowptr.tolist(), self.col.tolist()
        weight = [1.0] * len(col) if self.weight is None else self.weight.tolist()
        return [(col[rowptr[v]:rowptr[v + 1]], weight[rowptr[v]:rowptr[v + 1]]) for v in range(self.num_nodes)]


# ---------------------------------------------------------------------------- walks
def _propose(graph: CSRGraph, cur: Tensor, generator: torch.Generator | None) -> Tensor:
    """One neighbour of each ``cur`` node, drawn proportionally to edge weight (``cur`` itself if isolated)."""
    start, end = graph.rowptr[cur], graph.rowptr[cur + 1]
    deg = end - start
    u = torch.rand(cur.shape, generator=generator, device=cur.device, dtype=torch.float64)
    if graph.weight is None:
        pos = start + (u * deg).long()
    else:
        base, total = graph.cumweight[start], graph.cumweight[end] - graph.cumweight[start]
        # cumweight[1:][j] is the running total through edge j: the first j past the target
        pos = torch.searchsorted(graph.cumweight[1:], base + u * total, right=True)
    pos = torch.minimum(torch.maximum(pos, start), end - 1)
    isolated = deg == 0
    nxt = graph.col[pos.clamp(min=0, max=max(graph.col.numel() - 1, 0))] if graph.col.numel() else cur.clone()
    return torch.where(isolated, cur, nxt)


def _use_pyg(graph: CSRGraph, p: float, q: float, backend: str) -> bool:
    if backend == "torch":
        return False
    ok = WITH_PYG_LIB and p == 1 and q == 1 and graph.weight is None
    if backend == "pyg" and not ok:
        raise RuntimeError("backend='pyg' needs pyg-lib, p = q = 1 and an unweighted graph")
    return ok


def _exact_step(graph: CSRGraph, t: Tensor, v: Tensor, a_return: float, a_out: float,
                generator: torch.Generator | None) -> Tensor:
    """One exact second-order move per walker: all of ``v``'s neighbours weighed by ``alpha * w``.

    Costs the sum of the walkers' degrees; used for the walkers the rejection rounds leave.
    """
    start = graph.rowptr[v]
    deg = graph.rowptr[v + 1] - start
    nxt = v.clone()  # isolated walkers stay
    live = (deg > 0).nonzero().view(-1)
    if live.numel() == 0:
        return nxt
    start, deg, t_live = start[live], deg[live], t[live]
    seg = torch.repeat_interleave(torch.arange(live.numel(), device=v.device), deg)
    first = torch.cumsum(deg, 0) - deg
    slot = start[seg] + torch.arange(seg.numel(), device=v.device) - first[seg]
    x, tt = graph.col[slot], t_live[seg]
    w = torch.ones(slot.shape, dtype=torch.float64, device=v.device) if graph.weight is None \
        else graph.weight[slot].to(torch.float64)
    alpha = torch.where(x == tt, a_return, torch.where(graph.has_edge(tt, x), 1.0, a_out))
    mass = alpha * w
    cum = torch.cumsum(mass, 0)
    end = cum[first + deg - 1]
    base = cum[first] - mass[first]  # running total before the walker's segment
    u = torch.rand(live.shape, generator=generator, device=v.device, dtype=torch.float64)
    pos = torch.searchsorted(cum, base + u * (end - base), right=True)
    pos = torch.minimum(torch.maximum(pos, first), first + deg - 1)
    nxt[live] = x[pos]
    return nxt


def random_walks(
    graph: CSRGraph,
    start: Tensor,
    walk_length: int,
    p: float = 1.0,
    q: float = 1.0,
    generator: torch.Generator | None = None,
    max_rounds: int = 8,
    tail: float = 0.02,
    exact_slots: int = 65536,
    backend: str = "auto",
) -> Tensor:
    r"""Biased second-order walks from every node of ``start`` [S], as long [S, walk_length].

    ``walk_length`` counts nodes, the start included. All walkers advance one step
    together. A step is at most ``max_rounds`` rounds of rejection sampling for the walkers
    not yet accepted, then one exact draw (:func:`_exact_step`) for those left once they
    are fewer than ``tail`` of the walkers (or the rounds run out), so a few unlucky
    walkers never cost many small rounds. When the walkers' neighbour lists hold at most
    ``max(exact_slots, 4 * walkers)`` entries in all, the whole step is one exact draw
    instead (small graphs, few walkers). The rejection envelope is KnightKing's with the
    return move as an outlier: non-return moves are proposed :math:`\propto w_{vx}` under
    the envelope :math:`c = \max(1, 1/q)`, and when :math:`1/p > c` the return move gets an
    extra area :math:`(1/p - c)\, w_{vt}` that is accepted outright. Both parts give
    exactly :math:`\pi`. ``backend``: "auto" (PyG's walker when it applies, see the module
    docstring), "torch" or "pyg".
    """
    if p <= 0 or q <= 0:
        raise ValueError("p and q must be positive")
    if walk_length < 1:
        raise ValueError("walk_length must be >= 1")
    start = start.long().to(graph.col.device)
    if _use_pyg(graph, p, q, backend):  # pragma: no cover - needs pyg-lib
        out = torch.ops.pyg.random_walk(graph.rowptr, graph.col, start, walk_length - 1, p, q)
        return (out[0] if isinstance(out, (tuple, list)) else out).view(-1, walk_length)
    walks = torch.empty((start.numel(), walk_length), dtype=torch.long, device=start.device)
    walks[:, 0] = start
    if walk_length == 1 or start.numel() == 0:
        return walks
    walks[:, 1] = _propose(graph, start, generator)
    a_return, a_out = 1.0 / p, 1.0 / q
    envelope = max(1.0, a_out)
    outlier = max(0.0, a_return - envelope)
    return_accept = min(a_return, envelope) / envelope
    second_order = not (p == 1 and q == 1)
    degree = graph.degree()
    strength = graph.strength() if outlier > 0 else None
    n_tail = max(1, int(tail * start.numel()))
    for step in range(2, walk_length):
        prev, cur = walks[:, step - 2], walks[:, step - 1]
        if not second_order:
            walks[:, step] = _propose(graph, cur, generator)
            continue
        deg_cur = degree[cur]
        if int(deg_cur.sum()) <= max(exact_slots, 4 * cur.numel()):  # few neighbour slots: draw exactly
            walks[:, step] = _exact_step(graph, prev, cur, a_return, a_out, generator)
            continue
        nxt = cur.clone()  # isolated walkers stay
        pending = (deg_cur > 0).nonzero().view(-1)
        if outlier > 0:
            w_vt = graph.edge_weight(cur, prev)  # 0 where v -> t is no edge (directed graphs)
            extra = outlier * w_vt
            area = envelope * strength[cur] + extra
        for _ in range(max_rounds):
            if pending.numel() <= n_tail:
                break
            t, v = prev[pending], cur[pending]
            x = _propose(graph, v, generator)
            is_return = x == t
            accept_p = torch.where(is_return, return_accept,
                                   torch.where(graph.has_edge(t, x), 1.0 / envelope, a_out / envelope))
            u = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float64)
            if outlier > 0:
                in_extra = torch.rand(x.shape, generator=generator, device=x.device, dtype=torch.float64) \
                    * area[pending] < extra[pending]
                x = torch.where(in_extra, t, x)
                accept = in_extra | (u < accept_p)
            else:
                accept = u < accept_p
            nxt[pending[accept]] = x[accept]
            pending = pending[~accept]
        if pending.numel():
            nxt[pending] = _exact_step(graph, prev[pending], cur[pending], a_return, a_out, generator)
        walks[:, step] = nxt
    return walks


def reference_random_walks(
    graph: CSRGraph,
    start: Sequence[int],
    walk_length: int,
    p: float = 1.0,
    q: float = 1.0,
    seed: int | None = 0,
    adjacency: list[tuple[list[int], list[float]]] | None = None,
) -> list[list[int]]:
    """The same walks in plain Python, computing :math:`\\pi(x \\mid v, t)` exactly each step."""
    rng = random.Random(seed)
    adj = adjacency if adjacency is not None else graph.adjacency()
    neighbour_sets = [set(nb) for nb, _ in adj]
    walks = []
    for s in start:
        walk = [int(s)]
        while len(walk) < walk_length:
            v = walk[-1]
            nbrs, weights = adj[v]
            if not nbrs:
                walk.append(v)
                continue
            if len(walk) == 1:
                walk.append(rng.choices(nbrs, weights=weights)[0])
                continue
            t = walk[-2]
            t_nbrs = neighbour_sets[t]
            probs = [
                w / p if x == t else (w if x in t_nbrs else w / q) for x, w in zip(nbrs, weights)
            ]
            walk.append(rng.choices(nbrs, weights=probs)[0])
        walks.append(walk)
    return walks


# ---------------------------------------------------------------------------- skip-gram
class SkipGram(torch.nn.Module):
    """Input and output node embeddings trained with the negative-sampling loss."""

    def __init__(self, num_nodes: int, dim: int, sparse: bool = True):
        super().__init__()
        self.inp = torch.nn.Embedding(num_nodes, dim, sparse=sparse)
        self.out = torch.nn.Embedding(num_nodes, dim, sparse=sparse)
        torch.nn.init.uniform_(self.inp.weight, -0.5 / dim, 0.5 / dim)
        torch.nn.init.zeros_(self.out.weight)

    def forward(self, nodes: Tensor | None = None) -> Tensor:
        return self.inp.weight if nodes is None else self.inp(nodes)

    def loss(self, center: Tensor, context: Tensor, negatives: Tensor) -> Tensor:
        """Mean SGNS loss of pairs ``center`` [B], ``context`` [B] with ``negatives`` [B, K]."""
        z = self.inp(center)  # [B, d]
        pos = (z * self.out(context)).sum(-1)
        neg = torch.bmm(self.out(negatives), z.unsqueeze(-1)).squeeze(-1)  # [B, K]
        return -(torch.nn.functional.logsigmoid(pos).mean() + torch.nn.functional.logsigmoid(-neg).sum(-1).mean())


def walk_pairs(walks: Tensor, window: int) -> tuple[Tensor, Tensor]:
    """All (center, context) pairs at most ``window`` apart in each walk, both directions."""
    centers, contexts = [], []
    length = walks.shape[1]
    for d in range(1, min(window, length - 1) + 1):
        a, b = walks[:, :-d].reshape(-1), walks[:, d:].reshape(-1)
        centers += [a, b]
        contexts += [b, a]
    if not centers:
        empty = walks.new_empty(0)
        return empty, empty
    return torch.cat(centers), torch.cat(contexts)


@dataclass
class Node2VecResult:
    """``embedding`` float32 [N, dim]; mean loss per epoch (sampled) or per step (expected);
    seconds spent walking and training; the objective used."""

    embedding: Tensor
    losses: list[float]
    walk_seconds: float
    train_seconds: float
    walks: int
    pairs: int
    objective: str = "sampled"


#: Largest graph for which ``objective="auto"`` picks the exact expected objective (N x N matrices).
EXPECTED_MAX_NODES = 4096


def train_node2vec(
    graph: CSRGraph,
    dim: int = 128,
    walks_per_node: int = 50,
    walk_length: int = 80,
    window: int = 10,
    p: float = 1.0,
    q: float = 1.0,
    epochs: int = 1,
    negatives: int = 5,
    objective: str = "auto",
    steps: int = 300,
    batch_size: int = 4096,
    lr: float | None = None,
    walk_batch: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
    backend: str = "auto",
) -> Node2VecResult:
    r"""Learn node embeddings: walks (:func:`random_walks`) + skip-gram with negative sampling.

    Every epoch, ``walks_per_node`` walks of ``walk_length`` nodes start at every node
    (``walk_batch`` walkers at a time; by default as many as keep a chunk's pairs near 8 M)
    and yield the pairs within ``window`` steps.

    ``objective``:

    * ``"sampled"``: the word2vec procedure. Pairs are shuffled into mini-batches of
      ``batch_size``, each with ``negatives`` noise nodes drawn from :math:`P_n`; Adam
      (sparse Adam for large tables), ``lr`` 0.025 by default.
    * ``"expected"``: the same loss with the negatives replaced by their expectation,
      which for pair counts :math:`C_{uc}` (summed over all epochs' walks) is

      .. math::
          L = rac{1}{\sum C} \Big[\sum_{u,c} C_{uc}\, \mathrm{softplus}(-z_u^	op z'_c)
              + K \sum_u C_u \sum_n P_n(n)\, \mathrm{softplus}(z_u^	op z'_n)\Big],

      minimised full-batch by Adam for ``steps`` steps (``lr`` 0.05 by default). It costs
      :math:`O(N^2 d)` a step whatever the number of walks, so it suits small graphs such as
      BAMIR's few hundred concepts, where it is tens of times faster on a CPU.
    * ``"auto"``: "expected" when the graph has at most :data:`EXPECTED_MAX_NODES` nodes.
    """
    if objective == "auto":
        objective = "expected" if graph.num_nodes <= EXPECTED_MAX_NODES else "sampled"
    if objective not in ("expected", "sampled"):
        raise ValueError(f"objective must be 'auto', 'expected' or 'sampled', not {objective!r}")
    device = torch.device(device)
    graph = graph.to(device)
    n = graph.num_nodes
    if n == 0:
        return Node2VecResult(torch.zeros(0, dim), [], 0.0, 0.0, 0, 0, objective)
    gen = torch.Generator(device=device)
    gen.manual_seed(seed)
    cpu_gen = torch.Generator().manual_seed(seed)
    noise = graph.strength().clamp(min=0).pow(0.75)
    floor = noise[noise > 0].min() if bool((noise > 0).any()) else noise.new_tensor(1.0)
    noise = torch.where(noise > 0, noise, floor).float()
    sparse = objective == "sampled" and n * dim > 50_000_000
    model = SkipGram(n, dim, sparse=sparse)
    with torch.no_grad():  # seeded init independent of the global RNG
        model.inp.weight.copy_((torch.rand(n, dim, generator=cpu_gen) - 0.5) / dim)
    model = model.to(device)
    losses: list[float] = []
    walk_seconds = train_seconds = 0.0
    total_walks = total_pairs = 0

    pairs_per_walk = 2 * sum(max(walk_length - d, 0) for d in range(1, window + 1))
    if walk_batch is None:
        walk_batch = max(256, (1 << 23) // max(pairs_per_walk, 1))

    def epoch_walks():
        nonlocal walk_seconds, total_walks, total_pairs
        starts = torch.arange(n, device=device).repeat(walks_per_node)
        starts = starts[torch.randperm(starts.numel(), generator=gen, device=device)]
        for chunk in starts.split(walk_batch):
            t0 = time.perf_counter()
            walks = random_walks(graph, chunk, walk_length, p, q, generator=gen, backend=backend)
            walk_seconds += time.perf_counter() - t0
            total_walks += chunk.numel()
            total_pairs += chunk.numel() * pairs_per_walk
            yield walks

    if objective == "expected":
        counts = torch.zeros(n * n, dtype=torch.float64, device=device)
        for _ in range(epochs):
            for walks in epoch_walks():
                for d in range(1, min(window, walk_length - 1) + 1):  # one direction; symmetrised below
                    keys = walks[:, :-d].reshape(-1) * n + walks[:, d:].reshape(-1)
                    counts += torch.bincount(keys, minlength=n * n).to(counts.dtype)
        t0 = time.perf_counter()
        counts = counts.view(n, n)
        counts = (counts + counts.T).float()
        total = counts.sum().clamp(min=1.0)
        neg_weight = negatives * counts.sum(1, keepdim=True) * (noise / noise.sum())[None, :]
        params = [model.inp.weight, model.out.weight]
        optimiser = torch.optim.Adam(params, lr=0.05 if lr is None else lr)
        softplus = torch.nn.functional.softplus
        for _ in range(steps):
            scores = model.inp.weight @ model.out.weight.T
            loss = ((counts * softplus(-scores)).sum() + (neg_weight * softplus(scores)).sum()) / total
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            losses.append(loss.item())
        train_seconds = time.perf_counter() - t0
    else:
        params = list(model.parameters())
        lr = 0.025 if lr is None else lr
        optimiser = torch.optim.SparseAdam(params, lr=lr) if sparse else torch.optim.Adam(params, lr=lr)
        for _ in range(epochs):
            epoch_loss, batches = 0.0, 0
            for walks in epoch_walks():
                center, context = walk_pairs(walks, window)
                t0 = time.perf_counter()
                order = torch.randperm(center.numel(), generator=gen, device=device)
                for idx in order.split(batch_size):
                    neg = torch.multinomial(noise, idx.numel() * negatives, replacement=True, generator=gen)
                    loss = model.loss(center[idx], context[idx], neg.view(-1, negatives))
                    optimiser.zero_grad(set_to_none=True)
                    loss.backward()
                    optimiser.step()
                    epoch_loss += loss.item()
                    batches += 1
                train_seconds += time.perf_counter() - t0
            losses.append(epoch_loss / max(batches, 1))
    embedding = model.inp.weight.detach().float().cpu().clone()
    return Node2VecResult(embedding, losses, walk_seconds, train_seconds, total_walks, total_pairs, objective)
