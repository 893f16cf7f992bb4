"""Affinity transfer: an evaluated brand's planted affinity predicted from its own features
(synthetic data only).

How well the planted affinity can be inferred for a brand never seen, from its features alone,
by a read-out linear in each side's features. One bilinear read-out is fitted by ridge regression
on the fitting brands' planted affinity over the training pool, and scores every brand::

    W = argmin_W  sum_{b in T} sum_{i in P} (x_b' W z_i - A[b, i])^2 + alpha |W|_F^2,      s(b, i) = x_b' W z_i

``T``: the fitting brands, ``P``: the training pool (the influencers of the fitting pairs), ``x``
and ``z`` the concatenated features of a brand and of an influencer, each with a constant 1
appended (so ``W`` holds brand-only and candidate-only terms too). In closed form, with the thin
SVDs ``X_T = U S V'`` and ``Z_P = Q R Y'``: ``W = V M Y'``, ``M_jk = s_j r_k (U' A Q)_jk / (s_j^2 r_k^2 + alpha)``.

It cheats on the training side only (each fitting brand's whole affinity, far more than its
positives) and never reads an evaluated brand's or a candidate's affinity. The
:mod:`~bamir.models.feature_ceiling` is linear too but reads each evaluated brand's own affinity, so
``feature ceiling - affinity transfer`` is what inferring a brand from its features costs a linear
read-out. A non-linear ranker learned from the positives alone (BAMIR) can beat it.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bamir.models.feature_ceiling import read_modalities
from bamir.models.oracle import OracleRanker


class AffinityTransferRanker(OracleRanker):
    """Bilinear ridge read-out of the fitting brands' planted affinity; nothing to train.

    Args:
        input_dims: ``{modality: dim}`` of the attached store.
        modalities: the modalities to read from, on both sides (None: every one in ``input_dims``).
        alpha: the ridge penalty (on standardised features, ``data.standardize=true``).
        store, name: where the planted affinity is (see :class:`~bamir.models.oracle.OracleRanker`).

    Shapes: ``branch_scores(brands [B], candidates [C]) -> {"affinity_transfer": [B, C]}``.
    """

    def __init__(self, input_dims: dict[str, int] | None = None, modalities: list[str] | None = None,
                 alpha: float = 1.0e6, store: str | None = None, name: str = "planted_affinity",
                 seed: int = 24, store_fingerprint: dict | None = None):
        super().__init__(input_dims=input_dims, store=store, name=name, seed=seed, store_fingerprint=store_fingerprint)
        self.save_hyperparameters()
        self.used, self.alpha = read_modalities(input_dims, modalities, "affinity transfer"), float(alpha)
        self.fitting: tuple[Tensor, Tensor] | None = None
        self.read_out: tuple[Tensor, Tensor, Tensor] | None = None

    @property
    def modalities(self) -> list[str]:
        return list(self.used)

    def attach_data(self, datamodule) -> None:
        super().attach_data(datamodule)
        data = datamodule.train_data
        self.set_fitting(torch.unique(data.brands), data.pool)

    def set_fitting(self, brands: Tensor, pool: Tensor) -> None:
        """The fitting brands ``[T]`` and the training pool ``[P]`` (account rows) the read-out is fitted on."""
        self.fitting, self.read_out = (brands.long().cpu(), pool.long().cpu()), None

    def inputs(self, rows: Tensor) -> Tensor:
        """``[n, d + 1]``: the used modalities' features of ``rows``, then a constant 1."""
        x = torch.cat([self.features(m, rows) for m in self.used], dim=1).double()
        return torch.cat([x, torch.ones(len(rows), 1, dtype=x.dtype, device=x.device)], dim=1)

    def fit(self) -> tuple[Tensor, Tensor, Tensor]:
        """``(V, M, Y)`` of ``W = V M Y'`` (module docstring)."""
        if self.fitting is None:
            raise RuntimeError("affinity transfer: the fitting brands and pool are unknown: attach_data(datamodule) "
                               "or set_fitting() first")
        self.ensure_prepared()
        device = self.affinity.device
        brands, pool = (t.to(device) for t in self.fitting)
        b, i = self.brand_index[brands], self.influencer_index[pool]
        if (b < 0).any() or (i < 0).any():
            raise ValueError("affinity transfer: some fitting brands / pool influencers are not in the planted "
                             "affinity's rows / columns")
        u, s, v = torch.linalg.svd(self.inputs(brands), full_matrices=False)
        q, r, y = torch.linalg.svd(self.inputs(pool), full_matrices=False)
        target = u.T @ self.affinity[b][:, i].double() @ q  # [rank_x, rank_z]
        sr = s[:, None] * r[None, :]
        return v.T, sr * target / (sr ** 2 + self.alpha), y.T

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        if self.read_out is None:
            self.read_out = self.fit()
        v, m, y = self.read_out
        scores = (self.inputs(brands) @ v) @ m @ (self.inputs(candidates) @ y).T
        return {"affinity_transfer": scores.float()}
