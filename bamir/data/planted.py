"""A small feature store with planted structure, for fast tests and quick runs.

Every account has a latent interest vector ``z`` (``latent_dim``). Brands sit near the centre
of their category; influencers are mixtures of category centres. The planted affinity of a
brand ``b`` and influencer ``i`` is ``<z_b, z_i> + noise``; each brand's positives are drawn
from its top candidates. Each modality sees the latent vector through its own random
projection, a nonlinearity and noise, and only a part of the latent dimensions, so no single
modality gives the answer away and fusing them helps::

    x_m = f_m(W_m (z * mask_m)) + sigma_m * eps

The split follows the "discover" protocol: brand-disjoint train / test brands, and every test
brand scored against the influencers of all test brands.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bamir.data.schema import CATEGORIES
from bamir.ownership import PLANTED_STORE, built_beside, check_target
from bamir.store import FeatureStore, StoreError
from bamir.utils import exclusive, stable_hash

DEFAULT_MODALITIES: dict[str, dict] = {
    "topic": {"dim": 19, "share": 0.6, "noise": 0.6, "simplex": True},
    "object": {"dim": 64, "share": 0.5, "noise": 0.8, "simplex": True},
    "scene": {"dim": 32, "share": 0.4, "noise": 0.8, "simplex": True},
    "concept": {"dim": 32, "share": 0.6, "noise": 0.6, "simplex": False},
    "interaction": {"dim": 8, "share": 0.2, "noise": 1.0, "simplex": False},
    "hashtag": {"dim": 32, "share": 0.5, "noise": 0.8, "simplex": False},
}


@dataclass
class PlantedSpec:
    """Settings of the planted store (see the module docstring)."""

    brands_per_category: int = 6
    influencers: int = 400
    positives_per_brand: int = 8
    test_fraction: float = 0.25
    latent_dim: int = 16
    affinity_noise: float = 0.5
    modalities: dict = field(default_factory=lambda: {k: dict(v) for k, v in DEFAULT_MODALITIES.items()})
    seed: int = 0


def make_planted_store(root: str | Path, spec: PlantedSpec | None = None, **overrides) -> FeatureStore:
    """Generate the planted store in ``root``; ``overrides`` replace fields of ``spec``.

    It is built beside ``root`` and swapped in, so a failure leaves an old ``root`` as it was.
    A non-empty ``root`` that is not a planted store bamir wrote, or that holds the user's own
    files, is refused (:func:`bamir.ownership.check_target`).
    """
    check_target(root, PLANTED_STORE)
    with built_beside(root, PLANTED_STORE, __name__) as tmp:
        _write_planted(tmp, replace(spec or PlantedSpec(), **overrides))
    return FeatureStore(root)


def _write_planted(root: Path, spec: PlantedSpec) -> None:
    """Write the planted store of ``spec`` into the empty folder ``root``."""
    config = {"generator": "planted", **asdict(spec)}
    categories = CATEGORIES
    brands_per_category, influencers = spec.brands_per_category, spec.influencers
    positives_per_brand, latent_dim = spec.positives_per_brand, spec.latent_dim
    rng = np.random.default_rng(spec.seed)
    n_cat = len(categories)
    n_brands = brands_per_category * n_cat

    centres = rng.normal(size=(n_cat, latent_dim))
    brand_cat = np.repeat(np.arange(n_cat), brands_per_category)
    z_brand = centres[brand_cat] + 0.5 * rng.normal(size=(n_brands, latent_dim))
    mixture = rng.dirichlet(np.full(n_cat, 0.3), size=influencers)
    z_inf = mixture @ centres + 0.5 * rng.normal(size=(influencers, latent_dim))

    affinity = z_brand @ z_inf.T / np.sqrt(latent_dim)
    affinity = affinity + spec.affinity_noise * rng.normal(size=affinity.shape)
    pool = max(positives_per_brand * 3, positives_per_brand)
    pairs: list[tuple[int, int]] = []
    for b in range(n_brands):
        top = np.argsort(-affinity[b])[:pool]
        weights = np.exp(affinity[b, top] - affinity[b, top].max())
        chosen = rng.choice(top, size=positives_per_brand, replace=False, p=weights / weights.sum())
        pairs.extend((b, int(i)) for i in chosen)

    brand_ids = [f"brand_{categories[c]}_{k:03d}" for k, c in enumerate(brand_cat)]
    inf_ids = [f"influencer_{i:05d}" for i in range(influencers)]
    accounts = pd.DataFrame(
        {
            "account_id": brand_ids + inf_ids,
            "username": brand_ids + inf_ids,
            "kind": ["brand"] * n_brands + ["influencer"] * influencers,
            "category": [categories[c] for c in brand_cat] + [""] * influencers,
        }
    )
    pair_frame = pd.DataFrame(
        {"brand": [brand_ids[b] for b, _ in pairs], "influencer": [inf_ids[i] for _, i in pairs]}
    )

    test_brands: list[int] = []
    for c in range(n_cat):  # stratified by category, as in the real split
        members = np.flatnonzero(brand_cat == c)
        k = max(1, int(round(spec.test_fraction * len(members))))
        test_brands.extend(rng.choice(members, size=k, replace=False).tolist())
    test_set = set(test_brands)
    candidates = sorted({i for b, i in pairs if b in test_set})
    splits = {
        "discover": {
            "train_brands": [brand_ids[b] for b in range(n_brands) if b not in test_set],
            "test_brands": [brand_ids[b] for b in sorted(test_set)],
            "test_candidates": [inf_ids[i] for i in candidates],
        }
    }
    store = FeatureStore.create(root, accounts, pair_frame, splits, dataset={"name": "planted", "config_hash": stable_hash(config), **config})
    z_all = np.concatenate([z_brand, z_inf])
    for name, m in spec.modalities.items():
        keep = rng.random(latent_dim) < m["share"]
        keep[rng.integers(latent_dim)] = True
        weight = rng.normal(size=(latent_dim, m["dim"])) / np.sqrt(latent_dim)
        x = np.tanh((z_all * keep) @ weight) + m["noise"] * rng.normal(size=(len(z_all), m["dim"]))
        if m["simplex"]:
            x = np.exp(2 * x)
            x = x / x.sum(axis=1, keepdims=True)
        store.write_modality(name, torch.from_numpy(x.astype(np.float32)), config={"planted": m, "seed": spec.seed})
    store.write_tensors("planted_affinity", {
        "affinity": torch.from_numpy(affinity.astype(np.float32)),
        "brand_rows": torch.arange(n_brands),
        "influencer_rows": torch.arange(n_brands, n_brands + influencers),
    }, note="the planted brand x influencer affinity, for the oracle ranking")


def ensure_planted_store(root: str | Path, **overrides) -> FeatureStore:
    """Load the planted store at ``root`` if it was made with the same settings, else (re)make it."""
    spec = replace(PlantedSpec(), **overrides)
    wanted = stable_hash({"generator": "planted", **asdict(spec)})

    def fresh() -> FeatureStore | None:
        try:
            store = FeatureStore(root)
        except StoreError:
            return None
        return store if store.manifest["dataset"].get("config_hash") == wanted else None

    if (store := fresh()) is not None:
        return store
    with exclusive(root, "planted store"):
        store = fresh()  # another process may have made it while we waited
        return store if store is not None else make_planted_store(root, spec)
