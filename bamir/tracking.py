"""What a job records about itself: its W&B run's identity and life.

One Hydra job is one W&B run. Its identity comes from the job (resolvers used by
``conf/logger/wandb.yaml``):

- ``group``: the multirun's name (``<task>-<sweep folder>``), or the experiment's task name when a
  single run was started with ``experiment=...``; none for a plain single run;
- ``name``: the job's own overrides (``hydra.job.override_dirname``), prefixed by the job number in
  a multirun, so every job of a sweep has a distinct name;
- ``job_type``: the task (``train``, ``eval``, ``benchmark``...), ``tags``: the config's ``tags``.

:func:`job_run` wraps every app's job: it quiets the console and ends the job's W&B run even when
the job fails (the next job of a sweep running in the same process would otherwise write into it).
The best validation epoch is recorded by :class:`bamir.callbacks.BestValidation`.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from omegaconf import OmegaConf

from bamir.metric_names import mode as metric_mode


def _hydra_config():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _is_multirun(hydra_cfg) -> bool:
    from hydra.types import RunMode

    return hydra_cfg is not None and hydra_cfg.mode == RunMode.MULTIRUN


def run_group(task_name: str) -> str | None:
    """``${run_group:${task_name}}``: the W&B group of this job."""
    hydra_cfg = _hydra_config()
    if _is_multirun(hydra_cfg):
        return f"{task_name}-{Path(hydra_cfg.sweep.dir).name}"
    experiment = hydra_cfg.runtime.choices.get("experiment") if hydra_cfg is not None else None
    return str(task_name) if experiment else None


def run_name(task_name: str) -> str:
    """``${run_name:${task_name}}``: the job's overrides (``model=sbr,seed=1``), ``#<n>`` first in a multirun."""
    hydra_cfg = _hydra_config()
    if hydra_cfg is None:
        return str(task_name)
    overrides = hydra_cfg.job.override_dirname or str(task_name)
    return f"#{hydra_cfg.job.num} {overrides}" if _is_multirun(hydra_cfg) else overrides


OmegaConf.register_new_resolver("run_group", run_group, replace=True)
OmegaConf.register_new_resolver("run_name", run_name, replace=True)
# ${metric_mode:${optimized_metric}}: "max", or "min" for MedR (checkpoint and early-stopping mode)
OmegaConf.register_new_resolver("metric_mode", metric_mode, replace=True)


@contextmanager
def job_run() -> Iterator[None]:
    """One Hydra job's life: a quiet console (:func:`bamir.console.quiet_third_party`), and its W&B run
    finished whether the job succeeds or fails, so the next job of a sweep run in the same process
    starts a run of its own."""
    from bamir.console import quiet_third_party

    quiet_third_party()
    failed = True
    try:
        yield
        failed = False
    finally:
        finish_run(failed)


def finish_run(failed: bool) -> None:
    """End this process's W&B run, if one was started (exit code 1 when the job failed)."""
    wandb = sys.modules.get("wandb")  # a job that never logged to W&B never imported it
    if wandb is not None and getattr(wandb, "run", None) is not None:
        wandb.finish(exit_code=1 if failed else 0)
