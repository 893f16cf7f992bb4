"""What a job records: one W&B run per Hydra job, the best epoch in every report, a quiet console."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from tests.helpers.compose import compose_config
from tests.helpers.wandb_records import finished_run
from tests.helpers.paths import REPO

SWEEP = ["dataset=planted_tiny", "model=cosine,random", "seed=1,2", "logger=wandb", "trainer=cpu",
         "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _sweep(tmp_path: Path, shared_data: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "bamir.cli.train", "-m", *SWEEP, f"paths.root_dir={tmp_path}",
           f"paths.data_dir={shared_data}", *extra]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_sweep_makes_one_wandb_run_per_job_in_one_group(tmp_path, shared_data, planted_store, launcher):
    extra = ["hydra/launcher=local_parallel", "hydra.launcher.n_jobs=2"] if launcher == "joblib" else []
    _sweep(tmp_path, shared_data, *extra)
    files = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/*/wandb/offline-run-*/run-*.wandb"))
    assert len(files) == 4, files
    runs = [finished_run(f) for f in files]
    assert len({r["group"] for r in runs}) == 1 and runs[0]["group"].startswith("train-")
    assert len({r["name"] for r in runs}) == 4
    assert {r["job_type"] for r in runs} == {"train"}
    jobs = set()
    for path, run in zip(files, runs):
        job_dir = path.parents[2]
        assert run["exit_code"] == 0
        # each run holds its own job's config, and its name says which job it is
        model, seed = run["config"]["model"]["_target_"], run["config"]["seed"]
        kind = "cosine" if "Cosine" in model else "random"
        assert f"model={kind}" in run["name"] and f"seed={seed}" in run["name"]
        saved = (job_dir / ".hydra" / "overrides.yaml").read_text()
        assert f"model={kind}" in saved and f"seed={seed}" in saved
        jobs.add((kind, seed))
    assert jobs == {("cosine", 1), ("cosine", 2), ("random", 1), ("random", 2)}


def _train_cfg(tmp_path, shared_data, *overrides):
    cfg = compose_config("train", tmp_path, list(overrides))
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


def test_a_failed_job_finishes_its_wandb_run(tmp_path, shared_data, planted_store, monkeypatch):
    import wandb

    from bamir.train import train_task

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = _train_cfg(tmp_path, shared_data, "logger=wandb", f"ckpt_path={tmp_path / 'missing.ckpt'}")
    with pytest.raises(FileNotFoundError, match="missing.ckpt"):
        train_task(cfg)
    assert wandb.run is None, "the failed job's run is finished: the next job of a sweep gets its own"
    (run_file,) = (tmp_path / "run" / "wandb").glob("offline-run-*/run-*.wandb")
    assert finished_run(run_file)["exit_code"] == 1


def test_a_run_without_validation_gives_the_sweeper_nan_and_says_why(tmp_path, shared_data, planted_store, caplog):
    """The sweeper's value comes from what the run validated: none here (data.val_fraction=0), so NaN, with a
    warning naming the metric; the final epoch is still tested."""
    import math

    from bamir.train import train_task

    cfg = _train_cfg(tmp_path, shared_data, "data.val_fraction=0", "trainer.max_epochs=1")
    with caplog.at_level("WARNING", logger="bamir.train"):
        value = train_task(cfg)
    assert math.isnan(value)
    assert "optimized_metric=val/auc_global: this run validated nothing" in caplog.text
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "test/auc_global" in metrics and not any(key.startswith("val/") for key in metrics)


def test_the_best_epoch_everywhere(tmp_path, shared_data, planted_store, monkeypatch):
    """Validation and test rows describe the best checkpoint; W&B summarises each val metric by its best."""
    import pandas as pd
    import torch

    from bamir.train import train_task

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = _train_cfg(tmp_path, shared_data, "logger=default", "trainer.max_epochs=4")
    value = train_task(cfg)
    run = tmp_path / "run"
    metrics = json.loads((run / "metrics.json").read_text())
    history = pd.read_csv(run / "csv" / "metrics.csv")
    per_epoch = history.dropna(subset=["val/auc_global"]).groupby("epoch")["val/auc_global"].first()
    fitted = per_epoch.iloc[:4]  # the epochs of the fit (the best checkpoint's validation comes after)
    (best_ckpt,) = (run / "checkpoints").glob("best-*.ckpt")
    best_epoch = torch.load(best_ckpt, weights_only=True)["epoch"]
    assert metrics["best/epoch"] == best_epoch == int(fitted.idxmax())
    assert value == pytest.approx(fitted.max()) == pytest.approx(metrics["val/auc_global"])
    assert metrics["val/auc_global_best"] == pytest.approx(fitted.max())
    if best_epoch != len(fitted) - 1:  # the last epoch is not the best: its values must not be reported
        assert metrics["val/auc_global"] != pytest.approx(fitted.iloc[-1])
    (run_file,) = (run / "wandb").glob("offline-run-*/run-*.wandb")
    record = finished_run(run_file)
    assert record["metrics"]["val/auc_global"] == ["max"] and record["metrics"]["val/medr"] == ["min"]
    assert record["summary"]["val/auc_global"]["max"] == pytest.approx(fitted.max())
    assert record["summary"]["best/epoch"] == best_epoch


def test_a_misspelt_optimized_metric_is_refused_before_any_work(tmp_path, shared_data):
    from bamir.train import optimized_value, train

    cfg = _train_cfg(tmp_path, shared_data, "optimized_metric=val/auc_globl")
    with pytest.raises(ValueError, match=r"val/auc_globl.*val/auc_global, val/auc_brand"):
        train(cfg)
    assert not (tmp_path / "run" / "metrics.json").exists()
    with pytest.raises(ValueError, match=r"'val/cauc' is undefined \(NaN\).*val/auc_global"):
        optimized_value("val/cauc", {"val/auc_global": 0.7, "val/cauc": None})


@pytest.mark.slow
def test_the_console_shows_one_table_and_no_third_party_warning(tmp_path, shared_data, planted_store):
    env = {**os.environ, "WANDB_MODE": "offline"}
    cmd = [sys.executable, "-m", "bamir.cli.train", "dataset=planted_tiny", "model=bamir_small", "trainer=cpu",
           "trainer.max_epochs=2", f"paths.root_dir={tmp_path}", f"paths.data_dir={shared_data}"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    console = done.stdout + done.stderr
    assert console.count("| split |") == 1, console
    assert "(epoch " in console
    for noise in ("Warning", "warn(", "💡", "anonymous", "Run history"):
        assert noise not in console, noise
    lines = [line.split("] - ", 1)[-1] for line in console.splitlines() if "GPU available" in line]
    assert len(lines) == 1, "Lightning's lines are printed once"


@pytest.mark.slow
def test_a_benchmark_logs_each_run_and_a_summary_into_one_group(tmp_path, shared_data, planted_store, monkeypatch):
    from bamir.benchmark import run_benchmark

    monkeypatch.setenv("WANDB_MODE", "offline")
    cfg = compose_config("benchmark", tmp_path, [
        "dataset=planted_tiny", "suite=none", "models=[random,cosine]", "seeds=[0,1]", 'overrides=["trainer=cpu"]',
        "bootstrap.samples=100", "logger=wandb"], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    out = run_benchmark(cfg)["output_dir"]
    runs = [finished_run(f) for f in sorted(out.glob("**/offline-run-*/run-*.wandb"))]
    assert len({r["group"] for r in runs}) == 1
    assert sorted(r["name"] for r in runs) == ["cosine seed=0", "cosine seed=1", "random seed=0", "random seed=1",
                                               "summary"]
    summary = next(r for r in runs if r["name"] == "summary")
    assert summary["job_type"] == "benchmark" and summary["config"]["models"] == ["random", "cosine"]
    logged = {key for row in summary["history"] for key in row}
    for item in ("benchmark/table", "benchmark/recall_at_k", "benchmark/category_auc"):
        assert any(key.startswith(item) for key in logged), item


def test_metric_cutoffs_are_configurable(tmp_path, shared_data, planted_store):
    from bamir.train import train

    cfg = _train_cfg(tmp_path, shared_data, "model=cosine", "metrics.recall_k=[5,20]", "metrics.ndcg_k=[3]",
                     "optimized_metric=val/recall@20")
    metrics = train(cfg)
    for split in ("val", "test"):
        assert {f"{split}/recall@5", f"{split}/recall@20", f"{split}/ndcg@3"} <= set(metrics)
        assert f"{split}/recall@10" not in metrics and f"{split}/ndcg@10" not in metrics
    assert metrics["test/recall@5"] <= metrics["test/recall@20"]
    bad = _train_cfg(tmp_path / "bad", shared_data, "model=cosine", "optimized_metric=val/recall@20")
    with pytest.raises(ValueError, match="val/recall@20"):
        train(bad)


def test_the_config_cutoffs_are_the_code_defaults():
    from omegaconf import OmegaConf

    from bamir.metric_names import NDCG_K, RECALL_K

    saved = OmegaConf.load(REPO / "conf" / "metrics" / "default.yaml")
    assert tuple(saved.recall_k) == RECALL_K and tuple(saved.ndcg_k) == NDCG_K
