"""The presets users know from lightning-hydra-template: debug=..., conf/local/, hparams_search=optuna."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from omegaconf import open_dict

from bamir.train import train
from tests.helpers.compose import FAST_OVERRIDES, compose_config
from tests.helpers.paths import REPO

DEBUG = sorted(p.stem for p in (REPO / "conf" / "debug").glob("*.yaml"))


def test_the_debug_presets_are_there():
    assert DEBUG == ["default", "fdr", "limit", "overfit", "profiler"]


@pytest.mark.parametrize("preset", DEBUG)
def test_every_debug_preset_composes(preset, tmp_path):
    cfg = compose_config("train", tmp_path, [f"debug={preset}"], fast=False)
    assert cfg.task_name == "debug" and cfg.trainer.accelerator == "cpu" and cfg.trainer.detect_anomaly
    assert "wandb" not in cfg.logger, "debugging runs write no W&B run"
    expected = {"fdr": ("fast_dev_run", True), "limit": ("limit_train_batches", 3),
                "overfit": ("limit_train_batches", 3), "profiler": ("profiler", "simple")}
    if preset in expected:
        key, value = expected[preset]
        assert cfg.trainer[key] == value


def _debug_run(preset: str, tmp_path: Path, shared_data: Path) -> tuple[dict, Path]:
    cfg = compose_config("train", tmp_path, [f"debug={preset}", "trainer.max_epochs=2"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return train(cfg), Path(cfg.paths.output_dir)


def test_debug_fdr_runs_one_batch_of_each_loop(tmp_path, shared_data, planted_store):
    metrics, run = _debug_run("fdr", tmp_path, shared_data)
    assert "val/auc_global" in metrics and "test/auc_global" in metrics
    assert not list(run.glob("checkpoints/*.ckpt")), "fast_dev_run writes no checkpoint"


def test_debug_limit_runs_three_batches_per_epoch(tmp_path, shared_data, planted_store):
    import torch

    metrics, run = _debug_run("limit", tmp_path, shared_data)
    assert metrics["test/auc_global"] is not None
    assert torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)["global_step"] == 2 * 3


def test_debug_overfit_trains_on_the_same_batches_until_the_loss_falls(tmp_path, shared_data, planted_store):
    import pandas as pd

    cfg = compose_config("train", tmp_path, ["debug=overfit", "trainer.max_epochs=8", "model.dropout=0.0"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    train(cfg)
    loss = pd.read_csv(Path(cfg.paths.output_dir) / "csv" / "metrics.csv").dropna(subset=["train/loss"])
    per_epoch = loss.groupby("epoch")["train/loss"].mean()
    assert len(per_epoch) == 8 and per_epoch.iloc[-1] < 0.5 * per_epoch.iloc[0]


def test_same_batches_serves_the_first_epochs_batches_every_epoch(planted_store):
    from types import SimpleNamespace

    from bamir.datamodule import RankingDataModule
    from bamir.samplers import UniformSampler

    def batches(same: bool, epoch: int) -> list:
        data = RankingDataModule(str(planted_store.root), UniformSampler(resample_every_epoch=True), batch_size=16,
                                 same_batches=same)
        data.setup()
        data.trainer = SimpleNamespace(current_epoch=epoch, global_rank=0, world_size=1)
        return [b.clone() for b in data.train_dataloader()]

    def equal(a: list, b: list) -> bool:
        return len(a) == len(b) and all((x == y).all() for x, y in zip(a, b))

    assert equal(batches(True, 3), batches(True, 0)) and equal(batches(True, 3), batches(False, 0))
    assert not equal(batches(False, 3), batches(False, 0)), "without it, every epoch draws anew"


def test_local_settings_apply_when_present(tmp_path):
    """``optional local: default``: a machine's conf/local/default.yaml, wherever it sits on the search path."""
    local = tmp_path / "search" / "local"
    local.mkdir(parents=True)
    (local / "default.yaml").write_text("# @package _global_\npaths:\n  min_free_mb: 7\n")
    assert compose_config("train", tmp_path).paths.min_free_mb == 100
    cfg = compose_config("train", tmp_path, [f"hydra.searchpath=[file://{tmp_path / 'search'}]"])
    assert cfg.paths.min_free_mb == 7


USER_CALLBACK = '''
from pathlib import Path

import lightning as L


class Mark(L.Callback):
    """A user's own callback: leaves a file in the run folder."""

    def __init__(self, folder):
        self.folder = Path(folder)

    def on_fit_start(self, trainer, pl_module):
        (self.folder / "marked").touch()
'''


@pytest.mark.slow
def test_optuna_search_of_two_trials(tmp_path, shared_data, planted_store):
    """Two TPE trials; each job returns its best validation value; a user's callback, allowed by allowed_targets."""
    (tmp_path / "user_callbacks.py").write_text(USER_CALLBACK)
    env = {**os.environ, "PYTHONPATH": str(tmp_path), "WANDB_MODE": "disabled"}
    cmd = [sys.executable, "-m", "bamir.cli.train", "-m", "hparams_search=optuna", "hydra.sweeper.n_trials=2",
           *FAST_OVERRIDES, "trainer.max_epochs=1", f"paths.root_dir={tmp_path}", f"paths.data_dir={shared_data}",
           "allowed_targets=[user_callbacks]", "+callbacks.mark._target_=user_callbacks.Mark",
           "+callbacks.mark.folder=${paths.output_dir}"]
    done = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    (sweep,) = (tmp_path / "outputs" / "hparams_optuna" / "multiruns").iterdir()
    trials = sorted(p.parent for p in sweep.glob("*/metrics.json"))
    assert [p.name for p in trials] == ["0", "1"]
    assert all((p / "marked").is_file() for p in trials)
    result = yaml.safe_load((sweep / "optimization_results.yaml").read_text())
    assert result["name"] == "optuna" and 0.0 <= result["best_value"] <= 1.0
    assert {"model.optimizer.lr", "model.dropout", "sampler.uniform"} <= set(result["best_params"])
