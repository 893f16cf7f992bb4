"""Experiment loggers of bamir's runs (``conf/logger``)."""

from __future__ import annotations

import logging
from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

log = logging.getLogger(__name__)


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger, quiet: one line naming the run's folder instead of W&B's banner and
    end-of-run tables, and without the ``anonymous`` argument that W&B warns about on every run."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self._wandb_init.setdefault("settings", {"silent": True})

    @property
    def experiment(self):
        fresh = self._experiment is None
        run = super().experiment
        if fresh and getattr(run, "dir", None):
            offline = getattr(run.settings, "_offline", False)
            log.info("W&B run %r (%s) in %s%s", run.name, "offline" if offline else "online",
                     run.settings.sync_dir, f"; upload with: wandb sync {run.settings.sync_dir}" if offline else "")
        return run
