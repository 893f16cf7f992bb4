"""The benchmark: per-brand statistics, bootstrap CIs, the paired test, and the app's outputs."""

import json
import os
import shutil
import subprocess
import sys

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from bamir.benchmark import (METRICS, PooledRun, RunScores, brand_statistics, bootstrap_indices, markdown_table,
                             metric_samples, run_benchmark, run_specs, seed_ensemble, summarise)
from bamir.benchmark.scores import model_fusion
from bamir.metrics import ranking_metrics
from bamir.store import FeatureStore
from tests.helpers.compose import compose_config
from tests.helpers.paths import REPO


def _matrix(n_brands, n_cand=60, signal=1.0, seed=0, ties=False):
    g = torch.Generator().manual_seed(seed)
    labels = torch.rand(n_brands, n_cand, generator=g) < 0.15
    labels[:, 0] = True  # every brand has a positive
    scores = signal * labels.float() + torch.randn(n_brands, n_cand, generator=g)
    if ties:
        scores = torch.round(scores * 2) / 2
    hard = (torch.rand(n_brands, n_cand, generator=g) < 0.3) & ~labels
    return scores, labels, hard


def _run(name, scores, labels, hard=None, seed=0):
    return RunScores(name, seed, scores, labels, hard, torch.arange(len(scores)), torch.arange(scores.shape[1]))


def test_brand_statistics_reproduce_the_ranking_metrics():
    scores, labels, hard = _matrix(30, ties=True)
    labels[3] = False  # a brand without positives is skipped, as in bamir.metrics
    expected = ranking_metrics(scores, labels, hard)
    stats = brand_statistics(scores, labels, hard)
    full = torch.arange(30)[None, :]
    for metric in METRICS:
        assert metric_samples(stats, metric, full)[0].item() == pytest.approx(expected[metric].item(), abs=1e-6), metric
    # the recall curve at k = 10 is recall@10
    curve = stats["recall_curve"][stats["n_pos"] > 0, 9].mean()
    assert curve.item() == pytest.approx(expected["recall@10"].item(), abs=1e-6)


def test_bootstrap_of_the_global_auc_matches_recomputing_it_on_the_drawn_brands():
    scores, labels, _ = _matrix(12, ties=True)
    stats = brand_statistics(scores, labels)
    idx = bootstrap_indices(12, 5, seed=1)
    fast = metric_samples(stats, "auc_global", idx)
    for r in range(5):
        slow = ranking_metrics(scores[idx[r]], labels[idx[r]])["auc_global"]
        assert fast[r].item() == pytest.approx(slow.item(), abs=1e-6)
        medr = ranking_metrics(scores[idx[r]], labels[idx[r]])["medr"]
        assert metric_samples(stats, "medr", idx[r:r + 1])[0].item() == pytest.approx(medr.item())


def test_ci_contains_the_estimate_and_shrinks_with_more_brands():
    widths = []
    for n_brands in (20, 200):
        scores, labels, hard = _matrix(n_brands, signal=1.0, seed=n_brands)
        table = summarise({"m": [_run("m", scores, labels, hard)]}, samples=500).set_index("metric")
        for metric in ("auc_global", "auc_brand", "mrr", "map", "recall@10", "cauc"):
            row = table.loc[metric]
            assert row.ci_low <= row["mean"] <= row.ci_high, metric
        widths.append(table.loc["auc_brand", "ci_high"] - table.loc["auc_brand", "ci_low"])
    assert widths[1] < 0.6 * widths[0]


def test_paired_test_separates_oracle_from_random_and_not_a_model_from_itself():
    scores, labels, _ = _matrix(25, signal=3.0)
    noise = torch.rand(scores.shape, generator=torch.Generator().manual_seed(5))
    runs = {"oracle": [_run("oracle", scores, labels)], "oracle_again": [_run("oracle_again", scores, labels)],
            "random": [_run("random", noise, labels)]}
    table = summarise(runs, reference="oracle", samples=1000).set_index(["model", "metric"])
    assert table.loc[("random", "auc_global"), "p_value"] < 0.05
    assert table.loc[("random", "mrr"), "p_value"] < 0.05
    assert table.loc[("oracle_again", "auc_global"), "p_value"] == 1.0
    assert table.loc[("oracle", "auc_global"), "delta"] == 0.0
    md = markdown_table(table.reset_index())
    assert "Paired bootstrap test against `oracle`" in md and "| random |" in md


def test_seeds_are_averaged_and_their_spread_reported():
    scores, labels, _ = _matrix(15)
    other = scores + 0.5 * torch.randn(scores.shape, generator=torch.Generator().manual_seed(9))
    runs = {"m": [_run("m", scores, labels, seed=0), _run("m", other, labels, seed=1)]}
    row = summarise(runs, samples=200).set_index("metric").loc["auc_global"]
    expected = (ranking_metrics(scores, labels)["auc_global"] + ranking_metrics(other, labels)["auc_global"]) / 2
    assert row["mean"] == pytest.approx(expected.item(), abs=1e-6)
    assert row.seeds == 2 and row.seed_sd > 0


def test_a_seed_ensemble_averages_the_seeds_score_matrices_fold_by_fold():
    scores, labels, hard = _matrix(8)
    seeds = [_run("m", scores + torch.randn_like(scores), labels, hard, seed=s) for s in range(3)]
    ensemble = seed_ensemble(seeds, "m ensemble")
    assert ensemble.name == "m ensemble" and ensemble.seed == 0 and torch.equal(ensemble.labels, labels)
    assert torch.allclose(ensemble.scores, sum(r.scores for r in seeds) / 3)
    expected = ranking_metrics(ensemble.scores, labels, hard)["mrr"].item()
    table = summarise({"m ensemble": [ensemble]}, "m ensemble", ["mrr"], samples=50)
    assert table.set_index("metric").loc["mrr", "mean"] == pytest.approx(expected, abs=1e-6)
    # cross-validation: each fold averaged over the seeds, the folds kept apart
    folds = [[_run("m", scores[:4] + s, labels[:4], seed=s), _run("m", scores[4:] * (s + 1), labels[4:], seed=s)]
             for s in range(2)]
    for fold in (0, 1):
        folds[1][fold].brands = folds[0][fold].brands = torch.arange(4) + 4 * fold
    pooled = seed_ensemble([PooledRun("m", s, folds[s]) for s in range(2)], "m ensemble")
    assert isinstance(pooled, PooledRun) and len(pooled.folds) == 2
    assert torch.allclose(pooled.folds[0].scores, scores[:4] + 0.5) and torch.allclose(pooled.folds[1].scores,
                                                                                      scores[4:] * 1.5)
    other = _run("m", scores, labels, seed=9)
    other.candidates = other.candidates + 1
    with pytest.raises(ValueError, match="seed 9 scored other brands or candidates than seed 0"):
        seed_ensemble([seeds[0], other], "m ensemble")


def test_a_model_fusion_averages_per_brand_standardised_scores_of_each_models_seeds():
    from scipy.stats import zscore

    scores, labels, hard = _matrix(8)
    # one model on another scale per brand: its fusion with itself ranks each brand as it does
    scale = torch.rand(8, 1) * 10 + 0.1
    alone = model_fusion([[_run("a", scores, labels, hard)], [_run("b", scores * scale - 3, labels, hard)]], "f")
    assert torch.allclose(alone.scores.double(), torch.from_numpy(zscore(scores.double().numpy(), axis=1, ddof=1)),
                          atol=1e-5)
    # two models, the second with two seeds (averaged first), equal weights after standardising
    other = torch.randn(8, 60)
    fused = model_fusion([[_run("a", scores, labels, hard)],
                          [_run("b", other, labels, hard, seed=0), _run("b", other + 2 * scale, labels, hard, seed=1)]],
                         "f")
    expected = (zscore(scores.numpy(), axis=1, ddof=1) + zscore((other + scale).numpy(), axis=1, ddof=1)) / 2
    assert torch.allclose(fused.scores.double(), torch.from_numpy(expected).double(), atol=1e-5)
    assert fused.name == "f" and torch.equal(fused.labels, labels)
    moved = _run("b", other, labels)
    moved.candidates = moved.candidates + 1
    with pytest.raises(ValueError, match="f: b scored other brands or candidates than a"):
        model_fusion([[_run("a", scores, labels)], [moved]], "f")
    with pytest.raises(ValueError, match="at least two models"):
        model_fusion([[_run("a", scores, labels)]], "f")


def test_runs_on_other_brands_are_refused():
    scores, labels, _ = _matrix(10)
    a = _run("a", scores, labels)
    b = RunScores("b", 0, scores, labels, None, torch.arange(1, 11), torch.arange(60))
    with pytest.raises(ValueError, match="other test brands"):
        summarise({"a": [a], "b": [b]})


def _bench_cfg(tmp_path, shared_data, models, overrides=()):
    cfg = compose_config("benchmark", tmp_path, [
        "dataset=planted_tiny", "suite=none", f"models=[{','.join(models)}]", "seeds=[0,1]",
        'overrides=["trainer=cpu","trainer.max_epochs=1"]', "bootstrap.samples=300", "logger=wandb", *overrides,
    ], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


@pytest.mark.slow
def test_benchmark_app_writes_table_csv_and_plots(tmp_path, shared_data):
    cfg = _bench_cfg(tmp_path, shared_data, ["random", "oracle", "bamir_all_small"])
    result = run_benchmark(cfg)
    out = result["output_dir"]
    for name in ("benchmark.md", "benchmark.csv", "runs.csv", "recall_at_k.png", "category_auc.png",
                 "score_distributions.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    table = pd.read_csv(out / "benchmark.csv")
    assert set(table["model"]) == {"random", "oracle", "bamir_all_small"}
    assert set(table["reference"]) == {"bamir_all_small"}  # the first bamir* row by default
    auc = table[table["metric"] == "auc_global"].set_index("model")
    assert auc.loc["oracle", "mean"] > auc.loc["bamir_all_small", "mean"] > auc.loc["random", "mean"]
    assert (auc["seeds"] == 2).all()
    # each run's own test metrics agree with the table's recomputation
    runs = pd.read_csv(out / "runs.csv")
    for model in ("random", "oracle"):
        assert runs[runs["model"] == model]["test/auc_global"].mean() == pytest.approx(auc.loc[model, "mean"], abs=1e-5)
    md = (out / "benchmark.md").read_text()
    assert "| oracle | 2 |" in md and ("p=" in md or "p<" in md)
    assert (out / "jobs" / "oracle" / "seed1" / "scores.pt").is_file()
    assert os.environ.get("WANDB_MODE") == "disabled", "the W&B logger left the environment as it found it"


def test_unavailable_models_are_skipped_and_override_sets_become_rows(tmp_path, shared_data, planted_store):
    store_dir = tmp_path / "real-store"
    shutil.copytree(planted_store.root, store_dir)
    manifest = json.loads((store_dir / "manifest.json").read_text())
    del manifest["extras"]["planted_affinity"]
    (store_dir / "manifest.json").write_text(json.dumps(manifest))
    cfg = _bench_cfg(tmp_path / "b", shared_data, ["oracle"], [
        "dataset.build=null", f"dataset.store={store_dir}", "plots.enabled=false", "logger=none",
        "seeds=[0]", "reference=topic",
        'runs=[{name: topic, model: cosine, overrides: ["model.modalities=[topic]"]},'
        '{name: concept, model: cosine, overrides: ["model.modalities=[concept]"]}]',
    ])
    result = run_benchmark(cfg)
    assert set(result["table"]["model"]) == {"topic", "concept"}
    runs = pd.read_csv(result["output_dir"] / "runs.csv")
    assert runs.set_index("model").loc["oracle", "status"].startswith("skipped")
    assert (runs.dropna(subset=["seconds"])["torch_threads"] >= 1).all()  # what each row's numbers depend on
    assert FeatureStore(store_dir).manifest.get("extras") == {}


CONF = REPO / "conf"


@pytest.mark.parametrize("suite", sorted(p.stem for p in (CONF / "suite").glob("*.yaml")))
def test_every_suite_names_existing_models_a_reference_row_and_rows_to_combine(suite, tmp_path):
    cfg = compose_config("benchmark", tmp_path, [f"suite={suite}"], fast=False)
    specs = run_specs(cfg) if (cfg.models or cfg.runs) else []
    for spec in specs:
        assert spec.model is None or (CONF / "model" / f"{spec.model}.yaml").is_file(), spec
    if specs:
        assert cfg.reference in {s.name for s in specs}
    for members in (cfg.get("fusions") or {}).values():  # a fusion fuses rows of the suite
        assert set(members) <= {s.name for s in specs}, members
    for row in cfg.get("seed_ensembles") or []:
        assert row in {s.name for s in specs}, row


@pytest.mark.parametrize("search, key, count", [("ablation_sampler", "sampler", 4),
                                                ("ablation_modalities", "data.modalities", 7),
                                                ("cosine_modalities", "model", 7)])
def test_ablation_sweeps_compose_as_multiruns(search, key, count, tmp_path):
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_config("train", tmp_path, [f"hparams_search={search}"])
    assert str(cfg.hydra.mode) == "RunMode.MULTIRUN"
    value = cfg.hydra.sweeper.params[key]
    override = OverridesParser.create().parse_override(f"{key}={value}")
    assert len(list(override.sweep_string_iterator())) == count


@pytest.mark.slow
def test_the_console_app_and_a_cosine_sweep(tmp_path, shared_data):
    env = {**os.environ, "BAMIR_ROOT": str(tmp_path), "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    common = ["dataset=planted_tiny", f"paths.data_dir={shared_data}"]
    bench = [sys.executable, "-m", "bamir.cli.benchmark", *common, "suite=cosine_modalities", "seeds=[0]",
             "logger=none", "plots.enabled=false"]
    done = subprocess.run(bench, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    table = pd.read_csv(next((tmp_path / "outputs" / "benchmark" / "runs").glob("*/benchmark.csv")))
    assert len(set(table["model"])) == 7
    sweep = [sys.executable, "-m", "bamir.cli.train", *common, "hparams_search=cosine_modalities", "logger=csv",
             "hydra.sweeper.params.model='cosine_topic,cosine_concept'", "trainer.enable_progress_bar=false"]
    done = subprocess.run(sweep, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert len(list((tmp_path / "outputs" / "cosine_modalities" / "multiruns").glob("*/*/metrics.json"))) == 2


def test_the_validation_split_can_be_the_table(tmp_path, shared_data):
    cfg = _bench_cfg(tmp_path, shared_data, ["cosine", "bamir_all_small"],
                     ["split=val", "seeds=[0]", "logger=none", "plots.enabled=false",
                      'overrides=["trainer=cpu","trainer.max_epochs=3"]'])
    result = run_benchmark(cfg)
    auc = result["table"].query("metric == 'auc_global'").set_index("model")["mean"]
    runs = pd.read_csv(result["output_dir"] / "runs.csv").set_index("model")
    assert auc["cosine"] == pytest.approx(runs.loc["cosine", "val/auc_global"], abs=1e-5)
    # a learned model: the validation scores of its best epoch (the best checkpoint's)
    log = pd.read_csv(result["output_dir"] / "jobs" / "bamir_all_small" / "seed0" / "csv" / "metrics.csv")
    assert auc["bamir_all_small"] == pytest.approx(log["val/auc_global"].max(), abs=1e-5)
    assert len(result["runs"]["cosine"][0].brands) < 12  # the validation brands, not the 12 test brands
    assert "validation brands" in result["markdown"]


@pytest.mark.parametrize("suite", ["ablation_sampler", "ablation_modalities", "cosine_modalities"])
def test_a_suite_takes_its_runs_from_the_sweep_it_tabulates(suite, tmp_path):
    """One source for a sweep and its table: the suite's runs are the grid of hparams_search/<suite>.yaml
    (less its seed axis), with the sweep's model, as a multirun of bamir-train would run them."""
    import yaml
    from hydra.core.override_parser.overrides_parser import OverridesParser

    cfg = compose_config("benchmark", tmp_path, [f"suite={suite}"], fast=False)
    specs = run_specs(cfg)
    sweep = yaml.safe_load((CONF / "hparams_search" / f"{suite}.yaml").read_text())
    params = {k: v for k, v in sweep["hydra"]["sweeper"]["params"].items() if k != "seed"}
    (key, values), = params.items()
    grid = list(OverridesParser.create().parse_override(f"{key}={values}").sweep_string_iterator())
    if key == "model":
        assert [s.model for s in specs] == grid and all(not s.overrides for s in specs)
    else:
        assert [s.overrides for s in specs] == [[f"{key}={v}"] for v in grid]
        model = next(v for d in sweep["defaults"] for k, v in d.items() if k == "override /model")
        assert {s.model for s in specs} == {model}
    assert cfg.reference in [s.name for s in specs]
