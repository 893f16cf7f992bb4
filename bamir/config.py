"""Config helpers: where the configs are, instantiation restricted to known packages, output-folder checks, resolvers.

The configs are the repository's ``conf/``, installed as the package ``bamir.conf``
(:data:`CONFIG_MODULE`, mapped in setup.py): an editable install and a wheel find them alike.

Hydra instantiates whatever ``_target_`` a config names; a config from an untrusted source could
name ``os.system``. :func:`instantiate` refuses any target outside :data:`ALLOWED_TARGETS` and the
modules that the job's config key ``allowed_targets`` lists (applied by :class:`AllowedTargets`
when the job starts, ``conf/hydra/allowed_targets.yaml``; a config loaded later cannot widen it).

Resolvers: ``${device_count:...}`` (:func:`device_count`), and ``${task_suffix:}``: ``""`` in
the first process of a run and ``_rank<N>`` in process ``N`` started by SLURM (``SLURM_PROCID``)
or torchrun (``RANK``), so that each task of a multi-node run logs to its own file in the
shared run folder (``conf/hydra/default.yaml``).

Importing this module registers those resolvers; ``conf/__init__.py`` imports it, so every
composition of ``pkg://bamir.conf`` has them (and the feature stages' schemas it registers).
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import hydra.utils
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, ListConfig, OmegaConf

#: the package holding the Hydra configs (``conf/``): ``pkg://bamir.conf`` for ``hydra.main``
CONFIG_MODULE = "bamir.conf"


def task_suffix() -> str:
    """``""`` in the first process of a run, ``_rank<N>`` in process ``N`` of SLURM or torchrun."""
    rank = int(os.environ.get("SLURM_PROCID") or os.environ.get("RANK") or 0)
    return f"_rank{rank}" if rank else ""


def device_count(devices: Any, key: str) -> int:
    """``${device_count:${trainer.devices},trainer.devices}``: a number of devices, for a launcher
    that must ask the cluster for one task per device before any process can look (SLURM)."""
    if isinstance(devices, int) and devices > 0:
        return devices
    raise ValueError(f"{key}={devices!r}: a SLURM launcher asks for one task per device, so name the "
                     f"number of devices per node, e.g. {key}=4")


OmegaConf.register_new_resolver("task_suffix", task_suffix, replace=True)
OmegaConf.register_new_resolver("device_count", device_count, replace=True)
import bamir.tracking  # noqa: E402,F401  (the resolvers of W&B run identity and metric direction)

#: module prefixes a config's ``_target_`` may name; the config key ``allowed_targets`` adds a job's own
ALLOWED_TARGETS = ("bamir.", "torch.", "lightning.", "torchmetrics.", "timm.", "torch_geometric.", "transformers.")
_job_targets: tuple[str, ...] = ()


def allow_targets(modules: Iterable[str] | str | None) -> None:
    """Allow targets in these modules too (``wandb`` or ``wandb.``), instead of the previous job's."""
    global _job_targets
    modules = [modules] if isinstance(modules, str) else modules or ()
    _job_targets = tuple(m if m.endswith(".") else f"{m}." for m in map(str, modules))


def allowed_targets() -> tuple[str, ...]:
    """The module prefixes a ``_target_`` may start with in this job."""
    return ALLOWED_TARGETS + _job_targets


class AllowedTargets(Callback):
    """Hydra callback: each job (of every app, of every sweep) starts with its config's ``allowed_targets``."""

    def on_job_start(self, config: DictConfig, **kwargs: Any) -> None:
        allow_targets(config.get("allowed_targets"))


def check_targets(cfg: Any, where: str = "") -> None:
    """Raise ValueError naming the key of every ``_target_`` outside the allowed packages."""
    if isinstance(cfg, (DictConfig, dict)):
        items = cfg.items_ex(resolve=False) if isinstance(cfg, DictConfig) else cfg.items()
        for key, value in items:
            path = f"{where}.{key}" if where else str(key)
            if key == "_target_":
                target = str(value)
                if not target.startswith(allowed_targets()):
                    raise ValueError(
                        f"config key {path}: target {target!r} is not allowed; targets must start with one of "
                        f"{allowed_targets()}; to allow a module, list it in the config key allowed_targets, "
                        f"e.g. 'allowed_targets=[{target.rpartition('.')[0] or target}]'"
                    )
            else:
                check_targets(value, path)
    elif isinstance(cfg, (ListConfig, list, tuple)):
        for i, value in enumerate(cfg):
            check_targets(value, f"{where}[{i}]")


def instantiate(cfg: Any, *args: Any, **kwargs: Any) -> Any:
    """``hydra.utils.instantiate`` after :func:`check_targets`."""
    check_targets(cfg)
    return hydra.utils.instantiate(cfg, *args, **kwargs)


def check_output_dir(path: str | Path, min_free_mb: float = 100.0) -> Path:
    """Fail early, with a clear message, when ``path`` cannot be written or its disk is nearly full."""
    path = Path(path)
    try:
        path.mkdir(parents=True, exist_ok=True)
        # a probe of this process's own: the tasks of a multi-node run check one shared folder at once
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as err:
        raise OSError(f"output folder {path} is not writable ({err.strerror or err}); "
                      "set paths.root_dir or BAMIR_ROOT to a writable place") from err
    free_mb = shutil.disk_usage(path).free / 2**20
    if free_mb < min_free_mb:
        raise OSError(f"output folder {path}: only {free_mb:.0f} MiB free on its disk, "
                      f"below the {min_free_mb:.0f} MiB a run needs (paths.min_free_mb)")
    return path
