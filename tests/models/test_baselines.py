"""The peers of BAMIR: random, popularity, SBR, MIR, per-modality cosine, the oracle and BAMIR with all modalities."""

import math
import shutil

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import open_dict

from bamir.metrics import ranking_metrics
from bamir.models.mir import MirModel, listwise_loss
from bamir.models.oracle import OracleRanker, OracleUnavailable
from bamir.models.popularity import PopularityRanker, training_degree
from bamir.models.random import RandomRanker
from bamir.models.sbr import SBR
from bamir.samplers import TrainingData
from bamir.store import FeatureStore
from bamir.train import train
from tests.helpers.compose import compose_config

MODELS = ["random", "popularity", "sbr", "cosine_topic", "mir", "oracle", "feature_ceiling", "affinity_transfer",
          "bamir_all_small"]


@pytest.fixture(scope="module")
def tiny_runs(tmp_path_factory, shared_data):
    """Each model trained (2 epochs) and tested once on the tiny planted store through bamir.train.train."""
    out = {}
    for name in MODELS:
        cfg = compose_config("train", tmp_path_factory.mktemp(name), [f"model={name}"])
        with open_dict(cfg):
            cfg.paths.data_dir = str(shared_data)
        out[name] = train(cfg)
    return out


#: the planted store's signal is in the features: every model that reads them beats chance
READS_FEATURES = ["sbr", "cosine_topic", "mir", "oracle", "feature_ceiling", "affinity_transfer", "bamir_all_small"]


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_and_tests_on_the_planted_store(tiny_runs, name):
    metrics = tiny_runs[name]
    assert metrics["test/n_queries"] == 12 and metrics["test/n_queries_without_positives"] == 0
    for key in ("test/auc_global", "test/auc_brand", "test/mrr", "test/map", "test/ndcg@10", "test/recall@10"):
        assert 0.0 <= metrics[key] <= 1.0, key
    assert metrics["test/recall@10"] <= metrics["test/recall@50"] and metrics["test/medr"] >= 1
    chance = tiny_runs["random"]["test/auc_global"]
    assert abs(chance - 0.5) < 0.1
    if name in READS_FEATURES:
        assert metrics["test/auc_global"] > chance + 0.05, name


def test_the_oracle_beats_every_other_model(tiny_runs):
    oracle = tiny_runs["oracle"]["test/auc_global"]
    assert oracle > 0.9
    for name, metrics in tiny_runs.items():
        if name != "oracle":
            assert oracle > metrics["test/auc_global"] + 0.1, name
            assert tiny_runs["oracle"]["test/map"] > metrics["test/map"], name


def test_the_oracle_scores_the_planted_affinity(planted_store):
    oracle = OracleRanker()
    oracle.prepare(planted_store)
    extras = planted_store.load_tensors("planted_affinity")
    brands, influencers = extras["brand_rows"][[0, 3, 5]], extras["influencer_rows"][[1, 7, 2, 40]]
    expected = extras["affinity"][[0, 3, 5]][:, [1, 7, 2, 40]]
    assert torch.equal(oracle.score_matrix(brands, influencers), expected)
    with pytest.raises(ValueError, match="not in the planted affinity"):
        oracle.score_matrix(influencers[:1], influencers)  # an influencer is no brand row


def test_the_feature_ceiling_is_a_cross_fitted_ridge_read_out(planted_store):
    from sklearn.linear_model import Ridge

    from bamir.models.feature_ceiling import FeatureCeilingRanker

    used = planted_store.modalities[:2]
    features = {m: planted_store.load_modality(m).features for m in used}
    model = FeatureCeilingRanker({m: f.shape[1] for m, f in features.items()}, alpha=10.0, folds=2)
    model.attach_features(features)
    model.prepare(planted_store)
    extras = planted_store.load_tensors("planted_affinity")
    affinity, columns = extras["affinity"].double().numpy(), extras["influencer_rows"]
    x = torch.cat([features[m][columns] for m in sorted(used)], dim=1).double().numpy()
    picked = torch.arange(10, 30)
    scores = model.score_matrix(extras["brand_rows"][[0, 4]], columns[picked])
    for fold in picked.chunk(2):  # each half is scored by a read-out fitted without it
        fit = torch.ones(len(columns), dtype=torch.bool)
        fit[fold] = False
        for k, b in enumerate([0, 4]):
            ridge = Ridge(alpha=10.0, fit_intercept=False).fit(x[fit.numpy()], affinity[b, fit.numpy()])
            got = scores[k, (fold - 10)].numpy()
            assert got == pytest.approx(ridge.predict(x[fold.numpy()]), rel=1e-4, abs=1e-5)


def test_the_affinity_transfer_is_a_bilinear_ridge_fitted_on_the_fitting_brands_only(planted_store):
    from sklearn.linear_model import Ridge

    from bamir.models.affinity_transfer import AffinityTransferRanker

    used = planted_store.modalities[:2]
    features = {m: planted_store.load_modality(m).features for m in used}
    model = AffinityTransferRanker({m: f.shape[1] for m, f in features.items()}, alpha=10.0)
    model.attach_features(features)
    model.prepare(planted_store)
    extras = planted_store.load_tensors("planted_affinity")
    brand_rows, columns = extras["brand_rows"], extras["influencer_rows"]
    fit_b, pool = torch.arange(0, 20), torch.arange(0, 60)
    model.set_fitting(brand_rows[fit_b], columns[pool])
    scores = model.score_matrix(brand_rows[[25, 30]], columns[70:90])

    def ones(x):
        return torch.cat([x, torch.ones(len(x), 1)], 1).double()

    x = ones(torch.cat([features[m][brand_rows] for m in sorted(used)], 1))
    z = ones(torch.cat([features[m][columns] for m in sorted(used)], 1))
    design = torch.einsum("bp,id->bipd", x[fit_b], z[pool]).reshape(len(fit_b) * len(pool), -1).numpy()
    target = extras["affinity"][fit_b][:, pool].double().reshape(-1).numpy()
    w = torch.tensor(Ridge(alpha=10.0, fit_intercept=False).fit(design, target).coef_).reshape(x.shape[1], z.shape[1])
    assert scores.double().numpy() == pytest.approx((x[[25, 30]] @ w @ z[70:90].T).numpy(), rel=1e-4, abs=1e-5)
    # the evaluated brands' own affinity is never read: changing it changes no score
    model.affinity[[25, 30]] = 0.0
    model.set_fitting(brand_rows[fit_b], columns[pool])
    assert torch.equal(model.score_matrix(brand_rows[[25, 30]], columns[70:90]), scores)


def test_the_oracle_fails_clearly_without_a_planted_affinity(planted_store, tmp_path):
    store_dir = tmp_path / "real"
    shutil.copytree(planted_store.root, store_dir)
    store = FeatureStore(store_dir)
    del store.manifest["extras"]["planted_affinity"]
    store._save_manifest()
    with pytest.raises(OracleUnavailable, match="planted affinity of synthetic data"):
        OracleRanker(store=str(store_dir)).prepare(FeatureStore(store_dir))


def test_random_is_deterministic_per_seed_and_batch_independent():
    brands, cands = torch.arange(5), torch.arange(100, 160)
    a = RandomRanker(seed=3).score_matrix(brands, cands)
    assert torch.equal(a, RandomRanker(seed=3).score_matrix(brands, cands))
    assert torch.equal(a[2:3], RandomRanker(seed=3).score_matrix(brands[2:3], cands))  # one brand alone
    assert torch.equal(a[:, [7, 3]], RandomRanker(seed=3).score_matrix(brands, cands[[7, 3]]))
    assert not torch.equal(a, RandomRanker(seed=4).score_matrix(brands, cands))
    assert ((a >= 0) & (a < 1)).all()


def test_random_gets_chance_auc():
    generator = torch.Generator().manual_seed(0)
    labels = torch.rand(300, 400, generator=generator) < 0.05
    scores = RandomRanker(seed=1).score_matrix(torch.arange(300), torch.arange(1000, 1400))
    metrics = ranking_metrics(scores, labels)
    assert metrics["auc_global"] == pytest.approx(0.5, abs=0.02)
    assert metrics["auc_brand"] == pytest.approx(0.5, abs=0.02)
    assert scores.mean() == pytest.approx(0.5, abs=0.01)


def test_sbr_is_the_mean_of_the_elementwise_product():
    model = SBR({"topic": 2, "object": 1, "scene": 1, "concept": 3})  # concept not used by default
    model.attach_features({
        "object": torch.tensor([[1.0], [2.0]]),
        "scene": torch.tensor([[2.0], [0.0]]),
        "topic": torch.tensor([[3.0, 4.0], [1.0, -1.0]]),
        "concept": torch.zeros(2, 3),
    })
    # x_b = [1, 2, 3, 4], x_i = [2, 0, 1, -1]: product [2, 0, 3, -4], mean 1 / 4
    assert model.score_matrix(torch.tensor([0]), torch.tensor([1])).item() == pytest.approx(0.25)
    assert model.score_matrix(torch.tensor([0]), torch.tensor([0])).item() == pytest.approx((1 + 4 + 9 + 16) / 4)
    with pytest.raises(ValueError, match="none of"):
        SBR({"hashtag": 4})


def test_listwise_loss_on_a_hand_example():
    scores = torch.tensor([[2.0, 0.0, 0.0, 0.0], [1.0, 1.0, 0.0, 0.0]])
    labels = torch.tensor([[1, 0, 0, 0], [1, 1, 0, 0]])
    e = math.e
    first = -math.log(e**2 / (e**2 + 3))  # one positive: cross-entropy of the softmax
    second = -math.log(e / (2 * e + 2))  # two positives, half the target mass each: both terms equal
    assert listwise_loss(scores, labels).item() == pytest.approx(first + second, rel=1e-6)


def _mir(dims, **kwargs):
    torch.manual_seed(0)
    model = MirModel(dims, visual_hidden=[8, 6], embed_dim=5, dropout=0.0, **kwargs)
    model.attach_features({k: torch.randn(12, d) for k, d in dims.items()})
    return model.eval()


def test_mir_scores_are_the_mean_of_the_fused_embedding_product():
    dims = {"topic": 4, "hashtag": 3, "object": 6, "scene": 2}
    model = _mir(dims, l1=0.01)
    assert model.inputs == {"visual": ["object", "scene"], "text": ["topic", "hashtag"]}
    brands, cands = torch.tensor([0, 1]), torch.tensor([2, 3, 4])
    fb, fc = model.embed(brands), model.embed(cands)
    assert fb.shape == (2, 5)
    expected = (fb[:, None, :] * fc[None, :, :]).mean(-1)
    assert torch.allclose(model.score_matrix(brands, cands), expected, atol=1e-6)
    rows = torch.tensor([[0, 2, 3, 4]])  # (brand, positive, 2 negatives): a k = 3 bucket
    assert torch.allclose(model.row_scores(rows), expected[:1], atol=1e-6)
    terms = model.loss(rows)
    l1 = 0.01 * sum(p.abs().sum() for p in model.parameters())
    assert terms["listwise"].item() == pytest.approx(-torch.log_softmax(expected[0], 0)[0].item(), rel=1e-5)
    assert terms["loss"].item() == pytest.approx((terms["listwise"] + l1).item(), rel=1e-5)


def test_mir_standardisation_is_fitted_once_and_checkpointed():
    dims = {"topic": 4, "object": 6}
    model = _mir(dims)
    mean = model.mean_topic.clone()
    assert torch.allclose(mean, model.features_topic.mean(0))
    extended = {k: torch.cat([getattr(model, f"features_{k}"), 100 + torch.randn(5, d)]) for k, d in dims.items()}
    model.attach_features(extended)  # cold-start rows appended: the fitted standardisation stays
    assert torch.equal(model.mean_topic, mean)
    restored = MirModel(dims, visual_hidden=[8, 6], embed_dim=5, dropout=0.0)
    restored.load_state_dict(model.state_dict())
    restored.attach_features(extended)
    assert torch.equal(restored.mean_topic, mean) and torch.equal(restored.scale_object, model.scale_object)
    old = {k: v for k, v in model.state_dict().items() if not k.startswith(("mean_", "scale_", "standardization"))}
    checkpoint = {"state_dict": dict(old)}
    fresh = MirModel(dims, visual_hidden=[8, 6], embed_dim=5, dropout=0.0)
    fresh.on_load_checkpoint(checkpoint)  # a checkpoint from before: refitted at the next attach
    fresh.load_state_dict(checkpoint["state_dict"])
    fresh.attach_features(extended)
    assert torch.allclose(fresh.mean_topic, extended["topic"].mean(0))


def test_mir_z_scores_its_inputs_once_so_an_earlier_standardisation_changes_nothing(tmp_path):
    """conf/model/mir.yaml turns the data module's standardisation off: MIR's own z-score (over all
    accounts) undoes any per-column affine map, so standardising first would only repeat the work."""
    dims = {"topic": 4, "object": 6}
    raw = {k: 3 + 2 * torch.randn(12, d) for k, d in dims.items()}
    shifted = {k: (x - x[:8].mean(0)) / x[:8].std(0) for k, x in raw.items()}  # z-scored on 8 "training" rows
    scores = []
    for features in (raw, shifted):
        torch.manual_seed(0)
        model = MirModel(dims, visual_hidden=[8, 6], embed_dim=5, dropout=0.0)
        model.attach_features(features)
        scores.append(model.eval().score_matrix(torch.arange(3), torch.arange(3, 12)))
    assert torch.allclose(scores[0], scores[1], atol=1e-5)
    cfg = compose_config("train", tmp_path, ["model=mir"])
    assert cfg.model.standardize is True and cfg.data.standardize is False


def test_mir_keeps_one_side_when_the_other_is_missing():
    model = _mir({"topic": 4})  # the release: no influencer image vectors
    assert list(model.inputs) == ["text"]
    assert model.score_matrix(torch.tensor([0]), torch.tensor([1, 2])).shape == (1, 2)
    with pytest.raises(ValueError, match="neither"):
        MirModel({"concept": 3})


def _training_data():
    # accounts 0, 1 brands; 2..5 influencers; influencer 3 linked to both brands
    return TrainingData(brands=torch.tensor([0, 0, 1, 1]), positives=torch.tensor([2, 3, 3, 4]),
                        pool=torch.tensor([2, 3, 4, 5]), category=torch.full((6,), -1), num_accounts=6,
                        triplet_sets={})


def test_popularity_counts_training_brands_without_a_named_column():
    assert training_degree(torch.tensor([0, 0, 1]), torch.tensor([2, 2, 2]), 4).tolist() == [0, 0, 2, 0]
    model = PopularityRanker({"interaction": 2})
    model.attach_features({"interaction": torch.randn(6, 2)})
    model.prepare(None, _training_data())  # no store: no column names
    assert model.source_used == "degree"
    scores = model.score_matrix(torch.tensor([0, 1]), torch.tensor([2, 3, 4, 5]))
    assert scores.tolist() == [[1, 2, 1, 0], [1, 2, 1, 0]]  # the same ranking for every brand


class _StoreWithColumns:
    def record(self, name):
        return {"config": {"features": ["log_followers", "engagement"]}}


def test_popularity_uses_followers_or_engagement_when_the_store_names_them():
    followers = torch.tensor([[0.0, 9.0], [0.0, 9.0], [3.0, 1.0], [1.0, 2.0], [2.0, 3.0], [5.0, 0.0]])
    model = PopularityRanker({"interaction": 2}, column="engagement")
    model.attach_features({"interaction": followers})
    model.prepare(_StoreWithColumns(), _training_data())
    assert model.source_used == "feature:interaction.engagement"
    assert model.score_matrix(torch.tensor([0]), torch.tensor([2, 3, 4, 5])).tolist() == [[1, 2, 3, 0]]
    forced = PopularityRanker({"interaction": 2}, source="feature", column="likes")
    forced.attach_features({"interaction": followers})
    with pytest.raises(ValueError, match="no column 'likes'"):
        forced.prepare(_StoreWithColumns(), _training_data())


def test_bamir_all_uses_all_six_modalities(tmp_path):
    cfg = compose_config("train", tmp_path, ["model=bamir_all"])
    dims = {"topic": 19, "object": 8, "scene": 4, "concept": 16, "interaction": 6, "hashtag": 8}
    model = instantiate(cfg.model, input_dims=dims)
    assert model.modalities == sorted(dims)
    assert list(model.encoders) == ["content", "concept", "social"]
    without = instantiate(cfg.model, input_dims={k: v for k, v in dims.items() if k != "interaction"})
    assert list(without.encoders["social"]) == ["hashtag"]


def test_mir_config_trains_listwise_on_k_buckets(tmp_path):
    cfg = compose_config("train", tmp_path, ["model=mir"])
    assert cfg.sampler._target_.endswith("KBucketSampler") and cfg.sampler.k == 4
    assert cfg.model.l1 == 0.001 and cfg.model.score_scale == cfg.model.embed_dim
    paper = compose_config("train", tmp_path, ["model=mir_paper"])
    assert paper.model.optimizer._target_ == "torch.optim.SGD" and paper.model.optimizer.lr == 0.002
    assert list(paper.model.visual_hidden) == [4096, 512] and paper.model.embed_dim == 512
    assert paper.model.score_scale == 1.0
