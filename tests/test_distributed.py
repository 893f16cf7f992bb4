"""DDP on 2 CPU processes (gloo): training runs end to end; evaluation equals a single process."""

import json
import os
import subprocess
import sys

import pytest
import torch

from bamir.datamodule import EvalSplit


def test_eval_shards_cover_every_brand_once():
    split = EvalSplit(torch.arange(7), torch.arange(3), torch.rand(7, 3) > 0.5, torch.rand(7, 3) > 0.5)
    shards = [split.shard(r, 3) for r in range(3)]
    assert sorted(torch.cat([s.brands for s in shards]).tolist()) == list(range(7))
    for s in shards:
        assert torch.equal(s.labels, split.labels[s.brands]) and torch.equal(s.hard_negatives, split.hard_negatives[s.brands])


def _run(app, args, root):
    env = {**os.environ, "BAMIR_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", f"bamir.cli.{app}", "dataset=planted_tiny", "logger=csv",
           "trainer.enable_progress_bar=false", *args]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = sorted((root / "outputs" / app.replace("evaluate", "eval")).glob("runs/*/metrics.json"))
    return json.loads(runs[-1].read_text()), runs[-1].parent


@pytest.mark.slow
def test_ddp_cpu_trains_and_evaluates_like_one_process(tmp_path, shared_data):
    data = f"paths.data_dir={shared_data}"
    metrics, run = _run("train", ["trainer=ddp_cpu", "model=bamir_small", "trainer.max_epochs=2", data], tmp_path)
    assert metrics["test/n_queries"] > 0 and 0.0 <= metrics["test/auc_global"] <= 1.0
    ckpt = run / "checkpoints" / "last.ckpt"
    single, _ = _run("evaluate", [f"ckpt_path={ckpt}", "trainer=cpu", data], tmp_path)
    double, _ = _run("evaluate", [f"ckpt_path={ckpt}", "trainer=ddp_cpu", data], tmp_path)
    for key, value in single.items():
        if value is not None:
            assert double[key] == pytest.approx(value, abs=1e-6), key
    assert double["test/n_queries"] == single["test/n_queries"], "each brand counted once"
