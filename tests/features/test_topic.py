"""Topic modality: LDA fitted on the training accounts only, inferred for all, reloadable."""

from __future__ import annotations

import os
import threading

import pytest
import torch

from bamir.data.schema import RawDataset
from bamir.features.common import train_accounts
from bamir.features.settings import TopicSettings
from bamir.features.topic import TopicStage, documents_to_terms, fit_lda, load_topic_model
from tests.helpers.prep import THEMES, make_raw

FAST = dict(num_topics=3, passes=3, iterations=50, no_below=1, workers=1)


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> RawDataset:
    return RawDataset.load(make_raw(tmp_path_factory.mktemp("raw")))


def test_train_accounts_rule(raw):
    # train brands, influencers outside the test candidates, and candidates that are positives
    # of a train brand (i4); never test brands or candidate-only influencers
    expected = {"b0", "b1", "i0", "i1", "i2", "i3", "i4", "i5"}
    assert train_accounts(raw, "discover") == expected
    with pytest.raises(KeyError, match="no split 'nope'"):
        train_accounts(raw, "nope")


def test_topic_stage_fits_on_training_accounts_only(raw, tmp_path):
    accounts = raw.accounts["account_id"].tolist()
    train = train_accounts(raw)
    out = TopicStage(**FAST).run(raw, accounts, train, tmp_path)["topic"]
    assert out.features.shape == (len(accounts), 3)
    assert torch.allclose(out.features.sum(1), torch.ones(len(accounts)), atol=1e-5)
    assert bool(out.present.all())
    assert out.counts["train_documents"] == len(train)
    # the travel theme is used only by a test brand and candidate-only influencers: not in the vocabulary
    model = load_topic_model(tmp_path)
    vocab = set(model.dictionary.token2id)
    assert not vocab & set(THEMES["travel"][0].split())
    assert {"recipe", "dress"} <= vocab
    # the saved model reproduces the stage's features for new documents (cold start)
    captions = raw.posts.groupby("account_id")["caption"].agg("\n".join)
    again = model.transform([captions[a] for a in accounts])
    assert torch.allclose(again, out.features, atol=1e-6)


def test_held_out_text_does_not_change_training_rows(raw, tmp_path):
    accounts = raw.accounts["account_id"].tolist()
    train = train_accounts(raw)
    before = TopicStage(**FAST).run(raw, accounts, train, tmp_path / "a")["topic"].features
    posts = raw.posts.copy()
    posts.loc[posts["account_id"] == "i8", "caption"] = "recipe recipe recipe dress dress totally different words"
    changed = RawDataset(raw.root, raw.info, raw.accounts, posts, raw.pairs, raw.splits)
    after = TopicStage(**FAST).run(changed, accounts, train, tmp_path / "b")["topic"].features
    rows = [i for i, a in enumerate(accounts) if a != "i8"]
    assert torch.allclose(before[rows], after[rows], atol=1e-6)
    assert not torch.allclose(before[accounts.index("i8")], after[accounts.index("i8")], atol=1e-3)


def test_account_without_captions_is_not_present(raw, tmp_path):
    accounts = raw.accounts["account_id"].tolist()
    posts = raw.posts[raw.posts["account_id"] != "i11"]
    out = TopicStage(**FAST).run(RawDataset(raw.root, raw.info, raw.accounts, posts, raw.pairs, raw.splits),
                                 accounts, train_accounts(raw), tmp_path)["topic"]
    assert not bool(out.present[accounts.index("i11")])
    assert out.skipped == {"no_caption_text": 1}


_FORKS = []
os.register_at_fork(before=lambda: _FORKS.append(threading.active_count()))


@pytest.mark.slow
def test_multicore_is_used_with_several_workers_never_forked_from_this_process():
    """LdaMulticore's workers start from the fork server: forked from this process (which runs other
    threads, e.g. W&B's), a worker could inherit a held lock and hang the fit (seen in the suite)."""
    docs = [" ".join(THEMES[t][0].split() * 3) for t in ("food", "fashion", "travel") for _ in range(4)]
    settings = TopicSettings(num_topics=3, passes=1, iterations=20, no_below=1, no_above=1.0, workers=2)
    before = len(_FORKS)
    _, model = fit_lda(documents_to_terms(docs, settings), settings)
    assert type(model).__name__ == "LdaMulticore"
    assert len(_FORKS) == before, "a worker was forked from the test process"
    _, single = fit_lda(documents_to_terms(docs, settings), TopicSettings(**{**vars(settings), "workers": 1}))
    assert type(single).__name__ == "LdaModel"


def test_config_hash_inputs_and_empty_vocabulary(raw):
    stage = TopicStage(num_topics=7)
    assert stage.config()["num_topics"] == 7 and stage.config()["stage"] == "topic"
    posts = raw.posts.copy()
    h = stage.inputs_hash(raw)
    posts.loc[0, "caption"] = "changed"
    assert stage.inputs_hash(RawDataset(raw.root, raw.info, raw.accounts, posts, raw.pairs, raw.splits)) != h
    # likes are not read by the topic stage
    assert stage.inputs_hash(RawDataset(raw.root, raw.info, raw.accounts, raw.posts.assign(likes=0), raw.pairs,
                                        raw.splits)) == h
    with pytest.raises(ValueError, match="empty vocabulary"):
        fit_lda([[]], TopicSettings(workers=1))
