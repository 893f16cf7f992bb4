"""The synthetic generator: clean and defective tiny datasets, determinism, split and
count properties, knowledge files, ensure/regenerate logic, presets and the Hydra app."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from omegaconf import OmegaConf

from bamir.data import schema
from bamir.data.schema import RawDataset, read_planted_affinity
from bamir.data.synthetic import DEFAULTS, config_hash, ensure_synthetic, merge_config, synthesize
from bamir.data.synthetic.vocabulary import SPAM_TAGS
from bamir.data.validate import validate_dataset

TINY = {"name": "tiny", "brands_per_category": 2, "influencers": 250, "posts_per_account": 6, "test_brands": 6,
        "progress": False}
DEFECTS = {"corrupt_images": 0.01, "missing_images": 0.01, "no_image": 0.02, "empty_biography": 0.04,
           "non_english_captions": 0.02, "emoji_captions": 0.02, "duplicate_posts": 0.02}
#: planted defect kind -> the validator code that must report it
DEFECT_CODES = {"corrupt_images": "image_unreadable", "missing_images": "image_missing", "no_image": "no_image",
                "empty_biography": "empty_biography", "non_english_captions": "caption_non_english",
                "emoji_captions": "caption_no_text", "duplicate_posts": "duplicate_post"}


@pytest.fixture(scope="session")
def tiny(tmp_path_factory) -> Path:
    return synthesize(tmp_path_factory.mktemp("synth") / "tiny", TINY, seed=0)


@pytest.fixture(scope="session")
def tiny_ds(tiny) -> RawDataset:
    return RawDataset.load(tiny)


def _digests(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file()}


def test_tiny_validates_clean(tiny):
    report = validate_dataset(tiny)
    assert report.issues == [], report.format()


@pytest.mark.slow
def test_same_seed_byte_identical_any_workers(tiny, tmp_path):
    again = synthesize(tmp_path / "again", {**TINY, "workers": 2}, seed=0)
    assert _digests(again) == _digests(tiny)


def test_other_seed_differs(tiny, tmp_path):
    other = synthesize(tmp_path / "other", {**TINY, "influencers": 240}, seed=1)
    a, b = _digests(tiny), _digests(other)
    for table in ("accounts.parquet", "posts.parquet", "pairs.parquet", "splits.json"):
        assert a[table] != b[table]
    assert yaml.safe_load((other / "dataset.yaml").read_text())["counts"]["influencers"] == 240


def test_counts_and_structure(tiny, tiny_ds):
    acc, posts, pairs = tiny_ds.accounts, tiny_ds.posts, tiny_ds.pairs
    info = tiny_ds.info
    brands = acc[acc["kind"] == "brand"]
    infl = acc[acc["kind"] == "influencer"]
    assert len(brands) == 24 and len(infl) == 250
    assert brands["category"].value_counts().to_dict() == {c: 2 for c in schema.CATEGORIES}
    assert (infl["category"] == "").all()
    assert infl["followers"].between(5_000, 100_000).all()
    assert posts.groupby("account_id").size().eq(6).all() and len(posts) == 274 * 6
    assert info["counts"] == {"accounts": 274, "brands": 24, "influencers": 250, "posts": 1644, "images": 1644,
                              "pairs": len(pairs)}
    assert info["categories"] == list(schema.CATEGORIES)
    assert pd.to_datetime(posts["timestamp"], utc=True, format="ISO8601").max() <= pd.Timestamp("2019-06-01", tz="UTC")
    assert (posts["likes"] >= 0).all() and (posts["comments"] >= 0).all()
    assert (posts["comments"] <= posts["likes"]).mean() > 0.95
    assert acc["biography"].str.len().gt(0).all() and acc["business_category"].str.len().gt(0).all()
    assert all((tiny / p).is_file() for p in posts["image"])
    affinity = read_planted_affinity(tiny)
    assert affinity.shape == (24, 250) and affinity.dtype == np.float32


def test_positives_and_split(tiny_ds):
    pairs = tiny_ds.pairs
    per_brand = pairs.groupby("brand").size()
    assert len(per_brand) == 24 and per_brand.between(3, 31).all()
    assert abs(per_brand.mean() - 11.7) < 0.1
    per_infl = pairs.groupby("influencer").size()
    assert len(per_infl) == 250  # every influencer was recruited by some brand
    assert 0.03 <= (per_infl > 1).mean() <= 0.25
    assert not pairs.duplicated(["brand", "influencer"]).any()
    assert pairs["score"].between(0, 1).all()
    split = tiny_ds.splits["discover"]
    train, test = set(split["train_brands"]), set(split["test_brands"])
    assert len(test) == 6 and len(train) == 18 and not train & test
    assert train | test == set(tiny_ds.accounts.loc[tiny_ds.accounts["kind"] == "brand", "account_id"])
    assert set(split["test_candidates"]) == set(pairs.loc[pairs["brand"].isin(test), "influencer"])
    category = tiny_ds.accounts.set_index("account_id")["category"]
    assert len({category[b] for b in test}) == 6  # spread over categories
    assert all((category[list(train)] == c).any() for c in schema.CATEGORIES)


def test_captions_hashtags_mentions(tiny_ds):
    acc, posts = tiny_ds.accounts, tiny_ds.posts
    text = " ".join(posts["caption"])
    tags = re.findall(r"#(\w+)", text.lower())
    assert len(tags) > len(posts) and any(t in SPAM_TAGS for t in tags)
    kind = acc.set_index("account_id")["kind"]
    user_kind = dict(zip(acc["username"], acc["kind"]))
    brand_posts = posts[posts["account_id"].map(kind) == "brand"]
    infl_posts = posts[posts["account_id"].map(kind) == "influencer"]
    mentioned = [m for c in brand_posts["caption"] for m in re.findall(r"@([\w.]+)", c)]
    assert mentioned and any(user_kind.get(m) == "influencer" for m in mentioned)
    # no leak: influencers never tag brands (influencer_brand = 0), nor use brand hashtags
    brand_users = set(acc.loc[acc["kind"] == "brand", "username"])
    for caption in infl_posts["caption"]:
        assert not brand_users & set(re.findall(r"[@#]([\w.]+)", caption))


def test_knowledge_files(tiny):
    rows = (tiny / "knowledge/conceptnet.csv").read_text().splitlines()
    cols = [r.split("\t") for r in rows]
    assert all(len(c) == 5 for c in cols)
    assert all(c[0] == f"/a/[{c[1]}/,{c[2]}/,{c[3]}/]" for c in cols)
    assert {c[1] for c in cols} >= {"/r/IsA", "/r/RelatedTo", "/r/Synonym"}
    assert any(c[2].startswith("/c/fr/") for c in cols) and any(c[3].startswith("/c/fr/") for c in cols)
    assert all(isinstance(json.loads(c[4])["weight"], float) for c in cols)
    concepts = pd.read_csv(tiny / "knowledge/concepts.csv")["concept"]
    assert set(schema.CATEGORIES) <= set(concepts) and concepts.is_unique
    related = pd.read_csv(tiny / "knowledge/related_hashtags.csv")
    assert list(related.columns) == ["concept", "hashtag", "weight"]
    assert set(related["concept"]) <= set(concepts) and not related["hashtag"].str.startswith("#").any()
    # biography words reach the concept set through edges
    starts = {c[2].split("/")[3] for c in cols if c[2].startswith("/c/en/")}
    assert {"runner", "barista", "photographer"} <= starts


@pytest.mark.slow
def test_defects_are_exactly_what_the_validator_reports(tmp_path):
    root = synthesize(tmp_path / "defects", {**TINY, "defects": DEFECTS}, seed=3)
    planted = json.loads((root / schema.DEFECTS_FILE).read_text())
    report = validate_dataset(root)
    acc = schema.read_table(root, "accounts")
    posts = schema.read_table(root, "posts")
    id_of = {"accounts.parquet": acc["account_id"], "posts.parquet": posts["post_id"]}
    found: dict[str, set[str]] = {}
    for issue in report.issues:
        found.setdefault(issue.code, set()).add(id_of[issue.file].iloc[issue.row])
    expected = {DEFECT_CODES[kind]: set(ids) for kind, ids in planted.items() if ids}
    assert found == expected
    for kind, rate in DEFECTS.items():
        assert len(planted[kind]) > 0, kind
    assert report.codes("error") == {"image_unreadable": len(planted["corrupt_images"]),
                                     "image_missing": len(planted["missing_images"])}
    info = yaml.safe_load((root / "dataset.yaml").read_text())
    assert info["counts"]["images"] == 1644 - len(planted["no_image"])


@pytest.mark.slow
def test_ensure_synthetic_reuses_and_regenerates(tiny, tmp_path):
    stamp = (tiny / "dataset.yaml").stat().st_mtime_ns
    assert ensure_synthetic(tiny, {**TINY, "workers": 3, "progress": True}, 0) == tiny  # same output config
    assert (tiny / "dataset.yaml").stat().st_mtime_ns == stamp
    root = tmp_path / "ens"
    ensure_synthetic(root, {**TINY, "influencers": 230}, 0)
    first = yaml.safe_load((root / "dataset.yaml").read_text())["provenance"]["config_hash"]
    assert first == config_hash({**TINY, "influencers": 230}, 0)
    ensure_synthetic(root, {**TINY, "influencers": 230}, 5)
    info = yaml.safe_load((root / "dataset.yaml").read_text())
    assert info["provenance"]["seed"] == 5 and info["provenance"]["config_hash"] != first
    assert not list(tmp_path.glob(".ens.tmp-*"))


def test_never_replaces_foreign_folders(tmp_path):
    foreign = tmp_path / "real"
    foreign.mkdir()
    (foreign / "dataset.yaml").write_text("name: my real data\nschema_version: 1\n")
    with pytest.raises(FileExistsError):
        ensure_synthetic(foreign, TINY, 0)
    with pytest.raises(FileExistsError):
        synthesize(foreign, TINY, 0, overwrite=True)
    assert (foreign / "dataset.yaml").read_text().startswith("name: my real data")


def test_more_positives_than_influencers_is_refused_clearly(tmp_path):
    few = {**TINY, "influencers": 20, "posts_per_account": 2, "test_brands": 2}
    with pytest.raises(ValueError, match=r"only 20 influencers: lower max_positives \(now 31\)"):
        synthesize(tmp_path / "few", few, 0)
    # a pool smaller than the default brand's top-k is fine once every brand's positives fit in it
    small = synthesize(tmp_path / "ok", {**few, "max_positives": 8, "positives_per_brand": 4}, 0)
    pairs = RawDataset.load(small).pairs
    assert pairs.groupby("brand").size().max() <= 8 and pairs["influencer"].nunique() == 20


def test_config_merging():
    assert merge_config(None) == DEFAULTS
    assert merge_config({"signal": {"image": 0.2}})["signal"] == {**DEFAULTS["signal"], "image": 0.2}
    with pytest.raises(KeyError):
        merge_config({"signal": {"colour": 1}})
    assert config_hash({"workers": 4}, 0) == config_hash(None, 0) != config_hash(None, 1)


def _compose(overrides):
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path="../../conf"):
        return compose(config_name="synthesize", overrides=overrides)


def test_presets_compose():
    small = OmegaConf.to_container(_compose([]).synthetic)
    assert small == DEFAULTS  # the Python defaults are conf/synthetic/small.yaml
    tiny = OmegaConf.to_container(_compose(["synthetic=tiny"]).synthetic)
    assert merge_config(tiny) == merge_config(TINY | {"progress": True})
    paper = OmegaConf.to_container(_compose(["synthetic=paper"]).synthetic)
    assert (paper["brands_per_category"] * 12, paper["influencers"], paper["posts_per_account"],
            paper["test_brands"]) == (360, 3748, 50, 74)
    assert round(paper["positives_per_brand"] * 360) == 4209


def test_app_runs_on_existing_dataset(tiny, capsys):
    from bamir.cli.synthesize import _alias, run

    assert _alias("preset=tiny") == "synthetic=tiny" and _alias("seed=3") == "seed=3"
    cfg = _compose(["synthetic=tiny", f"out={tiny}", "seed=0", "synthetic.progress=false"])
    stamp = (tiny / "dataset.yaml").stat().st_mtime_ns
    assert run(cfg) == 0
    assert (tiny / "dataset.yaml").stat().st_mtime_ns == stamp
    out = capsys.readouterr().out
    assert "0 errors, 0 warnings" in out and "preset tiny" in out


def test_calibration_oracle_above_unlearned(tiny):
    from bamir.data.synthetic.calibration import reference_rankings

    results = reference_rankings(tiny)
    oracle = results.pop("oracle (planted affinity)")
    observable = results.pop("oracle, brands' hidden reach unknown")
    assert oracle["AUC"] > 0.85 and oracle["AUC"] - 0.05 < observable["AUC"] <= oracle["AUC"] + 0.01
    for name, metrics in results.items():
        assert metrics["AUC"] < observable["AUC"] - 0.05, name


def test_the_expected_reach_affinity_replaces_only_the_hidden_reach():
    """The reach term is affine in each brand's rho_b (T[b, i] = rho_b u_i + c); replacing rho_b by
    E[rho_b | followers_b] moves each brand's row along u by w_reach (E - rho_b), nothing else."""
    from bamir.data.synthetic.generator import _stream
    from bamir.data.synthetic.world import expected_reach_affinity, make_world

    cfg = merge_config(TINY)
    world = make_world(cfg, _stream(0, 1))
    rho, term = world.brands.reach, world.terms["reach"].astype(np.float64)
    u = (term[0] - term[1]) / (rho[0] - rho[1])
    c = term - rho[:, None] * u[None, :]
    assert np.allclose(c, c[0], atol=1e-4), "the z-scored reach term is affine in rho_b"
    log_f = np.log10(world.brands.followers.astype(np.float64))
    expected = 0.6 * (log_f - log_f.mean()) / log_f.std()
    changed = expected_reach_affinity(world, cfg["affinity"])
    move = float(cfg["affinity"]["reach"]) * (expected - rho)[:, None] * u[None, :]
    assert np.allclose(changed, world.affinity + move, atol=1e-4)
    assert not np.allclose(changed, world.affinity, atol=1e-3)  # the hidden part matters somewhere


def test_brand_affinity_recomputes_the_planted_affinity_and_swaps_only_the_given_latents():
    """With nothing replaced it is the planted affinity (the world's own z-scores); a brand given another
    brand's style differs by exactly the style term's difference, w_style (z_style[b2] - z_style[b])."""
    from bamir.data.synthetic.generator import _stream
    from bamir.data.synthetic.world import brand_affinity, make_world

    cfg = merge_config(TINY)
    world = make_world(cfg, _stream(0, 1))
    weights = cfg["affinity"]
    assert np.allclose(brand_affinity(world, weights), world.affinity, atol=1e-5)
    brands = np.array([0, 1])
    swapped = brand_affinity(world, weights, brands, style=world.brands.style[[1, 0]])
    style = world.terms["style"].astype(np.float64)
    move = float(weights["style"]) * (style[[1, 0]] - style[brands])
    assert np.allclose(swapped, world.affinity[brands] + move, atol=1e-4)
    assert not np.allclose(swapped, world.affinity[brands], atol=1e-2)
    with pytest.raises(ValueError, match="no brand latent \\['followers'\\]"):
        brand_affinity(world, weights, followers=world.brands.followers)


def test_the_drawn_world_is_the_one_a_dataset_was_written_from(tiny, tmp_path):
    from bamir.data.synthetic.generator import drawn_world

    world, cfg = drawn_world(tiny)
    assert np.array_equal(world.affinity, read_planted_affinity(tiny)) and cfg["influencers"] == TINY["influencers"]
    assert drawn_world(tmp_path) is None  # not a dataset of the generator
