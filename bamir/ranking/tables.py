"""A :class:`~bamir.ranking.ranker.Ranking` as a table: one row per (brand, rank), with each branch's
contribution and share, and its Markdown rendering for the console."""

from __future__ import annotations

import numpy as np
import pandas as pd
from torch import Tensor

from bamir.ranking.ranker import Ranking


def ranking_frame(ranking: Ranking, profiles: pd.DataFrame, pairs: tuple[Tensor, Tensor] | None = None) -> pd.DataFrame:
    """One row per (brand, rank): brand, rank, influencer, score, followers, engagement,
    ``contrib_<branch>`` and ``share_<branch>``, and ``linked`` (a known pair)."""
    known = set()
    if pairs is not None:
        known = set(zip(pairs[0].tolist(), pairs[1].tolist()))
    shares = ranking.shares
    records = []
    ids, names = profiles["account_id"].to_numpy(), profiles["username"].to_numpy()
    followers, engagement = profiles["followers"].to_numpy(dtype=float), profiles["engagement"].to_numpy(dtype=float)
    for j, brand in enumerate(ranking.brands.tolist()):
        for r, cand in enumerate(ranking.candidates[j].tolist()):
            if cand < 0:
                continue
            rec = {"brand_id": ids[brand], "brand": names[brand], "rank": r + 1, "influencer_id": ids[cand],
                   "influencer": names[cand], "score": float(ranking.scores[j, r]),
                   "followers": followers[cand], "engagement": engagement[cand]}
            for b in ranking.contributions:
                rec[f"contrib_{b}"] = float(ranking.contributions[b][j, r])
            for b in shares:
                rec[f"share_{b}"] = float(shares[b][j, r])
            rec["linked"] = (brand, cand) in known
            records.append(rec)
    columns = ["brand_id", "brand", "rank", "influencer_id", "influencer", "score", "followers", "engagement",
               *[f"contrib_{b}" for b in ranking.contributions], *[f"share_{b}" for b in shares], "linked"]
    return pd.DataFrame.from_records(records, columns=columns)


def format_table(frame: pd.DataFrame) -> str:
    """The printed table of one brand: rank, influencer, score, followers, engagement, branch shares."""
    branches = [c[len("share_"):] for c in frame.columns if c.startswith("share_")]
    header = ["rank", "influencer", "score", "followers", "engagement", *[f"{b} share" for b in branches]]
    rows = []
    for rec in frame.itertuples(index=False):
        rec = rec._asdict()
        followers = rec["followers"]
        engagement = rec["engagement"]
        name = rec["influencer"] + (" *" if rec.get("linked") else "")
        rows.append([str(rec["rank"]), name, f"{rec['score']:.3f}",
                     "-" if not np.isfinite(followers) else f"{int(followers):,}",
                     "-" if not np.isfinite(engagement) else f"{100 * engagement:.2f}%",
                     *[f"{100 * rec[f'share_{b}']:+.0f}%" for b in branches]])
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(header)]
    right = {0, 2, 3, 4} | set(range(5, len(header)))
    def line(cells):
        return "  ".join(c.rjust(w) if i in right else c.ljust(w) for i, (c, w) in enumerate(zip(cells, widths)))
    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])
