"""Which influencers a brand is ranked against: the pool, the filters of ``conf/rank.yaml``
(:class:`CandidateFilter`) and the already-linked pairs left out."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import numpy as np
import pandas as pd
import torch
from torch import Tensor

from bamir.ranking.accounts import UnknownNameError, closest, resolve_names
from bamir.ranking.ranker import CandidateIndex


@dataclass
class CandidateFilter:
    """Which influencers may be ranked.

    Args:
        category: brand categories; an influencer qualifies when its own ``category`` is one
            of them or it is linked (a known pair) to a brand of one of them.
        business_category: Instagram business categories (raw data; case-insensitive, exact).
        min_followers, max_followers: follower range, inclusive (raw data).
        exclude_linked: drop each brand's already-linked influencers (its known pairs).
        influencers: restrict to these influencers (usernames or ids).
    """

    category: list[str] | None = None
    business_category: list[str] | None = None
    min_followers: float | None = None
    max_followers: float | None = None
    exclude_linked: bool = False
    influencers: list[str] | None = None

    @classmethod
    def from_config(cls, cfg: Mapping[str, Any] | None) -> "CandidateFilter":
        cfg = dict(cfg or {})
        def listed(value):
            if value is None or value == "":
                return None
            if isinstance(value, str):
                return [v.strip() for v in value.split(",") if v.strip()]
            return [str(v) for v in value]
        unknown = set(cfg) - {"category", "business_category", "min_followers", "max_followers", "exclude_linked",
                              "influencers"}
        if unknown:
            raise ValueError(f"unknown candidate filters {sorted(unknown)}")
        return cls(category=listed(cfg.get("category")), business_category=listed(cfg.get("business_category")),
                   min_followers=cfg.get("min_followers"), max_followers=cfg.get("max_followers"),
                   exclude_linked=bool(cfg.get("exclude_linked", False)), influencers=listed(cfg.get("influencers")))

    def describe(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v not in (None, False)}


def candidate_rows(profiles: pd.DataFrame, pairs: tuple[Tensor, Tensor], flt: CandidateFilter,
                   pool: Tensor | None = None) -> Tensor:
    """Account rows of the influencers that pass ``flt`` (within ``pool`` when given; default: all influencers).

    ``pairs``: the known ``(brand rows, influencer rows)``. Raises :class:`UnknownNameError`
    for unknown category or influencer names, ValueError when a filter needs data the store lacks.
    """
    keep = (profiles["kind"] == "influencer").to_numpy().copy()
    if pool is not None:
        in_pool = np.zeros(len(profiles), dtype=bool)
        in_pool[pool.numpy()] = True
        keep &= in_pool
    if flt.category:
        brand_cat = profiles["category"].to_numpy()
        known = sorted({c for c in profiles["category"] if c})
        bad = [c for c in flt.category if c not in known]
        if bad:
            raise UnknownNameError("; ".join(f"unknown category {c!r}; closest: {', '.join(closest(c, known)) or '-'}"
                                             f" (categories: {', '.join(known)})" for c in bad))
        wanted = set(flt.category)
        ok = np.isin(brand_cat, list(wanted))
        b, i = pairs
        linked = np.isin(brand_cat[b.numpy()], list(wanted))
        ok[i.numpy()[linked]] = True
        keep &= ok
    if flt.business_category:
        cats = profiles["business_category"].astype(str).str.casefold()
        known = sorted({c for c in profiles.loc[profiles["kind"] == "influencer", "business_category"] if c})
        if not known:
            raise ValueError("filters.business_category needs the raw dataset (set raw_root=PATH)")
        wanted = {c.casefold() for c in flt.business_category}
        bad = [c for c in flt.business_category if c.casefold() not in {k.casefold() for k in known}]
        if bad:
            raise UnknownNameError("; ".join(f"unknown business category {c!r}; closest: {', '.join(closest(c, known)) or '-'}"
                                             for c in bad))
        keep &= cats.isin(wanted).to_numpy()
    if flt.min_followers is not None or flt.max_followers is not None:
        followers = profiles["followers"].to_numpy(dtype=float)
        if np.isnan(followers[keep]).all() and keep.any():
            raise ValueError("a follower filter needs follower counts: the store has none and no raw dataset was "
                             "found (set raw_root=PATH)")
        if flt.min_followers is not None:
            keep &= followers >= float(flt.min_followers)
        if flt.max_followers is not None:
            keep &= followers <= float(flt.max_followers)
    if flt.influencers:
        named = np.zeros(len(profiles), dtype=bool)
        named[resolve_names(flt.influencers, profiles, "influencer")] = True
        keep &= named
    return torch.from_numpy(np.flatnonzero(keep)).long()


def linked_exclusions(brands: Tensor, index: CandidateIndex, pairs: tuple[Tensor, Tensor],
                      num_accounts: int) -> tuple[Tensor, Tensor]:
    """``(brand position, candidate position)`` of each brand's known pairs that are in ``index``."""
    b, i = pairs
    brand_pos = torch.full((num_accounts,), -1, dtype=torch.long)
    brand_pos[brands] = torch.arange(len(brands))
    cand_pos = index.position_of(num_accounts)
    bp, cp = brand_pos[b], cand_pos[i]
    ok = (bp >= 0) & (cp >= 0)
    return bp[ok], cp[ok]


