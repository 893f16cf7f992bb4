"""Writing a read release as a feature store, in named steps: where each account goes
(:func:`account_layout`), the accounts table with inferred categories (:func:`accounts_table`),
pairs and split (:func:`pairs_and_split`), the modality matrices (:func:`modality_matrices`),
the release's triplets as store rows (:func:`triplet_rows`), the manifest's dataset record
(:func:`dataset_record`), then :func:`write_store` (built beside the destination, swapped in)."""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bamir.data.release.categories import CategoryInference, infer_categories
from bamir.data.release.layout import (DEFAULT_SPLIT, HARD_POSITION, IMAGE_DIM, INF_LIST, NEGATIVES_PER_POSITIVE,
                                       OBJECT_DIM, TRIPLET_FILE, TRIPLET_SET, ReleaseError, inf_image_file, side_files)
from bamir.data.release.reader import Release, read_release
from bamir.ownership import RELEASE_STORE, OwnershipError, built_beside, check_target
from bamir.store import FeatureStore, StoreError
from bamir.utils import stable_hash

#: the ``importer`` every imported modality's config names (a store's freshness depends on it)
IMPORTER = "bamir.data.release"


def import_release(
    src: str | Path,
    dst: str | Path,
    *,
    feature_dtype: torch.dtype = torch.float32,
    split: str = DEFAULT_SPLIT,
    foreign: bool = False,
) -> FeatureStore:
    """Read the release folder ``src``, check it, and write it as a feature store at ``dst``.

    Everything is read and checked before anything is written; the store is built in a
    temporary folder next to ``dst`` and moved into place at the end, so on any error
    ``dst`` is left as it was. An earlier import at ``dst`` is replaced; any other non-empty
    folder (a user's, another kind of bamir folder, an import holding the user's own files) is
    refused unless ``foreign`` (the app's ``overwrite=true``; :func:`bamir.ownership.check_target`).
    ``feature_dtype`` is the dtype the features are rounded to before writing (the store keeps float32).
    """
    if not (isinstance(feature_dtype, torch.dtype) and feature_dtype.is_floating_point):
        raise ValueError(f"feature_dtype must be a floating torch dtype, got {feature_dtype!r}")
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    try:
        check_target(dst, RELEASE_STORE, foreign=foreign)
    except OwnershipError as err:
        raise ReleaseError(str(err)) from None
    release = read_release(src)
    layout = account_layout(release)
    inference = brand_categories(release)
    accounts = accounts_table(release, layout, inference)
    pairs, splits, n_train_pairs = pairs_and_split(release, layout, split)
    modalities = modality_matrices(release, layout)
    triplets = triplet_rows(release, layout)
    dataset = dataset_record(release, layout, inference, split, n_train_pairs, len(pairs))
    try:
        with built_beside(dst, RELEASE_STORE, __name__) as tmp:
            store = FeatureStore.create(tmp, accounts, pairs, splits, dataset=dataset)
            for name, m in modalities.items():
                store.write_modality(
                    name, m["features"].to(feature_dtype), m["present"],
                    config={"importer": IMPORTER, "files": m["files"], "feature_dtype": str(feature_dtype)},
                    inputs_hash=stable_hash({f: release.file_hashes[f] for f in m["files"]}),
                    seconds=round(time.perf_counter() - started, 3), counts=m["counts"], skipped=m["skipped"],
                    note=m["note"],
                )
            store.write_triplets(TRIPLET_SET, triplets,
                                 note=f"{TRIPLET_FILE}: {len(triplets)} (brand, positive, negative) triplets as store rows")
    except StoreError as err:
        raise ReleaseError(f"{src}: the store rejected the import: {err}") from err
    return FeatureStore(dst)


@dataclass
class AccountLayout:
    """Where the release's accounts go: brands, then influencers, of either side, each in global-index order."""

    brand_globals: list[int]
    inf_globals: list[int]
    ids: list[str]
    usernames: list[str]
    brand_row: dict[int, int]  # global brand index -> store row
    inf_row: dict[int, int]  # global influencer index -> store row

    @property
    def n(self) -> int:
        return len(self.ids)


def account_layout(release: Release) -> AccountLayout:
    """Store rows and ids. An id is the username, prefixed ``brand:`` / ``influencer:`` only where a brand
    and an influencer share a name in the release's full name lists (so an account keeps its id whether
    or not the test side is present)."""
    sides = _sides(release)
    brand_globals = sorted({g for s in sides for g in s.brand_index})
    inf_globals = sorted({g for s in sides for g in s.inf_index})
    b_names = [release.brands[g] for g in brand_globals]
    i_names = [release.influencers[g] for g in inf_globals]
    shared = set(release.brands) & set(release.influencers)
    ids = [f"brand:{n}" if n in shared else n for n in b_names] + [f"influencer:{n}" if n in shared else n for n in i_names]
    return AccountLayout(brand_globals, inf_globals, ids, b_names + i_names,
                         {g: r for r, g in enumerate(brand_globals)},
                         {g: len(brand_globals) + r for r, g in enumerate(inf_globals)})


def brand_categories(release: Release) -> CategoryInference:
    """:func:`infer_categories` from the triplets; a test brand is placed through its positives that are
    also training influencers."""
    train, test = release.train, release.test
    test_brands_of: dict[int, set[int]] = {}
    if test is not None:
        train_inf_row = {g: r for r, g in enumerate(train.inf_index)}
        for col, g in enumerate(test.inf_index):
            if g in train_inf_row:
                test_brands_of[train_inf_row[g]] = set(np.nonzero(release.test_labels[:, col])[0].tolist())
    return infer_categories(release.triplets, len(train.brand_index),
                            n_test_brands=len(test.brand_index) if test is not None else 0, test_brands_of=test_brands_of)


def accounts_table(release: Release, layout: AccountLayout, inference: CategoryInference) -> pd.DataFrame:
    """``account_id, username, kind, category`` (``inferred-NN``, or '' where a brand is not linked)."""
    category = [""] * layout.n
    for side, groups in ((release.train, inference.train_groups), (release.test, inference.test_groups)):
        if side is not None:
            for r, g in enumerate(side.brand_index):
                category[layout.brand_row[g]] = f"inferred-{groups[r]:02d}" if groups[r] >= 0 else ""
    n_brands = len(layout.brand_globals)
    accounts = pd.DataFrame({"account_id": layout.ids, "username": layout.usernames,
                             "kind": ["brand"] * n_brands + ["influencer"] * (layout.n - n_brands), "category": category})
    if accounts["account_id"].duplicated().any():
        dup = accounts["account_id"][accounts["account_id"].duplicated()].iloc[0]
        raise ReleaseError(f"{release.src / INF_LIST}: account id {dup!r} is not unique after disambiguation")
    return accounts


def pairs_and_split(release: Release, layout: AccountLayout, split: str) -> tuple[pd.DataFrame, dict, int]:
    """The distinct (brand, positive) of the triplet file, then the test label matrix's positives; the
    split (training brands; test brands and candidates); how many pairs are training pairs."""
    train, test = release.train, release.test
    train_b = [layout.ids[layout.brand_row[g]] for g in train.brand_index]
    train_i = [layout.ids[layout.inf_row[g]] for g in train.inf_index]
    distinct = list(dict.fromkeys(map(tuple, release.triplets[:, :2].tolist())))
    pair_rows = [(train_b[b], train_i[p]) for b, p in distinct]
    n_train_pairs = len(pair_rows)
    test_b = test_i = []
    if test is not None:
        test_b = [layout.ids[layout.brand_row[g]] for g in test.brand_index]
        test_i = [layout.ids[layout.inf_row[g]] for g in test.inf_index]
        pair_rows += [(test_b[b], test_i[p]) for b, p in zip(*np.nonzero(release.test_labels))]
    splits = {split: {"train_brands": train_b, "test_brands": test_b, "test_candidates": test_i}}
    return pd.DataFrame(pair_rows, columns=["brand", "influencer"]), splits, n_train_pairs


def modality_matrices(release: Release, layout: AccountLayout) -> dict[str, dict[str, Any]]:
    """``topic``, ``concept``, ``object`` and ``scene`` as ``{features, present, files, counts, skipped, note}``.

    Float64 while assembling; the test files' rows come last, so a test candidate that is also a
    training influencer takes its test-file row (the published test protocol); the counts say how
    many such rows there were and how many differ from their training rows.
    """
    train, test = release.train, release.test
    sides = _sides(release)
    n_brands, n_infs = len(layout.brand_globals), len(layout.inf_globals)

    def parts(attr_b: str, attr_i: str) -> list[tuple[list[int], torch.Tensor]]:
        out = []
        for s in sides:
            out.append(([layout.brand_row[g] for g in s.brand_index], getattr(s, attr_b)))
            if attr_i and getattr(s, attr_i) is not None:
                out.append(([layout.inf_row[g] for g in s.inf_index], getattr(s, attr_i)))
        return out

    def overlap(attr: str) -> tuple[int, int, float]:
        if test is None or getattr(train, attr) is None or getattr(test, attr) is None:
            return 0, 0, 0.0
        return _overlap({g: r for r, g in enumerate(train.inf_index)}, {g: r for r, g in enumerate(test.inf_index)},
                        getattr(train, attr), getattr(test, attr))

    modalities: dict[str, dict[str, Any]] = {}
    for name, attr in (("topic", "lda"), ("concept", "concept")):
        features, present = _fill(layout.n, getattr(train, f"brand_{attr}").shape[1], parts(f"brand_{attr}", f"inf_{attr}"))
        rows, differ, max_diff = overlap(f"inf_{attr}")
        files = [side_files(s.name)[f"{k}_{attr}"] for s in sides for k in ("brand", "inf")]
        modalities[name] = dict(
            features=features, present=present, files=files,
            counts={"brands": n_brands, "influencers": n_infs, "overlap_rows": rows, "overlap_rows_differ": differ},
            skipped={},
            note=(f"from the release's {', '.join(files)}; {rows} influencers are in both the training files and "
                  f"the test files and take their test-file rows (published test protocol); {differ} of them "
                  f"differ from their training rows, max abs difference {max_diff:.3g}"
                  if test is not None else f"from the release's {', '.join(files)} (training side only)"),
        )
    has_inf_image = train.inf_image is not None
    image, image_present = _fill(layout.n, IMAGE_DIM, parts("brand_image", "inf_image" if has_inf_image else ""))
    rows, differ, max_diff = overlap("inf_image")
    image_files = [side_files(s.name)["brand_image"] for s in sides]
    if has_inf_image:
        image_files += [inf_image_file(s.name) for s in sides]
    where = "brands and influencers" if has_inf_image else "brands only (the release folder has no influencer image features)"
    for name, cols in (("object", slice(0, OBJECT_DIM)), ("scene", slice(OBJECT_DIM, IMAGE_DIM))):
        modalities[name] = dict(
            features=image[:, cols].contiguous(), present=image_present, files=image_files,
            counts={"brands": n_brands, "influencers": n_infs if has_inf_image else 0,
                    "overlap_rows": rows, "overlap_rows_differ": differ},
            skipped={} if has_inf_image else {"influencer_without_image_file": n_infs},
            note=f"columns {cols.start}..{cols.stop - 1} of the 1365-d image vectors in {', '.join(image_files)}; "
                 f"present for {where}"
                 + (f"; {rows} overlapping influencers take their test-file rows ({differ} differ, "
                    f"max abs difference {max_diff:.3g})" if rows else ""),
        )
    return modalities


def triplet_rows(release: Release, layout: AccountLayout) -> torch.Tensor:
    """The release's (brand, positive, negative) triplets ``[T, 3]`` as store rows."""
    if not len(release.triplets):
        return torch.zeros(0, 3, dtype=torch.int64)
    train = release.train
    brands = np.asarray([layout.brand_row[g] for g in train.brand_index])
    infs = np.asarray([layout.inf_row[g] for g in train.inf_index])
    t = release.triplets
    return torch.as_tensor(np.stack([brands[t[:, 0]], infs[t[:, 1]], infs[t[:, 2]]], axis=1))


def dataset_record(release: Release, layout: AccountLayout, inference: CategoryInference, split: str,
                   n_train_pairs: int, n_pairs: int) -> dict[str, Any]:
    """The manifest's ``dataset``: provenance, counts, the category inference and every file's hash."""
    train, test = release.train, release.test
    categories: dict[str, Any] = {
        "names": release.category_names,
        "inferred": inference.inferred,
        "groups": inference.n_groups,
        "group_sizes": inference.group_sizes,
        "train_brands_labelled": sum(g >= 0 for g in inference.train_groups),
        "test_brands_labelled": sum(g >= 0 for g in inference.test_groups),
        "stats": inference.stats,
        "note": (
            "the release gives only the category names, not which brand is in which: categories "
            f"'inferred-NN' are {inference.n_groups} groups of brands linked through the same-category "
            f"negative (position {HARD_POSITION + 1} of every {NEGATIVES_PER_POSITIVE}) of the triplet file, "
            "numbered by smallest training brand row; they are not mapped to names; '' = not linked"
            if inference.inferred else f"categories not inferred: {inference.reason}"
        ),
    }
    return {
        "name": "bamir-release",
        "source": "BAMIR public release, train_test_split/ (Gan et al. 2019 'discover' split)",
        "src": str(release.src.resolve()),
        "split": split,
        "test_side": test is not None,
        "influencer_image_features": train.inf_image is not None,
        "counts": {
            "brands": len(layout.brand_globals), "influencers": len(layout.inf_globals),
            "train_brands": len(train.brand_index), "train_influencers": len(train.inf_index),
            "test_brands": len(test.brand_index) if test else 0,
            "test_candidates": len(test.inf_index) if test else 0,
            "train_pairs": n_train_pairs, "test_pairs": n_pairs - n_train_pairs,
            "triplets": int(len(release.triplets)),
            "influencers_in_both_splits": len(set(train.inf_index) & set(test.inf_index)) if test else 0,
        },
        "categories": categories,
        "files": dict(sorted(release.file_hashes.items())),
    }


def _sides(release: Release) -> list:
    return [release.train] + ([release.test] if release.test is not None else [])


def _fill(n: int, dim: int, parts: list[tuple[list[int], torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A float64 [n, dim] matrix and present mask from (store rows, source rows) parts; later parts win."""
    out = torch.zeros(n, dim, dtype=torch.float64)
    present = torch.zeros(n, dtype=torch.bool)
    for rows, values in parts:
        index = torch.as_tensor(rows, dtype=torch.long)
        out[index] = values.to(torch.float64)
        present[index] = True
    return out, present


def _overlap(train_rows: dict[int, int], test_rows: dict[int, int], a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, float]:
    """Overlapping accounts (by global index), how many rows differ, max abs difference."""
    common = sorted(set(train_rows) & set(test_rows))
    if not common:
        return 0, 0, 0.0
    x = a[[train_rows[g] for g in common]].to(torch.float64)
    y = b[[test_rows[g] for g in common]].to(torch.float64)
    diff = (x - y).abs()
    return len(common), int((diff > 0).any(dim=1).sum()), float(diff.max())
