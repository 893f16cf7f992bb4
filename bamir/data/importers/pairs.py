"""Brand-influencer pair lists, and the discover split built from them.

Reads CSV/TSV files (or an ``.xlsx`` sheet when openpyxl is installed) with a brand column,
an influencer column and optionally a competence score and a rank, as in Gan et al.'s
spreadsheet (``brand, influencer, competence score, rank``). Column names are matched
loosely (case, spaces, ``_``). Names may be account ids or usernames (with or without ``@``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Mapping

import numpy as np
import pandas as pd
import yaml

from bamir.data import schema
from bamir.utils import atomic_write_json, atomic_write_text

_ALIASES = {
    "brand": ("brand", "brandname", "brandusername", "brandaccount", "brandid"),
    "influencer": ("influencer", "influencername", "influencerusername", "microinfluencer", "microinfluencers",
                   "influencerid", "username", "inf"),
    "score": ("score", "competencescore", "competence", "competencescores"),
    "rank": ("rank", "ranking", "rankinbrand"),
}
#: Share of brands in the test side of the real discover split (74 of 360).
TEST_SHARE = 74 / 360


def _norm(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def read_pairs(source: str | Path | pd.DataFrame, sheet: int | str = 0) -> pd.DataFrame:
    """The pairs of ``source`` as columns brand, influencer, score (float, NaN where absent), rank."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy()
    else:
        path = Path(source)
        if path.suffix.lower() in (".xlsx", ".xlsm", ".xls"):
            try:
                frame = pd.read_excel(path, sheet_name=sheet, dtype=str)
            except ImportError as exc:
                raise ImportError(f"{path}: reading spreadsheets needs openpyxl; or export the sheet as CSV") from exc
        else:
            sep = "\t" if path.suffix.lower() in (".tsv", ".tab") else None
            frame = pd.read_csv(path, sep=sep, engine="python", dtype=str, keep_default_na=False)
    columns: dict[str, str] = {}
    for col in frame.columns:
        for target, aliases in _ALIASES.items():
            if _norm(col) in aliases and target not in columns:
                columns[target] = col
    missing = [c for c in ("brand", "influencer") if c not in columns]
    if missing:
        raise ValueError(f"pair list has no {' or '.join(missing)} column (columns: {list(frame.columns)})")
    out = pd.DataFrame({
        "brand": frame[columns["brand"]].astype(str).str.strip().str.lstrip("@"),
        "influencer": frame[columns["influencer"]].astype(str).str.strip().str.lstrip("@"),
    })
    out["score"] = pd.to_numeric(frame[columns["score"]], errors="coerce") if "score" in columns else np.nan
    if "rank" in columns:
        out["rank"] = pd.to_numeric(frame[columns["rank"]], errors="coerce")
    keep = (out["brand"] != "") & (out["influencer"] != "")
    return out[keep].reset_index(drop=True)


def discover_split(pairs: pd.DataFrame, brand_category: Mapping[str, str], test_brands: int | float | None = None,
                   seed: int = 0) -> dict[str, list[str]]:
    """A brand-disjoint split: test brands spread over categories, candidates = their influencers.

    ``test_brands``: a count, a share (< 1), or None for the real protocol's share (74/360).
    Every category keeps at least one training brand where it has two or more brands.
    """
    brands = sorted(set(pairs["brand"]))
    if len(brands) < 2:
        raise ValueError("a discover split needs pairs of at least two brands")
    share = TEST_SHARE if test_brands is None else test_brands
    n_test = int(round(share * len(brands))) if share < 1 else int(share)
    n_test = min(max(n_test, 1), len(brands) - 1)
    rng = np.random.default_rng(seed)
    by_cat: dict[str, list[str]] = {}
    for b in brands:
        by_cat.setdefault(brand_category.get(b, ""), []).append(b)
    cats = sorted(by_cat)
    quota = {c: 0 for c in cats}
    order = [cats[i] for i in rng.permutation(len(cats))]
    while sum(quota.values()) < n_test:
        progressed = False
        for c in order:
            if sum(quota.values()) == n_test:
                break
            cap = len(by_cat[c]) - 1 if len(by_cat[c]) > 1 else 0
            if quota[c] < cap:
                quota[c] += 1
                progressed = True
        if not progressed:  # only single-brand categories left: take them too
            for c in order:
                if sum(quota.values()) < n_test and quota[c] < len(by_cat[c]):
                    quota[c] += 1
            break
    test = sorted(b for c in cats for b in rng.permutation(by_cat[c])[: quota[c]])
    test_set = set(test)
    candidates = sorted(set(pairs.loc[pairs["brand"].isin(test_set), "influencer"]))
    return {"train_brands": [b for b in brands if b not in test_set], "test_brands": test,
            "test_candidates": candidates}


def import_pairs(root: str | Path, source: str | Path | pd.DataFrame, *, test_brands: int | float | None = None,
                 seed: int = 0, strict: bool = True, split: bool = True) -> pd.DataFrame:
    """Write ``source``'s pairs into the dataset at ``root`` (accounts must exist), with the
    discover split and the pair count in ``dataset.yaml``. Names are matched to account ids,
    then to usernames (case-insensitive). Unknown names raise ValueError (``strict``) or are
    dropped and counted in ``dataset.yaml`` provenance. Returns the pairs written."""
    root = Path(root)
    accounts = schema.read_table(root, schema.ACCOUNTS)
    ids = accounts["account_id"].astype(str).tolist()
    by_id = {a: a for a in ids}
    by_user = {str(u).lower(): a for u, a in zip(accounts["username"], ids)}
    kind = dict(zip(ids, accounts["kind"].astype(str)))
    pairs = read_pairs(source)

    def resolve(name: str) -> str | None:
        return by_id.get(name) or by_user.get(name.lower())

    pairs["brand_id"] = pairs["brand"].map(resolve)
    pairs["influencer_id"] = pairs["influencer"].map(resolve)
    bad = pairs["brand_id"].isna() | pairs["influencer_id"].isna()
    bad |= pairs["brand_id"].map(lambda a: kind.get(a) != "brand") | pairs["influencer_id"].map(
        lambda a: kind.get(a) != "influencer")
    if bad.any() and strict:
        rows = pairs[bad].head(10)
        listed = "; ".join(f"row {r}: {b} -> {i}" for r, b, i in zip(rows.index, rows["brand"], rows["influencer"]))
        raise ValueError(f"{int(bad.sum())} pairs name unknown accounts or the wrong kind ({listed})")
    good = pairs[~bad]
    out = pd.DataFrame({"brand": good["brand_id"].astype(str), "influencer": good["influencer_id"].astype(str),
                        "score": good["score"].astype(float)})
    if "rank" in good.columns:
        # within a brand, better rank first (Gan et al. rank competence within the brand)
        out = out.assign(_rank=good["rank"].to_numpy()).sort_values(["brand", "_rank"], kind="stable")
        out = out.drop(columns="_rank")
    out = out.drop_duplicates(["brand", "influencer"]).reset_index(drop=True)
    try:
        fmt = schema.table_path(root, schema.ACCOUNTS).suffix[1:]
    except FileNotFoundError:  # pragma: no cover
        fmt = "parquet"
    for old in root.glob(f"{schema.PAIRS}.*"):
        old.unlink()
    schema.write_table(out, root, schema.PAIRS, fmt)
    if split:
        category = dict(zip(ids, accounts["category"].astype(str)))
        atomic_write_json(root / schema.SPLITS_FILE,
                          {"discover": discover_split(out, category, test_brands, seed)})
    info_path = root / schema.DATASET_FILE
    info = yaml.safe_load(info_path.read_text()) if info_path.is_file() else {}
    info.setdefault("counts", {})["pairs"] = len(out)
    prov = info.setdefault("provenance", {})
    prov["pairs"] = {"source": str(source) if not isinstance(source, pd.DataFrame) else "data frame",
                     "read": int(len(pairs)), "dropped_unknown": int(bad.sum()),
                     "split_seed": int(seed), "test_brands": test_brands}
    atomic_write_text(info_path, yaml.safe_dump(info, sort_keys=False, allow_unicode=True))
    return out
