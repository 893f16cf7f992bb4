"""Interaction modality: how an account engages its audience and other accounts.

Per account ``a`` with followers ``F`` and posts ``p`` (likes ``L_p``, comments ``C_p``,
time ``t_p``), with ``e_p = (L_p + C_p) / max(F, 1)``:

===================  ===============================================================
``log_followers``     log(1 + F)
``log_posts``         log(1 + #posts)
``engagement``        log(1 + 100 * mean_p e_p)                (engagement rate, %)
``engagement_sd``     log(1 + 100 * sd_p e_p)                  (its spread over posts)
``likes_cv``          sd_p L_p / mean_p L_p                    (relative spread of likes)
``log_likes``         log(1 + mean_p L_p)
``log_comments``      log(1 + mean_p C_p)
``comment_ratio``     sum C / max(sum L, 1)
``posts_per_week``    log(1 + #posts / max(span in weeks, 1))
``gap_median``        log(1 + median gap between consecutive posts, hours)
``gap_cv``            sd gap / mean gap                        (irregularity of rhythm)
``mentions_per_post`` mean number of @handles per caption (any handle)
``mentions_out``      log(1 + distinct dataset accounts it mentions)
``brands_out``        log(1 + distinct brands it mentions)
``mentioned_in``      log(1 + distinct dataset accounts mentioning it)
``brands_in``         log(1 + distinct brands mentioning it)
===================  ===============================================================

Mentions are ``@username`` in captions (:func:`bamir.features.hashtags.extract_mentions`),
resolved against the accounts table (case-folded).
To keep the held-out links out of the features, a mention edge counts towards an
account's statistics only when the account at the **other** end is not a held-out brand
(a brand outside the training accounts): a test brand's own mentions still count for the
brand, but being mentioned by a test brand never counts for an influencer.

Every column is then standardised with the mean and standard deviation of the **training
accounts** (saved as ``interaction_scaler.json`` in the stage's work folder).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from bamir.data.schema import RawDataset
from bamir.features.base import RefitNeeded, StageOutput
from bamir.features.common import frame_hash
from bamir.features.hashtags import extract_mentions
from bamir.features.settings import InteractionSettings

FEATURES = (
    "log_followers", "log_posts", "engagement", "engagement_sd", "likes_cv", "log_likes", "log_comments",
    "comment_ratio", "posts_per_week", "gap_median", "gap_cv", "mentions_per_post", "mentions_out",
    "brands_out", "mentioned_in", "brands_in",
)
def raw_interaction_features(raw: RawDataset, accounts: list[str], train_accounts: set[str]) -> np.ndarray:
    """Unstandardised features [len(accounts), len(FEATURES)] (see the module docstring)."""
    n = len(accounts)
    row_of = {a: i for i, a in enumerate(accounts)}
    acc = raw.accounts.set_index("account_id")
    followers = pd.to_numeric(acc["followers"], errors="coerce").fillna(0).clip(lower=0).reindex(accounts).fillna(0)
    followers = followers.to_numpy(dtype=np.float64)
    out = np.zeros((n, len(FEATURES)), dtype=np.float64)
    col = {name: j for j, name in enumerate(FEATURES)}
    out[:, col["log_followers"]] = np.log1p(followers)

    posts = raw.posts.loc[raw.posts["account_id"].isin(row_of)].copy()
    posts["row"] = posts["account_id"].map(row_of).astype(int)
    posts["likes"] = pd.to_numeric(posts["likes"], errors="coerce").fillna(0).clip(lower=0).astype(float)
    posts["comments"] = pd.to_numeric(posts["comments"], errors="coerce").fillna(0).clip(lower=0).astype(float)
    posts["time"] = pd.to_datetime(posts["timestamp"], utc=True, errors="coerce", format="ISO8601")
    posts["e"] = (posts["likes"] + posts["comments"]) / np.maximum(followers[posts["row"].to_numpy()], 1.0)
    posts["handles"] = posts["caption"].map(extract_mentions)
    posts["n_handles"] = posts["handles"].map(len).astype(float)

    grouped = posts.groupby("row")
    rows = grouped.size().index.to_numpy()
    count = grouped.size().to_numpy(dtype=np.float64)
    likes_mean = grouped["likes"].mean().to_numpy()
    likes_sd = grouped["likes"].std(ddof=0).to_numpy()
    out[rows, col["log_posts"]] = np.log1p(count)
    out[rows, col["engagement"]] = np.log1p(100 * grouped["e"].mean().to_numpy())
    out[rows, col["engagement_sd"]] = np.log1p(100 * grouped["e"].std(ddof=0).to_numpy())
    out[rows, col["likes_cv"]] = np.where(likes_mean > 0, likes_sd / np.maximum(likes_mean, 1e-12), 0.0)
    out[rows, col["log_likes"]] = np.log1p(likes_mean)
    out[rows, col["log_comments"]] = np.log1p(grouped["comments"].mean().to_numpy())
    out[rows, col["comment_ratio"]] = grouped["comments"].sum().to_numpy() / np.maximum(grouped["likes"].sum().to_numpy(), 1.0)
    out[rows, col["mentions_per_post"]] = grouped["n_handles"].mean().to_numpy()

    # posting rhythm
    timed = posts.dropna(subset=["time"]).sort_values(["row", "time"])
    # hours since the epoch, whatever the datetime resolution pandas chose
    timed = timed.assign(hours=(timed["time"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(hours=1))
    timed["gap"] = timed.groupby("row")["hours"].diff()
    tg = timed.groupby("row")
    span_weeks = ((tg["hours"].max() - tg["hours"].min()) / (24 * 7)).clip(lower=1.0)
    trow = span_weeks.index.to_numpy()
    out[trow, col["posts_per_week"]] = np.log1p(tg.size().to_numpy() / span_weeks.to_numpy())
    gaps = timed.dropna(subset=["gap"]).groupby("row")["gap"]
    if len(gaps.size()):
        grow = gaps.size().index.to_numpy()
        gmean = gaps.mean().to_numpy()
        out[grow, col["gap_median"]] = np.log1p(gaps.median().to_numpy())
        out[grow, col["gap_cv"]] = np.where(gmean > 0, gaps.std(ddof=0).to_numpy() / np.maximum(gmean, 1e-12), 0.0)

    # mention graph
    by_name = {str(u).casefold(): a for u, a in zip(raw.accounts["username"], raw.accounts["account_id"]) if a in row_of}
    kind = dict(zip(raw.accounts["account_id"], raw.accounts["kind"]))
    heldout_brand = {a for a, k in kind.items() if k == "brand" and a not in train_accounts}
    edges = {
        (src, by_name[h])
        for src, handles in zip(posts["account_id"], posts["handles"])
        for h in handles
        if h in by_name and by_name[h] != src
    }
    out_all = np.zeros(n)
    out_brand = np.zeros(n)
    in_all = np.zeros(n)
    in_brand = np.zeros(n)
    for src, dst in edges:
        if dst not in heldout_brand:  # counts for the source unless the target is a held-out brand
            out_all[row_of[src]] += 1
            out_brand[row_of[src]] += kind.get(dst) == "brand"
        if src not in heldout_brand:  # counts for the target unless the source is a held-out brand
            in_all[row_of[dst]] += 1
            in_brand[row_of[dst]] += kind.get(src) == "brand"
    out[:, col["mentions_out"]] = np.log1p(out_all)
    out[:, col["brands_out"]] = np.log1p(out_brand)
    out[:, col["mentioned_in"]] = np.log1p(in_all)
    out[:, col["brands_in"]] = np.log1p(in_brand)
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)


#: the training mean and sd of every feature, saved by :meth:`InteractionStage.run` in its work folder
SCALER_FILE = "interaction_scaler.json"


class InteractionStage:
    """Preparation stage writing the ``interaction`` modality (see the module docstring)."""

    modalities = ("interaction",)
    fitted = True  # standardised on training accounts, mention edges depend on the split

    def __init__(self, **settings: Any):
        self.settings = InteractionSettings(**settings)

    def config(self) -> dict[str, Any]:
        return {"stage": "interaction", "version": 1, "features": list(FEATURES), **asdict(self.settings)}

    def inputs_hash(self, raw: RawDataset) -> str:
        return frame_hash(raw.accounts, ["account_id", "username", "kind", "followers"]) + frame_hash(
            raw.posts, ["account_id", "timestamp", "caption", "likes", "comments"]
        )

    @classmethod
    def encode_new(cls, store, raw: RawDataset, accounts: list[str], workdir: Path, config: dict[str, Any],
                   device: str = "cpu") -> StageOutput:
        """The new accounts' raw statistics, mentions resolved against the store's accounts too (a held-out
        brand of the store's split stays held out, as at preparation time), standardised with the saved
        training mean and sd."""
        known = store.accounts[["account_id", "username", "kind"]].copy()
        known["followers"] = 0
        combined = pd.concat([raw.accounts[["account_id", "username", "kind", "followers"]], known], ignore_index=True)
        split = store.manifest.get("dataset", {}).get("split", "discover")
        splits = store.splits
        train_brands = set(splits.get(split, next(iter(splits.values()), {})).get("train_brands", []))
        heldout = {a for a, k in zip(store.accounts["account_id"], store.accounts["kind"])
                   if k == "brand" and a not in train_brands}
        train = set(combined["account_id"].astype(str)) - heldout
        view = RawDataset(root=raw.root, info=raw.info, accounts=combined, posts=raw.posts, pairs=raw.pairs, splits={})
        values = raw_interaction_features(view, list(accounts), train)
        settings = InteractionSettings(**{k: v for k, v in config.items() if k not in ("stage", "version", "features")})
        scaler_path = Path(workdir) / SCALER_FILE
        if settings.standardise:
            if not scaler_path.is_file():
                raise RefitNeeded(f"{scaler_path}: the interaction scaler is missing; rerun bamir-prepare")
            scaler = json.loads(scaler_path.read_text())
            if list(scaler["features"]) != list(FEATURES):
                raise RefitNeeded(f"{scaler_path}: fitted on features {scaler['features']}, the code now computes "
                                  f"{list(FEATURES)}; rerun bamir-prepare")
            values = (values - np.asarray(scaler["mean"])) / np.asarray(scaler["std"])
            if settings.clip:
                values = np.clip(values, -settings.clip, settings.clip)
        return StageOutput(torch.from_numpy(values).float())

    def run(self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path) -> dict[str, StageOutput]:
        values = raw_interaction_features(raw, accounts, train_accounts)
        train = np.array([a in train_accounts for a in accounts])
        if self.settings.standardise:
            ref = values[train] if train.any() else values
            mean = ref.mean(axis=0)
            std = ref.std(axis=0)
            std = np.where(std > 1e-12, std, 1.0)
            values = (values - mean) / std
            if self.settings.clip:
                values = np.clip(values, -self.settings.clip, self.settings.clip)
            Path(workdir).mkdir(parents=True, exist_ok=True)
            (Path(workdir) / SCALER_FILE).write_text(
                json.dumps({"features": list(FEATURES), "mean": mean.tolist(), "std": std.tolist()}, indent=2)
            )
        counts = {"accounts": len(accounts), "train_accounts": int(train.sum())}
        return {"interaction": StageOutput(torch.from_numpy(values).float(), counts=counts,
                                           note=f"{len(FEATURES)} features: " + ", ".join(FEATURES))}
