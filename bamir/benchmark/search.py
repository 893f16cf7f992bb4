"""A row's hyper-parameters searched inside each fold, on that fold's inner validation carve (nested CV).

A benchmark row with ``search`` is not one job per (seed, fold) but an Optuna study of ``n_trials``
jobs (TPE, Bergstra et al., 2011; seeded by the run's seed and the fold, so each fold's study draws its
own start-up points). Trial ``t`` is the row's config plus the
values the sampler draws for ``params`` (Hydra's sweep syntax, as in ``conf/hparams_search``:
``interval(a, b)``, ``tag(log, interval(a, b))``, ``range(a, b)``, ``choice(x, y)``), trained in
``<job>/trial<t>`` like any job (:func:`~bamir.benchmark.jobs.run_job`). Its value is the mean of the
``objective`` metrics at its selected epoch: validation metrics, i.e. the inner carve of the fold's
training brands, never the brands the fold reports. The fold is then scored by the best trial, whose
``scores.pt`` is copied into the job folder.

``trials.json`` in the job folder records every trial (its parameters, overrides, objective and
validation metrics; ``trials.csv`` shows the same as a table). Run again in its folder, the study
replays the recorded trials first, each reused as a finished job, and goes on.
"""

from __future__ import annotations

import json
import logging
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd
from omegaconf import DictConfig, OmegaConf

from bamir.benchmark.jobs import SCORES, run_job
from bamir.utils import atomic_write_json

log = logging.getLogger(__name__)

TRIALS = "trials.json"


@dataclass(frozen=True)
class SearchSpec:
    """A row's ``search``: ``n_trials`` per (seed, fold), the swept ``params`` ({key: sweep expression}),
    the ``objective`` (validation metrics, averaged; the row's ``optimized_metric`` when empty), its
    ``direction`` and the sampler's random ``startup_trials``."""

    n_trials: int
    params: dict[str, str]
    objective: tuple[str, ...] = ()
    direction: str = "maximize"
    startup_trials: int = 10

    @classmethod
    def from_config(cls, node: Any, row: str) -> SearchSpec:
        node = OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else dict(node)
        unknown = sorted(set(node) - {"n_trials", "params", "objective", "direction", "startup_trials"})
        if unknown:
            raise ValueError(f"benchmark row {row}: search takes n_trials, params, objective, direction and "
                             f"startup_trials, not {unknown}")
        objective = node.get("objective") or ()
        spec = cls(n_trials=int(node.get("n_trials", 20)), params={str(k): str(v) for k, v in
                                                                       (node.get("params") or {}).items()},
                   objective=(objective,) if isinstance(objective, str) else tuple(map(str, objective)),
                   direction=str(node.get("direction", "maximize")),
                   startup_trials=int(node.get("startup_trials", 10)))
        if spec.n_trials < 1 or not spec.params:
            raise ValueError(f"benchmark row {row}: a search needs n_trials >= 1 and at least one param")
        if spec.direction not in ("maximize", "minimize"):
            raise ValueError(f"benchmark row {row}: search direction {spec.direction!r}: maximize or minimize")
        not_validation = [m for m in spec.objective if not m.startswith("val/")]
        if not_validation:
            raise ValueError(f"benchmark row {row}: search objective {not_validation}: only validation metrics "
                             f"(val/...) may choose a model, never the brands it is reported on")
        search_distributions(spec.params, row)  # a malformed range is refused before any work
        return spec


def search_distributions(params: dict[str, str], row: str = "") -> dict[str, Any]:
    """Optuna distributions of ``{key: sweep expression}``, parsed as the Optuna sweeper parses them."""
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra_plugins.hydra_optuna_sweeper._impl import create_optuna_distribution_from_override

    parser = OverridesParser.create()
    distributions = {}
    for key, expression in params.items():
        override = parser.parse_override(f"{key}={expression}")
        if not override.is_sweep_override():
            raise ValueError(f"benchmark row {row}: search param {key}={expression} is one value, not a range "
                             f"(interval(a, b), tag(log, interval(a, b)), range(a, b) or choice(x, y, ...))")
        distributions[key] = create_optuna_distribution_from_override(override)
    return distributions


def objective_value(metrics: dict[str, Any], objective: tuple[str, ...], where: Path) -> float:
    """The mean of ``metrics[m]`` over the ``objective`` metrics."""
    missing = [m for m in objective if m not in metrics]
    if missing:
        have = sorted(k for k in metrics if k.startswith("val/"))
        raise KeyError(f"{where}: the search objective {missing} is not among the run's metrics ({have}); "
                       f"does the run have a validation split (data.val_fraction > 0)?")
    return float(sum(float(metrics[m]) for m in objective) / len(objective))


@dataclass
class SearchResult:
    """A finished study: the best trial and its metrics; the time of all trials; whether every trial
    was reused; and every trial (:data:`TRIALS` records)."""

    best_trial: int
    metrics: dict[str, Any]
    seconds: float
    reused: bool
    trials: list[dict[str, Any]]


def run_search(spec: SearchSpec, compose: Callable[[list[str], Path, int], DictConfig], out: Path,
               seed: int, fold: int | None) -> SearchResult:
    """The study of one (row, seed, fold) in ``out``: ``compose(overrides, trial_dir, t)`` builds trial
    ``t``'s job config; the best trial (first among equals) scores the fold."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    distributions = search_distributions(spec.params)
    sampler = optuna.samplers.TPESampler(seed=study_seed(seed, fold), n_startup_trials=spec.startup_trials)
    study = optuna.create_study(direction=spec.direction, sampler=sampler)
    recorded = json.loads((out / TRIALS).read_text()) if (out / TRIALS).is_file() else []
    with warnings.catch_warnings():  # enqueue_trial is marked experimental in optuna 2
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        for trial in recorded[:spec.n_trials]:
            study.enqueue_trial(trial["params"])  # replayed in order: the same jobs, reused
    check_integer_params(distributions, compose([], out / "trial00", 0), out)
    trials: list[dict[str, Any]] = []
    metrics_of: dict[int, dict[str, Any]] = {}
    seconds, reused = 0.0, True
    for t in range(spec.n_trials):
        trial = study.ask(distributions)
        overrides = [f"{key}={_override_value(value)}" for key, value in trial.params.items()]
        trial_dir = out / f"trial{t:02d}"
        run_cfg = compose(overrides, trial_dir, t)
        objective = tuple(spec.objective) or (str(run_cfg.optimized_metric),)
        metrics, job_seconds, job_reused = run_job(run_cfg, trial_dir)
        value = objective_value(metrics, objective, trial_dir)
        study.tell(trial, value)
        metrics_of[t] = metrics
        seconds, reused = seconds + job_seconds, reused and job_reused
        trials.append({"trial": t, "params": trial.params, "overrides": overrides, "objective": value,
                       "validation": {k: v for k, v in metrics.items() if k.startswith("val/")}})
        log.info("search %s: trial %d of %d, %s = %.4f (%s)", out, t + 1, spec.n_trials, " + ".join(objective),
                 value, " ".join(overrides))
        write_trials(out, trials + recorded[len(trials):])  # a record cut short by n_trials keeps its tail
    pick = max if spec.direction == "maximize" else min
    best = pick(trials, key=lambda r: r["objective"])  # max/min keep the first of equal values
    shutil.copyfile(out / f"trial{best['trial']:02d}" / SCORES, out / SCORES)  # the job folder's scores, as any row's
    log.info("search %s: trial %d chosen on the inner carve (%s = %.4f)", out, best["trial"],
             " + ".join(objective), best["objective"])
    return SearchResult(int(best["trial"]), metrics_of[best["trial"]], seconds, reused, trials)


def study_seed(seed: int, fold: int | None) -> int:
    """The sampler's seed for a (seed, fold) study: one stream per pair (numpy's ``SeedSequence``), so the
    folds of a seed do not all start from the same random trials."""
    return int(np.random.SeedSequence([int(seed)] + ([] if fold is None else [int(fold)])).generate_state(1)[0])


def check_integer_params(distributions: dict[str, Any], base: DictConfig, where: Path) -> None:
    """Refuse a real-valued range (``interval``: Hydra's intervals are real) for a setting that is an integer."""
    from optuna.distributions import LogUniformDistribution, UniformDistribution

    for key, distribution in distributions.items():
        value = OmegaConf.select(base, key)
        real = isinstance(distribution, (UniformDistribution, LogUniformDistribution))
        if real and isinstance(value, int) and not isinstance(value, bool):
            raise ValueError(f"{where}: search param {key} is an integer ({value}) but interval() draws real "
                             f"numbers: use range(a, b) (a to b, both included)")


def write_trials(out: Path, trials: list[dict[str, Any]]) -> None:
    """``trials.json`` (the record the study replays) and ``trials.csv`` (a table of the same)."""
    atomic_write_json(out / TRIALS, trials)
    rows = [{"trial": r["trial"], **r["params"], "objective": r["objective"], **r["validation"]} for r in trials]
    pd.DataFrame(rows).to_csv(out / "trials.csv", index=False)


def _override_value(value: Any) -> str:
    """A sampled value as a command-line override value (floats in full precision)."""
    return repr(value) if isinstance(value, float) else str(value)
