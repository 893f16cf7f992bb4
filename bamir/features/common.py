"""Helpers shared by the preparation stages: the training-account rule, per-account text,
input hashing, devices and worker counts.

Training accounts
-----------------
Anything a stage fits (LDA, TF-IDF + SVD, standardisation) sees only the *training
accounts* of the chosen split, defined as

* every training brand, and
* every influencer that is **not only a test candidate**: influencers outside the split's
  ``test_candidates`` list, plus test candidates that are also a known positive of a
  training brand (those are seen in training anyway).

Test brands and the influencers that appear only as test candidates are excluded, so a
fitted model never sees the held-out side's text, hashtags or statistics. Features are
then *inferred* for every account with the fitted model.
"""

from __future__ import annotations

import os
from typing import Sequence

import pandas as pd
import torch

from bamir.data.schema import RawDataset
from bamir.utils import stable_hash


def train_accounts(raw: RawDataset, split: str = "discover") -> set[str]:
    """The training accounts of ``split`` (see the module docstring for the rule)."""
    try:
        spec = raw.splits[split]
    except KeyError:
        raise KeyError(f"{raw.root}: no split {split!r}; the dataset has {sorted(raw.splits)}") from None
    train_brands = set(spec["train_brands"])
    test_brands = set(spec["test_brands"])
    candidates = set(spec["test_candidates"])
    pairs = raw.pairs
    seen_in_training = set(pairs.loc[pairs["brand"].isin(train_brands), "influencer"])
    kinds = dict(zip(raw.accounts["account_id"], raw.accounts["kind"]))
    out = set(train_brands)
    for account, kind in kinds.items():
        if kind == "influencer" and (account not in candidates or account in seen_in_training):
            out.add(account)
    return out - test_brands


def frame_hash(frame: pd.DataFrame, columns: Sequence[str]) -> str:
    """Order-sensitive hash of some columns of a table (values as strings)."""
    hashed = pd.util.hash_pandas_object(frame.loc[:, list(columns)].astype(str), index=False)
    return stable_hash([list(columns), len(frame), hashed.to_numpy().tobytes().hex()])


def joined_captions(raw: RawDataset, accounts: Sequence[str]) -> list[str]:
    """Each account's captions joined into one document (``""`` where it has none)."""
    posts = raw.posts[["account_id", "caption"]].copy()
    posts["caption"] = posts["caption"].fillna("").astype(str)
    joined = posts.groupby("account_id", sort=False)["caption"].agg("\n".join)
    return [str(joined.get(account, "")) for account in accounts]


def resolve_device(device: str | None) -> torch.device:
    """``"auto"``/None -> cuda when available, else cpu; otherwise ``torch.device(device)``."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def resolve_workers(workers: int | str | None, cap: int = 8) -> int:
    """``"auto"`` -> one less than the usable cores (at most ``cap``); an int is taken as is."""
    if workers in (None, "auto"):
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - non-Linux
            cores = os.cpu_count() or 1
        return max(0, min(cap, cores - 1))
    return int(workers)
