"""Training and evaluation runs, driven by a composed Hydra config (``conf/train.yaml``, ``conf/eval.yaml``)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from omegaconf import DictConfig, OmegaConf

from bamir.config import check_output_dir, instantiate
from bamir.datamodule import RankingDataModule
from bamir.models.base import RankingModule, load_checkpoint
from bamir.report import metric_table
from bamir.utils import atomic_write_json

log = logging.getLogger(__name__)


def build_store(cfg: DictConfig) -> None:
    """Make the dataset's feature store when the dataset config says how (and it is missing or stale)."""
    if cfg.dataset.get("build") is not None:
        instantiate(cfg.dataset.build)
    elif not (Path(cfg.dataset.store) / "manifest.json").is_file():
        raise FileNotFoundError(
            f"dataset {cfg.dataset.name!r}: no feature store at {cfg.dataset.store}; "
            "create it first (see the dataset config) or set dataset.store=PATH"
        )


def build_data(cfg: DictConfig) -> RankingDataModule:
    build_store(cfg)
    datamodule: RankingDataModule = instantiate(cfg.data)
    datamodule.setup()
    return datamodule


def build_model(cfg: DictConfig, datamodule: RankingDataModule) -> RankingModule:
    fingerprint = datamodule.store.fingerprint(sorted(datamodule.features))
    model: RankingModule = instantiate(cfg.model, input_dims=datamodule.dims, store_fingerprint=fingerprint)
    model.attach_features(datamodule.features)
    return model


def build_trainer(cfg: DictConfig, with_callbacks: bool = True) -> L.Trainer:
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None] if with_callbacks else []
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a path, or ``last`` = the newest ``last.ckpt`` among this task's earlier runs."""
    path = cfg.get("ckpt_path")
    if path in (None, "", "null"):
        return None
    if path == "last":
        runs = Path(cfg.paths.log_dir) / cfg.task_name
        here = Path(cfg.paths.output_dir).resolve()
        found = [p for p in runs.rglob("checkpoints/last.ckpt") if here not in p.resolve().parents]
        if not found:
            raise FileNotFoundError(f"ckpt_path=last: no checkpoints/last.ckpt under {runs}")
        return str(max(found, key=lambda p: p.stat().st_mtime))
    if not Path(path).is_file():
        raise FileNotFoundError(f"ckpt_path={path}: no such checkpoint file")
    return str(path)


def interrupted_checkpoint(cfg: DictConfig) -> str | None:
    """``checkpoints/last.ckpt`` of this run's own folder, when it already has one.

    A run folder starts empty; one that holds a checkpoint belongs to a run started again
    in the same folder after it was stopped: a SLURM job requeued on a timeout or a
    preemption (``hydra.launcher.max_num_timeout``), or a command rerun with the same
    ``hydra.run.dir``. Training resumes from it when ``ckpt_path`` names no other.
    """
    own = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    if not own.is_file():
        return None
    log.info("%s exists: this run was stopped and started again in its folder; resuming from it", own)
    return str(own)


def _report(metrics: dict[str, Any], output_dir: Path, trainer: L.Trainer) -> dict[str, float]:
    """Write ``metrics.json`` and print the table, once (rank zero) under DDP."""
    metrics = _finite(metrics)
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", metrics)
        print(metric_table(metrics))
    return metrics


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else None
    return out


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and test) as configured; returns all metrics, written to ``metrics.json`` too."""
    check_output_dir(cfg.paths.output_dir, cfg.paths.get("min_free_mb", 100))
    datamodule = build_data(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # after the store: building it draws random numbers
    model = build_model(cfg, datamodule)
    trainer = build_trainer(cfg)
    output_dir = Path(cfg.paths.output_dir)
    metrics: dict[str, Any] = {}
    learned = any(p.requires_grad for p in model.parameters())
    if not learned:
        log.info("%s has no parameters: nothing to train, evaluating as is", type(model).__name__)
        if datamodule.val_split is not None:
            trainer.validate(model, datamodule=datamodule)
            metrics.update(trainer.callback_metrics)
    if cfg.get("train", True) and learned:
        start = time.perf_counter()
        ckpt = resolve_checkpoint(cfg) or interrupted_checkpoint(cfg)
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
        metrics.update(trainer.callback_metrics)
        metrics["time/fit_seconds"] = time.perf_counter() - start
    if cfg.get("test", True) and datamodule.test_split is not None:
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback and learned else ""
        if best:
            log.info("testing the best checkpoint %s", best)
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True)
        metrics.update(trainer.callback_metrics)
    return _report(metrics, output_dir, trainer)


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate a checkpoint on the validation and test splits of its dataset."""
    check_output_dir(cfg.paths.output_dir, cfg.paths.get("min_free_mb", 100))
    datamodule = build_data(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    model = load_checkpoint(resolve_checkpoint(cfg), datamodule)
    trainer = build_trainer(cfg, with_callbacks=False)
    metrics: dict[str, Any] = {}
    if datamodule.val_split is not None:
        trainer.validate(model, datamodule=datamodule)
        metrics.update(trainer.callback_metrics)
    if datamodule.test_split is not None:
        trainer.test(model, datamodule=datamodule)
        metrics.update(trainer.callback_metrics)
    return _report(metrics, Path(cfg.paths.output_dir), trainer)


def train_task(cfg: DictConfig) -> float | None:
    """``bamir-train``'s job: :func:`train`, then the value sweepers optimise."""
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))


def evaluate_task(cfg: DictConfig) -> None:
    """``bamir-eval``'s job: :func:`evaluate`."""
    evaluate(cfg)
