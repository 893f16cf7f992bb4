"""Speed-up of a benchmark's jobs run in parallel processes (``parallel_jobs``) against one after another.

Runs the same cross-validation ``bamir-benchmark`` (``--models`` x ``--folds`` jobs, one seed) with
``parallel_jobs=1`` and with ``parallel_jobs=--jobs``, each in a fresh folder, ``--repeats`` times,
interleaved, and compares their wall times (start-up included: it is what a user waits for). Each
job runs one torch thread (``OMP_NUM_THREADS=1``). The two tables must agree: the unlearned rows to
the digit, every row within ``--tolerance`` (another process may round another way).

    python benchmarks/parallel_jobs.py --dataset planted --folds 4 --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd


def run(workers: int, root: Path, args: argparse.Namespace) -> tuple[float, pd.Series]:
    out = Path(tempfile.mkdtemp(prefix=f"jobs{workers}-", dir=root))
    env = {**os.environ, "BAMIR_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bamir.cli.benchmark", f"dataset={args.dataset}", "suite=none", "split=cv",
           f"cv.folds={args.folds}", f"models=[{','.join(args.models)}]", "seeds=[0]", f"reference={args.models[0]}",
           f"parallel_jobs={workers}", "logger=none", "plots.enabled=false", "bootstrap.samples=100",
           f'overrides=["trainer=cpu","trainer.max_epochs={args.epochs}"]', f"hydra.run.dir={out}"]
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    table = pd.read_csv(out / "benchmark.csv").set_index(["model", "metric"])["mean"]
    return seconds, table


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="planted")
    parser.add_argument("--models", nargs="+", default=["cosine", "bamir_small"])
    parser.add_argument("--folds", type=int, default=4)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2, help="parallel_jobs of the parallel runs")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tolerance", type=float, default=0.02)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="parallel-jobs-"))
    run(1, root, args)  # builds the dataset's store once, outside the timings
    times: dict[int, list[float]] = {1: [], args.jobs: []}
    tables = {}
    for _ in range(args.repeats):
        for workers in times:
            seconds, tables[workers] = run(workers, root, args)
            times[workers].append(seconds)
    one, many = tables[1], tables[args.jobs]
    worst = float((one - many).abs().max())
    if worst > args.tolerance:
        sys.exit(f"the parallel table differs from the sequential one by {worst:.4f} (> {args.tolerance})")
    serial, parallel = statistics.median(times[1]), statistics.median(times[args.jobs])
    jobs = len(args.models) * args.folds
    print(f"dataset={args.dataset} models={','.join(args.models)} folds={args.folds} epochs={args.epochs} "
          f"({jobs} jobs; one torch thread each); largest table difference {worst:.4f}")
    print("| parallel_jobs | wall time (median) | speed-up |")
    print("|---|---|---|")
    print(f"| 1 | {serial:.1f} s | 1.00x |")
    print(f"| {args.jobs} | {parallel:.1f} s | {serial / parallel:.2f}x |")


if __name__ == "__main__":
    main()
