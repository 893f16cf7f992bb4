"""The ranking app (``bamir-rank``): ranked influencers per brand, with each branch's share.

Prints one table per brand (rank, influencer, score, followers, engagement, each branch's
share of the score; ``*`` marks an already-linked influencer) and writes ``ranking.csv``,
``ranking.json`` and ``report.html`` into the run folder. ``brand=all`` ranks every test
brand of the split; ``brand_posts=PATH`` ranks for a new brand from its posts (cold start,
:mod:`bamir.coldstart`: the fitted stages encode the ranker's :attr:`modalities`). See
``conf/rank.yaml`` for the candidate filters and search options.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from bamir.ranking.accounts import account_profiles, raw_root_of, resolve_names
from bamir.ranking.candidates import CandidateFilter, candidate_rows, linked_exclusions
from bamir.ranking.ranker import CandidateIndex, Ranker
from bamir.ranking.tables import format_table, ranking_frame

log = logging.getLogger("bamir.rank")


def rank(cfg: DictConfig) -> dict[str, Any]:
    """Run the ranking app on a composed ``conf/rank.yaml``; returns what ``ranking.json`` holds."""
    import lightning as L
    import pandas as pd
    import torch

    from bamir.config import check_output_dir
    from bamir.checkpoints import OtherStoreError
    from bamir.train import load_run, resolve_checkpoint
    from bamir.utils import atomic_write_json, atomic_write_text

    out_dir = check_output_dir(cfg.paths.output_dir, cfg.paths.get("min_free_mb", 100))
    if cfg.get("brand") in (None, "") and not cfg.get("brand_posts"):
        raise ValueError("say which brand: brand=NAME (username or id), brand=all (every test brand), "
                         "or brand_posts=PATH (a new brand's posts)")
    ckpt = resolve_checkpoint(cfg)
    try:
        datamodule, model = load_run(cfg, ckpt)  # the data served as in the checkpoint's training
    except OtherStoreError as err:
        raise OtherStoreError(f"{err}{_trained_on_hint(ckpt)}") from None
    L.seed_everything(cfg.seed, verbose=False)  # after the store: building it draws random numbers
    store = datamodule.store
    raw_root = raw_root_of(store, cfg.get("raw_root"))
    profiles = account_profiles(store, raw_root)
    pairs = datamodule.pair_rows
    n_store = len(datamodule.account_ids)
    timing: dict[str, float] = {}

    # ---------------------------------------------------------------- brands
    cold = None
    if cfg.get("brand_posts"):
        from bamir.coldstart import encode_new_accounts, extend_features, load_brand_folder, new_profiles, to_model_space

        t0 = time.perf_counter()
        raw_new = load_brand_folder(cfg.brand_posts, cfg.get("brand_category"))
        cold = encode_new_accounts(store, raw_new, model.modalities, device=_device(cfg))
        cold = to_model_space(datamodule, cold)  # as the data module hands the store's rows to the model
        model.attach_features(extend_features(model.feature_matrices(), cold))
        profiles = pd.concat([profiles, new_profiles(cold)], ignore_index=True)
        brand_rows = list(range(n_store, n_store + len(cold.accounts)))
        timing["cold_start_features_s"] = time.perf_counter() - t0
        log.info("cold start: %s featurised with the fitted stages in %.1fs", cold.accounts,
                 timing["cold_start_features_s"])
    elif str(cfg.brand).strip().lower() == "all":
        if datamodule.test_split is None:
            raise ValueError(f"brand=all: split {datamodule.split_name!r} has no test brands; name brands instead")
        brand_rows = datamodule.test_split.brands.tolist()
    else:
        names = [cfg.brand] if isinstance(cfg.brand, str) else list(cfg.brand)
        names = [n.strip() for name in names for n in str(name).split(",") if n.strip()]
        brand_rows = resolve_names(names, profiles, "brand")
    brands = torch.tensor(brand_rows, dtype=torch.long)

    # ---------------------------------------------------------------- candidates
    flt = CandidateFilter.from_config(OmegaConf.to_container(cfg.filters, resolve=True) if cfg.get("filters") else None)
    if cfg.candidates == "all":
        pool = None
    elif cfg.candidates == "test":
        if datamodule.test_split is None:
            raise ValueError("candidates=test: the split has no test candidates")
        pool = datamodule.test_split.candidates
    else:
        raise ValueError(f"candidates={cfg.candidates!r}: use all or test")
    all_influencers = torch.from_numpy((profiles["kind"].iloc[:n_store] == "influencer").to_numpy().nonzero()[0]).long()
    allowed = candidate_rows(profiles.iloc[:n_store], pairs, flt, pool)
    if len(allowed) == 0:
        raise ValueError(f"no influencer passes the filters {flt.describe()} (pool: {cfg.candidates})")

    search = cfg.search
    ranker = Ranker(model, device=_device(cfg), method=search.method, brand_chunk=search.brand_chunk,
                    candidate_chunk=search.candidate_chunk, encode_batch=search.encode_batch,
                    compute_dtype=search.compute_dtype, auto_ivf_from=search.get("auto_ivf_from"),
                    faiss={k: v for k, v in OmegaConf.to_container(search.faiss, resolve=True).items() if v is not None})
    # candidate embeddings: once per checkpoint and store (kept on disk), then filtered
    t0 = time.perf_counter()
    cache_key = _embedding_key(ckpt, datamodule, model, all_influencers)
    cache_path = Path(cfg.embedding_cache) / f"{cache_key[:24]}.safetensors" if cfg.get("embedding_cache") else None
    full = CandidateIndex.load(cache_path, cache_key) if cache_path else None
    cached = full is not None
    if full is None:
        full = ranker.index(all_influencers)
        if cache_path and full.keys is not None:
            full.save(cache_path, cache_key)
            full.cache_dir, full.key = cache_path.parent, cache_key
    full.keys = None if full.keys is None else full.keys.to(ranker.device)
    positions = full.position_of(n_store)[allowed]
    index = full.subset(positions)
    timing["embeddings_s"] = time.perf_counter() - t0
    exclude = linked_exclusions(brands, index, pairs, n_store + (len(cold.accounts) if cold else 0)) \
        if flt.exclude_linked else None
    ranking = ranker.rank(brands, index, int(cfg.top_k), exclude)
    timing["rank_s"] = ranking.seconds
    log.info("ranked %d brands against %d candidates (%s, embeddings %s) in %.3fs", len(brands), len(index),
             ranking.method, "cached" if cached else "computed", ranking.seconds)

    # ---------------------------------------------------------------- outputs
    frame = ranking_frame(ranking, profiles, pairs)
    atomic_write_text(out_dir / "ranking.csv", frame.to_csv(index=False))
    result = _result_json(cfg, ckpt, store, raw_root, ranking, frame, profiles, flt, cold, timing, cached)
    atomic_write_json(out_dir / "ranking.json", result)
    shown = result["brands"][: int(cfg.get("print_brands", 10))]
    for brand in shown:
        sub = frame[frame["brand_id"] == brand["id"]]
        title = f"{brand['name']} ({brand['category'] or 'no category'}{', new brand' if brand['cold_start'] else ''})"
        print(f"\n## {title}: top {len(sub)} of {ranking.pool_size} candidates\n")
        print(format_table(sub))
    if len(result["brands"]) > len(shown):
        print(f"\n({len(result['brands']) - len(shown)} more brands in {out_dir / 'ranking.csv'})")
    if any(frame["linked"]):
        print("\n* already linked to the brand (a known pair)")
    if cfg.report.get("html", True):
        from bamir.report_html import render_report

        path = render_report(result, out_dir / "report.html", thumbnails=cfg.report.thumbnails,
                             brand_posts=cfg.report.brand_posts, thumb_px=cfg.report.thumb_px,
                             max_brands=cfg.report.max_brands)
        log.info("report: %s", path)
    print(f"\nwrote {out_dir / 'ranking.csv'} and {out_dir / 'ranking.json'}")
    return result


def _embedding_key(ckpt: str, datamodule, model, rows) -> str:
    """Names the candidate embeddings: everything that changes one (checkpoint, store, the data's
    transform and its statistics, modalities, rows, model class)."""
    from bamir.utils import file_hash, stable_hash

    return stable_hash({"ckpt": file_hash(ckpt), "data": datamodule.fingerprint(), "rows": stable_hash(rows.tolist()),
                        "model": type(model).__qualname__})


def _device(cfg: DictConfig) -> str:
    import torch

    device = cfg.search.get("device", "auto")
    return ("cuda" if torch.cuda.is_available() else "cpu") if device in (None, "auto") else str(device)


def _trained_on_hint(ckpt: str) -> str:
    """'; its training run used store ...' from the run's saved Hydra config, when there is one."""
    config = Path(ckpt).resolve().parent.parent / ".hydra" / "config.yaml"
    if not config.is_file():
        return ""
    try:
        saved = OmegaConf.load(config)
        store = OmegaConf.select(saved, "dataset.store", throw_on_resolution_failure=False)
        name = OmegaConf.select(saved, "dataset.name", throw_on_resolution_failure=False)
    except Exception:  # an unreadable or foreign config: no hint
        return ""
    return f". Its training run used dataset {name!r} (store {store}): pass the same dataset= / dataset.store= here"


def _result_json(cfg, ckpt, store, raw_root, ranking, frame, profiles, flt, cold, timing, cached) -> dict[str, Any]:
    import numpy as np

    def num(x):
        return None if x is None or not np.isfinite(x) else float(x)

    branches = list(ranking.contributions)
    brands = []
    for row in ranking.brands.tolist():
        prof = profiles.iloc[row]
        sub = frame[frame["brand_id"] == prof["account_id"]]
        top = [{"rank": int(r["rank"]), "id": r["influencer_id"], "name": r["influencer"], "score": num(r["score"]),
                "followers": num(r["followers"]), "engagement": num(r["engagement"]),
                "contributions": {b: num(r[f"contrib_{b}"]) for b in branches},
                "shares": {b: num(r[f"share_{b}"]) for b in branches}, "linked": bool(r["linked"])}
               for r in sub.to_dict("records")]
        is_new = cold is not None and prof["account_id"] in cold.accounts
        brands.append({"id": prof["account_id"], "name": prof["username"], "category": prof["category"],
                       "followers": num(prof["followers"]), "engagement": num(prof["engagement"]),
                       "cold_start": bool(is_new), "posts_root": str(cold.raw.root) if is_new else None, "top": top})
    train_run = Path(ckpt).resolve().parent.parent
    return {
        "checkpoint": str(ckpt), "train_run": str(train_run), "store": str(store.root),
        "raw_root": None if raw_root is None else str(raw_root), "dataset": store.manifest.get("dataset", {}).get("name"),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"), "top_k": int(cfg.top_k), "candidates": cfg.candidates,
        "pool_size": ranking.pool_size, "filters": flt.describe(), "branches": branches,
        "search": {"method": ranking.method, "requested": cfg.search.method, "device": _device(cfg),
                   "embeddings": "cached" if cached else "computed"},
        "cold_start_notes": dict(cold.notes) if cold else {}, "timing": timing, "brands": brands,
    }
