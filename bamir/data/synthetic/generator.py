"""Generate a synthetic raw dataset: orchestration, defects, writing.

Every random draw comes from its own stream, ``numpy.random.default_rng([seed, stream, ...])``,
so the output depends only on the config and the seed (not on the number of worker
processes rendering images), and the same seed gives byte-identical files.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pandas as pd
import yaml
from tqdm.auto import tqdm

from bamir.data import schema
from bamir.data.synthetic import images as img
from bamir.data.synthetic import knowledge, posts, profiles
from bamir.data.synthetic.config import GENERATOR_VERSION, config_hash, merge_config, output_config
from bamir.data.synthetic.vocabulary import EMOJI, FOREIGN_CAPTIONS, TOPICS
from bamir.data.synthetic.world import AFFINITY_TERMS, World, make_world
from bamir.ownership import SYNTHETIC, built_beside, check_target
from bamir.utils import atomic_write_bytes, atomic_write_json, atomic_write_text, exclusive

log = logging.getLogger(__name__)

GENERATOR = "bamir.data.synthetic"
#: Per-post defects, in the order they are assigned (a post gets at most one).
POST_DEFECTS = ("duplicate_posts", "no_image", "missing_images", "corrupt_images",
                "non_english_captions", "emoji_captions")


def _stream(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([int(seed), *keys])


# --------------------------------------------------------------------------------------- plan
def _friends(theta: np.ndarray, k: int = 10) -> np.ndarray:
    unit = theta / np.linalg.norm(theta, axis=1, keepdims=True)
    sim = unit @ unit.T
    np.fill_diagonal(sim, -np.inf)
    k = min(k, len(theta) - 1)
    return np.argpartition(-sim, k - 1, axis=1)[:, :k]


def _mention_plan(world: World, cfg: dict, n_posts: int, seed: int) -> list[list[list[int]]]:
    """Planned mentions of dataset accounts: [account row][post] -> account rows (brands first)."""
    rng = _stream(seed, 6)
    m = cfg["mentions"]
    n_b, n_i = world.affinity.shape
    plan = [[[] for _ in range(n_posts)] for _ in range(n_b + n_i)]
    for b, pos in enumerate(world.positives):
        for i in pos:
            if rng.random() < float(m["brand_positive"]):
                plan[b][int(rng.integers(n_posts))].append(n_b + int(i))
        others = np.setdiff1d(np.arange(n_i), pos)
        for i in rng.choice(others, size=int(rng.binomial(len(pos), float(m["brand_other"]))), replace=False):
            plan[b][int(rng.integers(n_posts))].append(n_b + int(i))
        for j in range(n_posts):
            if rng.random() < 0.02:
                other = int(rng.integers(n_b - 1))
                plan[b][j].append(other + (other >= b))
    friends = _friends(world.influencers.theta)
    brands_of: dict[int, list[int]] = {}
    for b, pos in enumerate(world.positives):
        for i in pos:
            brands_of.setdefault(int(i), []).append(b)
    for i in range(n_i):
        for j in range(n_posts):
            if rng.random() < float(m["influencer_friend"]):
                plan[n_b + i][j].append(n_b + int(friends[i, int(rng.integers(friends.shape[1]))]))
            if float(m["influencer_brand"]) > 0 and rng.random() < float(m["influencer_brand"]):
                own = brands_of[i]
                plan[n_b + i][j].append(own[int(rng.integers(len(own)))])
    return plan


# -------------------------------------------------------------------------------------- build
def _accounts(world: World, cfg: dict, seed: int) -> tuple[pd.DataFrame, list[str]]:
    brands, infl = world.brands, world.influencers
    n_b, n_i = len(brands.followers), len(infl.followers)
    names, brand_users = profiles.brand_names(n_b, brands.category, _stream(seed, 2))
    infl_users = profiles.influencer_usernames(infl, set(brand_users), _stream(seed, 3))
    rows = []
    for b in range(n_b):
        rng = _stream(seed, 5, b)
        rows.append({
            "account_id": f"b{b:04d}", "username": brand_users[b], "kind": "brand",
            "category": schema.CATEGORIES[brands.category[b]],
            "biography": profiles.brand_bio(names[b], brand_users[b], brands.theta[b], int(brands.category[b]),
                                            int(brands.region[b]), brands.targets[b], rng),
            "business_category": profiles.brand_business(int(brands.category[b]), rng),
            "followers": int(brands.followers[b]),
        })
    signal = cfg["signal"]
    for i in range(n_i):
        rng = _stream(seed, 5, n_b + i)
        rows.append({
            "account_id": f"i{i:05d}", "username": infl_users[i], "kind": "influencer", "category": "",
            "biography": profiles.influencer_bio(infl.theta[i], int(infl.region[i]), infl_users[i],
                                                 float(signal["biography"]), rng),
            "business_category": profiles.influencer_business(infl.theta[i], float(signal["business"]), rng),
            "followers": int(infl.followers[i]),
        })
    return pd.DataFrame(rows, columns=list(schema.COLUMNS[schema.ACCOUNTS])), brand_users + infl_users


def _posts(world: World, cfg: dict, seed: int, accounts: pd.DataFrame, progress: bool):
    n_b = len(world.brands.followers)
    n_posts = int(cfg["posts_per_account"])
    users = accounts["username"].tolist()
    externals = profiles.external_handles(200, set(users), _stream(seed, 4))
    plan = _mention_plan(world, cfg, n_posts, seed)
    crawl_end = datetime.fromisoformat(str(cfg["crawl_date"])).replace(hour=23, minute=59, second=59,
                                                                       tzinfo=timezone.utc)
    signal, m = cfg["signal"], cfg["mentions"]
    style_gain = float(signal["style"])
    logo_rng = _stream(seed, 2, 1)
    logos = [tuple(int(v) for v in logo_rng.integers(0, 256, 3)) for _ in range(n_b)]
    rows, specs = [], []
    for row in tqdm(range(len(accounts)), desc="accounts", unit="acct", disable=not progress, leave=False):
        brand = row < n_b
        latent = world.brands if brand else world.influencers
        k = row if brand else row - n_b
        kind = "brand" if brand else "influencer"
        rng = _stream(seed, 7, row)
        theta = latent.theta[k]
        h = posts.habits(kind, latent.style[k], int(latent.region[k]), rng)
        topics = rng.choice(len(TOPICS), size=n_posts, p=theta / theta.sum())
        stamps = posts.timestamps(n_posts, h, crawl_end, rng)
        likes, comments = posts.engagement(n_posts, int(latent.followers[k]), float(latent.engagement[k]), h,
                                           topics, int(theta.argmax()), rng)
        external_rate = float(m["brand_external"] if brand else m["influencer_external"])
        account_id = accounts.at[row, "account_id"]
        for j in range(n_posts):
            handles = [users[a] for a in plan[row][j]]
            if rng.random() < external_rate:
                handles.append(externals[int(rng.integers(len(externals)))])
            caption = posts.caption(kind, int(topics[j]), h, signal, rng, handles,
                                    brand_tag=users[row] if brand else None)
            post_index = len(rows)
            post_id = f"p{post_index:07d}"
            rows.append({
                "post_id": post_id, "account_id": account_id, "timestamp": stamps[j], "caption": caption,
                "image": f"{schema.IMAGES_DIR}/{account_id}/{post_id}.jpg",
                "likes": int(likes[j]), "comments": int(comments[j]),
            })
            style = tuple(float(v) * style_gain for v in latent.style[k][:5])
            logo = logos[k] if brand and rng.random() < 0.5 else None
            specs.append(img.ImageSpec(posts.image_topic(int(topics[j]), float(signal["image"]), rng),
                                       style, (int(seed), 10, post_index), logo))
    return rows, specs


def _defects(cfg: dict, seed: int, accounts: pd.DataFrame, rows: list[dict], specs: list,
             n_posts: int) -> tuple[dict[str, list[str]], set[int], dict[int, int]]:
    """Plant the configured defects in place. Returns planted ids, corrupt post indices, and
    duplicate post index -> source post index."""
    rng = _stream(seed, 8)
    rates = cfg["defects"]
    planted: dict[str, list[str]] = {}
    influencers = np.flatnonzero(accounts["kind"].to_numpy() == "influencer")
    n_empty = int(round(float(rates["empty_biography"]) * len(influencers)))
    empty = np.sort(rng.choice(influencers, size=n_empty, replace=False)) if n_empty else []
    for a in empty:
        accounts.at[a, "biography"] = ""
    planted["empty_biography"] = [accounts.at[a, "account_id"] for a in empty]

    total = len(rows)
    taken = np.zeros(total, bool)
    corrupt: set[int] = set()
    duplicates: dict[int, int] = {}
    for kind in POST_DEFECTS:
        count = int(round(float(rates[kind]) * total))
        if kind == "duplicate_posts":
            # a repost: post j-1 (newer) repeats post j (older) of the same account
            candidates = np.array([p for p in range(total) if p % n_posts != n_posts - 1])
            chosen: list[int] = []
            for p in rng.permutation(candidates) if count else []:
                if len(chosen) == count:
                    break
                if not taken[p] and not taken[p + 1]:
                    taken[p] = taken[p + 1] = True
                    chosen.append(int(p))
                    duplicates[int(p)] = int(p + 1)
            chosen_ids = sorted(chosen)
        else:
            free = np.flatnonzero(~taken)
            chosen_ids = sorted(int(p) for p in rng.choice(free, size=min(count, len(free)), replace=False))
            taken[chosen_ids] = True
        for p in chosen_ids:
            post = rows[p]
            if kind == "duplicate_posts":
                src = rows[p + 1]
                post["caption"] = src["caption"]
                specs[p] = specs[p + 1]
            elif kind == "no_image":
                post["image"] = ""
                specs[p] = None
            elif kind == "missing_images":
                specs[p] = None
            elif kind == "corrupt_images":
                corrupt.add(p)
            elif kind == "non_english_captions":
                text = FOREIGN_CAPTIONS[int(rng.integers(len(FOREIGN_CAPTIONS)))]
                topic = TOPICS[specs[p].topic] if specs[p] is not None else TOPICS[0]
                tags = rng.choice(topic.hashtags, size=2, replace=False)
                post["caption"] = f"{text} {EMOJI[int(rng.integers(len(EMOJI)))]} #{tags[0]} #{tags[1]}"
            elif kind == "emoji_captions":
                post["caption"] = "".join(rng.choice(EMOJI, size=int(rng.integers(1, 6))))
        planted[kind] = [rows[p]["post_id"] for p in chosen_ids]
    return planted, corrupt, duplicates


def _write_images(root: Path, rows: list[dict], specs: list, corrupt: set[int], cfg: dict, seed: int,
                  progress: bool) -> int:
    size, quality = int(cfg["image_size"]), int(cfg["image_quality"])
    todo = [p for p, spec in enumerate(specs) if spec is not None]
    for account in sorted({rows[p]["account_id"] for p in todo}):
        (root / schema.IMAGES_DIR / account).mkdir(parents=True, exist_ok=True)
    chunk = 256
    batches = [todo[i:i + chunk] for i in range(0, len(todo), chunk)]
    workers = max(1, int(cfg.get("workers", 1)))
    bar = tqdm(total=len(todo), desc="images", unit="img", disable=not progress, leave=False)
    corrupt_rng = _stream(seed, 11)

    def write(batch: list[int], blobs: list[bytes]) -> None:
        for p, blob in zip(batch, blobs):
            if p in corrupt:
                blob = blob[: len(blob) // 3] if corrupt_rng.random() < 0.5 else corrupt_rng.bytes(len(blob) // 2)
            (root / rows[p]["image"]).write_bytes(blob)
        bar.update(len(batch))

    if workers == 1 or len(batches) < 2:
        for batch in batches:
            write(batch, img.render_many([specs[p] for p in batch], size, quality))
    else:
        ctx = multiprocessing.get_context("spawn")
        with ctx.Pool(workers) as pool:
            jobs = [([specs[p] for p in batch], size, quality) for batch in batches]
            for batch, blobs in zip(batches, pool.imap(_render_job, jobs)):
                write(batch, blobs)
    bar.close()
    return len(todo)


def _render_job(args) -> list[bytes]:
    return img.render_many(*args)


def _pairs(world: World, accounts: pd.DataFrame) -> pd.DataFrame:
    n_b = len(world.brands.followers)
    ids = accounts["account_id"].tolist()
    all_scores = np.concatenate(world.scores)
    mu, sd = float(all_scores.mean()), float(all_scores.std() + 1e-9)
    rows = []
    for b, (pos, scores) in enumerate(zip(world.positives, world.scores)):
        for i, s in zip(pos, scores):
            rows.append({"brand": ids[b], "influencer": ids[n_b + int(i)],
                         "score": round(float(1 / (1 + np.exp(-(s - mu) / sd))), 4)})
    return pd.DataFrame(rows, columns=["brand", "influencer", "score"])


def _splits(world: World, accounts: pd.DataFrame) -> dict:
    n_b = len(world.brands.followers)
    ids = accounts["account_id"].tolist()
    test = set(int(b) for b in world.test_brands)
    candidates = sorted({int(i) for b in test for i in world.positives[b]})
    return {"discover": {
        "train_brands": [ids[b] for b in range(n_b) if b not in test],
        "test_brands": [ids[b] for b in sorted(test)],
        "test_candidates": [ids[n_b + i] for i in candidates],
    }}


def _write_affinity(root: Path, world: World, cfg: dict) -> None:
    from safetensors.numpy import save

    tensors = {"affinity": np.ascontiguousarray(world.affinity, dtype=np.float32)}
    for name in AFFINITY_TERMS:
        tensors[f"term_{name}"] = np.ascontiguousarray(world.terms[name], dtype=np.float32)
    # one metadata key: safetensors writes its metadata map in no fixed order, and the file
    # must be byte-identical for a seed
    metadata = {"info": json.dumps({
        "weights": {k: float(cfg["affinity"][k]) for k in AFFINITY_TERMS},
        "note": "affinity = sum of weights x z-scored terms; rows = brands, columns = influencers, "
                "in accounts-table order; positives were drawn from affinity + noise"}, sort_keys=True)}
    atomic_write_bytes(root / schema.AFFINITY_FILE, save(tensors, metadata=metadata))


def _generate(root: Path, cfg: dict, seed: int) -> dict[str, Any]:
    progress = bool(cfg.get("progress", True))
    timings: dict[str, float] = {}
    t0 = time.perf_counter()
    world = make_world(cfg, _stream(seed, 1))
    timings["world"] = time.perf_counter() - t0
    accounts, _ = _accounts(world, cfg, seed)
    rows, specs = _posts(world, cfg, seed, accounts, progress)
    planted, corrupt, _ = _defects(cfg, seed, accounts, rows, specs, int(cfg["posts_per_account"]))
    timings["text"] = time.perf_counter() - t0 - timings["world"]
    t1 = time.perf_counter()
    n_files = _write_images(root, rows, specs, corrupt, cfg, seed, progress)
    timings["images"] = time.perf_counter() - t1

    fmt = str(cfg["table_format"])
    post_frame = pd.DataFrame(rows, columns=list(schema.COLUMNS[schema.POSTS]))
    pairs = _pairs(world, accounts)
    schema.write_table(accounts, root, schema.ACCOUNTS, fmt)
    schema.write_table(post_frame, root, schema.POSTS, fmt)
    schema.write_table(pairs, root, schema.PAIRS, fmt)
    atomic_write_json(root / schema.SPLITS_FILE, _splits(world, accounts))
    knowledge.write_files(root, seed)
    _write_affinity(root, world, cfg)
    atomic_write_json(root / schema.DEFECTS_FILE, planted)

    n_b = len(world.brands.followers)
    info = {
        "name": f"synthetic-{cfg['name']}-seed{seed}",
        "schema_version": schema.SCHEMA_VERSION,
        "description": "Synthetic Instagram brands and micro-influencers with a planted brand-influencer "
                       "affinity (bamir.data.synthetic).",
        "categories": list(schema.CATEGORIES),
        "counts": {
            "accounts": len(accounts), "brands": n_b, "influencers": len(accounts) - n_b,
            "posts": len(post_frame), "images": int((post_frame["image"] != "").sum()), "pairs": len(pairs),
        },
        "provenance": {
            "generator": GENERATOR,
            "generator_version": GENERATOR_VERSION,
            "preset": str(cfg["name"]),
            "seed": int(seed),
            "config_hash": config_hash(cfg, seed),
            "config": output_config(cfg),
            "pool_size": int(world.pool_size),
            "image_files": n_files,
            "defects": {kind: len(ids) for kind, ids in planted.items()},
        },
    }
    atomic_write_text(root / schema.DATASET_FILE, yaml.safe_dump(info, sort_keys=False, allow_unicode=True))
    timings["total"] = time.perf_counter() - t0
    return timings


# ----------------------------------------------------------------------------------- public API
def is_synthetic(root: str | os.PathLike) -> dict[str, Any] | None:
    """The provenance of a dataset this generator wrote, or None (absent, unreadable, not ours)."""
    path = Path(root) / schema.DATASET_FILE
    try:
        info = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError):
        return None
    provenance = info.get("provenance") or {}
    return provenance if provenance.get("generator") == GENERATOR else None


def drawn_world(root: str | os.PathLike) -> tuple[World, dict[str, Any]] | None:
    """The latent world of a dataset this generator wrote, drawn again from the config and seed of its
    provenance and checked against its planted affinity file, with that merged config; None for
    datasets it did not write (or that record no config)."""
    provenance = is_synthetic(root)
    if provenance is None or "config" not in provenance:
        return None
    cfg = merge_config(provenance["config"])
    world = make_world(cfg, _stream(int(provenance["seed"]), 1))
    affinity = schema.read_planted_affinity(root)
    if affinity is None or world.affinity.shape != affinity.shape or not np.allclose(world.affinity, affinity, atol=1e-5):
        raise ValueError(f"{root}: the world drawn again from its provenance is not the one its affinity file holds")
    return world, cfg


def synthesize(out_dir: str | os.PathLike, cfg: Mapping[str, Any] | None = None, seed: int = 0,
               *, overwrite: bool = False, foreign: bool = False) -> Path:
    """Generate a synthetic raw dataset into ``out_dir`` and return its path.

    ``cfg`` is a preset (``conf/synthetic/*.yaml``, a dict or DictConfig, possibly partial:
    missing keys take :data:`~bamir.data.synthetic.config.DEFAULTS`). The folder is written
    under a temporary name beside ``out_dir`` and swapped in at the end, so an interrupted run
    leaves the old folder as it was. An existing non-empty ``out_dir`` is replaced only with
    ``overwrite=True`` and only if it is a synthetic dataset bamir wrote holding none of the
    user's own files (:func:`bamir.ownership.check_target`); ``foreign=True`` (the app's
    ``overwrite=true``) replaces any folder.
    """
    merged = merge_config(cfg)
    out = Path(out_dir)
    if out.exists() and not (out.is_dir() and not any(out.iterdir())) and not (overwrite or foreign):
        raise FileExistsError(f"{out} exists; pass overwrite=True to regenerate it")
    check_target(out, SYNTHETIC, foreign=foreign)
    with built_beside(out, SYNTHETIC, GENERATOR) as tmp:
        timings = _generate(tmp, merged, int(seed))
    log.info("synthetic dataset %s (preset %s, seed %d) written in %.1f s (world %.1f s, text %.1f s, "
             "images %.1f s)", out, merged["name"], seed, timings["total"], timings["world"], timings["text"],
             timings["images"])
    return out


def ensure_synthetic(out_dir: str | os.PathLike, cfg: Mapping[str, Any] | None = None, seed: int = 0,
                     *, foreign: bool = False) -> Path:
    """``out_dir`` if it holds the dataset of this config and seed; otherwise (re)generate it.

    Regenerates when the folder is absent or was made with another config, seed or generator
    version (compared through ``provenance.config_hash`` in ``dataset.yaml``). Refuses to
    touch a non-empty folder this generator did not write, or one holding the user's own
    files, unless ``foreign`` (see :func:`synthesize`).
    """
    out = Path(out_dir)
    wanted = config_hash(cfg, seed)

    def fresh() -> bool:
        provenance = is_synthetic(out)
        return provenance is not None and provenance.get("config_hash") == wanted

    if fresh():
        return out
    with exclusive(out, "synthetic dataset"):
        if fresh():  # another process generated it while we waited
            return out
        return synthesize(out, cfg, seed, overwrite=True, foreign=foreign)
