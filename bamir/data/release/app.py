"""``bamir-import-release``'s job: check the asked dtype, import (:func:`~bamir.data.release.importer.import_release`)
and print what the store holds."""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig

from bamir.data.release.importer import import_release
from bamir.store import FeatureStore


def import_task(cfg: DictConfig) -> FeatureStore:
    """Import ``cfg.src`` into ``cfg.dst`` (``feature_dtype``, ``split``, ``overwrite``) and print its summary."""
    dtype = getattr(torch, str(cfg.get("feature_dtype", "float32")), None)
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise ValueError(f"feature_dtype={cfg.feature_dtype!r} is not a floating torch dtype")
    started = time.perf_counter()
    store = import_release(Path(cfg.src), Path(cfg.dst), feature_dtype=dtype, split=str(cfg.split),
                           foreign=cfg.overwrite)
    print(summary(store, time.perf_counter() - started))
    return store


def summary(store: FeatureStore, seconds: float | None = None) -> str:
    """A few lines describing an imported store: accounts, modalities, pairs, splits, categories."""
    accounts = store.accounts
    kinds = accounts["kind"].value_counts()
    dataset = store.manifest.get("dataset", {})
    lines = [
        f"feature store {store.root}" + (f" ({seconds:.1f} s)" if seconds is not None else ""),
        f"  accounts:   {len(accounts)} ({kinds.get('brand', 0)} brands, {kinds.get('influencer', 0)} influencers)",
    ]
    for name in store.modalities:
        record = store.record(name)
        counts = record.get("counts", {})
        extra = ""
        if counts.get("overlap_rows"):
            extra = f", {counts['overlap_rows']} shared influencers from the test files ({counts['overlap_rows_differ']} differ)"
        lines.append(f"  modality:   {name:<8} dim {record['dim']:>5}, present {record['present']}/{record['rows']}{extra}")
    counts = dataset.get("counts", {})
    lines.append(
        f"  pairs:      {counts.get('train_pairs', '?')} training, {counts.get('test_pairs', '?')} test"
    )
    for name, split in store.splits.items():
        lines.append(
            f"  split {name}: {len(split['train_brands'])} train brands, {len(split['test_brands'])} test brands, "
            f"{len(split['test_candidates'])} test candidates"
        )
    for name in store.triplet_sets:
        lines.append(f"  triplets:   {name}: {store.manifest['triplets'][name]['rows']}")
    categories = dataset.get("categories", {})
    if categories.get("inferred"):
        lines.append(
            f"  categories: {categories['groups']} groups inferred (sizes {categories['group_sizes']}); "
            f"{categories['train_brands_labelled']} train and {categories['test_brands_labelled']} test brands labelled; "
            f"the release names {len(categories.get('names', []))} categories"
        )
    elif categories:
        lines.append(f"  categories: not inferred ({categories.get('note')})")
    return "\n".join(lines)
