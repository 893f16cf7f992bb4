"""Names, display order and direction of the ranking metrics (no torch: the apps' configs use it).

The metrics themselves are computed in :mod:`bamir.metrics`; their cut-offs (``recall@k``,
``ndcg@k``) are configurable, so names are made here from the cut-offs rather than listed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

#: cut-offs of ``recall@k`` and ``ndcg@k`` when none are configured
RECALL_K: tuple[int, ...] = (10, 50)
NDCG_K: tuple[int, ...] = (10,)

#: metrics where a smaller value is better (every other metric: larger is better)
LOWER_IS_BETTER = frozenset({"medr"})

_HEAD = ("auc_global", "auc_brand", "auc_pairs", "cauc")
_MIDDLE = ("mrr", "map", "medr")
_COUNTS = ("n_queries",)


def metric_names(recall_k: Sequence[int] = RECALL_K, ndcg_k: Sequence[int] = NDCG_K) -> tuple[str, ...]:
    """The ranking metrics in display order: AUCs, ``recall@k``, MRR, MAP, MedR, ``ndcg@k``."""
    return (*_HEAD, *(f"recall@{k}" for k in sorted(recall_k)), *_MIDDLE, *(f"ndcg@{k}" for k in sorted(ndcg_k)))


def is_metric(name: str) -> bool:
    """True for a ranking metric's name (any cut-off) or ``n_queries``."""
    head, _, k = name.partition("@")
    return name in (*_HEAD, *_MIDDLE, *_COUNTS) or (head in ("recall", "ndcg") and k.isdigit())


def display_order(names: Iterable[str]) -> list[str]:
    """``names`` that are ranking metrics, in display order (cut-offs ascending), ``n_queries`` last."""
    found = [n for n in names if is_metric(n)]
    recall = sorted(int(n.split("@")[1]) for n in found if n.startswith("recall@"))
    ndcg = sorted(int(n.split("@")[1]) for n in found if n.startswith("ndcg@"))
    order = [*metric_names(recall, ndcg), *_COUNTS]
    return [n for n in order if n in found]


def mode(name: str) -> str:
    """``"min"`` or ``"max"``: the direction in which metric ``name`` (``val/medr`` or ``medr``) improves."""
    return "min" if name.rpartition("/")[2] in LOWER_IS_BETTER else "max"
