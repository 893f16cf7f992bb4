"""Partial modalities are per account: an account lacking one gets the modality's neutral vector and
is counted; a modality leaves the model only when the data config says so; a model whose config
reads a modality nobody serves is refused."""

import json
import shutil

import pytest
import torch
from omegaconf import open_dict

from bamir.data.planted import DEFAULT_MODALITIES, make_planted_store
from bamir.datamodule import RankingDataModule
from bamir.samplers import MixedSampler
from bamir.store import FeatureStore
from bamir.train import build_data, build_model, train


def _with_absent(planted_store, root, modality: str, accounts: int = 1) -> tuple[FeatureStore, list[int]]:
    """A copy of the planted store where the first ``accounts`` training brands lack ``modality``."""
    shutil.copytree(planted_store.root, root)
    store = FeatureStore(root)
    rows = [store.account_ids.index(b) for b in store.splits["discover"]["train_brands"][:accounts]]
    m = store.load_modality(modality)
    present = m.present.clone()
    present[rows] = False
    features = m.features.clone()
    features[rows] = 0.0  # what a stage writes for an account without input
    store.write_modality(modality, features, present)
    return store, rows


def _dm(store, **kwargs) -> RankingDataModule:
    dm = RankingDataModule(str(store.root), sampler=MixedSampler(), **kwargs)
    dm.setup()
    return dm


def test_an_account_lacking_a_modality_gets_its_neutral_vector_and_is_counted(planted_store, tmp_path):
    store, rows = _with_absent(planted_store, tmp_path / "store", "topic", accounts=2)
    raw = store.load_modality("topic")
    dm = _dm(store, standardize=True)
    assert "topic" in dm.features and dm.missing_counts == {"topic": 2} and dm.dropped == []
    # standardised on the training accounts that have it; the neutral vector is then zero
    fit = torch.unique(torch.cat([dm.train_data.brands, dm.train_data.pool]))
    fit = fit[raw.present[fit]]
    mean, _ = dm.feature_stats["topic"]
    assert torch.allclose(mean, raw.features[fit].mean(0))
    assert torch.equal(dm.features["topic"][rows], torch.zeros(2, raw.dim))
    others = torch.tensor([r for r in fit.tolist() if r not in rows][:5])
    assert not torch.equal(dm.features["topic"][others], torch.zeros(len(others), raw.dim))

    plain = _dm(store, standardize=False)
    assert torch.allclose(plain.features["topic"][rows], raw.features[fit].mean(0).expand(2, -1))


def test_missing_drop_leaves_the_modality_out_for_the_whole_model(planted_store, tmp_path):
    store, _ = _with_absent(planted_store, tmp_path / "store", "concept")
    dm = _dm(store, missing="drop")
    assert "concept" not in dm.features and dm.dropped == ["concept"] and dm.missing_counts == {}
    assert dm.leaves_out("concept") and not dm.leaves_out("topic")
    with pytest.raises(ValueError, match="data.missing='mask': use one of neutral, drop"):
        RankingDataModule(str(store.root), sampler=MixedSampler(), missing="mask")


def test_a_brand_without_posts_keeps_every_branch_and_the_run_counts_it(planted_store, cfg_train, tmp_path):
    """The fault of a brand with zero posts: before, the whole content branch vanished for every account."""
    store, _ = _with_absent(planted_store, tmp_path / "store", "topic")
    with open_dict(cfg_train):
        cfg_train.dataset.store = str(store.root)
        cfg_train.dataset.build = None
        cfg_train.trainer.max_epochs = 1
    datamodule = build_data(cfg_train)
    model = build_model(cfg_train, datamodule)
    assert set(model.encoders) == {"content", "concept"} and set(model.encoders["content"]) == {"topic", "image"}
    metrics = train(cfg_train)
    assert metrics["data/missing/topic"] == 1
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["data/missing/topic"] == 1


def test_a_branch_the_store_cannot_feed_is_refused_unless_the_config_leaves_it_out(cfg_train, tmp_path):
    without_concept = {k: dict(v) for k, v in DEFAULT_MODALITIES.items() if k != "concept"}
    store = make_planted_store(tmp_path / "store", brands_per_category=3, influencers=120, positives_per_brand=5,
                               modalities=without_concept)
    with open_dict(cfg_train):
        cfg_train.dataset.store = str(store.root)
        cfg_train.dataset.build = None
    datamodule = build_data(cfg_train)
    with pytest.raises(ValueError, match=r"BamirModel reads modalities \['concept'\], which the store at .* does not "
                                         r"hold .* data.modalities=\[hashtag,interaction,object,scene,topic\]"):
        build_model(cfg_train, datamodule)
    with open_dict(cfg_train):
        cfg_train.data.modalities = ["topic", "object", "scene"]
    model = build_model(cfg_train, build_data(cfg_train))
    assert set(model.encoders) == {"content"}


def test_a_modality_the_data_config_names_must_exist(planted_store):
    with pytest.raises(Exception, match=r"data.modalities asks for \['captions'\], which the store does not hold"):
        _dm(planted_store, modalities=["topic", "captions"])


def test_a_new_account_without_input_gets_the_neutral_vector_too(planted_store):
    from bamir.coldstart import NewAccounts, to_model_space

    dm = _dm(planted_store, standardize=True)
    dim = dm.features["topic"].shape[1]
    rows = torch.rand(2, dim)
    new = NewAccounts(None, ["new-a", "new-b"], {"topic": rows}, {"topic": torch.tensor([True, False])}, {})
    out = to_model_space(dm, new).features["topic"]
    assert torch.equal(out[1], torch.zeros(dim))
    assert torch.allclose(out[0], dm.transform_rows("topic", rows[:1])[0])
