"""Rows of finished benchmarks compared again from their saved score matrices, without training.

``bamir-compare 'benchmarks=[A,B]' reference=ROW`` reads every row of each benchmark folder
(``jobs/<row>/seed<s>/scores.pt``, or ``jobs/<row>/seed<s>/fold<k>/scores.pt`` of a cross-validation,
pooled as :class:`PooledRun`) and summarises them as the benchmark does (:func:`summarise`: CIs by the
bootstrap over brands, paired tests against ``reference``): another reference, or rows of benchmarks
run at other times side by side. A row found in several folders is taken from the first listed.
``fusions: {name: [row, ...]}`` adds rows that fuse models with equal weights (:func:`~bamir.benchmark.scores.model_fusion`).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from bamir.benchmark.jobs import SCORES
from bamir.benchmark.scores import PooledRun, RunScores, add_fusions
from bamir.benchmark.statistics import summarise
from bamir.benchmark.tables import markdown_table

log = logging.getLogger(__name__)


def _number(path: Path) -> int:
    """The number ending a job folder's name (``seed2`` -> 2, ``fold10`` -> 10)."""
    return int(re.search(r"(\d+)$", path.name).group(1))


def load_benchmark_rows(folder: str | Path, seeds: list[int] | None = None) -> tuple[dict[str, list], str]:
    """``({row: [RunScores or PooledRun, one per seed]}, split)`` of a benchmark folder (only ``seeds``
    when given); ``split`` is ``cv`` when its jobs have folds, else the split its scores record (``test``
    or ``val``). A job without scores (unfinished) is refused, naming it."""
    jobs = Path(folder) / "jobs"
    if not jobs.is_dir():
        raise FileNotFoundError(f"{folder}: not a benchmark folder (no jobs/)")
    rows: dict[str, list] = {}
    kinds = set()
    for row in sorted(p for p in jobs.iterdir() if p.is_dir()):
        runs: list = []
        for seed_dir in sorted(row.glob("seed*"), key=_number):
            seed = _number(seed_dir)
            if seeds is not None and seed not in seeds:
                continue
            folds = sorted(seed_dir.glob("fold*"), key=_number)
            files = [f / SCORES for f in folds] or [seed_dir / SCORES]
            missing = [f for f in files if not f.is_file()]
            if missing:
                raise FileNotFoundError(f"{missing[0]}: missing, that job has not finished; run its benchmark "
                                        f"again in its folder (hydra.run.dir={folder}) to finish it, or "
                                        f"compare the finished seeds (seeds=[...])")
            parts = [RunScores.load(f, row.name, seed) for f in files]
            runs.append(PooledRun(row.name, seed, parts) if folds else parts[0])
            kinds.add("cv" if folds else parts[0].split)
        if runs:
            rows[row.name] = runs
    if len(kinds) > 1:
        raise ValueError(f"{folder}: its rows report different splits ({sorted(kinds)})")
    return rows, kinds.pop() if kinds else "test"


def compare(cfg: DictConfig) -> dict[str, Any]:
    """Run ``conf/compare.yaml``: load the benchmarks' rows, summarise, write ``compare.md`` and ``compare.csv``."""
    if not cfg.benchmarks:
        raise ValueError("bamir-compare: give the benchmark folders, benchmarks=[DIR,...]")
    runs: dict[str, list] = {}
    splits = set()
    for folder in cfg.benchmarks:
        rows, split = load_benchmark_rows(folder, None if cfg.get("seeds") is None else [int(x) for x in cfg.seeds])
        splits.add(split)
        for name, row in rows.items():
            if name in runs:
                log.info("compare: row %s of %s left out: taken from an earlier folder", name, folder)
                continue
            runs[name] = row
    if len(splits) > 1:
        raise ValueError(f"bamir-compare: {list(cfg.benchmarks)} report different splits ({sorted(splits)})")
    add_fusions(runs, cfg.get("fusions"))
    fusions = [str(n) for n in (cfg.get("fusions") or {})]
    wanted = list(cfg.rows) + [f for f in fusions if f not in cfg.rows] if cfg.get("rows") else list(runs)
    unknown = [r for r in [*wanted, cfg.reference] if r not in runs]
    if unknown:
        raise ValueError(f"bamir-compare: rows {unknown} are in none of the folders; they hold {sorted(runs)}")
    if cfg.reference not in wanted:
        wanted.insert(0, str(cfg.reference))
    boot = cfg.bootstrap
    table = summarise({r: runs[r] for r in wanted}, str(cfg.reference), list(cfg.columns), samples=int(boot.samples),
                      seed=int(boot.seed), level=float(boot.level))
    markdown = markdown_table(table, float(boot.level), splits.pop())
    out = Path(cfg.paths.output_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "compare.md").write_text(markdown)
    table.to_csv(out / "compare.csv", index=False)
    print(markdown)
    log.info("comparison written to %s", out)
    return {"table": table, "markdown": markdown, "output_dir": out}
