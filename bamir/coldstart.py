"""New brands (cold start): features for accounts the store has never seen, from the fitted stages.

``bamir-rank brand_posts=PATH`` ranks influencers for a brand given only its posts: a folder
in the raw layout (``accounts`` and ``posts`` tables, ``images/``; ``dataset.yaml``, pairs and
splits are not needed) or an instaloader download of the brand's profile. Its modality
vectors are computed with what ``bamir-prepare`` fitted on the training split and saved in
the store's work folders (the manifest's ``artifacts``), **never refitted**.

Each stage encodes them itself (``encode_new`` of :class:`bamir.features.base.Stage`, e.g. the
saved LDA infers the topic mix, the saved TF-IDF and SVD the hashtag vector, the image stages
run their model with the recorded settings; :data:`STAGE_CLASSES` names the stage of each
modality).

A stage's work folder is checked against the hashes the manifest recorded at preparation
time; a stage whose files changed, or a store with no fitted stages (the planted store, an
imported release) is refused with the reason.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping, Sequence

import pandas as pd
import torch

from bamir.data.schema import ACCOUNTS, COLUMNS, DATASET_FILE, POSTS, RawDataset, read_table
from bamir.features.base import RefitNeeded
from bamir.store import FeatureStore
from bamir.utils import file_hash

log = logging.getLogger(__name__)

#: the stage class that encodes each modality for new accounts (``encode_new``)
STAGE_CLASSES = {
    "topic": "bamir.features.topic.TopicStage",
    "hashtag": "bamir.features.hashtag.HashtagStage",
    "interaction": "bamir.features.interaction.InteractionStage",
    "concept": "bamir.features.concept.stage.ConceptStage",
    "object": "bamir.features.image.ObjectStage",
    "scene": "bamir.features.image.SceneStage",
}


class ColdStartError(ValueError):
    """A new brand cannot be featurised: the message says why (and what to do)."""


@dataclass
class NewAccounts:
    """Accounts outside the store: their raw data and their modality rows."""

    raw: RawDataset
    accounts: list[str]  # account ids, in row order
    features: dict[str, torch.Tensor]  # {modality: [n, dim]}
    present: dict[str, torch.Tensor]  # {modality: [n] bool}
    notes: dict[str, str]


# --------------------------------------------------------------------------- reading a brand folder
def load_brand_folder(path: str | Path, category: str | None = None) -> RawDataset:
    """A new brand's raw data: a folder in the raw layout, or an instaloader profile download.

    The raw layout needs ``accounts`` (exactly one ``kind == brand`` row, or a single account
    that is then taken as the brand) and ``posts`` tables; ``images/`` as referenced by the posts.
    An instaloader download is either the profile folder itself or a folder holding exactly one
    profile folder. ``category`` overrides (or supplies) the brand's category.
    """
    root = Path(path)
    if not root.is_dir():
        raise ColdStartError(f"brand_posts={path}: no such folder")
    try:
        accounts, posts = read_table(root, ACCOUNTS), read_table(root, POSTS)
    except FileNotFoundError:
        accounts = posts = None
    if accounts is None:
        profile_dir = _instaloader_folder(root)
        if profile_dir is None:
            raise ColdStartError(f"brand_posts={path}: neither the raw layout (accounts and posts tables) nor an "
                                 "instaloader profile download (<username>_<id>.json[.xz] and post files)")
        root, accounts, posts = _from_instaloader(profile_dir)
    brands = accounts[accounts["kind"].astype(str) == "brand"] if "kind" in accounts else accounts.iloc[:0]
    if len(brands) != 1:
        if len(accounts) == 1:
            brands = accounts.assign(kind="brand")
        else:
            raise ColdStartError(f"brand_posts={path}: expected one brand account, found {len(brands)} brands "
                                 f"among {len(accounts)} accounts")
    brand = brands.iloc[[0]].copy()
    for column, dtype in COLUMNS[ACCOUNTS].items():
        if column not in brand:
            brand[column] = 0 if dtype == "int64" else ""
    if category is not None:
        brand["category"] = category
    brand["kind"] = "brand"
    brand_id = str(brand["account_id"].iloc[0])
    missing = [c for c in ("account_id", "caption") if c not in posts]
    if missing:
        raise ColdStartError(f"brand_posts={path}: the posts table lacks {missing}")
    posts = posts[posts["account_id"].astype(str) == brand_id].copy()
    for column, dtype in COLUMNS[POSTS].items():
        if column not in posts:
            posts[column] = 0 if dtype == "int64" else ""
    if posts.empty:
        raise ColdStartError(f"brand_posts={path}: no posts of brand {brand_id!r}")
    info = {"name": f"new-brand-{brand_id}", "counts": {"posts": len(posts)}}
    if (root / DATASET_FILE).is_file():
        import yaml

        info = {**(yaml.safe_load((root / DATASET_FILE).read_text()) or {}), **info}
    return RawDataset(root=root, info=info, accounts=brand.reset_index(drop=True), posts=posts.reset_index(drop=True),
                      pairs=pd.DataFrame(columns=["brand", "influencer"]), splits={})


def _instaloader_folder(root: Path) -> Path | None:
    def looks_like_profile(folder: Path) -> bool:
        return any(p.name.endswith((".json", ".json.xz")) for p in folder.iterdir() if p.is_file())
    if looks_like_profile(root):
        return root
    subdirs = [p for p in root.iterdir() if p.is_dir()]
    if len(subdirs) == 1 and looks_like_profile(subdirs[0]):
        return subdirs[0]
    return None


def _from_instaloader(folder: Path) -> tuple[Path, pd.DataFrame, pd.DataFrame]:
    from bamir.data.importers.instaloader import read_profile

    prof = read_profile(folder)
    account = prof["username"]
    accounts = pd.DataFrame([{"account_id": account, "username": account, "kind": "brand", "category": "",
                              "biography": prof["biography"], "business_category": prof["business_category"],
                              "followers": prof["followers"]}])
    rows = []
    for post in prof["posts"]:
        image = str(post["image"].relative_to(folder)) if post["image"] is not None else ""
        rows.append({"post_id": post["shortcode"] or f"{account}_{post['stamp']}", "account_id": account,
                     "timestamp": post["timestamp"], "caption": post["caption"], "image": image,
                     "likes": post["likes"], "comments": post["comments"]})
    return folder, accounts, pd.DataFrame(rows, columns=list(COLUMNS[POSTS]))


# --------------------------------------------------------------------------- fitted stages
def fitted_workdir(store: FeatureStore, modality: str) -> tuple[str, Path]:
    """(stage name, work folder) of the preparation stage that wrote ``modality``; files checked
    against the hashes the manifest recorded."""
    artifacts = store.manifest.get("artifacts", {})
    found = [(name, rec) for name, rec in artifacts.items() if modality in rec.get("modalities", [])]
    if not found:
        raise ColdStartError(
            f"store {store.root}: no fitted preparation stage for modality {modality!r} (the store was not made by "
            f"bamir-prepare, e.g. a planted or imported store); cold start needs a store prepared from a raw dataset")
    name, rec = found[0]
    record = store.record(modality)
    if rec.get("config_hash") != record.get("config_hash"):
        raise ColdStartError(f"store {store.root}: the fitted files of stage {name!r} were made with another config "
                             f"than modality {modality!r}; rerun bamir-prepare")
    workdir = store.root / rec["workdir"]
    for rel, digest in rec.get("files", {}).items():
        path = workdir / rel
        if not path.is_file():
            raise ColdStartError(f"{path}: fitted file of stage {name!r} is missing; rerun bamir-prepare")
        if file_hash(path) != digest:
            raise ColdStartError(f"{path}: fitted file of stage {name!r} changed since preparation; rerun bamir-prepare")
    return name, workdir


def _stage_class(modality: str):
    import importlib

    module, _, cls = STAGE_CLASSES[modality].rpartition(".")
    return getattr(importlib.import_module(module), cls)


def encode_new_accounts(store: FeatureStore, raw: RawDataset, modalities: Sequence[str],
                        accounts: Sequence[str] | None = None, device: str = "cpu") -> NewAccounts:
    """The modality rows of ``accounts`` (default: every account of ``raw``) with the store's fitted stages.

    Raises :class:`ColdStartError` when a modality cannot be computed (no fitted stage,
    changed files, an unknown modality).
    """
    accounts = [str(a) for a in (accounts if accounts is not None else raw.accounts["account_id"])]
    taken = set(store.account_ids) & set(accounts)
    if taken:
        raise ColdStartError(f"account ids {sorted(taken)[:5]} are already in the store: a new brand needs a new id")
    features, present, notes = {}, {}, {}
    for modality in modalities:
        record = store.record(modality)
        config = dict(record.get("config") or {})
        stage_name, workdir = fitted_workdir(store, modality)
        if modality not in STAGE_CLASSES:
            raise ColdStartError(f"modality {modality!r}: no stage encodes new accounts for it (stage {stage_name!r})")
        try:
            out = _stage_class(modality).encode_new(store, raw, accounts, workdir, config, device)
        except RefitNeeded as err:
            raise ColdStartError(str(err)) from None
        f, p = out.features, out.present
        f = torch.as_tensor(f).float().reshape(len(accounts), -1)
        if f.shape[1] != record["dim"]:
            raise ColdStartError(f"modality {modality!r}: new rows have {f.shape[1]} columns, the store {record['dim']}")
        p = torch.ones(len(accounts), dtype=torch.bool) if p is None else torch.as_tensor(p).bool()
        features[modality], present[modality] = f, p
        if not bool(p.all()):
            notes[modality] = f"no input for {int((~p).sum())} of {len(accounts)} new accounts (its neutral vector)"
            log.warning("cold start: %s: %s", modality, notes[modality])
    return NewAccounts(raw, accounts, features, present, notes)


def extend_features(features: Mapping[str, torch.Tensor], new: NewAccounts) -> dict[str, torch.Tensor]:
    """The store's matrices with the new accounts' rows appended (rows ``N .. N + n - 1``).

    A modality not computed for the new accounts (one the model does not use) gets zero rows.
    """
    out = {}
    for name, matrix in features.items():
        rows = new.features.get(name)
        if rows is None:
            rows = torch.zeros(len(new.accounts), matrix.shape[1])
        out[name] = torch.cat([matrix, rows.to(matrix.device, matrix.dtype)])
    return out


def to_model_space(datamodule, new: NewAccounts) -> NewAccounts:
    """The new rows transformed as the data module transformed the store's matrices for the model: a
    row without input becomes the modality's neutral vector, then ``RankingDataModule.transform_rows``
    (e.g. the z-score with the training accounts' statistics)."""
    out = dict(new.features)
    for name, rows in new.features.items():
        if name in datamodule.features:
            present = new.present.get(name)
            if present is not None and not bool(present.all()):
                rows = torch.where(present[:, None], rows, datamodule.neutral[name].to(rows.dtype))
            out[name] = datamodule.transform_rows(name, rows)
    return NewAccounts(new.raw, new.accounts, out, new.present, new.notes)


def new_profiles(new: NewAccounts) -> pd.DataFrame:
    """Profile rows (as :func:`bamir.ranking.account_profiles`) of the new accounts."""
    from bamir.ranking.accounts import merge_profiles

    acc = new.raw.accounts.set_index(new.raw.accounts["account_id"].astype(str)).reindex(new.accounts)
    frame = pd.DataFrame({"account_id": new.accounts,
                          "username": acc["username"].fillna("").astype(str).to_numpy(),
                          "kind": acc["kind"].fillna("brand").astype(str).to_numpy(),
                          "category": acc["category"].fillna("").astype(str).to_numpy()})
    return merge_profiles(frame, new.raw.accounts, new.raw.posts)
