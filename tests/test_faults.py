"""Faults a long run meets: unwritable or full output folders, corrupt stores, W&B offline."""

import shutil
from collections import namedtuple

import pytest
from omegaconf import open_dict

from bamir.config import check_output_dir
from bamir.features.store import StoreError
from bamir.train import train


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


def test_wandb_offline_needs_no_network(cfg_train, monkeypatch, tmp_path):
    """The default logger is W&B offline: a run completes with no network (proxy to nowhere)."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("HTTPS_PROXY", "http://127.0.0.1:9")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    from tests.conftest import compose_config

    cfg = compose_config("train", tmp_path / "wb", ["logger=default", "trainer.max_epochs=1"])
    with open_dict(cfg):
        cfg.paths.data_dir = cfg_train.paths.data_dir
    metrics = train(cfg)
    assert metrics["test/auc_global"] is not None
    assert list((tmp_path / "wb" / "run" / "wandb").glob("offline-run-*")), "an offline run to sync later"


class _Crash(Exception):
    pass


def test_run_killed_mid_epoch_resumes_to_the_same_metrics(tmp_path, shared_data, monkeypatch):
    import lightning as L

    import bamir.train as runs
    from tests.conftest import compose_config

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
    for key, value in straight.items():
        if key.startswith("val/") and value is not None:
            assert resumed[key] == pytest.approx(value, abs=1e-5), key


def _with(trainer, callback):
    trainer.callbacks.append(callback)
    return trainer
