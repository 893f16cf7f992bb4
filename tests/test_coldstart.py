"""New brands (bamir.coldstart, bamir-rank brand_posts=...): features from the fitted stages, never refitted.

Runs the tiny synthetic chain (tests/helpers/rank.py): raw data, a store prepared with cheap
stages, a BAMIR checkpoint trained for two epochs. A "new" brand is an existing test brand's
posts under a new id and username, so its features must be the brand's own.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch
from omegaconf import open_dict

from bamir.coldstart import ColdStartError, encode_new_accounts, load_brand_folder
from bamir.features.interaction import FEATURES
from bamir.store import FeatureStore
from tests.helpers.rank import NEW_BRAND_ID, NEW_BRAND_NAME, new_brand_folder, rank_overrides, tiny_store, trained_run
from tests.helpers.compose import compose_config


@pytest.fixture(scope="module")
def chain(tmp_path_factory):
    base = tmp_path_factory.getbasetemp() / "rank_tiny"
    base.mkdir(exist_ok=True)
    run = trained_run(base)
    store = FeatureStore(tiny_store(base))
    like = store.splits["discover"]["test_brands"][0]
    return {"base": base, "run": run, "store": store, "like": like, "folder": new_brand_folder(base, like)}


def test_new_brand_features_are_the_fitted_stages_output(chain):
    store, like = chain["store"], chain["like"]
    raw = load_brand_folder(chain["folder"])
    assert raw.accounts["account_id"].tolist() == [NEW_BRAND_ID] and len(raw.posts) > 0
    new = encode_new_accounts(store, raw, store.modalities)
    row = store.account_ids.index(like)
    for modality in store.modalities:
        mine, theirs = new.features[modality][0], store.load_modality(modality).features[row]
        if modality == "interaction":  # nobody in the data mentions the new username yet
            differ = {FEATURES[j] for j in torch.nonzero(~torch.isclose(mine, theirs, atol=1e-4)).flatten().tolist()}
            assert differ <= {"mentioned_in", "brands_in"}, differ
        elif modality == "topic":  # LDA inference starts from a random gamma
            assert torch.allclose(mine, theirs, atol=5e-3), modality
        else:
            assert torch.allclose(mine, theirs, atol=1e-5), modality
        assert bool(new.present[modality][0])


def test_rank_a_new_brand_like_the_known_one(chain, tmp_path, capsys):
    from bamir.ranking.app import rank

    def run(where, *overrides):
        cfg = compose_config("rank", where, [*rank_overrides(chain["store"].root), f"ckpt_path={chain['run'] / 'checkpoints' / 'last.ckpt'}",
                                             "search.device=cpu", "top_k=10", *overrides], fast=False)
        with open_dict(cfg):
            cfg.paths.data_dir = str(chain["base"] / "data")
        return rank(cfg)

    known = run(tmp_path / "known", f"brand={chain['like']}", "report.html=false")
    new = run(tmp_path / "new", f"brand_posts={chain['folder']}", "brand_category=airline")
    out = capsys.readouterr().out
    assert f"## {NEW_BRAND_NAME} (airline, new brand)" in out
    brand = new["brands"][0]
    assert brand["cold_start"] and brand["id"] == NEW_BRAND_ID and brand["followers"] > 0
    a = np.array([t["score"] for t in known["brands"][0]["top"]])
    b = np.array([t["score"] for t in brand["top"]])
    assert np.abs(a - b).max() < 0.01 * np.abs(a).max()  # LDA's inference noise, nothing more
    overlap = {t["id"] for t in known["brands"][0]["top"]} & {t["id"] for t in brand["top"]}
    assert len(overlap) >= 8  # the same list, up to near-ties reordered by LDA's inference noise
    assert all(t["followers"] and t["engagement"] is not None for t in brand["top"])  # raw data found
    html = (tmp_path / "new" / "run" / "report.html").read_text()
    assert "new brand" in html and NEW_BRAND_NAME in html and "data:image/jpeg;base64," in html


def test_instaloader_download_as_brand_posts(tmp_path):
    from PIL import Image

    profile = tmp_path / "download" / "acmefoods"
    profile.mkdir(parents=True)
    (profile / "acmefoods_123.json").write_text(json.dumps({
        "node": {"username": "acmefoods", "biography": "Fresh bread daily", "edge_followed_by": {"count": 5400},
                 "business_category_name": "Bakery"}, "instaloader": {"node_type": "Profile"}}))
    for k, stamp in enumerate(["2019-05-01_10-00-00_UTC", "2019-05-03_12-30-00_UTC"]):
        (profile / f"{stamp}.json").write_text(json.dumps({
            "node": {"shortcode": f"sc{k}", "edge_media_to_caption": {"edges": [{"node": {"text": f"bread #bakery {k}"}}]},
                     "edge_media_preview_like": {"count": 10 + k}, "edge_media_to_comment": {"count": k},
                     "taken_at_timestamp": 1556704800 + k * 3600}, "instaloader": {"node_type": "Post"}}))
        Image.new("RGB", (20, 20), (200, 100, 50)).save(profile / f"{stamp}.jpg")
    raw = load_brand_folder(tmp_path / "download", category="food")
    assert raw.accounts.iloc[0][["account_id", "kind", "category", "followers"]].tolist() == ["acmefoods", "brand", "food", 5400]
    assert len(raw.posts) == 2 and all((raw.root / p).is_file() for p in raw.posts["image"])
    with pytest.raises(ColdStartError, match="neither the raw layout"):
        load_brand_folder(tmp_path)  # an empty-looking folder (only a download folder of another shape)


def test_refusals(chain, tmp_path):
    store = chain["store"]
    raw = load_brand_folder(chain["folder"])
    # an id that the store already has
    clash = load_brand_folder(chain["folder"])
    clash.accounts["account_id"] = chain["like"]
    clash.posts["account_id"] = chain["like"]
    with pytest.raises(ColdStartError, match="already in the store"):
        encode_new_accounts(store, clash, ["topic"])
    # fitted files changed after preparation (on a copy of the store)
    copy = tmp_path / "store"
    shutil.copytree(store.root, copy)
    copied = FeatureStore(copy)
    workdir = copy / copied.manifest["artifacts"]["hashtag"]["workdir"]
    (workdir / "hashtag_vocab.json").write_text("{}")
    with pytest.raises(ColdStartError, match="changed since preparation; rerun bamir-prepare"):
        encode_new_accounts(copied, raw, ["hashtag"])
    with pytest.raises(ColdStartError, match="expected one brand"):
        two = tmp_path / "two"
        two.mkdir()
        (two / "accounts.csv").write_text("account_id,username,kind\na,a,brand\nb,b,brand\n")
        (two / "posts.csv").write_text("post_id,account_id,caption\np,a,hi\n")
        load_brand_folder(two)


def test_new_rows_follow_the_data_modules_transform(chain):
    """Whatever the data module does to the store's matrices (e.g. z-scores them), new rows get the same."""
    import inspect

    from bamir.coldstart import to_model_space
    from bamir.datamodule import RankingDataModule
    from bamir.samplers import UniformSampler

    params = inspect.signature(RankingDataModule).parameters
    for standardize in ((False, True) if "standardize" in params else (None,)):
        kwargs = {} if standardize is None else {"standardize": standardize}
        dm = RankingDataModule(store=str(chain["store"].root), sampler=UniformSampler(), **kwargs)
        dm.setup()
        new = to_model_space(dm, encode_new_accounts(dm.store, load_brand_folder(chain["folder"]), ["hashtag", "concept"]))
        row = dm.row_of[chain["like"]]
        for modality in ("hashtag", "concept"):
            assert torch.allclose(new.features[modality][0], dm.features[modality][row], atol=1e-4), (modality, standardize)


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["cosine", "sbr", "mir", "popularity", "random", "residual_cosine", "neighbour_cosine"])
def test_every_ranker_kind_ranks_a_new_brand_through_the_interface(chain, kind, tmp_path):
    """Each ranker is trained (or fitted) on the tiny store, then ranks a known test brand and the same
    brand's posts as a new brand: cold start encodes the ranker's ``modalities`` with the fitted stages,
    and the ranking app searches its ``branch_embeddings`` (or its ``branch_scores`` for random)."""
    from bamir.ranking.app import rank
    from bamir.train import train

    store = chain["store"].root
    extra = {"mir": ["model.visual_hidden=[32,16]", "model.embed_dim=16"],  # not the interaction counts: nobody
             "cosine": ["model.modalities=[topic,object,scene,concept,hashtag]"]}.get(kind, [])  # mentions the new id
    cfg = compose_config("train", tmp_path / "train", [
        *rank_overrides(store), f"model={kind}", "logger=csv", "trainer=cpu", "trainer.max_epochs=1",
        "trainer.enable_progress_bar=false", "trainer.enable_model_summary=false", *extra], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(chain["base"] / "data")
    train(cfg)
    ckpt = tmp_path / "train" / "run" / "checkpoints" / "last.ckpt"

    def run(where, *overrides):
        cfg = compose_config("rank", where, [*rank_overrides(store), f"ckpt_path={ckpt}", "search.device=cpu",
                                             "top_k=10", "report.html=false", "print_brands=0", *overrides], fast=False)
        with open_dict(cfg):
            cfg.paths.data_dir = str(chain["base"] / "data")
        return rank(cfg)

    known = run(tmp_path / "known", f"brand={chain['like']}")
    new = run(tmp_path / "new", f"brand_posts={chain['folder']}", "brand_category=airline")
    assert new["search"]["method"] == ("branch_scores" if kind == "random" else "exact")
    a = np.array([t["score"] for t in known["brands"][0]["top"]])
    b = np.array([t["score"] for t in new["brands"][0]["top"]])
    assert len(b) == 10 and np.isfinite(b).all() and new["brands"][0]["cold_start"]
    if kind != "random":  # the new brand's features are the known brand's (bar LDA's inference noise)
        assert np.abs(a - b).max() <= 0.01 * np.abs(a).max() + 1e-6, kind


def test_every_stage_encodes_its_own_new_accounts():
    """Cold start asks the stages (``encode_new``), no registry of its own: every modality a stage writes
    names that stage, and the stage implements the contract's ``encode_new``."""
    from bamir.coldstart import STAGE_CLASSES, _stage_class
    from bamir.features.base import Stage

    for modality in STAGE_CLASSES:
        cls = _stage_class(modality)
        assert modality in cls.modalities
        assert set(Stage.__dict__["encode_new"].__func__.__code__.co_varnames[:7]) <= \
            set(cls.encode_new.__func__.__code__.co_varnames), cls
