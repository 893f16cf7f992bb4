"""The tiny synthetic chain for the ranking, report and notebook tests: raw data with images,
a feature store prepared with cheap stages, a briefly trained BAMIR checkpoint, and a "new
brand" folder. Built once per test session under pytest's base temp folder (each step is
skipped when its output is already there), so the modules that use it share one chain."""

from __future__ import annotations

import shutil
from pathlib import Path

from omegaconf import open_dict

from tests.helpers.prep import tiny_stages

TINY = {"name": "tiny", "brands_per_category": 2, "influencers": 250, "posts_per_account": 6, "test_brands": 6,
        "progress": False}
CONCEPT = {"_target_": "bamir.features.concept.stage.ConceptStage", "dim": 8, "walks_per_node": 2, "walk_length": 10,
           "steps": 20}
NEW_BRAND_ID, NEW_BRAND_NAME = "newbrand01", "brand_new_co"


def stages() -> dict:
    out = tiny_stages(object={"shard_size": 256}, scene={"shard_size": 256})
    out["concept"] = dict(CONCEPT)
    return out


def tiny_raw(base: Path) -> Path:
    from bamir.data.synthetic import ensure_synthetic

    return ensure_synthetic(base / "raw", TINY, seed=0)


def tiny_store(base: Path) -> Path:
    from bamir.features.pipeline import prepare

    store = base / "store"
    prepare(tiny_raw(base), store, stages(), progress=False)
    return store


def rank_overrides(store: Path) -> list[str]:
    """Overrides that point an app at the tiny synthetic store."""
    return ["dataset=release", f"dataset.store={store}", "dataset.name=synthetic-tiny", "dataset.modalities=null"]


def trained_run(base: Path, epochs: int = 2) -> Path:
    """A training run folder (checkpoints/last.ckpt, metrics.json, csv/metrics.csv) on the tiny store."""
    run = base / "train" / "run"
    if (run / "checkpoints" / "last.ckpt").is_file() and (run / "metrics.json").is_file():
        return run
    from bamir.train import train
    from tests.helpers.compose import compose_config

    store = tiny_store(base)
    cfg = compose_config("train", base / "train", [
        *rank_overrides(store), "model=bamir_small", "logger=csv", "trainer=cpu", f"trainer.max_epochs={epochs}",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", "data.batch_size=64",
    ], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(base / "data")
    train(cfg)
    return run


def new_brand_folder(base: Path, like: str) -> Path:
    """A folder in the raw layout holding one "new" brand: the posts and images of brand ``like``
    under a new id and username (so its features must equal ``like``'s, bar the mention counts)."""
    from bamir.data.schema import RawDataset, write_table

    raw = RawDataset.load(tiny_raw(base))
    out = base / f"new_brand_like_{like}"
    if (out / "posts.csv").is_file():
        return out
    shutil.rmtree(out, ignore_errors=True)
    accounts = raw.accounts[raw.accounts["account_id"] == like].copy()
    accounts["account_id"], accounts["username"] = NEW_BRAND_ID, NEW_BRAND_NAME
    posts = raw.posts[raw.posts["account_id"] == like].copy()
    posts["account_id"] = NEW_BRAND_ID
    for image in posts["image"]:
        if image:
            (out / image).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(raw.root / image, out / image)
    write_table(accounts, out, "accounts", "csv")
    write_table(posts, out, "posts", "csv")
    return out
