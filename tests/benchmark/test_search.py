"""A row's hyper-parameters searched inside each fold, chosen on the inner carve, replayed when run again."""

import json

import pandas as pd
import pytest
import torch
from omegaconf import OmegaConf, open_dict

import bamir.train
from bamir.benchmark import run_benchmark
from bamir.benchmark.jobs import JOB_CONFIG, JOB_DONE, SCORES
from bamir.benchmark.search import TRIALS, SearchSpec, search_distributions
from tests.helpers.compose import compose_config

SEARCH = ('runs=[{name: tuned, model: bamir_all_small, search: {n_trials: 3, startup_trials: 2, '
          'params: {model.optimizer.lr: "tag(log, interval(0.0001, 0.1))", data.batch_size: "choice(16, 64)"}}}]')


def _cfg(root, shared_data, *overrides):
    cfg = compose_config("benchmark", root, [
        "dataset=planted_tiny", "suite=none", "models=[cosine]", "seeds=[0]", "split=cv", "cv.folds=2",
        "reference=cosine", SEARCH, 'overrides=["trainer=cpu","trainer.max_epochs=1"]', "bootstrap.samples=200",
        "logger=none", "plots.enabled=false", "columns=[auc_global,mrr]", *overrides], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


def test_each_fold_is_scored_by_its_best_trial_on_the_inner_carve(tmp_path, shared_data, planted_store, monkeypatch):
    result = run_benchmark(_cfg(tmp_path, shared_data))
    out = result["output_dir"]
    assert set(result["table"]["metric"]) == {"auc_global", "mrr"}  # columns=, from the command line
    runs = pd.read_csv(out / "runs.csv").set_index(["model", "fold"])
    for fold in (0, 1):
        job = out / "jobs" / "tuned" / "seed0" / f"fold{fold}"
        trials = json.loads((job / TRIALS).read_text())
        assert [t["trial"] for t in trials] == [0, 1, 2]
        assert len(pd.read_csv(job / "trials.csv")) == 3
        for t in trials:
            trial_dir = job / f"trial{t['trial']:02d}"
            config = OmegaConf.load(trial_dir / JOB_CONFIG)
            # each trial trains the row's config with the values the sampler drew, on this fold
            assert config.model.optimizer.lr == pytest.approx(t["params"]["model.optimizer.lr"])
            assert config.data.batch_size == t["params"]["data.batch_size"]
            assert config.data.cv_fold == fold
            done = json.loads((trial_dir / JOB_DONE).read_text())["metrics"]
            # its objective is the inner carve's value (the run's optimized_metric), never the fold's test
            assert t["objective"] == pytest.approx(done["val/auc_global"])
        best = max(trials, key=lambda t: t["objective"])
        assert runs.loc[("tuned", fold), "trial"] == best["trial"]
        assert runs.loc[("tuned", fold), "search"] == " ".join(best["overrides"])
        # the fold is reported by the chosen trial's scores and metrics
        chosen = job / f"trial{best['trial']:02d}"
        part = result["runs"]["tuned"][0].folds[fold]
        assert torch.equal(part.scores, torch.load(chosen / SCORES, weights_only=True)["scores"])
        assert (job / SCORES).read_bytes() == (chosen / SCORES).read_bytes()
        assert runs.loc[("tuned", fold), "test/auc_global"] == pytest.approx(
            json.loads((chosen / JOB_DONE).read_text())["metrics"]["test/auc_global"])
    # the sampler draws distinct values within the ranges, and each fold's study its own start-up trials
    lrs = {fold: [t["params"]["model.optimizer.lr"] for t in json.loads((out / f"jobs/tuned/seed0/fold{fold}" / TRIALS).read_text())]
           for fold in (0, 1)}
    assert len(set(lrs[0])) == 3 and all(1e-4 <= lr <= 0.1 for lr in lrs[0] + lrs[1])
    assert lrs[0][0] != lrs[1][0]

    # run again in its folder: the study replays its trials, every one reused, the same choice and table
    def no_training(cfg):
        raise AssertionError("a finished trial was trained again")

    with monkeypatch.context() as patch:
        patch.setattr(bamir.train, "train", no_training)
        again = run_benchmark(_cfg(tmp_path, shared_data))
    again_runs = pd.read_csv(out / "runs.csv").set_index(["model", "fold"])
    assert again_runs["reused"].all()
    assert again_runs.loc["tuned", "trial"].tolist() == runs.loc["tuned", "trial"].tolist()
    pd.testing.assert_frame_equal(again["table"], result["table"])

    # more trials: the recorded ones are reused, the new one trains
    more = run_benchmark(_cfg(tmp_path, shared_data, SEARCH.replace("n_trials: 3", "n_trials: 4")))
    assert len(json.loads((out / "jobs/tuned/seed0/fold0" / TRIALS).read_text())) == 4
    assert not pd.read_csv(more["output_dir"] / "runs.csv").set_index("model").loc["tuned", "reused"].any()


def test_a_search_is_refused_where_it_would_choose_on_the_reported_brands(tmp_path, shared_data, monkeypatch):
    monkeypatch.setattr(bamir.train, "train", lambda cfg: pytest.fail("a job ran before the search was refused"))
    with pytest.raises(ValueError, match=r"rows \['tuned'\]: a search chooses on the validation brands, which "
                                         r"split=val reports"):
        run_benchmark(_cfg(tmp_path, shared_data, "split=val"))


def test_a_real_range_for_an_integer_setting_is_refused_before_any_work(tmp_path, shared_data, monkeypatch):
    monkeypatch.setattr(bamir.train, "train", lambda cfg: pytest.fail("a trial ran"))
    with pytest.raises(ValueError, match=r"data.batch_size is an integer \(\d+\) but interval\(\) draws real numbers"):
        run_benchmark(_cfg(tmp_path, shared_data, "models=[]", "reference=tuned",
                           SEARCH.replace('choice(16, 64)', 'interval(16, 64)')))


@pytest.mark.parametrize("search, message", [
    ({"n_trials": 2, "params": {"model.optimizer.lr": "interval(0.001, 0.1)"}, "objective": "test/mrr"},
     "only validation metrics"),
    ({"n_trials": 2, "params": {"model.optimizer.lr": "0.01"}}, "is one value, not a range"),
    ({"n_trials": 2, "params": {}}, "at least one param"),
    ({"n_trials": 2, "params": {"model.optimizer.lr": "interval(0.001, 0.1)"}, "trials": 3}, "not \\['trials'\\]"),
])
def test_a_malformed_search_is_refused(search, message):
    with pytest.raises(ValueError, match=message):
        SearchSpec.from_config(search, "row")


def test_sweep_expressions_become_optuna_distributions():
    from optuna.distributions import (CategoricalDistribution, IntUniformDistribution, LogUniformDistribution,
                                      UniformDistribution)

    got = search_distributions({"a": "tag(log, interval(0.001, 0.1))", "b": "interval(0.0, 0.5)", "c": "range(3, 40)",
                                "d": "choice([16],[32,16])"})
    assert got["a"] == LogUniformDistribution(0.001, 0.1)
    assert got["b"] == UniformDistribution(0.0, 0.5)
    assert isinstance(got["c"], IntUniformDistribution) and (got["c"].low, got["c"].high) == (3, 40)
    assert got["d"] == CategoricalDistribution(["[16]", "[32,16]"])


def test_a_trial_is_its_own_wandb_run_in_the_benchmark_group(tmp_path):
    from bamir.benchmark.runner import RunSpec, compose_run, wandb_group

    cfg = compose_config("benchmark", tmp_path, ["suite=none", "split=cv", "logger=wandb"], fast=False)
    spec = RunSpec("tuned", "cosine", ["data.batch_size=16"])
    run = compose_run(cfg, spec, 2, tmp_path / "trial03", fold=1, trial=3)
    assert run.logger.wandb.name == "tuned seed=2 fold=1 trial=3"
    assert run.logger.wandb.group == wandb_group(cfg)
    assert run.data.cv_fold == 1 and run.data.batch_size == 16 and run.paths.output_dir == str(tmp_path / "trial03")
