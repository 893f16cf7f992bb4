"""bamir-rank end to end on the tiny planted store: tables, files, brand=all, filters, bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from omegaconf import open_dict

from bamir.ranking.app import rank
from bamir.ranking import UnknownNameError
from tests.helpers.compose import compose_config

BASE = ["dataset=planted_tiny", "search.device=cpu"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory, shared_data) -> Path:
    from bamir.train import train

    root = tmp_path_factory.mktemp("rank_train")
    cfg = compose_config("train", root, ["trainer.max_epochs=1", "test=false"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    train(cfg)
    from omegaconf import OmegaConf

    (root / "run" / ".hydra").mkdir()  # what a bamir-train run leaves beside its checkpoints
    OmegaConf.save({k: v for k, v in cfg.items() if k != "hydra"}, root / "run" / ".hydra" / "config.yaml")
    return root / "run" / "checkpoints" / "last.ckpt"


def _cfg(tmp_path, shared_data, checkpoint, *overrides):
    cfg = compose_config("rank", tmp_path, [*BASE, f"ckpt_path={checkpoint}", *overrides], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


def _brands(shared_data):
    accounts = pd.read_csv(shared_data / "stores" / "planted-tiny-0" / "accounts.csv")
    splits = json.loads((shared_data / "stores" / "planted-tiny-0" / "splits.json").read_text())["discover"]
    names = dict(zip(accounts["account_id"], accounts["username"]))
    return [names[b] for b in splits["test_brands"]], names


def test_one_brand_prints_the_table_and_writes_csv_and_json(tmp_path, shared_data, checkpoint, capsys):
    test_brands, _ = _brands(shared_data)
    cfg = _cfg(tmp_path, shared_data, checkpoint, f"brand={test_brands[0]}", "top_k=7", "report.html=false")
    result = rank(cfg)
    out = capsys.readouterr().out
    assert f"## {test_brands[0]}" in out
    header = next(line for line in out.splitlines() if line.startswith("rank"))
    assert header.split()[:5] == ["rank", "influencer", "score", "followers", "engagement"]
    assert "content share" in header and "concept share" in header
    run = tmp_path / "run"
    frame = pd.read_csv(run / "ranking.csv")
    assert len(frame) == 7 and list(frame["rank"]) == list(range(1, 8))
    assert frame["score"].is_monotonic_decreasing
    shares = frame[["share_content", "share_concept"]].abs().sum(axis=1)
    assert shares.round(6).eq(1).all()
    assert (frame[["contrib_content", "contrib_concept"]].sum(axis=1) - frame["score"]).abs().max() < 1e-4
    saved = json.loads((run / "ranking.json").read_text())
    assert saved == json.loads(json.dumps(result))
    assert saved["brands"][0]["name"] == test_brands[0] and len(saved["brands"][0]["top"]) == 7
    assert saved["pool_size"] == 120 and saved["branches"] == ["content", "concept"]
    assert saved["search"]["method"] == "exact"  # auto on a small CPU job


def test_brand_all_ranks_every_test_brand_and_reuses_embeddings(tmp_path, shared_data, checkpoint, capsys):
    test_brands, _ = _brands(shared_data)
    first = rank(_cfg(tmp_path / "a", shared_data, checkpoint, "brand=all", "top_k=3", "print_brands=2",
                      "report.html=false"))
    assert [b["name"] for b in first["brands"]] == test_brands
    assert f"{len(test_brands) - 2} more brands" in capsys.readouterr().out
    again = rank(_cfg(tmp_path / "b", shared_data, checkpoint, "brand=all", "top_k=3", "candidates=test",
                      "report.html=false"))
    assert again["search"]["embeddings"] == "cached"  # precomputed once per checkpoint
    assert again["pool_size"] < first["pool_size"]
    frame = pd.read_csv(tmp_path / "b" / "run" / "ranking.csv")
    assert len(frame) == 3 * len(test_brands)


def test_filters(tmp_path, shared_data, checkpoint):
    test_brands, names = _brands(shared_data)
    brand = test_brands[0]
    plain = rank(_cfg(tmp_path / "a", shared_data, checkpoint, f"brand={brand}", "top_k=120", "report.html=false"))
    linked = [t["name"] for t in plain["brands"][0]["top"] if t["linked"]]
    assert linked, "the planted brand's positives are in the full pool"
    excluded = rank(_cfg(tmp_path / "b", shared_data, checkpoint, f"brand={brand}", "top_k=120",
                         "filters.exclude_linked=true", "report.html=false"))
    names_left = [t["name"] for t in excluded["brands"][0]["top"]]
    assert not set(linked) & set(names_left) and len(names_left) == 120 - len(linked)
    some = [t["name"] for t in plain["brands"][0]["top"][5:8]]
    only = rank(_cfg(tmp_path / "c", shared_data, checkpoint, f"brand={brand}",
                     f"filters.influencers=[{','.join(some)}]", "report.html=false"))
    assert [t["name"] for t in only["brands"][0]["top"]] == some
    category = rank(_cfg(tmp_path / "d", shared_data, checkpoint, f"brand={brand}", "filters.category=airline",
                         "top_k=50", "report.html=false"))
    assert 0 < category["pool_size"] < 120
    with pytest.raises(ValueError, match="follower counts"):  # the planted store has no raw data
        rank(_cfg(tmp_path / "e", shared_data, checkpoint, f"brand={brand}", "filters.min_followers=100"))


def test_unknown_names_list_the_closest(tmp_path, shared_data, checkpoint):
    test_brands, _ = _brands(shared_data)
    typo = test_brands[0][:-1] + ("x" if test_brands[0][-1] != "x" else "y")
    with pytest.raises(UnknownNameError, match=f"unknown brand '{typo}'; closest: .*{test_brands[0]}"):
        rank(_cfg(tmp_path, shared_data, checkpoint, f"brand={typo}"))
    with pytest.raises(UnknownNameError, match="unknown influencer 'nobody_here'"):
        rank(_cfg(tmp_path, shared_data, checkpoint, f"brand={test_brands[0]}", "filters.influencers=[nobody_here]"))
    with pytest.raises(UnknownNameError, match="unknown category 'airlne'; closest: airline"):
        rank(_cfg(tmp_path, shared_data, checkpoint, f"brand={test_brands[0]}", "filters.category=airlne"))
    with pytest.raises(ValueError, match="say which brand"):
        rank(_cfg(tmp_path, shared_data, checkpoint))


def test_checkpoint_of_another_store_is_refused(tmp_path, shared_data, checkpoint):
    test_brands, _ = _brands(shared_data)
    cfg = _cfg(tmp_path, shared_data, checkpoint, f"brand={test_brands[0]}", "dataset.build.seed=1")
    with pytest.raises(ValueError, match=r"trained on another feature store: modality 'concept': config_hash .* in the checkpoint.*"
                                         r"training run used dataset 'planted_tiny' \(store .*planted-tiny-0\)"):
        rank(cfg)


def test_cold_start_needs_fitted_stages(tmp_path, shared_data, checkpoint):
    from bamir.coldstart import ColdStartError

    folder = tmp_path / "brand"
    folder.mkdir()
    (folder / "accounts.csv").write_text("account_id,username,kind,category,biography,business_category,followers\n"
                                         "nb,newbie,brand,food,We bake bread,Bakery,1000\n")
    (folder / "posts.csv").write_text("post_id,account_id,timestamp,caption,image,likes,comments\n"
                                      "p1,nb,2019-05-01T10:00:00+00:00,fresh bread #bakery,,10,1\n")
    with pytest.raises(ColdStartError, match="not made by bamir-prepare"):
        rank(_cfg(tmp_path, shared_data, checkpoint, f"brand_posts={folder}"))


@pytest.mark.slow
def test_cli_reports_a_bad_name_without_traceback(tmp_path, shared_data, checkpoint):
    env_root = tmp_path / "cli"
    proc = subprocess.run(
        [sys.executable, "-m", "bamir.cli.rank", *BASE, f"ckpt_path={checkpoint}", "brand=no_such_brand_xyz",
         f"paths.root_dir={env_root}", f"paths.data_dir={shared_data}"],
        capture_output=True, text=True, timeout=300,
    )
    assert proc.returncode == 2, proc.stderr[-2000:]
    text = proc.stdout + proc.stderr
    assert "unknown brand 'no_such_brand_xyz'" in text and "Traceback" not in text
