"""End-to-end runs of bamir-train and bamir-eval on the tiny planted store."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import open_dict

from bamir.train import evaluate, train
from tests.helpers.compose import compose_config
from tests.helpers.metrics import assert_same_metrics

METRICS = ("auc_global", "auc_brand", "auc_pairs", "cauc", "recall@10", "recall@50", "mrr", "map", "medr", "ndcg@10")


def test_fast_dev_run(cfg_train):
    with open_dict(cfg_train):
        cfg_train.trainer.fast_dev_run = True
    metrics = train(cfg_train)
    assert all(f"test/{m}" in metrics for m in METRICS)
    assert (Path(cfg_train.paths.output_dir) / "metrics.json").is_file()


def test_train_then_evaluate_checkpoint(cfg_train, tmp_path, shared_data):
    metrics = train(cfg_train)
    run = Path(cfg_train.paths.output_dir)
    assert json.loads((run / "metrics.json").read_text())["test/auc_global"] == pytest.approx(metrics["test/auc_global"])
    import torch

    assert metrics["env/torch_threads"] == torch.get_num_threads() >= 1  # the numbers depend on it on a CPU

    last = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert last["epoch"] == cfg_train.trainer.max_epochs - 1, "last.ckpt is the final epoch, not the best one"
    best = sorted((run / "checkpoints").glob("best-*.ckpt"))
    assert len(best) == 1
    assert (run / "csv" / "metrics.csv").is_file()
    assert metrics["test/auc_global"] > 0.6, "learns the planted structure"

    eval_cfg = compose_config("eval", tmp_path / "eval", [f"ckpt_path={best[0]}"])
    with open_dict(eval_cfg):
        eval_cfg.paths.data_dir = str(shared_data)
    again = evaluate(eval_cfg)
    for m in METRICS:
        assert again[f"test/{m}"] == pytest.approx(metrics[f"test/{m}"], abs=1e-6)

    other = compose_config("eval", tmp_path / "other", [f"ckpt_path={best[0]}", "dataset.build.seed=1"])
    with open_dict(other):
        other.paths.data_dir = str(shared_data)
    with pytest.raises(ValueError, match="trained on another feature store"):
        evaluate(other)


@pytest.mark.slow
def test_resume_reaches_the_same_metrics(tmp_path, shared_data):
    def run(name, epochs, ckpt=None):
        cfg = compose_config("train", tmp_path / name, [f"trainer.max_epochs={epochs}", "test=false"])
        with open_dict(cfg):
            cfg.paths.data_dir = str(shared_data)
            cfg.ckpt_path = ckpt
        return train(cfg), Path(cfg.paths.output_dir)

    straight, _ = run("straight", 4)
    _, first = run("first", 2)
    resumed, _ = run("resumed", 4, str(first / "checkpoints" / "last.ckpt"))
    assert_same_metrics(resumed, straight, [f"val/{m}" for m in METRICS[:-1]])


def test_ckpt_last_finds_the_newest_run(tmp_path, shared_data):
    from bamir.train import resolve_checkpoint

    cfg = compose_config("train", tmp_path, ["ckpt_path=last"])
    with pytest.raises(FileNotFoundError, match="no checkpoints/last.ckpt"):
        resolve_checkpoint(cfg)
    older = Path(cfg.paths.log_dir) / "train" / "runs" / "a" / "checkpoints"
    older.mkdir(parents=True)
    (older / "last.ckpt").write_bytes(b"x")
    from omegaconf import OmegaConf

    (older.parent / ".hydra").mkdir()
    OmegaConf.save(OmegaConf.masked_copy(cfg, ["dataset", "model", "data", "sampler", "seed"]),
                   older.parent / ".hydra" / "config.yaml")  # the run's config, as Hydra saves it
    assert resolve_checkpoint(cfg) == str(older / "last.ckpt")


@pytest.mark.slow
def test_multirun_sweep_of_two_jobs(tmp_path, shared_data):
    env = {**os.environ, "BAMIR_ROOT": str(tmp_path), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "bamir.cli.train", "-m", "model.l1=0.001,0.01", "dataset=planted_tiny",
           "model=bamir_small", "logger=csv", "trainer=cpu", "trainer.max_epochs=1", "test=false",
           "trainer.enable_progress_bar=false", f"paths.data_dir={shared_data}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    results = sorted((tmp_path / "outputs" / "train" / "multiruns").glob("*/*/metrics.json"))
    assert len(results) == 2
    for path in results:
        assert "val/auc_global" in json.loads(path.read_text())
