"""Faults a long run meets: unwritable or full output folders, corrupt stores, W&B offline."""

import shutil
from collections import namedtuple

import pytest
from omegaconf import open_dict

from bamir.config import check_output_dir
from bamir.store import StoreError
from bamir.train import train
from tests.helpers.metrics import assert_same_metrics


def test_unwritable_output_folder_fails_before_any_work(cfg_train, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("earlier output")
    with open_dict(cfg_train):
        cfg_train.paths.output_dir = str(blocker / "run")
    with pytest.raises(OSError, match="not writable"):
        train(cfg_train)
    assert blocker.read_text() == "earlier output", "earlier outputs intact"


def test_full_disk_fails_early(cfg_train, monkeypatch, tmp_path):
    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(10**9, 10**9 - 2**20, 2**20))
    with pytest.raises(OSError, match="only 1 MiB free"):
        check_output_dir(tmp_path / "out", min_free_mb=100)
    with pytest.raises(OSError, match="only 1 MiB free"):
        train(cfg_train)


def test_corrupt_store_is_detected_before_training(cfg_train, tmp_path, shared_data):
    store = tmp_path / "store"
    from bamir.data.planted import make_planted_store

    make_planted_store(store, brands_per_category=2, influencers=60, positives_per_brand=4)
    path = store / "concept.safetensors"
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x55
    path.write_bytes(bytes(data))
    with open_dict(cfg_train):
        cfg_train.dataset.build = None
        cfg_train.dataset.store = str(store)
    with pytest.raises(StoreError, match="concept.safetensors: content hash differs"):
        train(cfg_train)


@pytest.mark.slow
def test_wandb_offline_needs_no_network(tmp_path, shared_data):
    """The default logger is W&B offline: a run completes with no network (a proxy to nowhere).

    A fresh process: wandb keeps process-wide state once set up (tests disable it).
    """
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if not k.startswith("WANDB_")}
    env.update(BAMIR_ROOT=str(tmp_path), HTTPS_PROXY="http://127.0.0.1:9", HTTP_PROXY="http://127.0.0.1:9",
               OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "bamir.cli.train", "dataset=planted_tiny", "model=bamir_small", "logger=default",
           "trainer.max_epochs=1", "trainer.enable_progress_bar=false", f"paths.data_dir={shared_data}"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    runs = list((tmp_path / "outputs" / "train" / "runs").glob("*/wandb/offline-run-*"))
    assert runs, "an offline run to sync later"
    assert (runs[0].parent.parent / "metrics.json").is_file()


class _Crash(Exception):
    pass


@pytest.mark.slow
def test_run_killed_mid_epoch_resumes_to_the_same_metrics(tmp_path, shared_data, monkeypatch):
    import lightning as L

    import bamir.train as runs
    from tests.helpers.compose import compose_config

    def config(name, ckpt=None):
        cfg = compose_config("train", tmp_path / name, ["trainer.max_epochs=3", "test=false"])
        with open_dict(cfg):
            cfg.paths.data_dir = str(shared_data)
            cfg.ckpt_path = ckpt
        return cfg

    straight = train(config("straight"))

    class CrashMidEpoch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if trainer.current_epoch == 1 and batch_idx == 3:
                raise _Crash("killed mid-epoch")

    build = runs.build_trainer
    monkeypatch.setattr(runs, "build_trainer", lambda cfg, **kw: _with(build(cfg, **kw), CrashMidEpoch()))
    crashed = config("crashed")
    with pytest.raises(_Crash):
        train(crashed)
    monkeypatch.setattr(runs, "build_trainer", build)
    last = tmp_path / "crashed" / "run" / "checkpoints" / "last.ckpt"
    assert last.is_file(), "the last finished epoch is on disk"
    resumed = train(config("resumed", str(last)))
    # started again in its own folder with nothing changed (a requeued SLURM job): resumes by itself
    epochs = []

    class RecordEpochs(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            epochs.append(trainer.current_epoch)

    monkeypatch.setattr(runs, "build_trainer", lambda cfg, **kw: _with(build(cfg, **kw), RecordEpochs()))
    requeued = train(config("crashed"))
    assert epochs == [1, 2], "epoch 0 is not trained again"
    assert_same_metrics(resumed, straight, prefix="val/")
    assert_same_metrics(requeued, straight, prefix="val/")


def _with(trainer, callback):
    trainer.callbacks.append(callback)
    return trainer
