"""Account profiles for the ranked tables (followers, engagement, category) and brand or
influencer names resolved to store rows, with the closest names suggested for a typo."""

from __future__ import annotations

import difflib
import logging
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pandas as pd

log = logging.getLogger(__name__)


def account_profiles(store, raw_root: str | Path | None = None) -> pd.DataFrame:
    """One row per store account (store row order): account_id, username, kind, category,
    followers, engagement, business_category, posts.

    ``followers``, ``engagement`` (mean over posts of ``(likes + comments) / followers``),
    ``business_category`` and ``posts`` come from the raw dataset when it is available
    (``raw_root``, else the store manifest's ``dataset.raw_root``); otherwise they are NaN / "".
    """
    frame = store.accounts.copy()
    frame["followers"] = np.nan
    frame["engagement"] = np.nan
    frame["business_category"] = ""
    frame["posts"] = 0
    root = raw_root_of(store, raw_root)
    if root is None:
        return frame
    from bamir.data.schema import ACCOUNTS, POSTS, read_table

    try:
        raw_accounts = read_table(root, ACCOUNTS)
        posts = read_table(root, POSTS)
    except FileNotFoundError as err:
        log.warning("raw dataset %s unreadable (%s): no followers or engagement in the table", root, err)
        return frame
    return merge_profiles(frame, raw_accounts, posts)


def merge_profiles(frame: pd.DataFrame, raw_accounts: pd.DataFrame, posts: pd.DataFrame) -> pd.DataFrame:
    raw_accounts = raw_accounts.drop_duplicates("account_id").set_index("account_id")
    ids = frame["account_id"]
    followers = pd.to_numeric(raw_accounts["followers"], errors="coerce").reindex(ids).to_numpy(dtype=float)
    frame["followers"] = followers
    if "business_category" in raw_accounts:
        frame["business_category"] = raw_accounts["business_category"].reindex(ids).fillna("").astype(str).to_numpy()
    p = posts[["account_id", "likes", "comments"]].copy()
    p["interactions"] = pd.to_numeric(p["likes"], errors="coerce").fillna(0) + pd.to_numeric(p["comments"], errors="coerce").fillna(0)
    grouped = p.groupby("account_id")
    mean_inter = grouped["interactions"].mean().reindex(ids).to_numpy(dtype=float)
    frame["posts"] = grouped.size().reindex(ids).fillna(0).astype(int).to_numpy()
    with np.errstate(divide="ignore", invalid="ignore"):
        frame["engagement"] = np.where(followers > 0, mean_inter / np.maximum(followers, 1), np.nan)
    return frame


def raw_root_of(store, raw_root: str | Path | None = None) -> Path | None:
    """The raw dataset behind a store: ``raw_root`` when given (it must exist), else the
    manifest's ``dataset.raw_root`` when that folder still holds a raw dataset, else None."""
    from bamir.data.schema import DATASET_FILE

    if raw_root:
        if not (Path(raw_root) / DATASET_FILE).is_file():
            raise FileNotFoundError(f"raw_root={raw_root}: no raw dataset there ({DATASET_FILE} missing)")
        return Path(raw_root)
    recorded = store.manifest.get("dataset", {}).get("raw_root")
    if recorded and (Path(recorded) / DATASET_FILE).is_file():
        return Path(recorded)
    return None


class UnknownNameError(ValueError):
    """A brand, influencer or category name that is not in the data; the message lists the closest ones."""


def closest(name: str, choices: Iterable[str], n: int = 5) -> list[str]:
    """The ``n`` closest of ``choices`` to ``name`` (difflib, case-insensitive)."""
    choices = sorted({str(c) for c in choices if str(c)})
    folded = {c.casefold(): c for c in choices}
    hits = difflib.get_close_matches(name.casefold(), list(folded), n=n, cutoff=0.4)
    return [folded[h] for h in hits]


def resolve_names(names: Sequence[str], profiles: pd.DataFrame, kind: str) -> list[int]:
    """Store rows of accounts named by username or account id (case-insensitive), of ``kind``.

    Raises :class:`UnknownNameError` naming every unknown name with its closest matches.
    """
    subset = profiles[profiles["kind"] == kind]
    lookup: dict[str, int] = {}
    for row, account_id, username in zip(subset.index, subset["account_id"], subset["username"]):
        lookup.setdefault(str(account_id).casefold(), int(row))
        if isinstance(username, str) and username:
            lookup.setdefault(username.casefold(), int(row))
    rows, problems = [], []
    for name in names:
        key = str(name).strip().lstrip("@").casefold()
        if key in lookup:
            rows.append(lookup[key])
            continue
        other = profiles[(profiles["kind"] != kind) & ((profiles["account_id"].str.casefold() == key)
                                                      | (profiles["username"].str.casefold() == key))]
        hint = closest(str(name), list(subset["username"]) + list(subset["account_id"]))
        if len(other):
            problems.append(f"{name!r} is a {other['kind'].iloc[0]}, not a {kind}")
        elif hint:
            problems.append(f"unknown {kind} {name!r}; closest: {', '.join(hint)}")
        else:
            examples = ", ".join(sorted(subset["username"].astype(str))[:5])
            problems.append(f"unknown {kind} {name!r}; no close name (e.g. {examples})")
    if problems:
        raise UnknownNameError("; ".join(problems))
    return rows


