"""Speed-up of data-parallel training on CPU processes (trainer=ddp_cpu, gloo) against one process.

Runs ``bamir-train`` with ``trainer=cpu`` and with ``trainer=ddp_cpu`` (2 processes) on the same
data and model, ``--repeats`` times each, interleaved, and compares the fit time each run records
in its ``metrics.json`` (``time/fit_seconds``: training and validation, start-up excluded).
Each process runs one torch thread, so 2 processes use the machine's 2 cores.

    python benchmarks/ddp_speedup.py --epochs 3 --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def fit_seconds(trainer: str, root: Path, args: argparse.Namespace) -> float:
    env = {**os.environ, "BAMIR_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bamir.cli.train", f"trainer={trainer}", f"dataset={args.dataset}",
           f"model={args.model}", f"trainer.max_epochs={args.epochs}", f"data.batch_size={args.batch_size}",
           "logger=csv", "test=false", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
    subprocess.run(cmd, env=env, check=True, capture_output=True, text=True)
    newest = max((root / "outputs" / "train" / "runs").glob("*/metrics.json"), key=lambda p: p.stat().st_mtime)
    return json.loads(newest.read_text())["time/fit_seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default="planted")
    parser.add_argument("--model", default="bamir")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="ddp-speedup-"))
    times: dict[str, list[float]] = {"cpu": [], "ddp_cpu": []}
    for _ in range(args.repeats):
        for trainer in times:
            times[trainer].append(fit_seconds(trainer, root, args))
    one, two = statistics.median(times["cpu"]), statistics.median(times["ddp_cpu"])
    print(f"dataset={args.dataset} model={args.model} epochs={args.epochs} batch={args.batch_size} (per process)")
    print("| trainer | processes | fit time (median) | speed-up |")
    print("|---|---|---|---|")
    print(f"| cpu | 1 | {one:.1f} s | 1.00x |")
    print(f"| ddp_cpu | 2 | {two:.1f} s | {one / two:.2f}x |")


if __name__ == "__main__":
    main()
