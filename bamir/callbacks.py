"""Lightning callbacks of bamir's runs (``conf/callbacks``)."""

from __future__ import annotations

import logging
import shutil
import signal
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from bamir.metric_names import metric_names
from bamir.metric_names import mode as metric_mode

log = logging.getLogger(__name__)


RUN_CONFIG = "bamir_config"  # the checkpoint key of the run's config


class RunConfigInCheckpoints(L.Callback):
    """Every checkpoint of a run carries the run's composed config (unresolved YAML, ``bamir_config``),
    so it says how it was trained, and a run started again in its folder can check it is the same run
    (:func:`bamir.checkpoints.check_same_run`)."""

    def __init__(self, cfg: DictConfig):
        self.config = OmegaConf.to_yaml(cfg)

    def on_save_checkpoint(self, trainer: L.Trainer, pl_module: L.LightningModule, checkpoint: dict[str, Any]) -> None:
        checkpoint[RUN_CONFIG] = self.config


class BestValidation(L.Callback):
    """The best validation epoch, where a dashboard looks for it.

    - every W&B logger summarises each ``val/<metric>`` by its best value over the epochs
      (``define_metric``: the maximum, the minimum for MedR) instead of the last one;
    - after each validation epoch of a fit, ``<monitor>_best`` (the best value of ``monitor``
      so far) is logged and put into ``trainer.callback_metrics``; it is kept in checkpoints,
      so a resumed run continues from the best of the epochs before the interruption.

    Args:
        monitor: the metric that picks the best checkpoint (``optimized_metric``).
        mode: ``max`` or ``min``; default: the metric's own direction.
    """

    def __init__(self, monitor: str, mode: str | None = None):
        self.monitor = monitor
        self.mode = mode or metric_mode(monitor)
        self.best: float | None = None

    @property
    def key(self) -> str:
        return f"{self.monitor}_best"

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        from lightning.pytorch.loggers import WandbLogger

        metrics = getattr(pl_module, "val_metrics", None)
        names = metric_names(getattr(metrics, "ks", ()), getattr(metrics, "ndcg_ks", ())) if metrics else ()
        for logger in trainer.loggers:
            if isinstance(logger, WandbLogger) and trainer.is_global_zero:
                run = logger.experiment
                for name in names:
                    run.define_metric(f"val/{name}", summary=metric_mode(name))
                run.define_metric(self.key, summary=self.mode)

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        value = trainer.callback_metrics.get(self.monitor)
        if value is None:
            return
        value = float(value)
        if self.best is None or (value > self.best if self.mode == "max" else value < self.best):
            self.best = value
        trainer.callback_metrics[self.key] = torch.tensor(self.best)
        for logger in trainer.loggers:
            logger.log_metrics({self.key: self.best}, step=trainer.global_step)

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.best = state_dict.get("best")


class BestCheckpoint(ModelCheckpoint):
    """Lightning's ``ModelCheckpoint``, keeping the best checkpoint of a run it resumes from another folder.

    Resumed from a checkpoint of another run folder (``ckpt_path=...``), Lightning forgets that
    run's best score, so the resumed run's "best" is only the best of its own epochs. Here that
    run's best checkpoint is copied into this run's folder and stays the best until an epoch
    beats it: a run resumed after epoch 2 reports the same best epoch as one run straight through.
    """

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        best, score = state_dict.get("best_model_path"), state_dict.get("best_model_score")
        moved = self.dirpath and state_dict.get("dirpath") not in (None, self.dirpath)
        if moved and best and score is not None and Path(best).is_file():
            copy = Path(self.dirpath) / Path(best).name
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(best, copy)
            state_dict = {**state_dict, "dirpath": self.dirpath, "best_model_path": str(copy),
                          "kth_best_model_path": str(copy), "kth_value": score, "best_k_models": {str(copy): score},
                          "last_model_path": ""}
        super().load_state_dict(state_dict)


class RunStopped(Exception):
    """A fit stopped by a signal (SIGTERM, SIGINT) at a batch boundary."""

    def __init__(self, signum: int, epoch: int):
        self.signum, self.epoch = signum, epoch
        super().__init__(f"stopped by {signal.Signals(signum).name} during epoch {epoch}")


class StopOnSignal(L.Callback):
    """SIGTERM and SIGINT stop a fit after the current batch, raising :class:`RunStopped`.

    No checkpoint is written mid-epoch: ``last.ckpt`` of the last finished epoch stays the one
    to resume from (a run started again in its folder does), and the stopped epoch is trained
    again, so the resumed run ends as an uninterrupted one. The handlers replace Lightning's
    own (whose SIGTERM exits 0 and SIGINT skips the metrics) during the fit only.
    """

    SIGNALS = (signal.SIGTERM, signal.SIGINT)

    def __init__(self) -> None:
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}

    def on_fit_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.signum = None
        try:
            self._previous = {s: signal.signal(s, self._on_signal) for s in self.SIGNALS}
        except ValueError:  # not the main thread: signals stay with the process's handlers
            self._previous = {}

    def _on_signal(self, signum: int, frame: Any) -> None:
        if self.signum is None:
            self.signum = signum
            log.warning("received %s: stopping after this batch", signal.Signals(signum).name)

    def _stop_if_signalled(self, trainer: L.Trainer) -> None:
        if self.signum is not None and not trainer.sanity_checking:
            raise RunStopped(self.signum, trainer.current_epoch)

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        self._stop_if_signalled(trainer)

    def on_validation_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.state.fn == "fit":
            self._stop_if_signalled(trainer)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous = {}
