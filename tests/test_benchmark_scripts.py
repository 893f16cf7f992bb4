"""The scripts of ``benchmarks/`` run at their smallest sizes: those of ``benchmarks/gpu.sh`` on the
CPU (a session lent a GPU has minutes to spend, none to debug), and the start-up timer without
its main job (which builds the default dataset), and the brand-inference diagnostic on the tiny
synthetic dataset, whose kernel read-out is also checked alone. ``gpu_check.py`` is tested with the image
stages (tests/features/test_image.py)."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import r2_score

from tests.helpers.paths import REPO

SCRIPTS = {
    "train_speed": ["--batch-sizes", "8", "--steps", "12", "--repeats", "1"],
    "image_throughput": ["--model", "resnet18", "--image-size", "32", "--source-size", "40", "--images", "8",
                         "--batch-size", "4", "--workers", "0", "--device", "cpu", "--decode", "worker",
                         "--model-batches", "1", "--json", "{out}"],
    "rank_scale": ["--devices", "cpu", "--methods", "torch", "--brands", "1", "--candidates", "1000", "--dim", "16",
                   "--repeats", "1", "--out", "{out}"],
    "startup": ["--repeats", "1", "--job-repeats", "0"],
    "parallel_jobs": ["--dataset", "planted_tiny", "--models", "cosine", "--folds", "2", "--epochs", "1",
                      "--repeats", "1"],
}


def _figures(script: str, stdout: str, out) -> list[float]:
    """The figures each script exists to print: rates, seconds."""
    if script == "train_speed":  # | batch | ours | naive | ratio | ...
        row = next(line for line in stdout.splitlines() if line.startswith("| 8 |"))
        return [float(cell.strip().replace(",", "").rstrip("x")) for cell in row.split("|")[2:5]]
    if script == "image_throughput":
        row = json.loads(out.read_text().splitlines()[-1])
        return [row["model_only"], row["end_to_end"]]
    if script == "rank_scale":
        return [row["seconds"] for row in json.loads(out.read_text())["rows"]]
    if script == "parallel_jobs":  # | parallel_jobs | wall time | speed-up |
        return [float(line.split("|")[2].split()[0]) for line in stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    row = next(line for line in stdout.splitlines() if line.startswith("| bamir-train --help |"))
    return [float(row.split("|")[2])]


def _run_script(script: str, args: list[str], cwd) -> subprocess.CompletedProcess:
    """``benchmarks/<script>.py args`` in ``cwd`` on one torch thread, W&B off; it must succeed."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "disabled",
           "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, str(REPO / "benchmarks" / f"{script}.py"), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    return done


@pytest.mark.slow
@pytest.mark.parametrize("script", sorted(SCRIPTS))
def test_a_benchmark_script_runs_at_its_smallest_size(script, tmp_path):
    out = tmp_path / "result.json"
    done = _run_script(script, [a.format(out=out) for a in SCRIPTS[script]], tmp_path)
    figures = _figures(script, done.stdout, out)
    assert figures and all(value > 0 for value in figures), (figures, done.stdout[-2000:])


@pytest.mark.slow
def test_the_brand_inference_script_ranks_read_brands_below_known_ones(tmp_path):
    """On the tiny synthetic dataset (generated and prepared on the way, two folds; the kernel
    read-out, the linear one being the same path with another regression): every row is printed, and
    the brands' true latents (the oracle) rank above the latents read from their features, and above
    the influencers read from theirs (the feature ceiling)."""
    out = tmp_path / "result.json"
    done = _run_script("brand_inference", ["dataset=synthetic_tiny", "data.cv_folds=2", "--readout", "kernel",
                                           f"paths.data_dir={tmp_path / 'data'}", "--json", str(out)], tmp_path)
    result = json.loads(out.read_text())
    rows = {key.split(" | ")[0] for key in result["metrics"]}
    assert len(rows) == 7 and result["folds"] == 2 and set(result["r2"]) == {"theta", "style", "targets", "reach"}
    assert result["readout"] == "kernel"
    oracle = result["metrics"]["true latents (oracle; feature ceiling) | true"]["auc_global"]
    read = result["metrics"]["latents read from its features | true"]["auc_global"]
    ceiling = result["metrics"]["true latents (oracle; feature ceiling) | read"]["auc_global"]
    assert oracle > read + 0.1 and oracle > ceiling
    assert all(line in done.stdout for line in ("| latents read from its features |", "| ... theta known |"))


def test_the_kernel_readout_fits_latents_the_linear_one_cannot():
    """brand_inference's ``--readout kernel`` on two curved latents around 5 (sin and square of the
    features): RBF kernel ridge recovers them on held-out rows, the linear ridge does not."""
    spec = importlib.util.spec_from_file_location("brand_inference", REPO / "benchmarks" / "brand_inference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(300, 3))
    y = 5 + np.stack([np.sin(x[:, 0]), x[:, 1] ** 2], axis=1)
    r2 = {}
    for kind in ("ridge", "kernel"):
        predicted = module.readout(kind, x.shape[1]).fit(x[:200], y[:200]).predict(x[200:])
        r2[kind] = r2_score(y[200:], predicted, multioutput="variance_weighted")
    assert r2["kernel"] > 0.95 and r2["ridge"] < 0.5, r2
