"""Where the heavy preparation stages run: a Lightning predict loop on every device and node.

A *distributed* stage (the image stages: ``distributed = True``) splits its accounts into
shards of ``shard_size`` consecutive rows. Shard ``s`` belongs to global rank
``s mod world_size``; each rank runs a :class:`lightning.pytorch.Trainer` predict loop over
the images of its own shards and writes every finished shard into the stage's work folder,
which all nodes must see (a shared filesystem, as on any SLURM cluster). After a barrier,
global rank zero merges the shards into the store; the other ranks write nothing.

The devices come from the ``extraction`` entry of the features config
(``conf/features/extraction/``: ``local`` one device, ``ddp`` all GPUs of the node,
``ddp_cpu`` two CPU processes), i.e. the Trainer's ``accelerator``, ``devices``,
``num_nodes`` and ``strategy``. Launching follows Lightning: with ``strategy=ddp`` the
script is started again once per extra device (or by SLURM, one task per device), so every
process runs :func:`bamir.features.pipeline.prepare`; processes other than global rank zero
(:func:`launch_rank`) only take part in the distributed stages and then wait at a final
barrier until rank zero has written the store. The ranks agree on which stages to run
because the decision reads only the store's manifest and the config, which rank zero does
not change before the distributed stages have run.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any, Mapping

import torch

log = logging.getLogger(__name__)

#: the single-process default: one device, ``cuda`` when available
LOCAL = {"accelerator": "auto", "devices": 1, "num_nodes": 1, "strategy": "auto"}
#: environment variables that carry a process's rank under the launchers Lightning knows
#: (torchrun: RANK; SLURM: SLURM_PROCID; Lightning's own script launcher: LOCAL_RANK, NODE_RANK)
_RANK_VARIABLES = ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK")


def launch_rank() -> int:
    """0 for the process that owns the store, > 0 for a process launched to help it.

    Read from the launcher's environment variables before any Trainer exists; a process
    is a helper when any of ``RANK``, ``SLURM_PROCID``, ``LOCAL_RANK`` or ``NODE_RANK`` is
    non-zero.
    """
    return max((int(os.environ.get(name, "0") or 0) for name in _RANK_VARIABLES), default=0)


def extraction_trainer(cfg: Mapping[str, Any] | None = None, *, progress: bool = True):
    """A Trainer for predict loops only: no logger, no checkpoints, our own sharding.

    ``cfg`` holds Trainer arguments (``accelerator``, ``devices``, ``num_nodes``,
    ``strategy``, ``precision``...); missing ones default to :data:`LOCAL`. A ``strategy``
    given as a mapping with ``_target_`` is instantiated. ``timeout_min`` (DDP only) is how
    long a process waits at a barrier for the others: the helpers wait at the last one while
    rank zero computes the other stages (torch's default is 30 minutes).
    """
    import lightning.pytorch as pl
    from lightning.pytorch.strategies import DDPStrategy

    from bamir.config import instantiate

    settings = {**LOCAL, **dict(cfg or {})}
    timeout_min = settings.pop("timeout_min", None)
    timeout = {} if timeout_min is None else {"timeout": timedelta(minutes=float(timeout_min))}
    if isinstance(settings.get("strategy"), Mapping):
        settings["strategy"] = instantiate(dict(settings["strategy"]), **timeout)
    elif settings.get("strategy") == "ddp" and timeout:
        settings["strategy"] = DDPStrategy(**timeout)
    announcements = logging.getLogger("lightning.pytorch.utilities.rank_zero")  # "GPU available: ..." and tips
    level = announcements.level
    announcements.setLevel(logging.WARNING)
    try:
        return pl.Trainer(
            **settings,
            logger=False,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=progress,
            use_distributed_sampler=False,  # each rank reads the images of its own shards
            inference_mode=True,
        )
    finally:
        announcements.setLevel(level)


def device_trainer(device: torch.device | str, *, progress: bool = False):
    """A one-device Trainer on ``device`` (``"cpu"``, ``"cuda"``, ``"cuda:1"``)."""
    device = torch.device(device)
    if device.type == "cuda":
        return extraction_trainer({"accelerator": "cuda", "devices": [device.index or 0]}, progress=progress)
    return extraction_trainer({"accelerator": "cpu", "devices": 1}, progress=progress)


def shards_of_rank(n_shards: int, rank: int, world_size: int) -> list[int]:
    """The shards global rank ``rank`` computes: ``s`` with ``s mod world_size == rank``."""
    if not 0 <= rank < world_size:
        raise ValueError(f"rank {rank} outside a world of {world_size} processes")
    return list(range(rank, n_shards, world_size))
