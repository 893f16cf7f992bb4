"""Recording a run's evaluated score matrix (:class:`ScoreRecorder`) and the per-brand statistics
of a (model, seed), pooled over folds under cross-validation (:class:`RunScores`, :class:`PooledRun`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence

import lightning as L
import torch
from torch import Tensor

from bamir.metrics import per_query_metrics


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
    split: str = "test"  # the split the scores were recorded on (ScoreRecorder's split)

    @classmethod
    def load(cls, path: str | Path, name: str, seed: int, **extra) -> "RunScores":
        record = torch.load(path, weights_only=True)
        return cls(name, seed, record["scores"], record["labels"], record["hard_negatives"], record["brands"],
                   record["candidates"], list(record.get("categories") or []), split=str(record.get("split", "test")),
                   **extra)

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


def same_layout(a: RunScores | PooledRun, b: RunScores | PooledRun) -> bool:
    """Whether two rows scored the same brands against the same candidates (fold by fold)."""
    la, lb = a.layout(), b.layout()
    return len(la) == len(lb) and all(torch.equal(x[0], y[0]) and torch.equal(x[1], y[1]) for x, y in zip(la, lb))


def seed_ensemble(runs: Sequence[RunScores | PooledRun], name: str) -> RunScores | PooledRun:
    """A seed ensemble of one model: its seeds' score matrices averaged entry by entry (fold by fold
    under cross-validation), as one row ``name`` of one seed (0). The seeds must have scored the
    same brands and candidates; an average of the raw scores keeps the scale the global AUC compares."""
    if not runs:
        raise ValueError(f"{name}: no seeds to average")
    first = runs[0]
    for run in runs[1:]:
        if not same_layout(run, first):
            raise ValueError(f"{name}: seed {run.seed} scored other brands or candidates than seed {first.seed}")

    return _averaged(runs, name, lambda scores: scores.float())


def model_fusion(rows: Sequence[Sequence[RunScores | PooledRun]], name: str) -> RunScores | PooledRun:
    """An equal-weight fusion of several models: each model's seed ensemble (:func:`seed_ensemble`),
    standardised per brand (``z = (s - mean_c s) / std_c s`` over the brand's candidates, so that
    models on other scales weigh alike), then averaged entry by entry, fold by fold. Nothing is
    fitted or chosen: the weights are equal. The models must have scored the same brands and candidates."""
    if len(rows) < 2:
        raise ValueError(f"{name}: a fusion needs at least two models")
    ensembles = [seed_ensemble(runs, name) for runs in rows]
    first = ensembles[0]
    for runs, ensemble in zip(rows[1:], ensembles[1:]):
        if not same_layout(ensemble, first):
            raise ValueError(f"{name}: {runs[0].name} scored other brands or candidates than {rows[0][0].name}")

    def standardised(scores: Tensor) -> Tensor:
        scores = scores.double()
        spread = scores.std(dim=1, keepdim=True)
        return (scores - scores.mean(dim=1, keepdim=True)) / torch.where(spread > 0, spread, torch.ones_like(spread))

    return _averaged(ensembles, name, standardised)


def _averaged(runs: Sequence[RunScores | PooledRun], name: str,
              transform: Callable[[Tensor], Tensor]) -> RunScores | PooledRun:
    """Row ``name`` (seed 0) scored by the mean of ``transform(scores)`` over ``runs``, fold by fold."""
    first = runs[0]

    def mean(parts: Sequence[RunScores]) -> RunScores:
        part = parts[0]
        scores = torch.stack([transform(p.scores) for p in parts]).mean(0).float()
        return RunScores(name, 0, scores, part.labels, part.hard_negatives, part.brands, part.candidates,
                         list(part.categories), seconds=sum(p.seconds for p in parts))

    folds = [mean([run.parts[k] for run in runs]) for k in range(len(first.parts))]
    if isinstance(first, PooledRun):
        return PooledRun(name, 0, folds, seconds=sum(f.seconds for f in folds))
    return folds[0]


def add_fusions(runs: dict[str, list], fusions: Any) -> None:
    """Add to ``runs`` one row per ``{name: [row, ...]}`` of ``fusions``: :func:`model_fusion` of those rows."""
    for name, members in (fusions or {}).items():
        missing = [m for m in members if m not in runs]
        if missing:
            raise ValueError(f"fusion {name}: {missing} are not rows; the rows are {sorted(runs)}")
        runs[str(name)] = [model_fusion([runs[m] for m in members], str(name))]


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
