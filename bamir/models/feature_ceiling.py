"""Feature ceiling: the planted affinity read out linearly from the features (synthetic data only).

How much of the oracle a store's features can express at all. For each brand ``b`` a ridge
regression maps an influencer's features ``x_i`` (the concatenated modalities) to the
brand's planted affinity ``A[b, i]``, and its prediction is the score::

    w_b = argmin_w  sum_{i in F} (x_i . w - A[b, i])^2 + alpha |w|^2,      s(b, i) = x_i . w_b

Cross-fitted: the candidates are split into ``folds`` parts and the read-out that scores a
part is fitted on every influencer of the affinity outside that part (``F``), so no
candidate's own affinity enters its score. It cheats twice (it knows every evaluated
brand's true affinity and fits one read-out per brand), so a ranker that sees the same
features and only the training pairs should not be expected to beat it: ``oracle - ceiling``
is what the features lose of the affinity, ``ceiling - model`` what learning loses. It is a
bound only for rankers linear in these features.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bamir.models.oracle import OracleRanker


def read_modalities(input_dims: dict[str, int] | None, modalities: list[str] | None, who: str) -> list[str]:
    """The modalities a read-out uses: ``modalities``, or every one of the store (``input_dims``); refused,
    naming ``who``, when the store lacks one or has none."""
    wanted = list(modalities) if modalities is not None else sorted(input_dims or {})
    missing = [m for m in wanted if m not in (input_dims or {})]
    if missing or not wanted:
        raise ValueError(f"{who}: the store lacks {missing or 'every modality'} (it has {sorted(input_dims or {})})")
    return wanted


class FeatureCeilingRanker(OracleRanker):
    """Cross-fitted ridge read-out of the planted affinity from the features; nothing to train.

    Args:
        input_dims: ``{modality: dim}`` of the attached store.
        modalities: the modalities to read from (None: every one in ``input_dims``).
        alpha: the ridge penalty (on standardised features, ``data.standardize=true``).
        folds: cross-fitting folds over the candidates.
        store, name: where the planted affinity is (see :class:`~bamir.models.oracle.OracleRanker`).

    Shapes: ``branch_scores(brands [B], candidates [C]) -> {"feature_ceiling": [B, C]}``.
    """

    def __init__(self, input_dims: dict[str, int] | None = None, modalities: list[str] | None = None,
                 alpha: float = 100.0, folds: int = 2, store: str | None = None, name: str = "planted_affinity",
                 seed: int = 24, store_fingerprint: dict | None = None):
        super().__init__(input_dims=input_dims, store=store, name=name, seed=seed, store_fingerprint=store_fingerprint)
        self.save_hyperparameters()
        self.used = read_modalities(input_dims, modalities, "feature ceiling")
        self.alpha, self.folds = float(alpha), int(folds)

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        rows = self.influencer_rows()
        affinity = super().branch_scores(brands, rows)["oracle"].double()  # [B, n]
        x = torch.cat([self.features(m, rows) for m in self.used], dim=1).double()  # [n, d]
        columns = self.influencer_index[candidates]
        scores = torch.empty((len(brands), len(candidates)), dtype=torch.float64, device=x.device)
        eye = torch.eye(x.shape[1], dtype=x.dtype, device=x.device)
        for fold in torch.arange(len(candidates), device=x.device).chunk(self.folds):
            fit = torch.ones(x.shape[0], dtype=torch.bool, device=x.device)
            fit[columns[fold]] = False
            xf = x[fit]
            weights = torch.linalg.solve(xf.T @ xf + self.alpha * eye, xf.T @ affinity[:, fit].T)  # [d, B]
            scores[:, fold] = (x[columns[fold]] @ weights).T
        return {"feature_ceiling": scores.float()}

    def influencer_rows(self) -> Tensor:
        """Account rows of the affinity's columns, in column order."""
        rows = (self.influencer_index >= 0).nonzero().flatten()
        return rows[self.influencer_index[rows].argsort()]
