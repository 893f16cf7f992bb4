"""Checkpoints that are whole and belong to their run: full disks, truncated files, unwritable
folders, ``ckpt_path=last`` across configs, stores recomputed from other inputs, SIGTERM."""

from __future__ import annotations

import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import lightning as L
import pytest
import torch
from omegaconf import OmegaConf, open_dict

from bamir.checkpoints import CheckpointError
from bamir.checkpoints import OtherStoreError
from bamir.train import evaluate, train
from tests.helpers.compose import FAST_OVERRIDES, compose_config
from tests.helpers.metrics import assert_same_metrics
from tests.helpers.paths import REPO

ONE_EPOCH = ["trainer.max_epochs=1", "test=false"]


def _train_config(root: Path, name: str, overrides: list[str], data: Path):
    """A training config whose run folder is ``root/outputs/train/runs/<name>``, as bamir-train's."""
    cfg = compose_config("train", root, overrides)
    run = root / "outputs" / "train" / "runs" / name
    with open_dict(cfg):
        cfg.paths.data_dir = str(data)
        cfg.paths.output_dir = str(run)
    return cfg


def _save_hydra_config(cfg) -> None:
    """What Hydra leaves in a run folder: the job's config, unresolved, without the ``hydra`` key."""
    job = OmegaConf.masked_copy(cfg, [k for k in cfg if k != "hydra"])
    OmegaConf.save(job, Path(cfg.paths.output_dir) / ".hydra" / "config.yaml")


def _train_run(root: Path, name: str, overrides: list[str], data: Path) -> Path:
    cfg = _train_config(root, name, overrides, data)
    (Path(cfg.paths.output_dir) / ".hydra").mkdir(parents=True)
    _save_hydra_config(cfg)
    train(cfg)
    return Path(cfg.paths.output_dir)


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data) -> Path:
    """One finished one-epoch training run (``outputs/train/runs/base``), copied by the tests that change it."""
    root = tmp_path_factory.mktemp("trained")
    return _train_run(root, "base", ONE_EPOCH, shared_data)


def _copy_run(trained: Path, root: Path, name: str = "base") -> Path:
    run = root / "outputs" / "train" / "runs" / name
    shutil.copytree(trained, run)
    return run


def test_a_failing_writer_leaves_the_previous_last_ckpt_whole(trained, tmp_path, shared_data):
    run = _copy_run(trained, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    before = last.read_bytes()
    cfg = _train_config(tmp_path, "base", ["trainer.max_epochs=2", "test=false"], shared_data)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (len(before) // 2, hard))  # a disk that fills half-way through
    try:
        with pytest.raises(OSError):
            train(cfg)  # resumes its own last.ckpt, trains epoch 1, cannot save it
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, handler)
    assert last.read_bytes() == before, "the previous last.ckpt is intact"
    assert torch.load(last, weights_only=True)["epoch"] == 0
    assert not list((run / "checkpoints").glob(".*.tmp")), "no partial file left behind"


def test_a_truncated_last_ckpt_is_named_on_rerun_and_by_rank(trained, tmp_path, shared_data):
    run = _copy_run(trained, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[: last.stat().st_size // 2])
    with pytest.raises(CheckpointError, match=f"{last}: not a readable checkpoint"):
        train(_train_config(tmp_path, "base", ONE_EPOCH, shared_data))  # the requeue path: its own last.ckpt

    from bamir.ranking.app import rank

    cfg = compose_config("rank", tmp_path / "rank", ["dataset=planted_tiny", "search.device=cpu", "ckpt_path=last",
                                                     "brand=all", "embedding_cache=null", "report.html=false"],
                         fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
        cfg.paths.log_dir = str(tmp_path / "outputs")
    with pytest.raises(CheckpointError, match=f"{last}: not a readable checkpoint"):
        rank(cfg)


def test_a_run_started_again_in_its_folder_resumes_only_under_the_same_settings(trained, tmp_path, shared_data):
    run = _copy_run(trained, tmp_path)
    last = run / "checkpoints" / "last.ckpt"
    recorded = OmegaConf.create(torch.load(last, weights_only=True)["bamir_config"])
    assert recorded.model.optimizer.lr == OmegaConf.load(run / ".hydra" / "config.yaml").model.optimizer.lr
    before = last.read_bytes()
    # the same command with another learning rate: refused, naming the setting, the checkpoint untouched
    with pytest.raises(CheckpointError, match=r"trained with other settings \(model.optimizer.lr: .* there, 0.0001 here\)"):
        train(_train_config(tmp_path, "base", [*ONE_EPOCH, "model.optimizer.lr=0.0001"], shared_data))
    assert last.read_bytes() == before
    # with the same settings and a longer schedule it goes on
    train(_train_config(tmp_path, "base", ["trainer.max_epochs=2", "test=false"], shared_data))
    assert torch.load(last, weights_only=True)["epoch"] == 1
    # named explicitly (ckpt_path), a checkpoint resumes under other settings: the user asked for it
    other = _train_config(tmp_path, "other", ["trainer.max_epochs=3", "test=false", f"ckpt_path={last}",
                                              "model.optimizer.lr=0.0001"], shared_data)
    train(other)
    assert torch.load(Path(other.paths.output_dir) / "checkpoints" / "last.ckpt", weights_only=True)["epoch"] == 2


def test_an_unwritable_checkpoints_folder_is_refused_before_any_work(tmp_path, shared_data, monkeypatch):
    import bamir.train as runs

    cfg = _train_config(tmp_path, "blocked", ONE_EPOCH, shared_data)
    (Path(cfg.paths.output_dir)).mkdir(parents=True)
    (Path(cfg.paths.output_dir) / "checkpoints").write_text("not a folder")
    monkeypatch.setattr(runs, "build_data", lambda cfg: pytest.fail("data built before the folder was checked"))
    with pytest.raises(OSError, match="checkpoints is not writable"):
        train(cfg)


def test_ckpt_last_resumes_only_a_run_of_the_same_config(trained, tmp_path, shared_data):
    _copy_run(trained, tmp_path)
    other = _train_config(tmp_path, "new", [*ONE_EPOCH, "ckpt_path=last", "seed=5", "model.optimizer.lr=0.0001"],
                          shared_data)
    with pytest.raises(CheckpointError, match="differs: model.optimizer.lr: .* there, 0.0001 here; seed: 24 there, 5 here"):
        train(other)

    from bamir.train import resolve_checkpoint

    same = _train_config(tmp_path, "again", ["ckpt_path=last", *ONE_EPOCH], shared_data)
    assert resolve_checkpoint(same) == str(tmp_path / "outputs" / "train" / "runs" / "base" / "checkpoints" / "last.ckpt")


def test_eval_ckpt_last_finds_the_training_run(trained, tmp_path, shared_data):
    _copy_run(trained, tmp_path)
    cfg = compose_config("eval", tmp_path / "eval", ["ckpt_path=last"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
        cfg.paths.log_dir = str(tmp_path / "outputs")
    metrics = evaluate(cfg)
    assert metrics["val/auc_global"] == pytest.approx(torch.load(
        trained / "checkpoints" / "last.ckpt", weights_only=True)["callbacks"]["BestValidation"]["best"], abs=1e-6)


def test_a_store_recomputed_from_other_inputs_is_refused(tmp_path, shared_data, planted_store):
    from bamir.store import FeatureStore

    store_dir = tmp_path / "store"
    shutil.copytree(planted_store.root, store_dir)
    overrides = [*ONE_EPOCH, "dataset.build=null", f"dataset.store={store_dir}"]
    run = _train_run(tmp_path, "on-store", overrides, shared_data)
    store = FeatureStore(store_dir)
    name = store.modalities[0]
    record, modality = store.record(name), store.load_modality(name)
    # the same configs and accounts, features recomputed from other inputs (e.g. shuffled captions)
    store.write_modality(name, modality.features, modality.present, config=record["config"], inputs_hash="shuffled")
    cfg = compose_config("eval", tmp_path / "eval", [f"ckpt_path={run / 'checkpoints' / 'last.ckpt'}",
                                                     "dataset.build=null", f"dataset.store={store_dir}"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    with pytest.raises(OtherStoreError, match=f"modality .{name}.: inputs_hash .* in the checkpoint, .shuffled. in the store"):
        evaluate(cfg)


class SignalWhenMidEpoch(L.Callback):
    """Test helper run inside ``bamir-train``: at epoch 1, batch 2, writes ``marker`` and waits there,
    so that the test's SIGTERM arrives mid-epoch."""

    def __init__(self, marker: str):
        self.marker = Path(marker)

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if trainer.current_epoch == 1 and batch_idx == 2 and not self.marker.exists():
            self.marker.write_text("mid-epoch")
            time.sleep(3)


@pytest.mark.slow
def test_sigterm_mid_epoch_stops_resumably_and_exits_non_zero(tmp_path, shared_data):
    run, marker = tmp_path / "run", tmp_path / "marker"
    args = [*FAST_OVERRIDES, "trainer.max_epochs=3", "test=false", f"paths.data_dir={shared_data}",
            f"hydra.run.dir={run}"]
    module = "tests.test_checkpoint_faults"
    helper = [f"allowed_targets=[{module}]", f"+callbacks.mid_epoch._target_={module}.SignalWhenMidEpoch",
              f"+callbacks.mid_epoch.marker={marker}"]
    env = {**os.environ, "BAMIR_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "bamir.cli.train"]
    proc = subprocess.Popen([*command, *args, *helper], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, cwd=REPO)
    deadline = time.monotonic() + 300
    while not marker.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.1)
    proc.send_signal(signal.SIGTERM)
    output = proc.communicate(timeout=300)[0]
    assert proc.returncode == 128 + signal.SIGTERM, output[-3000:]
    assert "stopped by SIGTERM during epoch 1" in output
    last = run / "checkpoints" / "last.ckpt"
    assert torch.load(last, weights_only=True)["epoch"] == 0, "the last finished epoch, to resume from"
    assert (run / "metrics.json").is_file()

    again = subprocess.run([*command, *args], env=env, capture_output=True, text=True, timeout=600,
                           cwd=REPO)
    assert again.returncode == 0, again.stderr[-3000:]
    resumed = OmegaConf.to_container(OmegaConf.load(run / "metrics.json"))
    cfg = compose_config("train", tmp_path / "straight", ["trainer.max_epochs=3", "test=false"])
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    straight = train(cfg)
    assert_same_metrics(resumed, straight, prefix="val/")
