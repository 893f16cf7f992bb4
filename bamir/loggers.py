"""Experiment loggers of bamir's runs (``conf/logger``)."""

from __future__ import annotations

import logging
import os
from typing import Any

from lightning.pytorch.loggers import WandbLogger as _LightningWandbLogger

log = logging.getLogger(__name__)


class WandbLogger(_LightningWandbLogger):
    """Lightning's W&B logger, quiet and obedient to ``WANDB_MODE=disabled``.

    - one log line naming the run's folder (and the ``wandb sync`` command when offline) instead
      of W&B's banner and end-of-run tables, and no ``anonymous`` argument (W&B warns about it);
    - ``offline=True`` makes Lightning set ``WANDB_MODE=dryrun`` in the environment, which would
      beat a ``WANDB_MODE=disabled`` set by the user (or the tests): that one is honoured;
    - the mode is passed to each run explicitly, since W&B keeps the settings of the first run a
      process started (a process that started a disabled run would start no offline run later).
    """

    def __init__(self, *args: Any, offline: bool = False, **kwargs: Any):
        disabled = os.environ.get("WANDB_MODE") == "disabled"
        if disabled or offline:
            kwargs["mode"] = "disabled" if disabled else "offline"
        super().__init__(*args, offline=offline and not disabled, **kwargs)
        if self._wandb_init.get("anonymous") is None:
            self._wandb_init.pop("anonymous", None)
        self._wandb_init.setdefault("settings", {"silent": True})

    @property
    def experiment(self):
        fresh = self._experiment is None
        run = super().experiment
        if fresh and not getattr(run, "disabled", False):
            offline = run.settings.mode in ("offline", "dryrun")
            log.info("W&B run %r (%s) in %s%s", run.name, "offline" if offline else "online", run.settings.sync_dir,
                     f"; upload with: wandb sync {run.settings.sync_dir}" if offline else "")
        return run
