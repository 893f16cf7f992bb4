"""A benchmark run again in its folder: finished jobs reused, unfinished ones resumed, other settings refused."""

import json

import pandas as pd
import pytest
from omegaconf import open_dict

import bamir.train
from bamir.benchmark import run_benchmark
from bamir.benchmark.jobs import JOB_CONFIG, JOB_DONE, JobFolderError
from tests.helpers.compose import compose_config


def _cfg(root, shared_data, *overrides):
    cfg = compose_config("benchmark", root, [
        "dataset=planted_tiny", "suite=none", "models=[cosine]", "seeds=[0]", "reference=learned",
        'runs=[{name: learned, model: bamir_all_small}]', "plots.enabled=false", "logger=none",
        'overrides=["trainer=cpu","trainer.max_epochs=1"]', "bootstrap.samples=200", *overrides,
    ], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


def _runs(result):
    return pd.read_csv(result["output_dir"] / "runs.csv").set_index("model")


def test_a_benchmark_run_again_in_its_folder_reuses_its_finished_jobs(tmp_path, shared_data, monkeypatch):
    first = run_benchmark(_cfg(tmp_path, shared_data))
    job = first["output_dir"] / "jobs" / "learned" / "seed0"
    assert (job / JOB_CONFIG).is_file() and (job / JOB_DONE).is_file()
    assert not _runs(first)["reused"].any()

    def no_training(cfg):
        raise AssertionError("a finished job was trained again")

    with monkeypatch.context() as patch:
        patch.setattr(bamir.train, "train", no_training)
        again = run_benchmark(_cfg(tmp_path, shared_data))
    assert _runs(again)["reused"].all()
    pd.testing.assert_frame_equal(again["table"], first["table"])
    assert json.loads((job / JOB_DONE).read_text())["metrics"]["test/auc_global"] == \
        pytest.approx(_runs(first).loc["learned", "test/auc_global"])

    # a job stopped before it finished trains again, from its last epoch, and the others stay reused
    (job / JOB_DONE).unlink()
    resumed = run_benchmark(_cfg(tmp_path, shared_data))
    assert not _runs(resumed).loc["learned", "reused"] and _runs(resumed).loc["cosine", "reused"]
    assert (job / JOB_DONE).is_file()
    assert _runs(resumed).loc["learned", "test/auc_global"] == pytest.approx(_runs(first).loc["learned", "test/auc_global"])


def test_a_job_folder_of_other_settings_or_unknown_files_is_refused(tmp_path, shared_data):
    run_benchmark(_cfg(tmp_path, shared_data))
    with pytest.raises(JobFolderError, match=r"jobs/cosine/seed0 was run with other settings.*data.batch_size"):
        run_benchmark(_cfg(tmp_path, shared_data, 'common=["data.batch_size=7"]'))

    stray = tmp_path / "other"
    (stray / "run" / "jobs" / "cosine" / "seed0").mkdir(parents=True)
    (stray / "run" / "jobs" / "cosine" / "seed0" / "metrics.json").write_text("{}")
    with pytest.raises(JobFolderError, match=f"holds files but no {JOB_CONFIG}"):
        run_benchmark(_cfg(stray, shared_data))


@pytest.mark.slow
def test_jobs_in_parallel_processes_give_the_table_of_one_after_another(tmp_path, shared_data):
    one = run_benchmark(_cfg(tmp_path / "one", shared_data, "split=cv", "cv.folds=2"))
    two = run_benchmark(_cfg(tmp_path / "two", shared_data, "split=cv", "cv.folds=2", "parallel_jobs=2"))
    for fold in (0, 1):
        assert (two["output_dir"] / "jobs" / "learned" / "seed0" / f"fold{fold}" / "job.log").stat().st_size > 0
    ours, theirs = (r["table"].set_index(["model", "metric"])["mean"] for r in (two, one))
    # the unlearned row to the digit; the learned one up to the rounding of other torch thread counts
    assert ours.loc["cosine"].to_dict() == theirs.loc["cosine"].to_dict()
    assert ours.loc["learned"].to_dict() == pytest.approx(theirs.loc["learned"].to_dict(), abs=0.02)
    # and run again in its folder, every job is reused
    again = run_benchmark(_cfg(tmp_path / "two", shared_data, "split=cv", "cv.folds=2", "parallel_jobs=2"))
    assert _runs(again)["reused"].all()
    pd.testing.assert_frame_equal(again["table"], two["table"])
