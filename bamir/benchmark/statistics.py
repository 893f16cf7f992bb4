"""Per-brand statistics, the bootstrap over brands, paired tests and the summary table of a benchmark."""

from __future__ import annotations

import math
from typing import Sequence

import pandas as pd
import torch
from torch import Tensor

from bamir.metric_names import metric_names
from bamir.benchmark.scores import PooledRun, RunScores, same_layout


#: metrics of the table, in display order (the default cut-offs)
METRICS = metric_names()


def bootstrap_indices(n_brands: int, samples: int, seed: int = 0) -> Tensor:
    """``[R, B]``: ``R`` bootstrap samples of ``B`` brand indices each, drawn with replacement."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(n_brands, (samples, n_brands), generator=generator)


def _weighted_mean(values: Tensor, valid: Tensor, weights: Tensor) -> Tensor:
    w = weights * valid.double()
    return (w * torch.nan_to_num(values, nan=0.0, posinf=0.0)).sum(-1) / w.sum(-1)


def metric_samples(stats: dict[str, Tensor], metric: str, idx: Tensor) -> Tensor:
    """A metric on each row of brand draws ``idx [R, B]`` -> ``[R]`` (NaN where undefined)."""
    n_brands = stats["n_pos"].shape[0]
    weights = torch.zeros(idx.shape[0], n_brands, dtype=torch.float64)
    weights.scatter_add_(1, idx, torch.ones_like(idx, dtype=torch.float64))
    has_pos = stats["n_pos"] > 0
    has_both = has_pos & (stats["n_neg"] > 0)
    if metric == "auc_global":
        wins = torch.einsum("rb,bc,rc->r", weights, stats["cross_wins"], weights)
        if "block" not in stats:
            return wins / ((weights @ stats["n_pos"]) * (weights @ stats["n_neg"]))
        # pooled folds: only pairs within a fold are compared (cross_wins is block-diagonal)
        blocks = torch.nn.functional.one_hot(stats["block"]).double()  # [B, F]
        pairs = ((weights * stats["n_pos"]) @ blocks) * ((weights * stats["n_neg"]) @ blocks)
        return wins / pairs.sum(1)
    if metric == "auc_pairs":
        return (weights @ torch.where(has_both, stats["wins"], 0)) / (
            weights @ torch.where(has_both, stats["n_pos"] * stats["n_neg"], 0))
    if metric == "auc_brand":
        return _weighted_mean(stats["auc"], has_both, weights)
    if metric == "cauc":
        return _weighted_mean(stats["cauc"], ~torch.isnan(stats["cauc"]), weights)
    if metric == "medr":
        first = torch.where(has_pos, stats["first"], torch.inf)[idx]
        ordered = torch.sort(first, dim=1).values
        n_valid = torch.isfinite(ordered).sum(1)
        lo = ((n_valid - 1).clamp(min=0) // 2)[:, None]
        hi = (n_valid // 2).clamp(max=ordered.shape[1] - 1)[:, None]
        med = 0.5 * (ordered.gather(1, lo) + ordered.gather(1, hi)).squeeze(1)
        return torch.where(n_valid > 0, med, torch.nan)
    key = {"mrr": "rr", "map": "ap"}.get(metric, metric)
    if key not in stats:
        raise KeyError(f"unknown metric {metric!r}")
    return _weighted_mean(stats[key], has_pos, weights)


def paired_p_value(samples: Tensor, reference: Tensor, observed: float) -> float:
    """Two-sided paired bootstrap p-value of ``observed = stat - stat_ref`` (shift method)."""
    delta = samples - reference
    keep = ~torch.isnan(delta)
    if not keep.any() or math.isnan(observed):
        return float("nan")
    delta = delta[keep]
    extreme = (delta - observed).abs() >= abs(observed) - 1e-12
    return float((1 + extreme.sum()) / (len(delta) + 1))


def summarise(runs: dict[str, list[RunScores]], reference: str | None = None, metrics: Sequence[str] = METRICS,
              samples: int = 2000, seed: int = 0, level: float = 0.95) -> pd.DataFrame:
    """The benchmark table (long): one row per model and metric.

    Columns: ``model, metric, mean, ci_low, ci_high, seed_sd, seeds, brands, delta, p_value, reference``
    (``delta`` and ``p_value`` against ``reference``; NaN for the reference itself when absent).
    Every run must have the same test brands and candidates, in the same order (for
    :class:`PooledRun` rows: the same folds, each with the same brands and candidates).
    """
    names = [n for n, r in runs.items() if r]
    if not names:
        raise ValueError("no runs to summarise")
    first = runs[names[0]][0]
    for name in names:
        for run in runs[name]:
            if not same_layout(run, first):
                raise ValueError(f"run {name} seed {run.seed}: other test brands or candidates than {first.name}")
    n_brands = len(first.brands)
    idx = bootstrap_indices(n_brands, samples, seed)
    full = torch.arange(n_brands)[None, :]
    ks = sorted({int(m.split("@")[1]) for m in metrics if m.startswith("recall@")})
    ndcg_ks = sorted({int(m.split("@")[1]) for m in metrics if m.startswith("ndcg@")})
    stats = {n: [r.statistics(ks=ks, ndcg_ks=ndcg_ks, curve_k=1) for r in runs[n]] for n in names}
    points: dict[tuple[str, str], float] = {}
    boots: dict[tuple[str, str], Tensor] = {}
    seed_sd: dict[tuple[str, str], float] = {}
    for name in names:
        for metric in metrics:
            per_seed = torch.stack([metric_samples(s, metric, full)[0] for s in stats[name]])
            points[name, metric] = float(per_seed.mean())
            seed_sd[name, metric] = float(per_seed.std()) if len(per_seed) > 1 else float("nan")
            boots[name, metric] = torch.stack([metric_samples(s, metric, idx) for s in stats[name]]).mean(0)
    alpha = (1 - level) / 2
    rows = []
    ref = reference if reference in names else None
    for name in names:
        for metric in metrics:
            point, boot = points[name, metric], boots[name, metric]
            finite = boot[~torch.isnan(boot)]
            lo, hi = (torch.quantile(finite, torch.tensor([alpha, 1 - alpha], dtype=finite.dtype)).tolist()
                      if len(finite) else (float("nan"), float("nan")))
            delta = p = float("nan")
            if ref is not None:
                delta = point - points[ref, metric]
                p = paired_p_value(boot, boots[ref, metric], delta)
            rows.append({"model": name, "metric": metric, "mean": point, "ci_low": lo, "ci_high": hi,
                         "seed_sd": seed_sd[name, metric], "seeds": len(runs[name]), "brands": n_brands,
                         "delta": delta, "p_value": p, "reference": ref or ""})
    table = pd.DataFrame(rows)
    defined = table.groupby("metric")["mean"].apply(lambda v: v.notna().any())
    return table[table["metric"].map(defined)].reset_index(drop=True)


def fold_table(runs: dict[str, list[PooledRun]], metrics: Sequence[str] = METRICS) -> pd.DataFrame:
    """Each fold's point metrics (long): ``model, seed, fold, brands, candidates, metric, value``,
    computed on the fold's own matrix as :mod:`bamir.metrics` does (the fold's run's test metrics)."""
    ks = sorted({int(m.split("@")[1]) for m in metrics if m.startswith("recall@")})
    ndcg_ks = sorted({int(m.split("@")[1]) for m in metrics if m.startswith("ndcg@")})
    rows = []
    for name, items in runs.items():
        for run in items:
            for k, part in enumerate(run.parts):
                stats = part.statistics(ks=ks, ndcg_ks=ndcg_ks, curve_k=1)
                full = torch.arange(len(part.brands))[None, :]
                for metric in metrics:
                    rows.append({"model": name, "seed": run.seed, "fold": k, "brands": len(part.brands),
                                 "candidates": len(part.candidates), "metric": metric,
                                 "value": float(metric_samples(stats, metric, full)[0])})
    return pd.DataFrame(rows)
