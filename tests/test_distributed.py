"""Two CPU processes (gloo): DDP training end to end, evaluation equal to one process, SLURM tasks
and torchrun on simulated nodes from an empty folder, distributed feature extraction."""

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from bamir.datamodule import EvalSplit
from tests.helpers.metrics import assert_same_metrics


def test_eval_shards_cover_every_brand_once():
    split = EvalSplit(torch.arange(7), torch.arange(3), torch.rand(7, 3) > 0.5, torch.rand(7, 3) > 0.5)
    shards = [split.shard(r, 3) for r in range(3)]
    assert sorted(torch.cat([s.brands for s in shards]).tolist()) == list(range(7))
    for s in shards:
        assert torch.equal(s.labels, split.labels[s.brands]) and torch.equal(s.hard_negatives, split.hard_negatives[s.brands])


def _compare_data_on_rank(rank: int, port: int, fingerprints: list[str], results) -> None:
    import torch.distributed as dist

    from bamir.datamodule import _same_on_every_rank

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=len(fingerprints))
    try:
        _same_on_every_rank(fingerprints[rank], "the data of STORE")
        results.put((rank, None))
    except RuntimeError as err:
        results.put((rank, str(err)))
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_every_rank_refuses_data_another_rank_does_not_see():
    """A node whose copy of the store differs stops the run on every rank (none waits forever);
    equal data passes the same check in the SLURM test below."""
    import torch.multiprocessing as mp

    results = mp.get_context("spawn").SimpleQueue()
    mp.spawn(_compare_data_on_rank, args=(_free_port(), ["a", "b"], results), nprocs=2)
    found = dict(results.get() for _ in range(2))
    for rank in (0, 1):
        assert "the data of STORE differs between ranks: ranks [1]" in found[rank]


def _command(app, args, dataset="planted_tiny"):
    return [sys.executable, "-m", f"bamir.cli.{app}", f"dataset={dataset}", "logger=csv",
            "trainer.enable_progress_bar=false", *args]


def _env(root, **extra):
    return {**os.environ, "BAMIR_ROOT": str(root), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1", **extra}


def _run(app, args, root, dataset="planted_tiny"):
    done = subprocess.run(_command(app, args, dataset), env=_env(root), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    runs = sorted((root / "outputs" / app.replace("evaluate", "eval")).glob("runs/*/metrics.json"))
    return json.loads(runs[-1].read_text()), runs[-1].parent


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _slurm_task(rank: int, tasks: int, port: int) -> dict[str, str]:
    """The variables srun gives task ``rank`` of a job of one task per node."""
    return {"SLURM_JOB_ID": "4242", "SLURM_JOB_NAME": "bamir-train", "SLURM_NTASKS": str(tasks),
            "SLURM_NNODES": str(tasks), "SLURM_NTASKS_PER_NODE": "1", "SLURM_PROCID": str(rank),
            "SLURM_LOCALID": "0", "SLURM_NODEID": str(rank), "SLURM_NODELIST": "localhost", "MASTER_PORT": str(port)}


def _slurm_job(cmd: list[str], env: dict[str, str], tasks: int, cwd=None, timeout: float = 600,
               rank_zero_after: str | None = None) -> list[str]:
    """Run ``cmd`` as ``tasks`` SLURM tasks of one job on as many (simulated) nodes; their logs.

    Each task logs to its own file (a full pipe cannot block a rank); the first task to fail,
    or the deadline, stops every task, and the assertion shows every rank's log. With
    ``rank_zero_after``, rank zero starts only once every other rank has logged that text (a slow node)."""
    import tempfile

    port = _free_port()
    deadline = time.monotonic() + timeout
    with tempfile.TemporaryDirectory() as logs_dir:
        files = [open(Path(logs_dir) / f"rank{rank}.log", "w+") for rank in range(tasks)]
        jobs = {}
        for rank in reversed(range(tasks)):
            if rank == 0 and rank_zero_after:
                while not all(rank_zero_after in Path(f.name).read_text() for f in files[1:]):
                    assert time.monotonic() < deadline and all(job.poll() is None for job in jobs.values()), \
                        [Path(f.name).read_text()[-3000:] for f in files[1:]]
                    time.sleep(0.2)
            jobs[rank] = subprocess.Popen(cmd, env={**env, **_slurm_task(rank, tasks, port)}, cwd=cwd, text=True,
                                          stdout=files[rank], stderr=subprocess.STDOUT)
        jobs = [jobs[rank] for rank in range(tasks)]
        while any(job.poll() is None for job in jobs):
            if time.monotonic() > deadline or any(job.poll() not in (None, 0) for job in jobs):
                break
            time.sleep(0.2)
        for job in jobs:
            if job.poll() is None:
                job.kill()
                job.wait()
        logs = []
        for out in files:
            out.seek(0)
            logs.append(out.read())
            out.close()
    report = "\n".join(f"--- rank {rank} (exit {job.returncode}) ---\n{log[-3000:]}"
                       for rank, (job, log) in enumerate(zip(jobs, logs)))
    assert all(job.returncode == 0 for job in jobs), report
    return logs


@pytest.fixture(scope="module")
def launches(tmp_path_factory) -> dict:
    """One 2-process DDP training (bamir_small, 2 epochs) started three ways, in this order: as two
    SLURM tasks on two simulated nodes from an empty data folder (one task generates and prepares
    the synthetic dataset while the other waits for it), by Lightning's own launch, and by torchrun,
    the last two on the data the first built. Returns the folder, the SLURM tasks' logs and each
    launch's metrics and run folder."""
    root = tmp_path_factory.mktemp("launches")
    data = root / "data"
    args = ["model=bamir_small", "trainer.max_epochs=2", f"paths.data_dir={data}", "trainer=ddp_cpu"]
    runs = {"slurm": root / "slurm-run", "torchrun": root / "torchrun-run"}
    nodes = ["trainer.devices=1", "trainer.num_nodes=2", f"hydra.run.dir={runs['slurm']}"]
    logs = _slurm_job(_command("train", [*args, *nodes], "synthetic_tiny"), _env(root), tasks=2)
    _, runs["lightning"] = _run("train", args, root, "synthetic_tiny")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
           *_command("train", [*args, f"hydra.run.dir={runs['torchrun']}"], "synthetic_tiny")[1:]]
    done = subprocess.run(cmd, env=_env(root), capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    metrics = {name: json.loads((run / "metrics.json").read_text()) for name, run in runs.items()}
    return {"root": root, "data": data, "slurm_logs": logs, "runs": runs, "metrics": metrics}


@pytest.mark.slow
def test_two_slurm_nodes_on_an_empty_folder_train_like_two_local_processes(launches):
    """The SLURM tasks build the store once, join one DDP job of two members, log one file each,
    and reach the metrics of Lightning's two-process launch (same seed, same world size), as torchrun does."""
    logs, runs, metrics = launches["slurm_logs"], launches["runs"], launches["metrics"]
    assert sum("] - [1/6] object: computing" in log for log in logs) == 1, "the store is built once"
    assert all("MEMBER: 2/2" in log or "MEMBER: 1/2" in log for log in logs)
    assert (runs["slurm"] / "train.log").is_file() and (runs["slurm"] / "train_rank1.log").is_file(), "one log per task"
    assert metrics["lightning"]["test/n_queries"] > 0 and 0.0 <= metrics["lightning"]["test/auc_global"] <= 1.0
    for key, value in metrics["lightning"].items():
        if not key.startswith("time/"):
            assert metrics["slurm"][key] == pytest.approx(value, abs=1e-6), key
            assert metrics["torchrun"][key] == pytest.approx(value, abs=1e-6), key


@pytest.mark.slow
def test_a_ddp_checkpoint_evaluates_alike_on_one_and_two_processes(launches):
    """bamir-eval of the DDP run's last checkpoint on one process and on two (each brand evaluated by one rank)."""
    ckpt, data = launches["runs"]["lightning"] / "checkpoints" / "last.ckpt", f"paths.data_dir={launches['data']}"
    single, _ = _run("evaluate", [f"ckpt_path={ckpt}", "trainer=cpu", data], launches["root"], "synthetic_tiny")
    double, _ = _run("evaluate", [f"ckpt_path={ckpt}", "trainer=ddp_cpu", data], launches["root"], "synthetic_tiny")
    assert_same_metrics(double, single, tol=1e-6)
    assert double["test/n_queries"] == single["test/n_queries"], "each brand counted once"


# --------------------------------------------------------------------------- feature extraction
def test_shards_are_dealt_round_robin_over_ranks():
    from bamir.features.extraction import shards_of_rank

    dealt = [shards_of_rank(7, rank, 3) for rank in range(3)]
    assert dealt == [[0, 3, 6], [1, 4], [2, 5]]
    assert shards_of_rank(2, 2, 3) == []  # more ranks than shards: nothing to do
    with pytest.raises(ValueError):
        shards_of_rank(4, 3, 3)


def test_extraction_processes_wait_at_barriers_as_configured():
    """``timeout_min`` of a DDP extraction config becomes the process group's timeout (the helpers
    wait at the last barrier while rank 0 computes the other stages); one process needs none."""
    from datetime import timedelta

    from bamir.features.extraction import extraction_trainer

    ddp = extraction_trainer({"accelerator": "cpu", "devices": 2, "strategy": "ddp", "timeout_min": 240}, progress=False)
    assert ddp.strategy._timeout == timedelta(hours=4)
    mapped = extraction_trainer({"accelerator": "cpu", "devices": 2, "timeout_min": 5, "strategy": {
        "_target_": "lightning.pytorch.strategies.DDPStrategy", "process_group_backend": "gloo"}}, progress=False)
    assert mapped.strategy._timeout == timedelta(minutes=5)
    assert extraction_trainer({"accelerator": "cpu", "timeout_min": 5}, progress=False).world_size == 1


def test_launch_rank_reads_every_launcher(monkeypatch):
    from bamir.features.extraction import launch_rank

    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.delenv(name, raising=False)
    assert launch_rank() == 0
    for name in ("RANK", "SLURM_PROCID", "LOCAL_RANK", "NODE_RANK"):
        monkeypatch.setenv(name, "2")
        assert launch_rank() == 2, name
        monkeypatch.setenv(name, "0")


def test_a_shard_of_a_failed_rank_is_named(tmp_path, monkeypatch):
    """Rank zero of a 2-rank world whose other rank died: the merge names the shards it lacks."""
    from bamir.features.image import shards
    from bamir.features.pipeline import prepare
    from tests.helpers.prep import make_raw, tiny_stages

    raw = make_raw(tmp_path / "raw")
    monkeypatch.setattr(shards, "shards_of_rank", lambda n, rank, world: list(range(0, n, 2)))
    with pytest.raises(RuntimeError, match=r"object: shards \[1, 3\] of 4 were not written .*a rank failed"):
        prepare(raw, tmp_path / "store", tiny_stages(topic=None, scene=None, interaction=None, hashtag=None),
                progress=False)


def test_training_app_refuses_to_launch_extraction_processes(tmp_path):
    """bamir-train prepares in its own process: a multi-process extraction config is refused with
    the bamir-prepare command to run instead (Lightning would start the training app again)."""
    from bamir.features.pipeline import ensure_features
    from tests.helpers.prep import make_raw, tiny_stages

    raw = make_raw(tmp_path / "raw")
    stages = {**tiny_stages(topic=None, scene=None, hashtag=None),
              "extraction": {"accelerator": "cpu", "devices": 2, "strategy": "ddp"}}
    with pytest.raises(RuntimeError, match=r"asks for 2 processes.*run `bamir-prepare raw_root="):
        ensure_features(raw, tmp_path / "store", stages)


@pytest.fixture(scope="module")
def extraction(tmp_path_factory) -> dict:
    """A raw dataset, the bamir-prepare command for its interaction and image stages (no text
    stages), and that command's store on one local process, which the distributed ones must equal."""
    from tests.helpers.prep import make_raw

    root = tmp_path_factory.mktemp("extraction")
    raw = make_raw(root / "raw")
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    common = [f"raw_root={raw}", "progress=false", "features.topic=null", "features.hashtag=null",
              "features.concept=null", "features.object.num_workers=0", "features.scene.num_workers=0",
              f"hydra.run.dir={root / 'run'}"]

    def prepare(store, overrides, tasks=None, rank_zero_after=None):
        from bamir.store import FeatureStore

        cmd = [sys.executable, "-m", "bamir.cli.prepare", f"store_root={store}", *overrides, *common]
        if tasks:
            logs = _slurm_job(cmd, env, tasks, cwd=root, rank_zero_after=rank_zero_after)
        else:
            done = subprocess.run(cmd, env=env, cwd=root, text=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                  timeout=600)
            assert done.returncode == 0, done.stdout[-4000:]
            logs = [done.stdout]
        return FeatureStore(store), "".join(logs)

    one, _ = prepare(root / "one", ["features/extraction=local"])
    return {"prepare": prepare, "one": one}


@pytest.mark.slow
@pytest.mark.parametrize("launch", ["lightning", "slurm"])
def test_ddp_cpu_extraction_equals_one_process(extraction, tmp_path, launch):
    """bamir-prepare with 2 gloo processes, started by Lightning on one node or as two SLURM
    tasks on two (simulated) nodes: each rank encodes its shards, rank 0 merges and writes the
    non-image stages; the store equals a one-process run's.

    Lightning's two processes share one shard (the second has none to encode); SLURM's rank
    zero starts only once the helper has reached the store folder (a slow node), which the
    helper must leave untouched until rank zero has claimed it."""
    from bamir.features.image.shards import read_shard

    one, store = extraction["one"], tmp_path / "two"
    shard_size = 16 if launch == "lightning" else 3
    shards = [f"features.object.shard_size={shard_size}", f"features.scene.shard_size={shard_size}"]
    if launch == "lightning":
        two, log = extraction["prepare"](store, ["features/extraction=ddp_cpu", *shards])
    else:
        two, log = extraction["prepare"](store, ["features/extraction=ddp_cpu", "features.extraction.devices=1",
                                                 "features.extraction.num_nodes=2", *shards], tasks=2,
                                         rank_zero_after="(helper process)")
    assert "helper process done" in log
    assert two.modalities == one.modalities == ["interaction", "object", "scene"]
    for modality in one.modalities:
        a, b = one.load_modality(modality), two.load_modality(modality)
        assert torch.allclose(a.features, b.features, atol=1e-5), modality
        assert torch.equal(a.present, b.present)
        assert two.record(modality)["skipped"] == one.record(modality)["skipped"]
    dealt = [0] if launch == "lightning" else [0, 1, 0, 1, 0, 1]  # 16 accounts in shards of 16 or of 3
    for modality in ("object", "scene"):
        shards = sorted((store / "work" / modality).glob("*/shards/*.safetensors"))
        assert [read_shard(s)[2]["rank"] for s in shards] == dealt
