"""Training and evaluation runs, driven by a composed Hydra config (``conf/train.yaml``, ``conf/eval.yaml``)."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.loggers import WandbLogger
from omegaconf import DictConfig, OmegaConf

from bamir.callbacks import RunConfigInCheckpoints, RunStopped
from bamir.checkpoints import check_same_run, check_store, load_checkpoint, newest_matching_run, read_checkpoint
from bamir.config import check_output_dir, instantiate
from bamir.datamodule import RankingDataModule
from bamir.metric_names import metric_names
from bamir.models.base import RankingModule
from bamir.report import metric_table
from bamir.tracking import job_run
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


def load_run(cfg: DictConfig, path: str) -> tuple[RankingDataModule, RankingModule]:
    """A checkpoint and the data module of ``cfg``'s store, which takes the checkpoint's data settings
    (:func:`~bamir.checkpoints.load_checkpoint`)."""
    build_store(cfg)
    datamodule: RankingDataModule = instantiate(cfg.data)
    return datamodule, load_checkpoint(path, datamodule)


def build_model(cfg: DictConfig, datamodule: RankingDataModule) -> RankingModule:
    fingerprint = datamodule.store.fingerprint(sorted(datamodule.features))
    model: RankingModule = instantiate(cfg.model, input_dims=datamodule.dims, store_fingerprint=fingerprint)
    refuse_vanished_inputs(model, datamodule)
    model.attach_features(datamodule.features)
    use_cutoffs(cfg, model)
    return model


def refuse_vanished_inputs(model: RankingModule, datamodule: RankingDataModule) -> None:
    """Refuse a model whose config reads a modality that is neither served nor left out by the data
    config (``data.modalities``, ``data.missing=drop``): the part of the model reading it would vanish."""
    vanished = [m for m in model.requested_modalities if m not in datamodule.dims and not datamodule.leaves_out(m)]
    if vanished:
        served = ",".join(sorted(datamodule.dims))
        raise ValueError(
            f"{type(model).__name__} reads modalities {vanished}, which the store at {datamodule.store_dir} does not "
            f"hold (it holds {datamodule.store.modalities}); the parts of the model reading them would vanish. "
            f"Prepare them, or train without them on purpose: data.modalities=[{served}]")


def use_cutoffs(cfg: DictConfig, model: RankingModule) -> None:
    """The evaluation cut-offs of ``conf/metrics`` (``metrics.recall_k``, ``metrics.ndcg_k``)."""
    if cfg.get("metrics") is not None:
        model.use_cutoffs(list(cfg.metrics.recall_k), list(cfg.metrics.ndcg_k))


def build_trainer(cfg: DictConfig, with_callbacks: bool = True) -> L.Trainer:
    loggers = [instantiate(c) for c in (cfg.get("logger") or {}).values() if c is not None]
    callbacks = [instantiate(c) for c in (cfg.get("callbacks") or {}).values() if c is not None] if with_callbacks else []
    if with_callbacks:
        callbacks.append(RunConfigInCheckpoints(cfg))
    trainer: L.Trainer = instantiate(cfg.trainer, logger=loggers or False, callbacks=callbacks)
    for logger in loggers:
        logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    return trainer


def resolve_checkpoint(cfg: DictConfig) -> str | None:
    """``ckpt_path``: a path, or ``last`` = the newest ``last.ckpt`` among the earlier runs of ``ckpt_task``
    with the same ``ckpt_match`` settings (:func:`~bamir.checkpoints.newest_matching_run`)."""
    path = cfg.get("ckpt_path")
    if path in (None, "", "null"):
        return None
    if path == "last":
        return newest_matching_run(Path(cfg.paths.log_dir) / cfg.ckpt_task, cfg, Path(cfg.paths.output_dir))
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


def resume_checkpoint(cfg: DictConfig, datamodule: RankingDataModule) -> str | None:
    """The checkpoint a fit resumes from (``ckpt_path``, else the run folder's own), read whole first
    and refused when trained on another feature store, or (the run folder's own) with other settings."""
    named = resolve_checkpoint(cfg)
    path = named or interrupted_checkpoint(cfg)
    if path is not None:
        checkpoint = read_checkpoint(path)
        check_store(path, checkpoint, datamodule.store)
        if named is None:
            check_same_run(path, checkpoint, cfg)
    return path


def check_checkpoint_dirs(cfg: DictConfig) -> None:
    """Probe every checkpoint folder of ``conf/callbacks`` for writing before any work."""
    for callback in (cfg.get("callbacks") or {}).values():
        if callback is not None and callback.get("dirpath"):
            check_output_dir(callback.dirpath, cfg.paths.get("min_free_mb", 100))


def fit(trainer: L.Trainer, model: RankingModule, datamodule: RankingDataModule, ckpt: str | None,
        output_dir: Path) -> None:
    """``trainer.fit``; one stopped by a signal writes ``metrics.json`` of what was done
    (with ``stopped/epoch``) before :class:`~bamir.callbacks.RunStopped` goes on."""
    try:
        trainer.fit(model, datamodule=datamodule, ckpt_path=ckpt, weights_only=True)
    except RunStopped as stop:
        _report({**trainer.callback_metrics, "stopped/epoch": stop.epoch}, output_dir, trainer)
        raise


def _report(metrics: dict[str, Any], output_dir: Path, trainer: L.Trainer) -> dict[str, float]:
    """Write ``metrics.json``, print the table and note the best epoch in W&B, once (rank zero) under DDP.

    ``env/torch_threads`` records torch's CPU threads: on a CPU a run's numbers depend on it (sums
    are split over threads, so rounding differs; the same seed and thread count give the same numbers)."""
    metrics = _finite({**metrics, "env/torch_threads": torch.get_num_threads()})
    if trainer.is_global_zero:
        atomic_write_json(output_dir / "metrics.json", metrics)
        # the rows name the epoch of the weights they describe: the best checkpoint's, else the final epoch's
        label = metrics if "final/epoch" not in metrics else {**metrics, "best/epoch": metrics["final/epoch"]}
        print(metric_table(label))
        counts = {key: int(value) for key, value in metrics.items() if value is not None
                  and (key in ("best/epoch", "final/epoch") or key.startswith(("data/missing/", "env/")))}
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger):
                logger.experiment.summary.update(counts)
    return metrics


def _finite(metrics: dict[str, Any]) -> dict[str, float]:
    out = {}
    for key, value in metrics.items():
        value = float(value.item() if isinstance(value, torch.Tensor) else value)
        out[key] = value if math.isfinite(value) else None
    return out


def train(cfg: DictConfig) -> dict[str, float]:
    """Train (and test) as configured; returns all metrics, written to ``metrics.json`` too.

    A learned model's validation and test rows both describe its best checkpoint (by
    ``optimized_metric``): after the fit, that checkpoint is validated again and tested, and
    ``best/epoch`` names it. ``<optimized_metric>_best`` is the best value seen during the fit.
    Without a validation split (``data.val_fraction=0``, as the public BAMIR code trains) nothing
    picks a best checkpoint: none is kept, the final epoch's weights are tested, and
    ``final/epoch`` (0-based: the 100th epoch is 99) names them.
    """
    check_optimized_metric(cfg)
    check_output_dir(cfg.paths.output_dir, cfg.paths.get("min_free_mb", 100))
    check_checkpoint_dirs(cfg)
    datamodule = build_data(cfg)
    L.seed_everything(cfg.seed, workers=True, verbose=False)  # after the store: building it draws random numbers
    model = build_model(cfg, datamodule)
    trainer = build_trainer(cfg)
    output_dir = Path(cfg.paths.output_dir)
    metrics: dict[str, Any] = {}
    learned = any(p.requires_grad for p in model.parameters())
    best = ""
    if not learned:
        log.info("%s has no parameters: nothing to train, evaluating as is", type(model).__name__)
    elif cfg.get("train", True):
        if datamodule.val_split is None:
            keep_no_best_checkpoint(trainer, datamodule)
        start = time.perf_counter()
        fit(trainer, model, datamodule, resume_checkpoint(cfg, datamodule), output_dir)
        metrics.update(trainer.callback_metrics)
        metrics["time/fit_seconds"] = time.perf_counter() - start
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if datamodule.val_split is None:
            metrics["final/epoch"] = trainer.current_epoch - 1  # epochs done, as a 0-based index
            log.info("no validation split: the final epoch's weights (epoch %d, 0-based) are tested",
                     metrics["final/epoch"])
    if best:
        log.info("the best checkpoint: %s", best)
        metrics["best/epoch"] = checkpoint_epoch(best)
    if datamodule.val_split is not None and (best or not learned):
        trainer.validate(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
        metrics.update(trainer.callback_metrics)
    if cfg.get("test", True) and datamodule.test_split is not None:
        trainer.test(model, datamodule=datamodule, ckpt_path=best or None, weights_only=True, verbose=False)
        metrics.update(trainer.callback_metrics)
    if not learned:
        save_unlearned(trainer, output_dir)
    metrics.update({f"data/missing/{name}": count for name, count in datamodule.missing_counts.items()})
    return _report(metrics, output_dir, trainer)


def keep_no_best_checkpoint(trainer: L.Trainer, datamodule: RankingDataModule) -> None:
    """No validation split: the checkpoint callbacks that keep the best epoch by a validation metric keep
    none (instead of warning every run that the metric is missing), and the fit runs no validation loop
    (instead of warning that its loader is empty); ``last.ckpt`` is still written."""
    from lightning.pytorch.callbacks import ModelCheckpoint

    trainer.limit_val_batches = 0
    for callback in trainer.checkpoint_callbacks:
        if isinstance(callback, ModelCheckpoint) and callback.monitor is not None:
            callback.save_top_k = 0
    log.info("no validation split (data.val_fraction=0): no best checkpoint is kept; the final epoch is tested")
    if datamodule.test_split is None:
        log.warning("no validation split and the store has no test split: this run evaluates nothing "
                    "(data.val_fraction=0.2 holds out training brands to measure it on)")


def save_unlearned(trainer: L.Trainer, output_dir: Path) -> None:
    """``checkpoints/last.ckpt`` of a ranker with nothing to train, once evaluated: its settings and the
    data's, for ``bamir-eval`` and ``bamir-rank`` as any checkpoint."""
    if trainer.lightning_module is not None:
        trainer.save_checkpoint(output_dir / "checkpoints" / "last.ckpt", weights_only=True)


def checkpoint_epoch(path: str) -> int:
    """The epoch a checkpoint was saved at (0-based, as in ``best-epochNNN.ckpt``)."""
    return int(torch.load(path, map_location="cpu", weights_only=True, mmap=True)["epoch"])


def check_optimized_metric(cfg: DictConfig) -> None:
    """Refuse, before any work, an ``optimized_metric`` that no run logs (e.g. a misspelt name)."""
    wanted = cfg.get("optimized_metric")
    cutoffs = cfg.get("metrics")
    names = metric_names(cutoffs.recall_k, cutoffs.ndcg_k) if cutoffs is not None else metric_names()
    known = [f"{split}/{name}" for split in ("val", "test") for name in names] + [f"val/{n}_best" for n in names]
    if wanted in known:
        return
    raise ValueError(f"optimized_metric={wanted!r} is not a metric a run logs; use one of: {', '.join(known)}")


def evaluate(cfg: DictConfig) -> dict[str, float]:
    """Evaluate a checkpoint on the validation and test splits of its dataset, served as in its training."""
    check_output_dir(cfg.paths.output_dir, cfg.paths.get("min_free_mb", 100))
    datamodule, model = load_run(cfg, resolve_checkpoint(cfg))
    use_cutoffs(cfg, model)
    L.seed_everything(cfg.seed, workers=True, verbose=False)
    trainer = build_trainer(cfg, with_callbacks=False)
    metrics: dict[str, Any] = {}
    if datamodule.val_split is not None:
        trainer.validate(model, datamodule=datamodule, verbose=False)
        metrics.update(trainer.callback_metrics)
    if datamodule.test_split is not None:
        trainer.test(model, datamodule=datamodule, verbose=False)
        metrics.update(trainer.callback_metrics)
    return _report(metrics, Path(cfg.paths.output_dir), trainer)


def train_task(cfg: DictConfig) -> float:
    """``bamir-train``'s job: :func:`train`, then the value sweepers optimise: ``optimized_metric`` of
    the best checkpoint (its best validation value when it is a validation metric). A run stopped by
    SIGTERM or SIGINT exits with 128 + the signal's number (143, 130), as a killed process does."""
    try:
        with job_run():
            metrics = train(cfg)
    except RunStopped as stop:
        log.error("%s; metrics.json holds what was done. Run the same command in the same folder "
                  "(hydra.run.dir=%s) to resume from its last finished epoch", stop, cfg.paths.output_dir)
        raise SystemExit(128 + stop.signum) from None
    if cfg.optimized_metric.startswith("val/") and not any(key.startswith("val/") for key in metrics):
        log.warning("optimized_metric=%s: this run validated nothing (no validation split: data.val_fraction=0, "
                    "or no brand to carve one from); the sweeper gets NaN", cfg.optimized_metric)
        return float("nan")
    return optimized_value(cfg.optimized_metric, metrics)


def evaluate_task(cfg: DictConfig) -> None:
    """``bamir-eval``'s job: :func:`evaluate`."""
    with job_run():
        evaluate(cfg)


def optimized_value(key: str, metrics: dict[str, float | None]) -> float:
    """``metrics[key]``; an error listing the keys there are when the run has no such value."""
    value = metrics.get(key)
    if value is None:
        state = "is undefined (NaN) in this run" if key in metrics else "was not logged by this run"
        raise ValueError(f"optimized_metric={key!r} {state}; the run logged: {', '.join(sorted(metrics))}")
    return float(value)
