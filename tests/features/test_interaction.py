"""Interaction modality: engagement, rhythm, followers, mention degrees; standardised on training accounts."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from bamir.data.schema import RawDataset
from bamir.features.common import train_accounts
from bamir.features.interaction import FEATURES, InteractionStage, raw_interaction_features
from tests.helpers.prep import make_raw

C = {name: j for j, name in enumerate(FEATURES)}


def _raw() -> RawDataset:
    accounts = pd.DataFrame({
        "account_id": ["B1", "B2", "I1", "I2"],
        "username": ["brand_one", "Brand_Two", "inf_one", "inf_two"],
        "kind": ["brand", "brand", "influencer", "influencer"],
        "category": ["food", "shoes", "", ""],
        "biography": [""] * 4, "business_category": [""] * 4,
        "followers": [10_000, 5_000, 1_000, 0],
    })
    posts = pd.DataFrame({
        "post_id": [f"p{k}" for k in range(6)],
        "account_id": ["I1", "I1", "I1", "B2", "B1", "I2"],
        "timestamp": ["2020-01-01T00:00:00Z", "2020-01-02T00:00:00Z", "2020-01-04T00:00:00Z",
                      "2020-01-01T00:00:00Z", "2020-01-01T00:00:00Z", "not a time"],
        "caption": ["hello @Brand_One and @inf_two", "with @brand_two", "plain @unknown_handle",
                    "our star @inf_one", "hi @inf_two", "me@mail.com @inf_one"],
        "image": [""] * 6,
        "likes": [100, 200, 300, 50, 10, 5],
        "comments": [10, 0, 20, 5, 0, 1],
    })
    pairs = pd.DataFrame({"brand": ["B1", "B2"], "influencer": ["I1", "I1"]})
    splits = {"discover": {"train_brands": ["B1"], "test_brands": ["B2"], "test_candidates": ["I1", "I2"]}}
    return RawDataset(Path("."), {}, accounts, posts, pairs, splits)


def test_raw_features_by_hand():
    raw = _raw()
    accounts = ["B1", "B2", "I1", "I2"]
    train = train_accounts(raw)
    assert train == {"B1", "I1"}  # I1 is a positive of the train brand B1
    x = raw_interaction_features(raw, accounts, train)
    i1 = x[2]
    assert i1[C["log_followers"]] == pytest.approx(math.log1p(1000))
    assert i1[C["log_posts"]] == pytest.approx(math.log1p(3))
    e = np.array([110, 200, 320]) / 1000
    assert i1[C["engagement"]] == pytest.approx(math.log1p(100 * e.mean()))
    assert i1[C["engagement_sd"]] == pytest.approx(math.log1p(100 * e.std()))
    assert i1[C["likes_cv"]] == pytest.approx(np.std([100, 200, 300]) / 200)
    assert i1[C["comment_ratio"]] == pytest.approx(30 / 600)
    assert i1[C["posts_per_week"]] == pytest.approx(math.log1p(3 / 1.0))  # span 3 days -> 1 week floor
    assert i1[C["gap_median"]] == pytest.approx(math.log1p(36.0))  # gaps 24 h and 48 h
    assert i1[C["gap_cv"]] == pytest.approx(12 / 36)
    assert i1[C["mentions_per_post"]] == pytest.approx(4 / 3)
    # I1 mentions B1, I2 and B2; B2 is a held-out (test) brand, so that edge does not count for I1
    assert i1[C["mentions_out"]] == pytest.approx(math.log1p(2))
    assert i1[C["brands_out"]] == pytest.approx(math.log1p(1))
    # I1 is mentioned by B2 (held out: ignored) and by I2 (the e-mail is no mention)
    assert i1[C["mentioned_in"]] == pytest.approx(math.log1p(1))
    assert i1[C["brands_in"]] == 0
    # the held-out brand's own mention of I1 still counts for the brand
    assert x[1][C["mentions_out"]] == pytest.approx(math.log1p(1))
    # I2: mentioned by B1 (a training brand) and by I1
    assert x[3][C["mentioned_in"]] == pytest.approx(math.log1p(2))
    assert x[3][C["brands_in"]] == pytest.approx(math.log1p(1))
    # zero followers and an unparsable timestamp do not produce NaN
    assert np.isfinite(x).all()
    assert x[3][C["gap_median"]] == 0 and x[3][C["posts_per_week"]] == 0


def test_stage_standardises_on_training_accounts(tmp_path):
    raw = RawDataset.load(make_raw(tmp_path / "raw"))
    accounts = raw.accounts["account_id"].tolist()
    train = train_accounts(raw)
    out = InteractionStage(clip=None).run(raw, accounts, train, tmp_path / "work")["interaction"]
    assert out.features.shape == (len(accounts), len(FEATURES))
    rows = torch.tensor([a in train for a in accounts])
    tr = out.features[rows].double()
    varying = tr.std(0, unbiased=False) > 0
    assert torch.allclose(tr.mean(0), torch.zeros(len(FEATURES), dtype=torch.float64), atol=1e-5)
    assert torch.allclose(tr.std(0, unbiased=False)[varying], torch.ones(int(varying.sum()), dtype=torch.float64), atol=1e-4)
    assert (tmp_path / "work" / "interaction_scaler.json").is_file()
    clipped = InteractionStage(clip=0.5).run(raw, accounts, train, tmp_path / "w2")["interaction"].features
    assert clipped.abs().max() <= 0.5 + 1e-6
    raw_values = InteractionStage(standardise=False).run(raw, accounts, train, tmp_path / "w3")["interaction"].features
    assert torch.allclose(raw_values, torch.from_numpy(raw_interaction_features(raw, accounts, train)).float())
