"""Brand-disjoint K-fold cross-validation: the folds, the fold's data, its checkpoints, and ``split=cv``.

The folds are dealt from the store split's training brands (stratified by category); fold k is
the test split of a run with ``data.cv_fold=k`` and must stay out of everything that run fits:
its training positives, its inner validation carve, its negative pool, its standardisation.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
from omegaconf import open_dict

from bamir.benchmark.scores import model_fusion
from bamir.benchmark import (PooledRun, RunScores, brand_statistics, metric_samples, pool_statistics, run_benchmark,
                             summarise)
from bamir.datamodule import RankingDataModule, brand_folds
from bamir.metrics import ranking_metrics
from bamir.samplers import MixedSampler
from bamir.train import evaluate, load_run, train
from tests.helpers.compose import compose_config

TRAINER = ["trainer=cpu", "logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]


def _dm(store, **kwargs) -> RankingDataModule:
    dm = RankingDataModule(str(store.root), sampler=kwargs.pop("sampler", MixedSampler()), **kwargs)
    dm.setup()
    return dm


def _rows(dm, ids) -> torch.Tensor:
    return torch.tensor(sorted(dm.row_of[i] for i in ids), dtype=torch.long)


# ------------------------------------------------------------------------------------------ the folds
def test_folds_are_disjoint_cover_every_brand_once_and_are_stratified():
    # 5 categories of unequal size (2 to 13 brands) and unknown categories, given in a scrambled order
    sizes = [13, 7, 5, 2, 9, 4]
    category = torch.cat([torch.full((n,), c if c < 5 else -1) for c, n in enumerate(sizes)])
    brands = torch.randperm(len(category), generator=torch.Generator().manual_seed(3))
    for k in (2, 3, 5):
        folds = brand_folds(brands, category, k, seed=7)
        assert len(folds) == k
        flat = torch.cat(folds)
        assert sorted(flat.tolist()) == sorted(brands.tolist())  # every brand once: disjoint and covering
        lengths = [len(f) for f in folds]
        assert max(lengths) - min(lengths) <= 1
        for c in category.unique():
            counts = [int((category[f] == c).sum()) for f in folds]
            assert max(counts) - min(counts) <= 1, (k, int(c), counts)  # stratified by category
    # deterministic for a seed, independent of the order the brands come in; another seed, other folds
    again = brand_folds(brands.flip(0), category, 5, seed=7)
    assert all(torch.equal(a, b) for a, b in zip(brand_folds(brands, category, 5, seed=7), again))
    other = brand_folds(brands, category, 5, seed=8)
    assert not all(torch.equal(a, b) for a, b in zip(again, other))


def test_bad_fold_settings_are_refused(planted_store):
    with pytest.raises(ValueError, match="cv_folds"):
        RankingDataModule(str(planted_store.root), sampler=MixedSampler(), cv_folds=1, cv_fold=0)
    with pytest.raises(ValueError, match="cv_fold"):
        RankingDataModule(str(planted_store.root), sampler=MixedSampler(), cv_folds=3, cv_fold=3)


# ------------------------------------------------------------------------------------------ a fold's data
@pytest.mark.parametrize("fold", [0, 2])
def test_a_fold_is_the_test_split_and_stays_out_of_training(planted_store, fold):
    dm = _dm(planted_store, cv_folds=3, cv_fold=fold, val_fraction=0.25, standardize=True)
    split = planted_store.splits["discover"]
    train_rows = _rows(dm, split["train_brands"])
    folds = brand_folds(train_rows, dm.category, 3, seed=0)
    held = folds[fold]
    assert torch.equal(torch.sort(dm.test_split.brands).values, held)
    # the fold's brands are nowhere in training: positives, inner validation, pool, sampled rows
    assert not torch.isin(dm.train_data.brands, held).any()
    assert not torch.isin(dm.val_split.brands, held).any()
    assert not torch.isin(dm.train_data.pool, held).any()
    for row in dm.sampler.sample(dm.train_data, torch.Generator().manual_seed(0)):
        assert not torch.isin(row, held).any()
    # the other folds' brands, and only they, are the training side: fitting brands + inner validation
    others = torch.cat([f for k, f in enumerate(folds) if k != fold])
    training = torch.cat([torch.unique(dm.train_data.brands), dm.val_split.brands])
    assert sorted(training.tolist()) == sorted(others.tolist())
    # the store's own test brands are still out of training
    assert not torch.isin(training, _rows(dm, split["test_brands"])).any()
    # candidates: the influencers of the fold's brands (the discover protocol, as validation)
    pairs = planted_store.pairs
    fold_ids = {dm.account_ids[r] for r in held.tolist()}
    influencers = set(pairs.loc[pairs["brand"].isin(fold_ids), "influencer"])
    assert {dm.account_ids[r] for r in dm.test_split.candidates.tolist()} == influencers
    known = set(zip(pairs["brand"], pairs["influencer"]))
    ids = dm.account_ids
    for r, b in enumerate(dm.test_split.brands.tolist()):
        for c, i in enumerate(dm.test_split.candidates.tolist()):
            assert bool(dm.test_split.labels[r, c]) == ((ids[b], ids[i]) in known)


def test_standardisation_is_fitted_without_the_fold(planted_store):
    dm = _dm(planted_store, cv_folds=2, cv_fold=1, standardize=True)
    held = {dm.account_ids[r] for r in dm.test_split.brands.tolist()}
    val = {dm.account_ids[r] for r in dm.val_split.brands.tolist()}
    pairs = planted_store.pairs
    fit = set(planted_store.splits["discover"]["train_brands"]) - held - val
    pool = set(pairs.loc[pairs["brand"].isin(fit), "influencer"])
    rows = _rows(dm, fit | pool)
    with_fold = _rows(dm, fit | pool | held)
    for name, (mean, std) in dm.feature_stats.items():
        modality = planted_store.load_modality(name)
        x, present = modality.features, modality.present
        r = rows[present[rows]]
        assert torch.allclose(mean, x[r].mean(0), atol=1e-6), name
        assert torch.allclose(std, torch.where(x[r].std(0) > 1e-8, x[r].std(0), torch.ones_like(std)), atol=1e-6)
        assert not torch.allclose(mean, x[with_fold].mean(0), atol=1e-6), f"{name}: the fold's brands change the mean"


def test_without_a_fold_the_store_split_is_untouched(planted_store):
    dm = _dm(planted_store)
    split = planted_store.splits["discover"]
    assert [dm.account_ids[r] for r in dm.test_split.brands.tolist()] == split["test_brands"]
    assert [dm.account_ids[r] for r in dm.test_split.candidates.tolist()] == split["test_candidates"]
    assert dm.state_dict()["cv"] is None


# ------------------------------------------------------------------------------------------ checkpoints
def _train(root: Path, shared_data: Path, *overrides: str):
    cfg = compose_config("train", root, ["dataset=planted_tiny", *TRAINER, "trainer.max_epochs=1", *overrides],
                         fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    metrics = train(cfg)
    folder = Path(cfg.paths.output_dir) / "checkpoints"
    return metrics, (sorted(folder.glob("best-*.ckpt")) or [folder / "last.ckpt"])[0]


def _app(name: str, root: Path, shared_data: Path, *overrides: str):
    cfg = compose_config(name, root, ["dataset=planted_tiny", *(TRAINER if name == "eval" else []), *overrides],
                         fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


@pytest.mark.slow
def test_a_fold_checkpoint_evaluates_and_ranks_on_its_fold(tmp_path, shared_data, planted_store):
    fold = ["data.cv_folds=3", "data.cv_fold=1", "data.cv_seed=4"]
    metrics, ckpt = _train(tmp_path / "train", shared_data, "model=bamir_all_small", *fold)
    assert ckpt.name.startswith("best-")  # a learned model: its best epoch, chosen on the inner carve
    state = torch.load(ckpt, weights_only=True)["RankingDataModule"]["cv"]
    dm0 = _dm(planted_store)
    train_rows = _rows(dm0, planted_store.splits["discover"]["train_brands"])
    held = brand_folds(train_rows, dm0.category, 3, seed=4)[1]
    held_ids = sorted(dm0.account_ids[r] for r in held.tolist())
    assert state == {"fold": 1, "folds": 3, "seed": 4, "brands": held_ids}
    dm_fold = _dm(planted_store, cv_folds=3, cv_fold=1, cv_seed=4)

    # bamir-eval given only the checkpoint (data/default: cv_fold null) serves the fold it was trained with
    datamodule, _ = load_run(_app("eval", tmp_path / "load", shared_data, f"ckpt_path={ckpt}"), str(ckpt))
    assert sorted(datamodule.account_ids[r] for r in datamodule.test_split.brands.tolist()) == held_ids
    evaluated = evaluate(_app("eval", tmp_path / "eval", shared_data, f"ckpt_path={ckpt}"))
    for key in ("test/auc_global", "test/mrr", "test/n_queries"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-6), key
    # bamir-rank loads the same way (bamir.cli.rank: load_run; brand=all and candidates=test read the test split)
    datamodule, _ = load_run(_app("rank", tmp_path / "rank", shared_data, f"ckpt_path={ckpt}", "brand=all"), str(ckpt))
    assert sorted(datamodule.account_ids[r] for r in datamodule.test_split.brands.tolist()) == held_ids
    assert torch.equal(datamodule.test_split.candidates, dm_fold.test_split.candidates)

    # another fold, or no fold, is refused
    with pytest.raises(ValueError, match="cv_fold=1"):
        evaluate(_app("eval", tmp_path / "other", shared_data, f"ckpt_path={ckpt}", "data.cv_folds=3",
                      "data.cv_fold=2", "data.cv_seed=4"))
    _, plain = _train(tmp_path / "plain", shared_data, "model=cosine")
    assert torch.load(plain, weights_only=True)["RankingDataModule"]["cv"] is None
    with pytest.raises(ValueError, match="no cross-validation"):
        evaluate(_app("eval", tmp_path / "plain-eval", shared_data, f"ckpt_path={plain}", "data.cv_fold=0"))


# ------------------------------------------------------------------------------------------ pooling
def _matrix(n_brands, n_cand, seed, signal=1.0):
    g = torch.Generator().manual_seed(seed)
    labels = torch.rand(n_brands, n_cand, generator=g) < 0.2
    labels[:, 0] = True
    scores = signal * labels.float() + torch.randn(n_brands, n_cand, generator=g)
    return scores, labels


def test_pooled_global_auc_compares_pairs_within_a_fold_only():
    (s0, l0), (s1, l1) = _matrix(7, 30, 0), _matrix(5, 22, 1)
    s1 = s1 * 100 + 50  # another fold's model on another scale: comparing across folds would be meaningless
    stats = pool_statistics([brand_statistics(s0, l0), brand_statistics(s1, l1)])
    full = torch.arange(12)[None, :]
    pairs = [int(l.sum()) * int((~l).sum()) for l in (l0, l1)]
    aucs = [float(ranking_metrics(s, l)["auc_global"]) for s, l in ((s0, l0), (s1, l1))]
    expected = (pairs[0] * aucs[0] + pairs[1] * aucs[1]) / sum(pairs)
    assert float(metric_samples(stats, "auc_global", full)[0]) == pytest.approx(expected, abs=1e-6)
    # a bootstrap draw: the same, recomputed on the drawn brands of each fold
    draw = torch.tensor([[0, 0, 3, 6, 7, 7, 7, 11, 2, 9, 9, 1]])
    wins = total = 0.0
    for part, (s, l), offset in ((0, (s0, l0), 0), (1, (s1, l1), 7)):
        rows = [i - offset for i in draw[0].tolist() if (i >= 7) == bool(part)]
        drawn_s, drawn_l = s[rows], l[rows]
        n = float(drawn_l.sum()) * float((~drawn_l).sum())
        wins += float(ranking_metrics(drawn_s, drawn_l)["auc_global"]) * n
        total += n
    assert float(metric_samples(stats, "auc_global", draw)[0]) == pytest.approx(wins / total, abs=1e-6)
    # per-brand metrics: the brands of both folds together
    per_brand = torch.cat([brand_statistics(s0, l0)["rr"], brand_statistics(s1, l1)["rr"]]).mean()
    assert float(metric_samples(stats, "mrr", full)[0]) == pytest.approx(float(per_brand), abs=1e-9)


def _fold_run(name, parts, seed=0):
    offset, runs = 0, []
    for s, l in parts:
        runs.append(RunScores(name, seed, s, l, None, torch.arange(offset, offset + len(s)), torch.arange(s.shape[1])))
        offset += len(s)
    return PooledRun(name, seed, runs)


def test_pooled_runs_need_disjoint_folds_and_the_same_folds_to_be_compared():
    a, b = _matrix(6, 20, 2), _matrix(4, 20, 3)
    good = _fold_run("m", [a, b])
    with pytest.raises(ValueError, match="reported once"):
        PooledRun("x", 0, [good.folds[0], good.folds[0]])
    other = _fold_run("o", [b, a])  # the same 10 brands, cut into other folds
    with pytest.raises(ValueError, match="other test brands"):
        summarise({"m": [good], "o": [other]}, samples=50)
    table = summarise({"m": [good], "m2": [_fold_run("m2", [a, b])]}, reference="m", samples=50)
    assert set(table["brands"]) == {10}
    assert (table.query("model == 'm2'")["p_value"] == 1.0).all()


# ------------------------------------------------------------------------------------------ the benchmark
def test_benchmark_split_cv_pools_every_training_brand_once(tmp_path, shared_data, planted_store):
    cfg = compose_config("benchmark", tmp_path, [
        "dataset=planted_tiny", "suite=none", "models=[cosine,random]", "seeds=[0]", "split=cv", "cv.folds=2",
        "reference=cosine", 'overrides=["trainer=cpu","trainer.max_epochs=1"]', "bootstrap.samples=300",
        "logger=none", "plots.enabled=false", "seed_ensembles=[random]", "fusions={both: [cosine, random]}"], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    result = run_benchmark(cfg)
    out = result["output_dir"]
    for name in ("benchmark.md", "benchmark.csv", "runs.csv", "folds.csv"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    for model in ("cosine", "random"):
        for k in (0, 1):
            assert (out / "jobs" / model / "seed0" / f"fold{k}" / "scores.pt").is_file()
    # every training brand of the store reported exactly once, by the fold that held it out
    dm = _dm(planted_store)
    train_rows = _rows(dm, planted_store.splits["discover"]["train_brands"])
    for model in ("cosine", "random"):
        (pooled,) = result["runs"][model]
        assert sorted(pooled.brands.tolist()) == train_rows.tolist()
        for k, part in enumerate(pooled.folds):
            assert torch.equal(torch.sort(part.brands).values, brand_folds(train_rows, dm.category, 2, 0)[k])
    table = pd.read_csv(out / "benchmark.csv")
    assert set(table["brands"]) == {len(train_rows)}
    # the per-fold table: each fold's own test metrics, as its run reported them
    folds = pd.read_csv(out / "folds.csv")
    runs = pd.read_csv(out / "runs.csv")
    assert set(zip(folds["model"], folds["fold"])) == {(m, k) for m in ("cosine", "random", "random ensemble", "both")
                                                       for k in (0, 1)}
    # the fusion row: the two rows' scores, standardised per brand, averaged, fold by fold
    (both,) = result["runs"]["both"]
    assert torch.equal(both.folds[1].scores, model_fusion([result["runs"]["cosine"], result["runs"]["random"]],
                                                          "both").folds[1].scores)
    # the seed ensemble of one seed is that seed, fold by fold
    ensemble = table.query("model == 'random ensemble'").set_index("metric")["mean"]
    assert ensemble.to_dict() == pytest.approx(table.query("model == 'random'").set_index("metric")["mean"].to_dict())
    for model in ("cosine", "random"):
        for k in (0, 1):
            value = folds.query("model == @model and fold == @k and metric == 'auc_global'")["value"].item()
            reported = runs.query("model == @model and fold == @k")["test/auc_global"].item()
            assert value == pytest.approx(reported, abs=1e-5)
    # pooled: the global AUC is the pair-weighted mean of the folds' (within-fold comparisons only),
    # the brand AUC the mean over all brands
    cosine = result["runs"]["cosine"][0]
    pairs = [float(p.labels.sum()) * float((~p.labels).sum()) for p in cosine.folds]
    fold_auc = folds.query("model == 'cosine' and metric == 'auc_global'").sort_values("fold")["value"].tolist()
    row = table.query("model == 'cosine'").set_index("metric")
    assert row.loc["auc_global", "mean"] == pytest.approx(sum(p * a for p, a in zip(pairs, fold_auc)) / sum(pairs))
    per_brand = torch.cat([brand_statistics(p.scores, p.labels)["auc"] for p in cosine.folds])
    assert row.loc["auc_brand", "mean"] == pytest.approx(float(per_brand.nanmean()), abs=1e-9)
    # paired tests against the reference, over the same brands
    p_random = table.query("model == 'random' and metric == 'auc_global'")["p_value"].item()
    assert 0 < p_random < 0.05  # random is worse than cosine on the planted store
    markdown = (out / "benchmark.md").read_text()
    assert "each reported by the model of the cross-validation fold" in markdown
    assert "Paired bootstrap test against `cosine`" in markdown and "Per fold" in markdown
    assert "| random | 1 |" in markdown


def test_benchmark_refuses_an_unknown_split(tmp_path):
    cfg = compose_config("benchmark", tmp_path, ["suite=none", "models=[cosine]", "split=folds"], fast=False)
    with pytest.raises(ValueError, match="split='folds'"):
        run_benchmark(cfg)
