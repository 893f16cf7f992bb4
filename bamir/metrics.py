"""Ranking metrics for brand -> influencer retrieval (the protocol of docs/method.md sections 2-3).

Every query brand is scored against the same list of ``C`` candidate influencers, giving a
``[B, C]`` score matrix with boolean labels (Gan et al., ACM MM 2019, "Seeking
Micro-influencers for Brand Promotion"; the "discover" split of CAMERA / MORNING / BAMIR).
Per-brand metrics are averaged over the brands that have at least one positive; brands
without a positive are skipped and counted.

Notation for one brand: ``s`` its scores, ``P`` / ``N`` its numbers of positives /
negatives, and for a candidate ``i``: ``less_i = #{j: s_j < s_i}``,
``leq_i = #{j: s_j <= s_i}``.

Tie rules:

* AUC counts a tie as half a win (Mann-Whitney midranks):
  ``AUC = sum_{i pos} (#neg with s < s_i + 0.5 * #neg with s == s_i) / (P * N)``.
* Rank-based metrics use the **pessimistic** rank ``r_i = #{j: s_j >= s_i} = C - less_i``
  (1-based): a candidate tied with others ranks after all of them, so a constant scorer
  gets no credit (MRR = 1/C, R@k = 0 for k < C, MedR = C).
* AP uses the precision at the end of each tie group, i.e. scikit-learn's
  ``average_precision_score`` convention, which is the precision at the pessimistic rank.

Metrics (keys of the returned dict; all float tensors):

* ``auc_global``: ROC-AUC over the flattened ``[B, C]`` matrix (all rows, as
  ``sklearn.metrics.roc_auc_score(labels.ravel(), scores.ravel())``).
* ``auc_brand``: per-brand AUC, averaged over brands with ``P > 0`` and ``N > 0``.
* ``auc_pairs``: micro average over all within-brand (positive, negative) pairs,
  ``sum_b wins_b / sum_b P_b N_b``: the published pair file when it lists every pair.
* ``cauc``: per-brand AUC counting only the negatives flagged in ``hard_negatives``
  (negatives from another brand of the same category), averaged over brands with at
  least one; present only when ``hard_negatives`` is given. A flag on a positive is ignored.
* ``recall@k``: ``#{i pos: r_i <= k} / P`` (so it is below 1 whenever ``P > k``).
* ``mrr``: ``1 / min_{i pos} r_i``.
* ``map``: ``(1 / P) sum_{i pos} #{j pos: s_j >= s_i} / r_i``.
* ``medr``: median over brands of ``min_{i pos} r_i`` (mean of the two middle values for
  an even number of brands).
* ``ndcg@k``: binary relevance, ``DCG = sum_{i pos, r_i <= k} 1 / log2(1 + r_i)`` divided
  by the ideal ``sum_{j=1}^{min(P, k)} 1 / log2(1 + j)``.
* ``n_queries`` (brands with a positive, over which the per-brand means run) and
  ``n_queries_without_positives``.

A mean over no eligible brand is NaN. Scores may be any real numbers (negative, zero,
ties, +-inf; NaN is rejected); they are upcast to float64 (float32 on MPS) before sorting.
Everything is computed with one sort per row of the whole matrix (plus one of the
flattened matrix for ``auc_global``), ``searchsorted`` for the tie-group bounds and
cumulative sums of the indicators in sorted order: no loop over brands.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor
from torchmetrics import Metric
from torchmetrics.utilities.data import dim_zero_cat

from bamir.metric_names import NDCG_K, RECALL_K

__all__ = ["RankingMetrics", "per_query_metrics", "ranking_metrics"]


def _work_dtype(device: torch.device) -> torch.dtype:
    return torch.float32 if device.type == "mps" else torch.float64


def _counts_below(marks: Tensor, less: Tensor, leq: Tensor) -> tuple[Tensor, Tensor]:
    """For sorted rows: how many marked items score ``< s_i`` and ``<= s_i``, for each ``i``."""
    cum = torch.nn.functional.pad(marks.cumsum(dim=1), (1, 0))
    return cum.gather(1, less), cum.gather(1, leq)


def _sorted_with_ties(scores: Tensor, *marks: Tensor) -> tuple[Tensor, Tensor, tuple[Tensor, ...]]:
    """Sort each row ascending; return ``less``, ``leq`` and the marks in sorted order."""
    s_sorted, order = torch.sort(scores, dim=1)
    less = torch.searchsorted(s_sorted, s_sorted, side="left")
    leq = torch.searchsorted(s_sorted, s_sorted, side="right")
    return less, leq, tuple(m.gather(1, order) for m in marks)


def _auc_wins(pos: Tensor, neg: Tensor, less: Tensor, leq: Tensor) -> Tensor:
    """Per row: sum over positives of (negatives below + half the tied negatives)."""
    neg_lt, neg_le = _counts_below(neg, less, leq)
    return (pos * (neg_lt + 0.5 * (neg_le - neg_lt))).sum(dim=1)


def _masked_mean(values: Tensor, mask: Tensor) -> Tensor:
    return torch.where(mask, values, 0).sum(dim=0) / mask.sum(dim=0)


def _check_inputs(scores: Tensor, labels: Tensor, hard_negatives: Tensor | None) -> None:
    if scores.ndim != 2:
        raise ValueError(f"scores must be [brands, candidates], got shape {tuple(scores.shape)}")
    if not scores.is_floating_point():
        raise ValueError(f"scores must be floating point, got {scores.dtype}")
    for name, mask in (("labels", labels), ("hard_negatives", hard_negatives)):
        if mask is None:
            continue
        if mask.shape != scores.shape:
            raise ValueError(f"{name} shape {tuple(mask.shape)} != scores shape {tuple(scores.shape)}")
        if mask.dtype != torch.bool:
            raise ValueError(f"{name} must be a bool tensor, got {mask.dtype}")


def per_query_metrics(
    scores: Tensor,
    labels: Tensor,
    hard_negatives: Tensor | None = None,
    ks: Sequence[int] = RECALL_K,
    ndcg_ks: Sequence[int] = NDCG_K,
    curve_k: int = 0,
) -> dict[str, Tensor]:
    """Each brand's own metrics (the rows :func:`ranking_metrics` averages), ``[B]`` tensors.

    Keys: ``n_pos``, ``n_neg``, ``wins`` (the AUC numerator), ``auc``, ``cauc`` (NaN where the
    brand has no positive or no hard negative, or without ``hard_negatives``), ``recall@k``,
    ``first`` (the pessimistic rank of the first positive, +inf without one), ``rr``
    (``1 / first``), ``ap``, ``ndcg@k``; with ``curve_k > 0`` also ``recall_curve [B, K]``
    (recall at k = 1..K, K = min(curve_k, C)). Rows without a positive hold NaN or 0 where a
    mean over positives is undefined; the float dtype is float64 (float32 on MPS).
    """
    _check_inputs(scores, labels, hard_negatives)
    for k in (*ks, *ndcg_ks):
        if isinstance(k, bool) or not isinstance(k, int) or k < 1:
            raise ValueError(f"cut-offs must be positive integers, got {k!r}")
    if torch.isnan(scores).any():
        raise ValueError("scores contain NaN")
    device = scores.device
    dtype = _work_dtype(device)
    n_brands, n_cand = scores.shape
    marks = (labels.to(dtype),) if hard_negatives is None else (labels.to(dtype), (hard_negatives & ~labels).to(dtype))
    less, leq, sorted_marks = _sorted_with_ties(scores.to(dtype), *marks)
    pos = sorted_marks[0]
    n_pos = pos.sum(dim=1)
    n_neg = n_cand - n_pos
    wins = _auc_wins(pos, 1 - pos, less, leq)
    out: dict[str, Tensor] = {"n_pos": n_pos, "n_neg": n_neg, "wins": wins, "auc": wins / (n_pos * n_neg)}
    if hard_negatives is not None:
        hard = sorted_marks[1]
        n_hard = hard.sum(dim=1)
        out["cauc"] = torch.where((n_pos > 0) & (n_hard > 0), _auc_wins(pos, hard, less, leq) / (n_pos * n_hard), torch.nan)
    else:
        out["cauc"] = torch.full((n_brands,), torch.nan, dtype=dtype, device=device)

    # Pessimistic 1-based rank; +inf for negatives so they never count as hits.
    rank = torch.where(pos.bool(), (n_cand - less).to(dtype), torch.inf)
    first = rank.min(dim=1).values if n_cand else torch.full((n_brands,), torch.inf, dtype=dtype, device=device)
    for k in ks:
        out[f"recall@{k}"] = (rank <= k).to(dtype).sum(dim=1) / n_pos
    out["first"], out["rr"] = first, 1 / first
    pos_lt, _ = _counts_below(pos, less, leq)
    out["ap"] = torch.where(pos.bool(), (n_pos.unsqueeze(1) - pos_lt) / rank, 0).sum(dim=1) / n_pos
    ideal_cum = torch.nn.functional.pad(
        (1 / torch.log2(torch.arange(2, n_cand + 2, dtype=dtype, device=device))).cumsum(0), (1, 0)
    )
    for k in ndcg_ks:
        dcg = torch.where(rank <= k, 1 / torch.log2(rank + 1), 0).sum(dim=1)
        out[f"ndcg@{k}"] = dcg / ideal_cum[torch.clamp(n_pos, max=k).long()]
    if curve_k > 0:
        curve_k = max(1, min(curve_k, n_cand))
        hits = torch.zeros(n_brands, curve_k + 2, dtype=dtype, device=device)
        hits.scatter_add_(1, torch.clamp(rank, max=curve_k + 1).long(), torch.ones_like(rank))
        out["recall_curve"] = hits[:, 1:curve_k + 1].cumsum(1) / n_pos[:, None]
    return out


def ranking_metrics(
    scores: Tensor,
    labels: Tensor,
    hard_negatives: Tensor | None = None,
    ks: Sequence[int] = RECALL_K,
    ndcg_ks: Sequence[int] = NDCG_K,
) -> dict[str, Tensor]:
    """All ranking metrics of a ``[B, C]`` score matrix; see the module docstring.

    Args:
        scores: float ``[B, C]``, one row per query brand, one column per candidate.
        labels: bool ``[B, C]``, True where the candidate is a positive of the brand.
        hard_negatives: optional bool ``[B, C]`` flagging the hard negatives (for ``cauc``).
        ks: cut-offs for ``recall@k``.
        ndcg_ks: cut-offs for ``ndcg@k``.
    """
    q = per_query_metrics(scores, labels, hard_negatives, ks=ks, ndcg_ks=ndcg_ks)  # checks the inputs
    dtype = _work_dtype(scores.device)
    s, y = scores.to(dtype), labels.to(dtype)

    # AUC over the flattened matrix (sklearn's roc_auc_score on ravel()).
    less, leq, (pos_g,) = _sorted_with_ties(s.reshape(1, -1), y.reshape(1, -1))
    n_pos_g = pos_g.sum()
    auc_global = _auc_wins(pos_g, 1 - pos_g, less, leq)[0] / (n_pos_g * (pos_g.numel() - n_pos_g))

    has_pos = q["n_pos"] > 0
    has_both = has_pos & (q["n_neg"] > 0)
    out: dict[str, Tensor] = {
        "auc_global": auc_global,
        "auc_brand": _masked_mean(q["auc"], has_both),
        "auc_pairs": torch.where(has_both, q["wins"], 0).sum() / torch.where(has_both, q["n_pos"] * q["n_neg"], 0).sum(),
    }
    if hard_negatives is not None:
        out["cauc"] = _masked_mean(q["cauc"], ~torch.isnan(q["cauc"]))
    out.update({f"recall@{k}": _masked_mean(q[f"recall@{k}"], has_pos) for k in ks})
    out["mrr"] = _masked_mean(q["rr"], has_pos)
    out["map"] = _masked_mean(q["ap"], has_pos)

    # Median without a host sync: invalid rows sort last as +inf.
    n_valid = has_pos.sum()
    first_sorted = torch.sort(torch.where(has_pos, q["first"], torch.inf)).values
    if first_sorted.numel():
        medr = first_sorted[torch.stack(((n_valid - 1).clamp(min=0) // 2, n_valid // 2))].mean()
        medr = torch.where(n_valid > 0, medr, torch.nan)
    else:
        medr = torch.full((), torch.nan, dtype=dtype, device=scores.device)
    out["medr"] = medr
    out.update({f"ndcg@{k}": _masked_mean(q[f"ndcg@{k}"], has_pos) for k in ndcg_ks})

    out["n_queries"] = n_valid.to(dtype)
    out["n_queries_without_positives"] = (~has_pos).sum().to(dtype)
    return {key: value.float() for key, value in out.items()}


class RankingMetrics(Metric):
    """Accumulate ``[B, C]`` score rows of query brands and compute :func:`ranking_metrics`.

    All brands of one evaluation must be scored against the same ``C`` candidates. Rows
    are stored as they come (``dist_reduce_fx="cat"``), so under DDP each rank's brands
    are gathered once and the metrics are computed on the full matrix.

    Example::

        metric = RankingMetrics(ks=(10, 50))
        metric.update(scores, labels, hard_negatives)  # once per batch of brands
        results = metric.compute()  # {"auc_global": ..., "mrr": ..., ...}
    """

    is_differentiable = False
    higher_is_better = None  # mixed: MedR is lower-is-better
    full_state_update = False

    scores: list[Tensor] | Tensor
    labels: list[Tensor] | Tensor
    hard_negatives: list[Tensor] | Tensor

    def __init__(self, ks: Sequence[int] = RECALL_K, ndcg_ks: Sequence[int] = NDCG_K, **kwargs) -> None:
        super().__init__(**kwargs)
        self.ks = tuple(ks)
        self.ndcg_ks = tuple(ndcg_ks)
        self.add_state("scores", default=[], dist_reduce_fx="cat")
        self.add_state("labels", default=[], dist_reduce_fx="cat")
        self.add_state("hard_negatives", default=[], dist_reduce_fx="cat")

    def update(self, scores: Tensor, labels: Tensor, hard_negatives: Tensor | None = None) -> None:
        """Add ``B`` query brands: scores float ``[B, C]``, labels / hard negatives bool ``[B, C]``."""
        _check_inputs(scores, labels, hard_negatives)
        if self.scores:
            n_cand = self.scores[0].shape[1]
            if scores.shape[1] != n_cand:
                raise ValueError(
                    f"every update must score the same candidates: got {scores.shape[1]} columns, "
                    f"earlier updates had {n_cand}"
                )
            if (hard_negatives is None) != (len(self.hard_negatives) == 0):
                raise ValueError("hard_negatives must be given in every update or in none")
        self.scores.append(scores.detach())
        self.labels.append(labels)
        if hard_negatives is not None:
            self.hard_negatives.append(hard_negatives)

    def compute(self) -> dict[str, Tensor]:
        if isinstance(self.scores, list) and not self.scores:
            raise ValueError("RankingMetrics.compute() called before any update()")
        scores = dim_zero_cat(self.scores)
        hard = dim_zero_cat(self.hard_negatives) if len(self.hard_negatives) else None
        if hard is not None and hard.numel() == 0:
            hard = None
        return ranking_metrics(scores, dim_zero_cat(self.labels), hard, ks=self.ks, ndcg_ks=self.ndcg_ks)
