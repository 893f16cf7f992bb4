"""Self-describing checkpoints: a checkpoint carries how the store becomes its model's inputs.

Each model kind is trained on the planted tiny store with data settings other than the apps'
defaults; ``bamir-eval`` and ``bamir-rank`` are then given only the checkpoint and the dataset,
and must reproduce the test metrics training returned. A data setting that contradicts the
checkpoint is refused, and the ranking app's embedding cache never serves embeddings of
another transform.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
from omegaconf import open_dict

from bamir.ranking.app import rank
from bamir.datamodule import RankingDataModule
from bamir.metrics import ranking_metrics
from bamir.samplers import UniformSampler
from bamir.train import evaluate, train
from tests.helpers.compose import compose_config
from tests.helpers.metrics import assert_same_metrics

DATASET = "dataset=planted_tiny"
TRAINER = ["trainer=cpu", "logger=csv", "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false"]
# BAMIR's published widths cut to 16 units (the published 1,024 cost seconds per epoch here)
NARROW = [f"model.branches.{path}.hidden=[16,16]" for path in
          ("content.encoders.topic", "content.encoders.image", "concept.encoders.concept")]
# each kind with data settings other than those bamir-eval and bamir-rank would otherwise use
# (data/default: standardize=true, every modality of the store, statistics fitted on the training
# accounts left by val_seed=0), both ways
KINDS = {
    "bamir": ["model=bamir", "data.standardize=false", *NARROW],
    "bamir_paper": ["model=bamir_paper", "data.standardize=true", "data.val_seed=1",
                    "data.modalities=[topic,object,scene,concept]", *NARROW],
    "bamir_all_small": ["model=bamir_all_small", "data.modalities=[topic,concept,hashtag]", "data.val_seed=2"],
    "mir": ["model=mir", "data.standardize=false", "data.modalities=[object,scene,topic]",
            "model.visual_hidden=[32,16]", "model.embed_dim=16"],
    "sbr": ["model=sbr", "data.standardize=true", "data.val_seed=1"],
    "cosine": ["model=cosine", "data.standardize=false", "data.modalities=[topic,concept]"],
}
TEST_METRICS = ("auc_global", "auc_brand", "auc_pairs", "cauc", "recall@10", "recall@50", "mrr", "map", "medr",
                "ndcg@10", "n_queries")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, shared_data):
    """``trained(kind) -> (test metrics of bamir-train, checkpoint)``, each kind trained once (one epoch)."""
    runs: dict[str, tuple[dict, Path]] = {}

    def run(kind: str) -> tuple[dict, Path]:
        if kind not in runs:
            root = tmp_path_factory.mktemp(f"train_{kind}")
            cfg = compose_config("train", root, [DATASET, *TRAINER, "trainer.max_epochs=1", *KINDS[kind]], fast=False)
            with open_dict(cfg):
                cfg.paths.data_dir = str(shared_data)
            metrics = train(cfg)
            folder = Path(cfg.paths.output_dir) / "checkpoints"
            best = sorted(folder.glob("best-*.ckpt")) or [folder / "last.ckpt"]
            runs[kind] = ({k[len("test/"):]: v for k, v in metrics.items() if k.startswith("test/")}, best[0])
        return runs[kind]
    return run


def _app(name: str, where: Path, shared_data: Path, *overrides: str):
    """``conf/<name>.yaml`` (eval or rank) on the planted tiny store: no data settings given."""
    cfg = compose_config(name, where, [DATASET, *(TRAINER if name == "eval" else []), *overrides], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


def _test_split(shared_data: Path):
    dm = RankingDataModule(str(shared_data / "stores" / "planted-tiny-0"), sampler=UniformSampler())
    dm.setup()
    return dm, dm.test_split


def _ranked_metrics(result: dict, shared_data: Path) -> dict[str, float | None]:
    """bamir.metrics over the test matrix rebuilt from ``ranking.json`` (every test brand x every test candidate)."""
    dm, split = _test_split(shared_data)
    ids = dm.account_ids
    column = {ids[r]: c for c, r in enumerate(split.candidates.tolist())}
    scores = torch.full(split.labels.shape, math.nan, dtype=torch.float64)
    by_brand = {brand["id"]: brand["top"] for brand in result["brands"]}
    for row, brand in enumerate(split.brands.tolist()):
        for entry in by_brand[ids[brand]]:
            scores[row, column[entry["id"]]] = entry["score"]
    assert not scores.isnan().any(), "every test candidate is ranked for every test brand"
    metrics = ranking_metrics(scores, split.labels, split.hard_negatives)
    return {k: (None if math.isnan(float(v)) else float(v)) for k, v in metrics.items()}


def _assert_same(expected: dict, got: dict, what: str) -> None:
    """``got`` (an app's metrics) is training's on every test metric training has, undefined ones included."""
    assert_same_metrics(got, expected, [k for k in TEST_METRICS if k in expected], tol=1e-6, what=what)


def _rank_all(where: Path, shared_data: Path, ckpt: Path, *overrides: str) -> dict:
    _, split = _test_split(shared_data)
    cfg = _app("rank", where, shared_data, f"ckpt_path={ckpt}", "brand=all", "candidates=test",
               f"top_k={len(split.candidates)}", "search.device=cpu", "report.html=false", "print_brands=0", *overrides)
    result = rank(cfg)
    assert json.loads((where / "run" / "ranking.json").read_text()) == json.loads(json.dumps(result))
    return result


#: the kinds the quick loop (-m "not slow") checks; the others run in the whole suite
QUICK = ("bamir", "cosine")


@pytest.mark.parametrize("kind", [k if k in QUICK else pytest.param(k, marks=pytest.mark.slow) for k in KINDS])
def test_eval_and_rank_reproduce_training_from_the_checkpoint_alone(kind, trained, tmp_path, shared_data):
    expected, ckpt = trained(kind)
    assert set(TEST_METRICS) <= set(expected)
    evaluated = evaluate(_app("eval", tmp_path / "eval", shared_data, f"ckpt_path={ckpt}"))
    _assert_same(expected, {k[len("test/"):]: v for k, v in evaluated.items() if k.startswith("test/")}, "bamir-eval")
    ranked = _rank_all(tmp_path / "rank", shared_data, ckpt)
    _assert_same(expected, _ranked_metrics(ranked, shared_data), "bamir-rank")


@pytest.mark.parametrize("model", ["random", *(pytest.param(m, marks=pytest.mark.slow)
                                              for m in ("popularity", "oracle", "feature_ceiling", "affinity_transfer"))])
def test_every_unlearned_ranker_leaves_a_checkpoint_for_eval_and_rank(model, tmp_path, shared_data):
    cfg = compose_config("train", tmp_path / "train", [DATASET, *TRAINER, f"model={model}", "data.standardize=false"],
                         fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    metrics = train(cfg)
    ckpt = Path(cfg.paths.output_dir) / "checkpoints" / "last.ckpt"
    evaluated = evaluate(_app("eval", tmp_path / "eval", shared_data, f"ckpt_path={ckpt}"))
    for key in ("test/auc_global", "test/map", "val/auc_global"):
        assert evaluated[key] == pytest.approx(metrics[key], abs=1e-6), key
    if model != "feature_ceiling":  # its score of a candidate depends on the pool scored with it: evaluation only
        expected = {k[len("test/"):]: v for k, v in metrics.items() if k.startswith("test/")}
        _assert_same(expected, _ranked_metrics(_rank_all(tmp_path / "rank", shared_data, ckpt), shared_data),
                     f"bamir-rank {model}")


def test_a_contradicting_data_setting_is_refused_naming_both(trained, tmp_path, shared_data):
    expected, ckpt = trained("cosine")  # trained with standardize=false on [topic, concept]
    with pytest.raises(ValueError, match=r"trained with data\.standardize=false, this run sets data\.standardize=true"):
        evaluate(_app("eval", tmp_path / "a", shared_data, f"ckpt_path={ckpt}", "data.standardize=true"))
    with pytest.raises(ValueError, match=r"trained with data\.modalities=\[concept,topic\], this run sets "
                                         r"data\.modalities=\[topic\]"):
        _rank_all(tmp_path / "b", shared_data, ckpt, "data.modalities=[topic]")
    agreeing = evaluate(_app("eval", tmp_path / "c", shared_data, f"ckpt_path={ckpt}", "data.standardize=false",
                             "data.modalities=[topic,concept]"))
    assert agreeing["test/auc_global"] == pytest.approx(expected["auc_global"], abs=1e-6)


def test_resuming_with_other_data_settings_is_refused(trained, tmp_path, shared_data):
    _, ckpt = trained("bamir")  # trained with standardize=false
    cfg = compose_config("train", tmp_path, [DATASET, *TRAINER, "trainer.max_epochs=2", *KINDS["bamir"],
                                             "data.standardize=true", f"ckpt_path={ckpt.parent / 'last.ckpt'}"],
                         fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    with pytest.raises(ValueError, match=r"data\.standardize=false, this run serves data\.standardize=true"):
        train(cfg)


def test_a_data_module_serves_the_checkpoints_statistics(planted_store):
    """bamir-eval, bamir-rank and cold start (``to_model_space``) transform rows with the training statistics,
    not with statistics refitted on this run's training accounts."""
    from bamir.coldstart import NewAccounts, to_model_space

    trained_dm = RankingDataModule(str(planted_store.root), sampler=UniformSampler(), standardize=True, val_seed=1,
                                   modalities=["topic", "concept"])
    trained_dm.setup()
    refitted = RankingDataModule(str(planted_store.root), sampler=UniformSampler(), standardize=True)
    refitted.setup()
    assert not torch.equal(refitted.feature_stats["topic"][0], trained_dm.feature_stats["topic"][0])
    served = RankingDataModule(str(planted_store.root), sampler=UniformSampler(), standardize=None)
    served.load_state_dict(trained_dm.state_dict())
    served.setup()
    assert list(served.features) == ["topic", "concept"] and served.standardize is True
    for name in served.features:
        assert torch.equal(served.features[name], trained_dm.features[name])
    raw = planted_store.load_modality("topic").features[:3]
    new = to_model_space(served, NewAccounts(None, ["a", "b", "c"], {"topic": raw}, {}, {}))
    assert torch.equal(new.features["topic"], trained_dm.features["topic"][:3])


def test_old_checkpoints_need_the_data_settings_and_never_share_cached_embeddings(trained, tmp_path, shared_data):
    """The reported scenario on a checkpoint that does not record its data settings (written before they were
    kept): ranked first with the wrong standardisation, then with the right one, the second run must not
    reuse the first run's candidate embeddings."""
    expected, ckpt = trained("bamir")  # trained with standardize=false
    checkpoint = torch.load(ckpt, weights_only=True)
    del checkpoint[RankingDataModule.__qualname__]
    old = tmp_path / "old.ckpt"
    torch.save(checkpoint, old)
    with pytest.raises(ValueError, match=r"does not record data\.standardize.*pass data\.standardize=true or false"):
        _rank_all(tmp_path / "a", shared_data, old)
    wrong = _rank_all(tmp_path / "b", shared_data, old, "data.standardize=true")
    assert wrong["search"]["embeddings"] == "computed"
    right = _rank_all(tmp_path / "c", shared_data, old, "data.standardize=false")
    assert right["search"]["embeddings"] == "computed", "embeddings of another transform were reused"
    _assert_same(expected, _ranked_metrics(right, shared_data), "bamir-rank, old checkpoint")
    assert _ranked_metrics(wrong, shared_data)["auc_global"] != pytest.approx(expected["auc_global"], abs=1e-6)
    again = _rank_all(tmp_path / "d", shared_data, old, "data.standardize=false")
    assert again["search"]["embeddings"] == "cached"
