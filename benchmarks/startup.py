"""Start-up time of bamir-train: --help, --cfg job and a shell-completion query, against Hydra's own import.

Each round runs every command once (interleaved: a busy machine slows them alike); the table gives
the median over ``--repeats`` rounds and its ratio to ``python -c "import hydra"`` measured in the
same rounds. Then the main job, ``bamir-train`` on its default, end to end ``--job-repeats`` times
from ``--data-dir`` holding its dataset and store (built first, untimed, when missing); its outputs
go to a temporary folder.

    python benchmarks/startup.py
    python benchmarks/startup.py --repeats 9 --job-repeats 0
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def seconds(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def store_of(data_dir: Path) -> Path:
    """The feature store of the main job's default dataset under ``data_dir``."""
    from hydra import compose, initialize_config_module

    from bamir.config import CONFIG_MODULE

    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        return Path(compose("train", overrides=[f"paths.data_dir={data_dir}"]).dataset.store)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5, help="rounds of the start-up commands")
    parser.add_argument("--job-repeats", type=int, default=1, help="runs of the main job (0: none)")
    parser.add_argument("--data-dir", default="data", help="the main job's data folder (paths.data_dir)")
    args = parser.parse_args()
    train = shutil.which("bamir-train")
    if train is None:
        sys.exit("bamir-train is not on PATH: pip install -e . first")
    completion = {**os.environ, "COMP_LINE": "bamir-train model=ba"}
    startup = {
        'python -c "import hydra"': ([sys.executable, "-c", "import hydra"], None),
        "bamir-train --help": ([train, "--help"], None),
        "bamir-train --cfg job": ([train, "--cfg", "job"], None),
        "shell completion (bamir-train model=ba<TAB>)": ([train, "-sc", "query=bash"], completion),
    }
    times: dict[str, list[float]] = {name: [] for name in startup}
    for _ in range(args.repeats):
        for name, (cmd, env) in startup.items():
            times[name].append(seconds(cmd, env))
    medians = {name: statistics.median(values) for name, values in times.items()}
    base = medians['python -c "import hydra"']

    data_dir = Path(args.data_dir).resolve()
    with tempfile.TemporaryDirectory() as tmp:
        job = [train, f"paths.data_dir={data_dir}", f"paths.log_dir={tmp}"]
        if args.job_repeats and not (store_of(data_dir) / "manifest.json").is_file():
            print(f"building the default dataset and store under {data_dir} (untimed) ...", flush=True)
            seconds(job, cwd=Path(tmp))
        if args.job_repeats:
            name = "bamir-train (main job, existing data folder)"
            medians[name] = statistics.median(seconds(job, cwd=Path(tmp)) for _ in range(args.job_repeats))

    print(f"\nmedians of {args.repeats} interleaved rounds (main job: {args.job_repeats} runs)\n")
    print("| command | seconds | x import hydra |\n|---|---|---|")
    for name, value in medians.items():
        print(f"| {name} | {value:.2f} | {value / base:.1f} |")


if __name__ == "__main__":
    main()
