"""Oracle ranker: the planted brand-influencer affinity of synthetic data.

Synthetic stores keep the affinity the positives were drawn from (``store.load_tensors(
"planted_affinity")``: ``affinity [n_brands, n_influencers]``, with ``brand_rows`` and
``influencer_rows``, the account rows of its rows and columns)::

    s(b, i) = A[brand_index(b), influencer_index(i)]

It is the upper reference for a learned ranker on synthetic data (its scores include the
pair noise the positives were drawn with). On a store without the affinity (real data) it
raises :class:`OracleUnavailable`, a :class:`~bamir.store.StoreError`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from bamir.models.base import RankingModule
from bamir.store import FeatureStore, StoreError


class OracleUnavailable(StoreError):
    """The feature store has no planted affinity (it is not synthetic)."""


def load_affinity(store: FeatureStore, name: str = "planted_affinity") -> tuple[Tensor, Tensor, Tensor]:
    """``(affinity [nb, ni], brand_rows [nb], influencer_rows [ni])`` of a synthetic store.

    Without ``brand_rows`` / ``influencer_rows`` the rows and columns are taken to be the brands
    and the influencers in the store's account order.
    """
    if name not in (store.manifest.get("extras") or {}):
        raise OracleUnavailable(
            f"the oracle ranks by the planted affinity of synthetic data, and the store {store.root} has none "
            f"(no extras {name!r}; it has {sorted(store.manifest.get('extras') or {})}). "
            "Use it on a planted or synthetic store (dataset=planted)."
        )
    tensors = store.load_tensors(name)
    affinity = tensors["affinity"].float()
    kind = store.accounts["kind"].to_numpy()
    brand_rows = tensors.get("brand_rows")
    influencer_rows = tensors.get("influencer_rows")
    if brand_rows is None:
        brand_rows = torch.tensor((kind == "brand").nonzero()[0])
    if influencer_rows is None:
        influencer_rows = torch.tensor((kind != "brand").nonzero()[0])
    if tuple(affinity.shape) != (len(brand_rows), len(influencer_rows)):
        raise StoreError(f"{store.root}: {name!r} has shape {tuple(affinity.shape)} for "
                         f"{len(brand_rows)} brands x {len(influencer_rows)} influencers")
    return affinity, brand_rows.long(), influencer_rows.long()


class OracleRanker(RankingModule):
    """Scores = the planted affinity; no parameters, nothing to train.

    Args:
        input_dims: unused.
        store: the feature store folder (``${dataset.store}``); under a Trainer the data module's
            store is used. The affinity is loaded by :meth:`attach_data` (or :meth:`prepare`), not at
            construction, so the config instantiates anywhere.
        name: the store extras holding the affinity.

    Shapes: ``branch_scores(brands [B], candidates [C]) -> {"oracle": [B, C]}``.
    """

    def __init__(self, input_dims: dict[str, int] | None = None, store: str | None = None,
                 name: str = "planted_affinity", seed: int = 24, store_fingerprint: dict | None = None):
        super().__init__(seed=seed)
        self.save_hyperparameters()
        self.store_path, self.name = store, name
        self.ready = False

    @property
    def modalities(self) -> list[str]:
        return []  # it reads the planted affinity, no feature

    def attach_data(self, datamodule) -> None:
        if not self.ready:
            self.prepare(datamodule.store)

    def prepare(self, store: FeatureStore) -> None:
        affinity, brand_rows, influencer_rows = load_affinity(store, self.name)
        n = store.num_accounts
        brand_index = torch.full((n,), -1, dtype=torch.long)
        brand_index[brand_rows] = torch.arange(len(brand_rows))
        influencer_index = torch.full((n,), -1, dtype=torch.long)
        influencer_index[influencer_rows] = torch.arange(len(influencer_rows))
        device = next((b.device for b in self.buffers()), torch.device("cpu"))
        for key, value in (("affinity", affinity), ("brand_index", brand_index),
                           ("influencer_index", influencer_index)):
            self.register_buffer(key, value.to(device), persistent=False)
        self.ready = True

    def ensure_prepared(self) -> None:
        """Load the affinity from ``store`` when no Trainer or :meth:`prepare` has."""
        if not self.ready:
            if self.store_path is None:
                raise RuntimeError(f"{type(self).__name__}: call prepare(store) or run it under a Trainer first")
            self.prepare(FeatureStore(self.store_path))

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        self.ensure_prepared()
        b, c = self.brand_index[brands], self.influencer_index[candidates]
        if (b < 0).any() or (c < 0).any():
            raise ValueError("oracle: some brands / candidates are not in the planted affinity's rows / columns")
        return {"oracle": self.affinity[b][:, c]}
