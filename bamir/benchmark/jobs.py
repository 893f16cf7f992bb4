"""A benchmark's job folders: one training run each, finished once, reused when run again.

A benchmark given the folder of an earlier one (``hydra.run.dir=<that folder>``) goes on where it
stopped. Each job folder (``jobs/<row>/seed<s>[/fold<k>]``) records the job's composed ``train``
config (``job.yaml``) before it trains and ``job_done.json`` (its metrics and seconds) once its
scores are written. When the benchmark meets the folder again:

- finished, same config: the job is reused, not trained again;
- unfinished, same config: it trains again, resuming from its last finished epoch
  (``checkpoints/last.ckpt``, :func:`bamir.train.interrupted_checkpoint`);
- another config, or files without a recorded config: refused (:class:`JobFolderError`, naming the
  settings that differ), never mixed into the table.

The code is not compared: ``runs.csv`` marks each reused job (``reused``) so a table built across
code changes says which rows were computed before them.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from pathlib import Path
from typing import Any, Iterator

from omegaconf import DictConfig, OmegaConf

from bamir.checkpoints import flat_settings, settings_differences
from bamir.utils import atomic_write_json, atomic_write_text

log = logging.getLogger(__name__)

JOB_CONFIG, JOB_DONE, SCORES = "job.yaml", "job_done.json", "scores.pt"


class JobFolderError(RuntimeError):
    """A job folder that holds another job's work."""


def run_job(run_cfg: DictConfig, out: Path, log_file: bool = False) -> tuple[dict[str, Any], float, bool]:
    """Train and test the job ``run_cfg`` in ``out``, or reuse its finished run there;
    returns ``(metrics, seconds, reused)``. ``log_file``: the training's log also goes to ``out/job.log``."""
    from bamir.tracking import job_run
    from bamir.train import train

    settings = OmegaConf.to_yaml(run_cfg)
    if (out / JOB_CONFIG).is_file():
        check_same_job(out, run_cfg, settings)
        done = out / JOB_DONE
        if done.is_file() and (out / SCORES).is_file():
            record = json.loads(done.read_text())
            log.info("benchmark: %s finished earlier with the same config: reused", out)
            return record["metrics"], float(record["seconds"]), True
        log.info("benchmark: %s was stopped before it finished: training it again (from its last epoch)", out)
    elif out.is_dir() and any(out.iterdir()):
        raise JobFolderError(f"benchmark job folder {out} holds files but no {JOB_CONFIG}: they are not this "
                             f"benchmark's (or come from a version that did not record its jobs); move them "
                             f"away or run the benchmark in a new folder")
    atomic_write_text(out / JOB_CONFIG, settings)
    start = time.perf_counter()
    with job_run(), _logging_to(out / "job.log" if log_file else None):
        metrics = train(run_cfg)
    seconds = time.perf_counter() - start
    if (out / SCORES).is_file():
        atomic_write_json(out / JOB_DONE, {"metrics": metrics, "seconds": seconds})
    return metrics, seconds, False


def run_job_in_process(settings: str, out: str) -> tuple[dict[str, Any], float, bool]:
    """:func:`run_job` of a job given as its ``job.yaml`` text, in a worker process of a benchmark with
    ``parallel_jobs`` > 1 (the text pickles where the composed config does not); its log goes to ``job.log``."""
    import bamir.config  # noqa: F401  (the config resolvers, as the apps register them)

    logging.getLogger().setLevel(logging.INFO)
    return run_job(OmegaConf.create(settings), Path(out), log_file=True)


@contextlib.contextmanager
def _logging_to(path: Path | None) -> Iterator[None]:
    """Every log record also written to ``path`` (nothing when None), for the duration."""
    if path is None:
        yield
        return
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("[%(asctime)s][%(name)s][%(levelname)s] - %(message)s"))
    logging.getLogger().addHandler(handler)
    try:
        yield
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()


def check_same_job(out: Path, run_cfg: DictConfig, settings: str) -> None:
    """Refuse ``out`` when its recorded config is not ``settings``, naming the settings that differ."""
    recorded = (out / JOB_CONFIG).read_text()
    if recorded == settings:
        return
    differ = settings_differences(flat_settings(OmegaConf.to_container(OmegaConf.create(recorded), resolve=False)),
                                  flat_settings(OmegaConf.to_container(run_cfg, resolve=False)))
    raise JobFolderError(f"benchmark job folder {out} was run with other settings ({'; '.join(differ[:10])}): "
                         f"run this benchmark in a new folder, or move that one away")
