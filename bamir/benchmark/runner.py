"""Running a benchmark: one ordinary training run per (model, seed[, fold]), each recording its
scores; then the table, the plots and the W&B summary run."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf, open_dict

from bamir.benchmark.jobs import SCORES, run_job, run_job_in_process
from bamir.benchmark.plots import category_auc, plot_category_auc, plot_recall_curves, plot_score_distributions
from bamir.benchmark.search import SearchSpec, run_search
from bamir.benchmark.scores import PooledRun, RunScores, add_fusions, seed_ensemble
from bamir.benchmark.statistics import METRICS, fold_table, summarise
from bamir.benchmark.tables import markdown_fold_table, markdown_table

log = logging.getLogger(__name__)

@dataclass
class RunSpec:
    """One row of the table: a name, a model config (or None: the overrides choose), overrides, and
    optionally a hyper-parameter search inside each fold (:mod:`bamir.benchmark.search`)."""

    name: str
    model: str | None
    overrides: list[str] = field(default_factory=list)
    search: SearchSpec | None = None


def run_specs(cfg: DictConfig) -> list[RunSpec]:
    """``models`` (each its own row), the runs of ``sweep`` (:func:`sweep_specs`), then ``runs``
    (``{name, model, overrides, search}``: override sets, ``search`` optional)."""
    specs = [RunSpec(str(m), str(m)) for m in (cfg.get("models") or [])]
    if cfg.get("sweep"):
        specs += sweep_specs(str(cfg.sweep), list(cfg.get("names") or []))
    for entry in cfg.get("runs") or []:
        if isinstance(entry, str):
            specs.append(RunSpec(entry, entry))
            continue
        entry = OmegaConf.to_container(entry, resolve=True) if isinstance(entry, DictConfig) else dict(entry)
        model = entry.get("model")
        name = entry.get("name") or model
        if not name:
            raise ValueError(f"benchmark run {entry}: give it a name or a model")
        search = SearchSpec.from_config(entry["search"], str(name)) if entry.get("search") else None
        specs.append(RunSpec(str(name), None if model is None else str(model), _override_list(entry.get("overrides")),
                             search))
    names = [s.name for s in specs]
    duplicated = sorted({n for n in names if names.count(n) > 1})
    if duplicated:
        raise ValueError(f"benchmark: run names must be unique, repeated: {duplicated}")
    if not specs:
        raise ValueError("benchmark: nothing to run (set models=[...] or runs=[...], or pick a suite)")
    return specs


def sweep_specs(name: str, names: list[str] | None = None) -> list[RunSpec]:
    """The runs of the multirun ``conf/hparams_search/<name>.yaml``, one per point of its grid (its
    ``seed`` axis left to the benchmark's ``seeds``), so a sweep and its table share one source.

    The model is the grid's ``model`` value, else the sweep's ``override /model``; a run is named
    by ``names`` (in grid order), else by its model, its one swept value, or its ``key=value`` overrides.
    """
    import itertools
    from importlib.resources import files

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from bamir.config import CONFIG_MODULE

    sweep = OmegaConf.load(files(CONFIG_MODULE).joinpath("hparams_search", f"{name}.yaml"))
    grid = OmegaConf.to_container(OmegaConf.select(sweep, "hydra.sweeper.params") or {})
    if not grid:
        raise ValueError(f"sweep={name}: conf/hparams_search/{name}.yaml has no hydra.sweeper.params grid")
    parser = OverridesParser.create()
    parsed = {key: parser.parse_override(f"{key}={value}") for key, value in grid.items() if key != "seed"}
    axes = {key: list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(o.value())]
            for key, o in parsed.items()}
    defaults = [d for d in OmegaConf.to_container(sweep).get("defaults", []) if isinstance(d, dict)]
    default_model = next((str(v) for d in defaults for k, v in d.items() if k.split() == ["override", "/model"]), None)
    points = [dict(zip(axes, values)) for values in itertools.product(*axes.values())]
    if names and len(names) != len(points):
        raise ValueError(f"sweep={name}: {len(names)} names for {len(points)} grid points")
    specs = []
    for i, point in enumerate(points):
        model = point.pop("model", default_model)
        overrides = [f"{k}={v}" for k, v in point.items()]
        label = names[i] if names else (model if not overrides else overrides[0].split("=", 1)[1]
                                         if len(overrides) == 1 else " ".join(overrides))
        specs.append(RunSpec(str(label), model, overrides))
    return specs


def _compose_train(overrides: list[str], config_name: str = "train") -> DictConfig:
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    from bamir.config import CONFIG_MODULE

    if GlobalHydra.instance().is_initialized():
        return compose(config_name=config_name, overrides=overrides)
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        return compose(config_name=config_name, overrides=overrides)


def _override_list(value) -> list[str]:
    """A list of overrides, or one string of space-separated overrides."""
    if value is None:
        return []
    if isinstance(value, str):
        return value.split()
    return [str(o) for o in value]


SPLITS = ("test", "val", "cv")


def benchmark_split(cfg: DictConfig) -> str:
    """The benchmark's ``split`` (test, val or cv), checked."""
    split = str(cfg.get("split", "test"))
    if split not in SPLITS:
        raise ValueError(f"benchmark split={split!r}: use one of {', '.join(SPLITS)}")
    return split


def cv_settings(cfg: DictConfig) -> tuple[int, int]:
    """``(folds, seed)`` of ``split: cv`` (the benchmark's ``cv.folds``, ``cv.seed``)."""
    cv = cfg.get("cv") or {}
    folds, seed = int(cv.get("folds", 5)), int(cv.get("seed", 0))
    if folds < 2:
        raise ValueError(f"benchmark cv.folds={folds}: cross-validation needs at least 2 folds")
    return folds, seed


def compose_run(cfg: DictConfig, spec: RunSpec, seed: int, output_dir: Path, fold: int | None = None,
                trial: int | None = None) -> DictConfig:
    """The ``train`` config of one run: ``model=`` and ``seed=``, then ``common``, ``overrides`` and the
    run's own overrides; the benchmark's dataset and paths, output in ``output_dir``, the
    :class:`ScoreRecorder` callback for the benchmark's ``split``, and a W&B run named
    ``<row> seed=<seed>`` in the benchmark's group when the benchmark logs to W&B (none otherwise).
    ``split: cv`` with ``fold=k``: ``data.cv_fold=k`` with the benchmark's ``cv.folds`` and ``cv.seed``,
    the fold's test scores recorded and ``fold=<k>`` added to the W&B name (and ``trial=<t>`` for a search's trial)."""
    overrides = ([f"model={spec.model}"] if spec.model else []) + [f"seed={seed}"]
    overrides += _override_list(cfg.get("common")) + _override_list(cfg.get("overrides"))
    overrides += spec.overrides
    run = _compose_train(overrides)
    split = benchmark_split(cfg)
    if (split == "cv") != (fold is not None):
        raise ValueError(f"benchmark split={split}: a run {'needs' if split == 'cv' else 'takes no'} fold")
    with open_dict(run):
        if fold is not None:
            folds, cv_seed = cv_settings(cfg)
            run.data.cv_folds, run.data.cv_fold, run.data.cv_seed = folds, int(fold), cv_seed
        run.dataset = OmegaConf.create(OmegaConf.to_container(cfg.dataset, resolve=False))
        for key in ("root_dir", "data_dir", "log_dir"):
            run.paths[key] = str(cfg.paths[key])
        run.paths.output_dir = str(output_dir)
        run.task_name = f"{cfg.task_name}-{spec.name}"
        run.test = True
        run.ckpt_path = None
        if run.get("callbacks") is None:
            run.callbacks = {}
        monitor = run.get("optimized_metric") if split == "val" else None
        mode = (run.callbacks.get("model_checkpoint") or {}).get("mode", "max")
        run.callbacks.scores = {"_target_": "bamir.benchmark.scores.ScoreRecorder", "path": str(output_dir / SCORES),
                                "split": "val" if split == "val" else "test", "monitor": monitor, "mode": mode}
        if (run.get("logger") or {}).get("wandb") is not None:
            if _wandb_node(cfg) is None:
                run.logger.wandb = None  # the benchmark logs nothing to W&B: neither do its runs
            else:
                name = (f"{spec.name} seed={seed}" + ("" if fold is None else f" fold={fold}")
                        + ("" if trial is None else f" trial={trial}"))
                run.logger.wandb.update(group=wandb_group(cfg), name=name, job_type="train",
                                        tags=[*cfg.get("tags", []), spec.name])
    return run


def wandb_group(cfg: DictConfig) -> str:
    """The W&B group of a benchmark: its runs and its summary run (``benchmark-<run folder>``)."""
    return f"{cfg.task_name}-{Path(cfg.paths.output_dir).name}"


def _unavailable_errors() -> tuple[type[BaseException], ...]:
    from bamir.models.oracle import OracleUnavailable

    return (OracleUnavailable,)


def execute_runs(cfg: DictConfig, output_dir: Path) -> tuple[dict[str, list], list[dict[str, Any]]]:
    """Train and test every run spec for every seed (and fold, ``split: cv``), each in its job folder
    (reused when finished there before: :func:`~bamir.benchmark.jobs.run_job`); returns the score matrices
    (``{name: [RunScores]}``, or ``{name: [PooledRun]}`` for ``split: cv``, one per seed) and a log of the runs.
    With ``parallel_jobs`` > 1 the jobs (but a search's trials) run in that many spawned processes, each
    given its ``job.yaml`` text (:func:`~bamir.benchmark.jobs.run_job_in_process`)."""
    split = benchmark_split(cfg)
    folds = list(range(cv_settings(cfg)[0])) if split == "cv" else [None]
    specs = run_specs(cfg)
    searched = [s.name for s in specs if s.search is not None]
    if searched and split == "val":
        raise ValueError(f"benchmark rows {searched}: a search chooses on the validation brands, which split=val "
                         f"reports; use split=cv (or test)")
    workers = int(cfg.get("parallel_jobs") or 1)
    if workers <= 1:
        return _collect_runs(cfg, specs, folds, output_dir, {})
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    pool = ProcessPoolExecutor(max_workers=workers, mp_context=multiprocessing.get_context("spawn"))
    try:
        started = {}
        for spec in specs:
            if spec.search is not None:
                continue  # a search's trials depend on each other: it runs in this process
            for seed in cfg.seeds:
                for fold in folds:
                    out = _job_folder(output_dir, spec, seed, fold)
                    settings = OmegaConf.to_yaml(compose_run(cfg, spec, int(seed), out, fold))
                    started[out] = pool.submit(run_job_in_process, settings, str(out))
        log.info("benchmark: %d jobs started in %d processes", len(started), workers)
        return _collect_runs(cfg, specs, folds, output_dir, started)
    finally:
        pool.shutdown(wait=True, cancel_futures=True)  # a failure stops the jobs not yet started


def _job_folder(output_dir: Path, spec: RunSpec, seed: Any, fold: int | None) -> Path:
    out = output_dir / "jobs" / spec.name / f"seed{seed}"
    return out if fold is None else out / f"fold{fold}"


def _collect_runs(cfg: DictConfig, specs: list[RunSpec], folds: list, output_dir: Path,
                  started: dict[Path, Any]) -> tuple[dict[str, list], list[dict[str, Any]]]:
    """Every job's scores and record, in table order: a job ``started`` in a worker process is waited
    for, any other runs here."""
    split = benchmark_split(cfg)
    prefix = "test" if split == "cv" else split
    results: dict[str, list] = {}
    records: list[dict[str, Any]] = []
    for spec in specs:
        results[spec.name] = []
        skipped = False
        for seed in cfg.seeds:
            parts: list[RunScores] = []
            for fold in folds:
                out = _job_folder(output_dir, spec, seed, fold)
                log.info("benchmark: %s seed %s%s (%s)", spec.name, seed, "" if fold is None else f" fold {fold}",
                         " ".join(spec.overrides) or "no overrides")
                try:
                    if out in started:
                        metrics, seconds, reused, chosen = (*started[out].result(), {})
                    else:
                        metrics, seconds, reused, chosen = _run_row_job(cfg, spec, int(seed), out, fold)
                except _unavailable_errors() as err:
                    if not cfg.get("skip_unavailable", True):
                        raise
                    log.warning("benchmark: %s skipped: %s", spec.name, err)
                    records.append({"model": spec.name, "seed": seed, "status": f"skipped: {err}"})
                    skipped = True
                    break
                if not (out / SCORES).is_file():
                    what = f"fold {fold}'s test" if fold is not None else split
                    raise RuntimeError(f"benchmark run {spec.name} seed {seed}: no {what} scores were recorded "
                                       f"(does the dataset have a {prefix} split?)")
                parts.append(RunScores.load(out / SCORES, spec.name, int(seed), metrics=metrics, seconds=seconds))
                records.append({"model": spec.name, "seed": seed, **({} if fold is None else {"fold": fold}),
                                "status": "ok", "seconds": round(seconds, 2), "reused": reused, **chosen,
                                "torch_threads": metrics.get("env/torch_threads"),
                                **({} if fold is None else {"brands": len(parts[-1].brands)}),
                                **{k: v for k, v in metrics.items() if k.startswith(f"{prefix}/")}})
            if skipped:
                break
            if split == "cv":
                results[spec.name].append(PooledRun(spec.name, int(seed), parts,
                                                    seconds=sum(p.seconds for p in parts)))
            else:
                results[spec.name].extend(parts)
    return {k: v for k, v in results.items() if v}, records


def _run_row_job(cfg: DictConfig, spec: RunSpec, seed: int, out: Path,
                 fold: int | None) -> tuple[dict[str, Any], float, bool, dict[str, Any]]:
    """One (row, seed[, fold]) job in ``out``, or the search of a row with ``search``; returns its
    metrics, seconds, whether it was reused and (a search) the chosen trial; its scores are ``out/scores.pt``."""
    if spec.search is None:
        return (*run_job(compose_run(cfg, spec, seed, out, fold), out), {})

    def compose_trial(extra: list[str], trial_dir: Path, trial: int) -> DictConfig:
        return compose_run(cfg, replace(spec, overrides=spec.overrides + extra), seed, trial_dir, fold, trial)

    result = run_search(spec.search, compose_trial, out, seed, fold)
    chosen = {"trial": result.best_trial, "search": " ".join(result.trials[result.best_trial]["overrides"])}
    return result.metrics, result.seconds, result.reused, chosen


def _wandb_node(cfg: DictConfig) -> DictConfig | None:
    """The benchmark's W&B logger config, if it has one."""
    for node in (cfg.get("logger") or {}).values():
        if node is not None and "wandb" in str(node.get("_target_", "")).lower():
            return node
    return None


def log_to_wandb(cfg: DictConfig, table: pd.DataFrame, plots: dict[str, Path]) -> bool:
    """The benchmark's summary run, in the group of its (model, seed) runs: its config, the table
    (``wandb.Table``) and the plots (``wandb.Image``); when a W&B logger is configured."""
    node = _wandb_node(cfg)
    if node is None:
        return False
    import wandb

    from bamir.config import instantiate

    Path(str(node.get("save_dir", "."))).mkdir(parents=True, exist_ok=True)
    logger = instantiate(node, group=wandb_group(cfg), name="summary", job_type=str(cfg.task_name))
    logger.log_hyperparams(OmegaConf.to_container(cfg, resolve=True))
    payload: dict[str, Any] = {"benchmark/table": wandb.Table(dataframe=table)}
    payload.update({f"benchmark/{name}": wandb.Image(str(path)) for name, path in plots.items()})
    logger.experiment.log(payload)
    logger.experiment.finish()
    return True


def run_benchmark(cfg: DictConfig) -> dict[str, Any]:
    """Run ``conf/benchmark.yaml``: every run x seed, then the table, the plots and the W&B log.

    Returns ``{"table": DataFrame (long), "markdown": str, "output_dir": Path, "runs": {name: [RunScores]},
    "files": {name: Path}}`` (``split: cv``: runs ``{name: [PooledRun]}`` and ``"folds"``: :func:`fold_table`).
    """
    benchmark_split(cfg)  # a misspelt split is refused before any work
    output_dir = Path(cfg.paths.output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    runs, records = execute_runs(cfg, output_dir)
    pd.DataFrame(records).to_csv(output_dir / "runs.csv", index=False)
    for name in cfg.get("seed_ensembles") or []:
        if name not in runs:
            raise ValueError(f"benchmark seed_ensembles: {name!r} is not a row; the rows are {sorted(runs)}")
        runs[f"{name} ensemble"] = [seed_ensemble(runs[name], f"{name} ensemble")]
    add_fusions(runs, cfg.get("fusions"))
    reference = cfg.get("reference")
    if reference not in runs:
        fallback = next((n for n in runs if n.startswith("bamir")), None)
        if reference:
            log.warning("benchmark: reference %r has no runs; using %r", reference, fallback)
        reference = fallback
    boot = cfg.get("bootstrap") or {}
    level = float(boot.get("level", 0.95))
    table = summarise(runs, reference, list(cfg.get("columns") or METRICS), samples=int(boot.get("samples", 2000)),
                      seed=int(boot.get("seed", 0)), level=level)
    split = benchmark_split(cfg)
    markdown = markdown_table(table, level, split)
    files = {"markdown": output_dir / "benchmark.md", "csv": output_dir / "benchmark.csv",
             "runs": output_dir / "runs.csv"}
    folds = None
    if split == "cv":
        folds = fold_table(runs, list(dict.fromkeys(table["metric"])))
        files["folds"] = output_dir / "folds.csv"
        folds.to_csv(files["folds"], index=False)
        markdown += "\n" + markdown_fold_table(folds)
    files["markdown"].write_text(markdown)
    table.to_csv(files["csv"], index=False)
    plots: dict[str, Path] = {}
    plot_cfg = cfg.get("plots") or {}
    if plot_cfg.get("enabled", True):
        plots["recall_at_k"] = plot_recall_curves(runs, output_dir / "recall_at_k.png", int(plot_cfg.get("max_k", 100)),
                                                  split)
        plots["category_auc"] = plot_category_auc(runs, output_dir / "category_auc.png")
        plots["score_distributions"] = plot_score_distributions(runs, output_dir / "score_distributions.png")
        category_auc(runs).to_csv(output_dir / "category_auc.csv")
    files.update(plots)
    log_to_wandb(cfg, table, plots)
    print(markdown)
    log.info("benchmark written to %s", output_dir)
    return {"table": table, "markdown": markdown, "output_dir": output_dir, "runs": runs, "files": files,
            "folds": folds}
