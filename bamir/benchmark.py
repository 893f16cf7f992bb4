"""Benchmark: several rankers x several seeds on one dataset, one table with confidence intervals.

Every run is an ordinary :func:`bamir.train.train` call on a composed ``conf/train.yaml``
(``model=<name> seed=<s>`` plus the run's overrides), with one extra callback,
:class:`ScoreRecorder`, that keeps the evaluated split's ``[B, C]`` score matrix of the model
its metrics were computed with (the best checkpoint of a learned model). The split is the test
split (``split: test``), the validation split carved from the training brands (``split: val``: the
brands each learned model's best epoch is chosen on, so optimistic for learned models), or
brand-disjoint cross-validation over the training brands (``split: cv``, for data without a test
part, such as the real release: every (model, seed, fold) is a run with ``data.cv_fold=k``, whose
best epoch is chosen on an inner validation carve of that fold's own training brands and whose
fold brands are then tested; ``cv.folds``, ``cv.seed``). From those matrices:

- **point estimate**: a metric's value on the whole split (as :mod:`bamir.metrics` computes
  it), averaged over the seeds;
- **95% confidence interval**: percentile bootstrap over the evaluated brands. One bootstrap sample draws
  ``B`` test brands with replacement; the metric is recomputed on the drawn brands for each seed
  and averaged over the seeds. Per-brand means (AUC per brand, cAUC, R@k, MRR, MAP, NDCG) are
  weighted means of per-brand values; MedR is the median of the drawn brands' first-positive
  ranks; the global ROC-AUC is recomputed from the ``[B, B]`` table of cross-brand wins
  ``W[b, b'] = sum_{p pos of b} #{n neg of b': s_n < s_p} + 0.5 #{... =}`` as
  ``w^T W w / ((w . P) (w . N))`` with ``w`` the brands' draw counts;
- **paired bootstrap test** against the reference model (BAMIR by default): on the same drawn
  brands, ``d* = stat_model - stat_ref``; with ``d`` the observed difference, the two-sided
  p-value is ``(1 + #{|d* - d| >= |d|}) / (R + 1)`` (the shift method, Sakai 2006). A model
  against itself gets ``p = 1``.
- **cross-validation** (``split: cv``): a (model, seed) row pools its folds (:class:`PooledRun`):
  every training brand is reported once, by the model of the fold that held it out, and the
  per-brand quantities of all folds are concatenated. Per-brand metrics (AUC per brand, cAUC, R@k,
  MRR, MAP, NDCG, MedR, the pairs AUC) are then exactly as on one split, each brand ranked against
  its own fold's candidates. The global ROC-AUC compares scores across brands, which is defined
  within a fold (one model, one candidate list) but not across folds (other models, other scales):
  the cross-wins table is block-diagonal by fold and the pooled value is
  ``sum_f w_f^T W_f w_f / sum_f (w_f . P)(w_f . N)``, the pair-weighted mean of the folds' global
  AUCs (bootstrapped the same way, ``w`` the brands' draw counts). The folds are the same for every
  seed and model (``cv.seed``), so the paired tests compare models on the same brands.

Outputs, in the benchmark's output folder: ``benchmark.md``, ``benchmark.csv`` (long: one row per
model and metric), ``runs.csv`` (each run's test metrics and time), the plots
``recall_at_k.png``, ``category_auc.png``, ``score_distributions.png``, and each run's folder
under ``jobs/<name>/seed<s>/`` (with its ``scores.pt``); with ``split: cv`` also ``folds.csv`` (each
fold's point metrics per model and seed; their means over seeds close ``benchmark.md``) and the runs
under ``jobs/<name>/seed<s>/fold<k>/``. With a W&B logger configured, the
table goes to W&B as a ``wandb.Table`` and the plots as images.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import lightning as L
import numpy as np
import pandas as pd
import torch
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import Tensor

from bamir.metric_names import metric_names
from bamir.metrics import per_query_metrics

log = logging.getLogger(__name__)

#: metrics of the table, in display order (the default cut-offs)
METRICS = metric_names()
LABELS = {"auc_global": "AUC (global)", "auc_brand": "AUC (brand)", "auc_pairs": "AUC (pairs)", "cauc": "cAUC",
          "recall@10": "R@10", "recall@50": "R@50", "mrr": "MRR", "map": "MAP", "medr": "MedR", "ndcg@10": "NDCG@10"}


# ---------------------------------------------------------------------------------------- recording
class ScoreRecorder(L.Callback):
    """Keeps one evaluation split's score matrix and writes it to ``path`` (``torch.save``).

    ``split="test"``: the matrix of the test run (a learned model is tested with its best
    checkpoint, so it is that checkpoint's). ``split="val"``: the matrix of the validation run with
    the best ``monitor`` value so far (strictly better, as ``ModelCheckpoint`` keeps the best
    checkpoint; every validation run when ``monitor`` is None or not logged), i.e. the
    best checkpoint's validation scores: for data without a test part (the real release).

    The file holds ``scores [B, C]`` float32 (the model's ``score_matrix``, recomputed on each
    batch, so exactly what the metrics saw), ``labels`` and ``hard_negatives`` ``[B, C]`` bool (or
    None), ``brands [B]`` and ``candidates [C]`` account rows, ``brand_ids`` and ``categories``
    (lists of str, ``""`` where unknown) and ``split``.
    """

    def __init__(self, path: str, split: str = "test", monitor: str | None = None, mode: str = "max"):
        super().__init__()
        if split not in ("test", "val"):
            raise ValueError(f"split must be test or val, got {split!r}")
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be max or min, got {mode!r}")
        self.path, self.split, self.monitor, self.mode = Path(path), split, monitor, mode
        self.best: float | None = None
        self._reset()

    def _reset(self) -> None:
        self.scores, self.labels, self.hard, self.brands = [], [], [], []
        self.candidates: Tensor | None = None

    def _record(self, pl_module, batch) -> None:
        scores = pl_module.score_matrix(batch["brands"], batch["candidates"])
        self.scores.append(scores.detach().float().cpu())
        self.labels.append(batch["labels"].cpu())
        if batch.get("hard_negatives") is not None:
            self.hard.append(batch["hard_negatives"].cpu())
        self.brands.append(batch["brands"].cpu())
        self.candidates = batch["candidates"].cpu()

    def _save(self, trainer) -> None:
        if not self.scores:
            return
        brands = torch.cat(self.brands)
        datamodule = getattr(trainer, "datamodule", None)
        brand_ids, categories = [], []
        if datamodule is not None:
            brand_ids = [datamodule.account_ids[r] for r in brands.tolist()]
            categories = [datamodule.categories[c] if c >= 0 else "" for c in datamodule.category[brands].tolist()]
        record = {
            "scores": torch.cat(self.scores), "labels": torch.cat(self.labels),
            "hard_negatives": torch.cat(self.hard) if self.hard else None,
            "brands": brands, "candidates": self.candidates, "brand_ids": brand_ids, "categories": categories,
            "split": self.split,
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        torch.save(record, self.path)

    # test
    def on_test_epoch_start(self, trainer, pl_module) -> None:
        if self.split == "test":
            self._reset()

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.split == "test":
            self._record(pl_module, batch)

    def on_test_end(self, trainer, pl_module) -> None:
        if self.split == "test":
            self._save(trainer)

    # validation
    def on_validation_epoch_start(self, trainer, pl_module) -> None:
        if self.split == "val":
            self._reset()

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        if self.split == "val" and not trainer.sanity_checking:
            self._record(pl_module, batch)

    def on_validation_end(self, trainer, pl_module) -> None:
        if self.split != "val" or trainer.sanity_checking:
            return
        value = trainer.callback_metrics.get(self.monitor) if self.monitor else None
        if value is not None:
            value = float(value)
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            if not better:
                return
            self.best = value
        self._save(trainer)


@dataclass
class RunScores:
    """One run's score matrix on the evaluated split (see :class:`ScoreRecorder`) and metrics."""

    name: str
    seed: int
    scores: Tensor
    labels: Tensor
    hard_negatives: Tensor | None
    brands: Tensor
    candidates: Tensor
    categories: list[str] = field(default_factory=list)
    metrics: dict[str, float | None] = field(default_factory=dict)
    seconds: float = float("nan")

    @classmethod
    def load(cls, path: str | Path, name: str, seed: int, **extra) -> "RunScores":
        record = torch.load(path, weights_only=True)
        return cls(name, seed, record["scores"], record["labels"], record["hard_negatives"], record["brands"],
                   record["candidates"], list(record.get("categories") or []), **extra)

    @property
    def parts(self) -> list["RunScores"]:
        """The score matrices of the row (one here; a :class:`PooledRun`'s folds)."""
        return [self]

    def layout(self) -> tuple:
        """What two runs must share to be compared brand by brand: the brands and candidates."""
        return ((self.brands, self.candidates),)

    def statistics(self, ks: Sequence[int] = (10, 50), ndcg_ks: Sequence[int] = (10,), curve_k: int = 100
                   ) -> dict[str, Tensor]:
        """:func:`brand_statistics` of this run's matrix."""
        return brand_statistics(self.scores, self.labels, self.hard_negatives, ks=ks, ndcg_ks=ndcg_ks, curve_k=curve_k)


@dataclass
class PooledRun:
    """One (model, seed) of a cross-validation: its folds' runs, each a :class:`RunScores` on its own
    brands and candidates. The brands of all folds, in fold order, are the row's brands; they must be
    disjoint (each brand reported once)."""

    name: str
    seed: int
    folds: list[RunScores]
    metrics: dict[str, float | None] = field(default_factory=dict)
    seconds: float = float("nan")

    def __post_init__(self):
        if not self.folds:
            raise ValueError(f"{self.name} seed {self.seed}: no folds to pool")
        brands = self.brands
        if len(torch.unique(brands)) != len(brands):
            raise ValueError(f"{self.name} seed {self.seed}: the folds share brands; a brand must be reported once")

    @property
    def parts(self) -> list[RunScores]:
        return self.folds

    @property
    def brands(self) -> Tensor:
        return torch.cat([f.brands for f in self.folds])

    @property
    def categories(self) -> list[str]:
        return [c for f in self.folds for c in (f.categories or [""] * len(f.brands))]

    def layout(self) -> tuple:
        return tuple((f.brands, f.candidates) for f in self.folds)

    def statistics(self, ks: Sequence[int] = (10, 50), ndcg_ks: Sequence[int] = (10,), curve_k: int = 100
                   ) -> dict[str, Tensor]:
        """The folds' per-brand statistics concatenated; ``cross_wins`` block-diagonal (no comparison
        across folds) and ``block [B]`` the fold of each brand (:func:`metric_samples` uses it for the
        global AUC's denominator). ``recall_curve`` rows of a fold with fewer candidates than the
        widest are padded with their last value (recall@k for k >= C is recall@C)."""
        return pool_statistics([f.statistics(ks, ndcg_ks, curve_k) for f in self.folds])


def pool_statistics(parts: list[dict[str, Tensor]]) -> dict[str, Tensor]:
    """Per-brand statistics of several splits (:func:`brand_statistics`) as one: rows concatenated,
    ``cross_wins`` block-diagonal and ``block`` the index of each row's split."""
    out: dict[str, Tensor] = {}
    for key in parts[0]:
        if key == "cross_wins":
            out[key] = torch.block_diag(*[p[key] for p in parts])
        elif key == "recall_curve":
            width = max(p[key].shape[1] for p in parts)
            out[key] = torch.cat([torch.cat([p[key], p[key][:, -1:].expand(-1, width - p[key].shape[1])], 1)
                                  if p[key].shape[1] < width else p[key] for p in parts])
        elif key == "block":
            raise ValueError("statistics pooled already")
        else:
            out[key] = torch.cat([p[key] for p in parts])
    out["block"] = torch.cat([torch.full((len(p["n_pos"]),), k, dtype=torch.long) for k, p in enumerate(parts)])
    return out


# ---------------------------------------------------------------------------------------- per-brand stats
def _global_ranks(scores: Tensor) -> Tensor:
    """Dense ranks over the whole matrix (float64, ties equal): finite, order-preserving."""
    _, inverse = torch.unique(scores.double().reshape(-1), return_inverse=True)
    return inverse.reshape(scores.shape).double()


def brand_statistics(scores: Tensor, labels: Tensor, hard_negatives: Tensor | None = None,
                     ks: Sequence[int] = (10, 50), ndcg_ks: Sequence[int] = (10,), curve_k: int = 100
                     ) -> dict[str, Tensor]:
    """Per-brand quantities of a ``[B, C]`` score matrix for the bootstrap: the per-query metrics
    of :func:`bamir.metrics.per_query_metrics` (its tie rules), including ``recall_curve [B, K]``,
    and ``cross_wins [B, B]`` (``W[b, b']``: wins of b's positives over b''s negatives, for the
    global ROC-AUC). Scores are replaced by their dense ranks first (finite, same order)."""
    s = _global_ranks(scores)
    out = per_query_metrics(s, labels.bool(), None if hard_negatives is None else hard_negatives.bool(),
                            ks=ks, ndcg_ks=ndcg_ks, curve_k=curve_k)
    out["cross_wins"] = cross_wins(s, labels.bool())
    return out


def cross_wins(scores: Tensor, labels: Tensor) -> Tensor:
    """``W [B, B]``: ``W[b, b'] = sum_{p pos of b} (#{neg n of b': s_n < s_p} + 0.5 #{s_n == s_p})``."""
    s = _global_ranks(scores)
    pad = s.max() + 1 if s.numel() else 0.0
    neg_sorted = torch.sort(torch.where(labels, pad, s), dim=1).values  # [B', C], positives last
    brand_of_pos, col = labels.nonzero(as_tuple=True)
    values = s[brand_of_pos, col]  # [P]
    grid = values.expand(len(s), -1).contiguous()
    lt = torch.searchsorted(neg_sorted, grid, side="left").double()
    le = torch.searchsorted(neg_sorted, grid, side="right").double()
    wins = lt + 0.5 * (le - lt)  # [B', P]
    out = torch.zeros(len(s), len(s), dtype=torch.float64)
    out.index_add_(0, brand_of_pos, wins.T)
    return out


# ---------------------------------------------------------------------------------------- bootstrap
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
            if not _same_layout(run.layout(), first.layout()):
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


def _same_layout(a: tuple, b: tuple) -> bool:
    return len(a) == len(b) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(a, b))


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


def markdown_fold_table(folds: pd.DataFrame) -> str:
    """Each (model, fold)'s point metrics, mean over seeds: one Markdown table."""
    metrics = [m for m in dict.fromkeys(folds["metric"]) if folds.loc[folds["metric"] == m, "value"].notna().any()]
    wide = folds.groupby(["model", "fold", "metric"], sort=False)["value"].mean().unstack("metric")
    sizes = folds.groupby(["model", "fold"], sort=False)[["brands", "candidates"]].first()
    lines = ["Per fold: each fold's own metrics (its brands against its candidates), mean over seeds.", "",
             "| model | fold | brands x candidates | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for (model, fold), row in wide.iterrows():
        size = sizes.loc[(model, fold)]
        cells = [_fmt(m, float(row[m])) for m in metrics]
        lines.append(f"| {model} | {fold} | {int(size.brands)} x {int(size.candidates)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.1f}" if metric == "medr" else f"{value:.3f}"


def markdown_table(table: pd.DataFrame, level: float = 0.95, split: str = "test") -> str:
    """Two Markdown tables: mean [CI] per model and metric, then the paired test against the reference."""
    metrics = list(dict.fromkeys(table["metric"]))
    models = list(dict.fromkeys(table["model"]))
    cell = {(r.model, r.metric): r for r in table.itertuples()}
    seeds = {r.model: r.seeds for r in table.itertuples()}
    brands = int(table["brands"].iloc[0])
    head = "| model | seeds | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |"
    rule = "|---|---|" + "---|" * len(metrics)
    which = {"test": "test brands", "val": "validation brands",
             "cv": "training brands, each reported by the model of the cross-validation fold that held it out"
             }.get(split, f"{split} brands")
    lines = [f"Mean over seeds [{level:.0%} CI, bootstrap over {brands} {which}]; MedR: lower is better.", "",
             head, rule]
    if split == "cv":
        lines[0] += (" The global AUC compares scores within a fold only: the pair-weighted mean of the folds' "
                     "global AUCs.")
    for model in models:
        cells = [f"{_fmt(m, cell[model, m].mean)} [{_fmt(m, cell[model, m].ci_low)}, {_fmt(m, cell[model, m].ci_high)}]"
                 for m in metrics]
        lines.append(f"| {model} | {seeds[model]} | " + " | ".join(cells) + " |")
    reference = table["reference"].iloc[0]
    if reference:
        lines += ["", f"Paired bootstrap test against `{reference}`: difference of means (two-sided p).", "",
                  "| model | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
        for model in models:
            if model == reference:
                continue
            cells = []
            for m in metrics:
                r = cell[model, m]
                if math.isnan(r.delta):
                    cells.append("")
                    continue
                p = "p<0.001" if r.p_value < 0.001 else f"p={r.p_value:.3f}"
                cells.append(f"{r.delta:+.1f} ({p})" if m == "medr" else f"{r.delta:+.3f} ({p})")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------- plots
def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_recall_curves(runs: dict[str, list[RunScores]], path: str | Path, max_k: int = 100,
                       split: str = "test") -> Path:
    """Recall@k for k = 1..max_k, one line per model (mean over brands with a positive, then over seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, items in runs.items():
        curves = []
        for r in items:
            st = r.statistics(curve_k=max_k)
            curves.append(st["recall_curve"][st["n_pos"] > 0].mean(0))
        curve = torch.stack(curves).mean(0).numpy()
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    which = {"val": "validation", "cv": "cross-validated"}.get(split, split)
    ax.set_title(f"Recall@k on the {which} brands")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def category_auc(runs: dict[str, list[RunScores]]) -> pd.DataFrame:
    """Per-brand AUC averaged by brand category (rows) for each model (columns), mean over seeds."""
    columns = {}
    for name, items in runs.items():
        per_seed = []
        for r in items:
            st = r.statistics(curve_k=1)
            cats = r.categories or [""] * len(r.brands)
            frame = pd.DataFrame({"category": [c or "(unknown)" for c in cats], "auc": st["auc"].numpy()})
            per_seed.append(frame.dropna().groupby("category")["auc"].mean())
        columns[name] = pd.concat(per_seed, axis=1).mean(axis=1)
    return pd.DataFrame(columns)


def plot_category_auc(runs: dict[str, list[RunScores]], path: str | Path) -> Path:
    """Grouped bars: per-category AUC (brand-averaged) of each model."""
    plt = _pyplot()
    table = category_auc(runs)
    n_cat, n_models = len(table.index), len(table.columns)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.16 * n_cat * (n_models + 1)), 4.6))
    width = 0.8 / max(1, n_models)
    x = np.arange(n_cat)
    for j, name in enumerate(table.columns):
        ax.bar(x + (j - (n_models - 1) / 2) * width, table[name].to_numpy(), width, label=name)
    ax.set_xticks(x, table.index, rotation=45, ha="right")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUC (per brand, averaged)")
    ax.set_title("AUC by brand category")
    ax.legend(fontsize=7, ncol=min(5, n_models), loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_score_distributions(runs: dict[str, list[RunScores]], path: str | Path, bins: int = 40) -> Path:
    """One panel per model: density of the test scores of positive and negative pairs (first seed)."""
    plt = _pyplot()
    names = list(runs)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = runs[name][0]
        pos, neg = [], []
        for part in r.parts:  # a cross-validation's folds: their pairs together
            s = part.scores.double()
            finite = torch.isfinite(s)
            pos.append(s[part.labels & finite].numpy())
            neg.append(s[~part.labels & finite].numpy())
        pos, neg = np.concatenate(pos), np.concatenate(neg)
        edges = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=bins)
        ax.hist(neg, bins=edges, density=True, alpha=0.55, label="negatives")
        ax.hist(pos, bins=edges, density=True, alpha=0.55, label="positives")
        ax.set_title(f"{name} (seed {r.seed})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Test scores of positive and negative pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


# ---------------------------------------------------------------------------------------- running
@dataclass
class RunSpec:
    """One row of the table: a name, a model config (or None: the overrides choose) and overrides."""

    name: str
    model: str | None
    overrides: list[str] = field(default_factory=list)


def run_specs(cfg: DictConfig) -> list[RunSpec]:
    """``models`` (each its own row) then ``runs`` (``{name, model, overrides}``: override sets)."""
    specs = [RunSpec(str(m), str(m)) for m in (cfg.get("models") or [])]
    for entry in cfg.get("runs") or []:
        if isinstance(entry, str):
            specs.append(RunSpec(entry, entry))
            continue
        entry = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else dict(entry)
        model = entry.get("model")
        name = entry.get("name") or model
        if not name:
            raise ValueError(f"benchmark run {entry}: give it a name or a model")
        specs.append(RunSpec(str(name), None if model is None else str(model), _override_list(entry.get("overrides"))))
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"benchmark: run names must be unique, repeated: {duplicated}")
    if not specs:
        raise ValueError("benchmark: nothing to run (set models=[...] or runs=[...], or pick a suite)")
    return specs


def _compose_train(overrides: list[str], config_name: str = "train") -> DictConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from bamir.config import CONFIG_MODULE

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=overrides)
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        return compose(config_name=config_name, overrides=overrides)


def _override_list(value) -> list[str]:
    """A list of overrides, or one string of space-separated overrides."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(o) for o in value]


SPLITS = ("test", "val", "cv")


def benchmark_split(cfg: DictConfig) -> str:
    """The benchmark's ``split`` (test, val or cv), checked."""
    split = str(cfg.get("split", "test"))
    if split not in SPLITS:
        raise ValueError(f"benchmark split={split!r}: use one of {', '.join(SPLITS)}")
    return split


def cv_settings(cfg: DictConfig) -> tuple[int, int]:
    """``(folds, seed)`` of ``split: cv`` (the benchmark's ``cv.folds``, ``cv.seed``)."""
    cv = cfg.get("cv") or {}
    folds, seed = int(cv.get("folds", 5)), int(cv.get("seed", 0))
    if folds < 2:
        raise ValueError(f"benchmark cv.folds={folds}: cross-validation needs at least 2 folds")
    return folds, seed


def compose_run(cfg: DictConfig, spec: RunSpec, seed: int, output_dir: Path, fold: int | None = None) -> DictConfig:
    """The ``train`` config of one run: ``model=`` and ``seed=``, then ``common``, ``overrides`` and the
    run's own overrides; the benchmark's dataset and paths, output in ``output_dir``, the
    :class:`ScoreRecorder` callback for the benchmark's ``split``, and a W&B run named
    ``<row> seed=<seed>`` in the benchmark's group when the benchmark logs to W&B (none otherwise).
    ``split: cv`` with ``fold=k``: ``data.cv_fold=k`` with the benchmark's ``cv.folds`` and ``cv.seed``,
    the fold's test scores recorded and ``fold=<k>`` added to the W&B name."""
    overrides = ([f"model={spec.model}"] if spec.model else []) + [f"seed={seed}"]
    overrides += _override_list(cfg.get("common")) + _override_list(cfg.get("overrides"))
    overrides += spec.overrides
    run = _compose_train(overrides)
    split = benchmark_split(cfg)
    if (split == "cv") != (fold is not None):
        raise ValueError(f"benchmark split={split}: a run {'needs' if split == 'cv' else 'takes no'} fold")
    with open_dict(run):
        if fold is not None:
            folds, cv_seed = cv_settings(cfg)
            run.data.cv_folds, run.data.cv_fold, run.data.cv_seed = folds, int(fold), cv_seed
        run.dataset = OmegaConf.create(OmegaConf.to_container(cfg.dataset, resolve=False))
        for key in ("root_dir", "data_dir", "log_dir"):
            run.paths[key] = str(cfg.paths[key])
        run.paths.output_dir = str(output_dir)
        run.task_name = f"{cfg.task_name}-{spec.name}"
        run.test = True
        run.ckpt_path = None
        if run.get("callbacks") is None:
            run.callbacks = {}
        monitor = run.get("optimized_metric") if split == "val" else None
        mode = (run.callbacks.get("model_checkpoint") or {}).get("mode", "max")
        run.callbacks.scores = {"_target_": "bamir.benchmark.ScoreRecorder", "path": str(output_dir / "scores.pt"),
                                "split": "val" if split == "val" else "test", "monitor": monitor, "mode": mode}
        if (run.get("logger") or {}).get("wandb") is not None:
            if _wandb_node(cfg) is None:
                run.logger.wandb = None  # the benchmark logs nothing to W&B: neither do its runs
            else:
                name = f"{spec.name} seed={seed}" + ("" if fold is None else f" fold={fold}")
                run.logger.wandb.update(group=wandb_group(cfg), name=name, job_type="train",
                                        tags=[*cfg.get("tags", []), spec.name])
    return run


def wandb_group(cfg: DictConfig) -> str:
    """The W&B group of a benchmark: its runs and its summary run (``benchmark-<run folder>``)."""
    return f"{cfg.task_name}-{Path(cfg.paths.output_dir).name}"


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    from bamir.models.oracle import OracleUnavailable

    return (OracleUnavailable,)


def execute_runs(cfg: DictConfig, output_dir: Path) -> tuple[dict[str, list], list[dict[str, Any]]]:
    """Train and test every run spec for every seed (and fold, ``split: cv``); returns the score matrices
    (``{name: [RunScores]}``, or ``{name: [PooledRun]}`` for ``split: cv``, one per seed) and a log of the runs."""
    from bamir.tracking import job_run
    from bamir.train import train

    split = benchmark_split(cfg)
    folds = list(range(cv_settings(cfg)[0])) if split == "cv" else [None]
    prefix = "test" if split == "cv" else split
    results: dict[str, list] = {}
    records: list[dict[str, Any]] = []
    for spec in run_specs(cfg):
        results[spec.name] = []
        skipped = False
        for seed in cfg.seeds:
            parts: list[RunScores] = []
            for fold in folds:
                out = output_dir / "jobs" / spec.name / f"seed{seed}"
                out = out if fold is None else out / f"fold{fold}"
                run_cfg = compose_run(cfg, spec, int(seed), out, fold)
                log.info("benchmark: %s seed %s%s (%s)", spec.name, seed, "" if fold is None else f" fold {fold}",
                         " ".join(spec.overrides) or "no overrides")
                start = time.perf_counter()
                try:
                    with job_run():
                        metrics = train(run_cfg)
                except _unavailable_errors() as err:
                    if not cfg.get("skip_unavailable", True):
                        raise
                    log.warning("benchmark: %s skipped: %s", spec.name, err)
                    records.append({"model": spec.name, "seed": seed, "status": f"skipped: {err}"})
                    skipped = True
                    break
                seconds = time.perf_counter() - start
                if not (out / "scores.pt").is_file():
                    what = f"fold {fold}'s test" if fold is not None else split
                    raise RuntimeError(f"benchmark run {spec.name} seed {seed}: no {what} scores were recorded "
                                       f"(does the dataset have a {prefix} split?)")
                parts.append(RunScores.load(out / "scores.pt", spec.name, int(seed), metrics=metrics, seconds=seconds))
                records.append({"model": spec.name, "seed": seed, **({} if fold is None else {"fold": fold}),
                                "status": "ok", "seconds": round(seconds, 2),
                                **({} if fold is None else {"brands": len(parts[-1].brands)}),
                                **{k: v for k, v in metrics.items() if k.startswith(f"{prefix}/")}})
            if skipped:
                break
            if split == "cv":
                results[spec.name].append(PooledRun(spec.name, int(seed), parts,
                                                    seconds=sum(p.seconds for p in parts)))
            else:
                results[spec.name].extend(parts)
    return {k: v for k, v in results.items() if v}, records


def _wandb_node(cfg: DictConfig) -> DictConfig | None:
    """The benchmark's W&B logger config, if it has one."""
    for node in (cfg.get("logger") or {}).values():
        if node is not None and "wandb" in str(node.get("_target_", "")).lower():
            return node
    return None


def log_to_wandb(cfg: DictConfig, table: pd.DataFrame, plots: dict[str, Path]) -> bool:
    """The benchmark's summary run, in the group of its (model, seed) runs: its config, the table
    (``wandb.Table``) and the plots (``wandb.Image``); when a W&B logger is configured."""
    node = _wandb_node(cfg)
    if node is None:
        return False
    import wandb

    from bamir.config import instantiate

    Path(str(node.get("save_dir", "."))).mkdir(parents=True, exist_ok=True)
    logger = instantiate(node, group=wandb_group(cfg), name="summary", job_type=str(cfg.task_name))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    payload: dict[str, Any] = {"benchmark/table": wandb.Table(dataframe=table)}
    payload.update({f"benchmark/{name}": wandb.Image(str(path)) for name, path in plots.items()})
    logger.experiment.log(payload)
    logger.experiment.finish()
    return True


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Run ``conf/benchmark.yaml``: every run x seed, then the table, the plots and the W&B log.

    Returns ``{"table": DataFrame (long), "markdown": str, "output_dir": Path, "runs": {name: [RunScores]},
    "files": {name: Path}}`` (``split: cv``: runs ``{name: [PooledRun]}`` and ``"folds"``: :func:`fold_table`).
    """
    benchmark_split(cfg)  # a misspelt split is refused before any work
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs, records = execute_runs(cfg, output_dir)
    pd.DataFrame(records).to_csv(output_dir / "runs.csv", index=False)
    reference = cfg.get("reference")
    if reference not in runs:
        fallback = next((n for n in runs if n.startswith("bamir")), None)
        if reference:
            log.warning("benchmark: reference %r has no runs; using %r", reference, fallback)
        reference = fallback
    boot = cfg.get("bootstrap") or {}
    level = float(boot.get("level", 0.95))
    table = summarise(runs, reference, list(cfg.get("metrics") or METRICS), samples=int(boot.get("samples", 2000)),
                      seed=int(boot.get("seed", 0)), level=level)
    split = benchmark_split(cfg)
    markdown = markdown_table(table, level, split)
    files = {"markdown": output_dir / "benchmark.md", "csv": output_dir / "benchmark.csv",
             "runs": output_dir / "runs.csv"}
    folds = None
    if split == "cv":
        folds = fold_table(runs, list(dict.fromkeys(table["metric"])))
        files["folds"] = output_dir / "folds.csv"
        folds.to_csv(files["folds"], index=False)
        markdown += "\n" + markdown_fold_table(folds)
    files["markdown"].write_text(markdown)
    table.to_csv(files["csv"], index=False)
    plots: dict[str, Path] = {}
    plot_cfg = cfg.get("plots") or {}
    if plot_cfg.get("enabled", True):
        plots["recall_at_k"] = plot_recall_curves(runs, output_dir / "recall_at_k.png", int(plot_cfg.get("max_k", 100)),
                                                  split)
        plots["category_auc"] = plot_category_auc(runs, output_dir / "category_auc.png")
        plots["score_distributions"] = plot_score_distributions(runs, output_dir / "score_distributions.png")
        category_auc(runs).to_csv(output_dir / "category_auc.csv")
    files.update(plots)
    log_to_wandb(cfg, table, plots)
    print(markdown)
    log.info("benchmark written to %s", output_dir)
    return {"table": table, "markdown": markdown, "output_dir": output_dir, "runs": runs, "files": files,
            "folds": folds}
