"""Popularity ranker: every brand gets the same ranking, by how popular an influencer is.

    s(b, i) = pop(i)

``pop`` comes from one of two sources (``source``):

- ``feature``: a named column of a modality (default: ``log_followers`` of the ``interaction``
  modality, whose record lists its column names; ``engagement`` is the other natural choice).
  The interaction columns are standardised, an increasing map, so the ranking is that of the
  raw followers / engagement.
- ``degree``: the number of training brands the influencer is linked to (training positives
  of the data module's fit brands only, so validation and test links never leak in).

``auto`` (default) takes ``feature`` when the store has the column, else ``degree``; the run log
and :attr:`PopularityRanker.source_used` say which. On the planted stores (no named columns)
it is ``degree``. Ties (e.g. the many candidates never seen in training) get the pessimistic
rank of the evaluation, so a popularity ranker earns no credit from them.
"""

from __future__ import annotations

import logging

import torch
from torch import Tensor

from bamir.models.base import RankingModule

log = logging.getLogger(__name__)


def training_degree(brands: Tensor, influencers: Tensor, num_accounts: int) -> Tensor:
    """``[N]`` number of distinct training brands linked to each account."""
    keys = torch.unique(brands.long() * num_accounts + influencers.long())
    return torch.bincount(keys % num_accounts, minlength=num_accounts).float()


def modality_columns(store, modality: str) -> list[str] | None:
    """Column names of a store modality when its record lists them (``config.features``)."""
    try:
        config = store.record(modality).get("config") or {}
    except Exception:  # noqa: BLE001 - no such modality
        return None
    names = config.get("features")
    return list(names) if isinstance(names, (list, tuple)) and all(isinstance(n, str) for n in names) else None


class PopularityRanker(RankingModule):
    """Brand-independent popularity scores; no parameters, nothing to train.

    Args:
        input_dims: ``{modality: dim}`` of the attached store.
        source: ``auto``, ``feature`` or ``degree`` (see the module docstring).
        modality: the modality holding the popularity column.
        column: the column name (``log_followers``, ``engagement``, ...) or index.

    The popularity vector is taken in :meth:`setup` from the trainer's data module (or given with
    :meth:`prepare`). Shapes: ``branch_scores(brands [B], candidates [C]) -> {"popularity": [B, C]}``.
    """

    def __init__(self, input_dims: dict[str, int] | None = None, source: str = "auto",
                 modality: str = "interaction", column: str | int = "log_followers",
                 seed: int = 24, store_fingerprint: dict | None = None):
        super().__init__(seed=seed)
        if source not in ("auto", "feature", "degree"):
            raise ValueError(f"popularity source {source!r}: use auto, feature or degree")
        self.save_hyperparameters()
        self.source, self.modality, self.column = source, modality, column
        self.source_used: str | None = None

    @property
    def modalities(self) -> list[str]:
        return []  # a brand's score vector is all ones: a new brand needs no features

    def attach_data(self, datamodule) -> None:
        if self.source_used is None:
            self.prepare(datamodule.store, datamodule.train_data)

    def _column_index(self, store) -> int | None:
        if isinstance(self.column, int):
            return self.column
        names = modality_columns(store, self.modality) if store is not None else None
        return names.index(self.column) if names and self.column in names else None

    def prepare(self, store, train_data) -> None:
        """Choose the source and compute ``pop`` for all accounts: ``store`` a FeatureStore (or None),
        ``train_data`` the data module's :class:`bamir.samplers.TrainingData`."""
        index = self._column_index(store) if self.modality in self.feature_names else None
        if self.source == "feature" and index is None:
            raise ValueError(
                f"popularity source=feature: the store has no column {self.column!r} in modality {self.modality!r} "
                f"(attached modalities {self.feature_names}; its columns: "
                f"{modality_columns(store, self.modality) if store is not None else None})"
            )
        device = next((b.device for b in self.buffers()), torch.device("cpu"))
        if self.source != "degree" and index is not None:
            pop = getattr(self, f"features_{self.modality}")[:, index].float()
            self.source_used = f"feature:{self.modality}.{self.column}"
        else:
            pop = training_degree(train_data.brands, train_data.positives, train_data.num_accounts)
            self.source_used = "degree"
        self.register_buffer("popularity", pop.to(device), persistent=False)
        log.info("popularity ranker: scores from %s", self.source_used)

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        return {"popularity": self._popularity(candidates).unsqueeze(0).expand(len(brands), -1)}

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        """Rank one: a brand is ``[1]``, a candidate ``[pop]``."""
        if side == "brand":
            return {"popularity": torch.ones(len(rows), 1, device=rows.device)}
        return {"popularity": self._popularity(rows)[:, None]}

    def _popularity(self, rows: Tensor) -> Tensor:
        if self.source_used is None:
            raise RuntimeError("popularity ranker: call prepare(store, train_data) or attach_data(datamodule) first")
        return self.popularity[rows]
