"""Hashtag modality: spam-filtered TF-IDF + truncated SVD fitted on the training accounts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from bamir.data.schema import RawDataset
from bamir.features.common import train_accounts
from bamir.features.hashtag import HashtagStage, load_hashtag_model
from bamir.features.hashtags import count_hashtags, parse_captions
from tests.helpers.prep import make_raw


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> RawDataset:
    return RawDataset.load(make_raw(tmp_path_factory.mktemp("raw")))


def test_stage_fits_on_training_accounts(raw, tmp_path):
    accounts = raw.accounts["account_id"].tolist()
    train = train_accounts(raw)
    out = HashtagStage(dim=4, min_df=1).run(raw, accounts, train, tmp_path)["hashtag"]
    model = load_hashtag_model(tmp_path)
    # travel tags are used only by the held-out side; like4like is spam
    assert set(model.vocab) == {"fashion", "ootd", "style", "foodie", "yummy", "recipe"}
    assert out.features.shape == (16, 4)
    norms = out.features.norm(dim=1)
    assert torch.allclose(norms[out.present], torch.ones(int(out.present.sum())), atol=1e-5)
    travel = [accounts.index(a) for a in ("b2", "i6", "i7", "i8")]
    assert not out.present[travel].any() and torch.equal(out.features[travel], torch.zeros(4, 4))
    assert out.skipped["accounts_without_kept_hashtags"] == 4
    assert out.skipped["spam_tag_uses"] == 16  # every account uses #like4like
    assert out.counts["vocabulary"] == 6
    # the saved model encodes an account's counts into the same vector
    per = count_hashtags(parse_captions(raw.posts), accounts)
    again, present = model.transform_counts([dict(per[a]) for a in accounts])
    assert torch.allclose(again, out.features, atol=1e-6) and torch.equal(present, out.present)
    # fashion and food accounts land in different directions
    f, g = out.features[accounts.index("i0")], out.features[accounts.index("i3")]
    assert float(f @ out.features[accounts.index("i1")]) > 0.9 > float(f @ g)


def test_tfidf_formula_and_padding(raw, tmp_path):
    stage = HashtagStage(dim=16, min_df=1, sublinear_tf=True, normalize=False)
    counts = [{"a": 1, "b": 3}, {"a": 2}, {"c": 1}, {"z": 5}]
    model = stage.fit(counts, np.array([True, True, True, False]))
    assert model.vocab == ["a", "b", "c"]  # 'z' only in a non-training row
    # idf = log((1 + n) / (1 + df)) + 1 with n = 3 training rows
    idf = {"a": np.log(4 / 3) + 1, "b": np.log(4 / 2) + 1, "c": np.log(4 / 2) + 1}
    x = model.tfidf(counts[:1]).toarray()[0]
    expected = np.array([1.0 * idf["a"], (1 + np.log(3)) * idf["b"], 0.0])
    assert np.allclose(x, expected / np.linalg.norm(expected))
    feats, present = model.transform_counts(counts)
    assert feats.shape == (4, 16)  # vocabulary of 3 -> 2 SVD components, zero-padded to 16
    assert torch.equal(feats[:, 2:], torch.zeros(4, 14))
    assert present.tolist() == [True, True, True, False]


def test_min_df_and_config(raw):
    stage = HashtagStage(min_df=2, dim=8)
    model = stage.fit([{"a": 1}, {"a": 1, "b": 1}], np.array([True, True]))
    assert model.vocab == ["a"] and model.components.shape[0] == 0
    assert HashtagStage(dim=8).config() != HashtagStage(dim=16).config()
    assert HashtagStage().inputs_hash(raw) == HashtagStage(dim=3).inputs_hash(raw)
