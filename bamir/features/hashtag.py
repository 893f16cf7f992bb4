"""Hashtag modality: a fixed-size vector of the hashtags an account uses.

1. Hashtags are extracted from every caption and counted per account
   (:mod:`bamir.features.hashtags`: ``count(a, t)`` = number of the account's posts using
   tag ``t``), and like/follow-farming tags are dropped (:class:`HashtagFilter`: the
   maintained list, the farming pattern, and the frequency rule fitted on training
   accounts).
2. TF-IDF over the filtered tags, with the vocabulary and document frequencies of the
   **training accounts** only: tags used by at least ``min_df`` training accounts (and at
   most a ``max_df`` share of them), the ``max_features`` most frequent kept::

       tf(a, t) = 1 + log count(a, t)   (sublinear_tf; else count(a, t))
       idf(t)   = log((1 + n) / (1 + df(t))) + 1      (n training accounts)
       x_a      = tf(a, .) * idf / || tf(a, .) * idf ||_2

3. A truncated SVD fitted on the training rows reduces ``x_a`` to ``dim`` components
   (``z_a = x_a V^T``, zero-padded when the vocabulary is smaller than ``dim``), then
   L2-normalised (``normalize``).

Accounts without a single kept tag get ``present = False`` and a zero row. The fitted
filter, vocabulary, idf and SVD components are saved in the stage's work folder
(``hashtag_filter.json``, ``hashtag_vocab.json``, ``hashtag_model.npz``);
:func:`load_hashtag_model` reloads them to encode new accounts.
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import scipy.sparse as sp
import torch

from bamir.data.schema import RawDataset
from bamir.features.base import StageOutput
from bamir.features.common import frame_hash
from bamir.features.hashtags import HashtagFilter, count_hashtags, parse_captions
from bamir.features.settings import HashtagSettings

log = logging.getLogger(__name__)


@dataclass
class HashtagModel:
    """A fitted spam filter + TF-IDF vocabulary + SVD projection."""

    filter: HashtagFilter
    vocab: list[str]
    idf: np.ndarray  # [V]
    components: np.ndarray  # [k, V]
    dim: int
    sublinear_tf: bool = True
    normalize: bool = True

    def tfidf(self, counts: Sequence[Mapping[str, int]]) -> sp.csr_matrix:
        index = {t: j for j, t in enumerate(self.vocab)}
        rows, cols, vals = [], [], []
        for i, tags in enumerate(counts):
            for tag, k in tags.items():
                j = index.get(tag)
                if j is not None and k > 0:
                    rows.append(i)
                    cols.append(j)
                    vals.append(1.0 + np.log(k) if self.sublinear_tf else float(k))
        x = sp.csr_matrix((vals, (rows, cols)), shape=(len(counts), len(self.vocab)), dtype=np.float64)
        x = x.multiply(self.idf[None, :]).tocsr()
        norms = np.sqrt(np.asarray(x.multiply(x).sum(axis=1)).ravel())
        return sp.diags(1.0 / np.where(norms > 0, norms, 1.0)) @ x

    def transform_counts(self, counts: Sequence[Mapping[str, int]]) -> tuple[torch.Tensor, torch.Tensor]:
        """(features [N, dim], present [N]) from per-account tag counts (spam not yet removed)."""
        kept = [{t: k for t, k in c.items() if not self.filter.is_spam(t)} for c in counts]
        x = self.tfidf(kept)
        z = np.zeros((len(counts), self.dim), dtype=np.float64)
        if self.components.size:
            z[:, : self.components.shape[0]] = x @ self.components.T
        if self.normalize:
            norms = np.linalg.norm(z, axis=1, keepdims=True)
            z = z / np.where(norms > 0, norms, 1.0)
        present = torch.from_numpy(np.diff(x.indptr) > 0)
        return torch.from_numpy(z).float(), present

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "hashtag_filter.json").write_text(json.dumps(self.filter.state(), indent=1))
        (folder / "hashtag_vocab.json").write_text(json.dumps(
            {"vocab": self.vocab, "dim": self.dim, "sublinear_tf": self.sublinear_tf, "normalize": self.normalize}))
        np.savez(folder / "hashtag_model.npz", idf=self.idf, components=self.components)


def load_hashtag_model(folder: str | Path) -> HashtagModel:
    """Reload the model a :class:`HashtagStage` saved in its work folder."""
    folder = Path(folder)
    meta = json.loads((folder / "hashtag_vocab.json").read_text())
    arrays = np.load(folder / "hashtag_model.npz")
    return HashtagModel(
        HashtagFilter.from_state(json.loads((folder / "hashtag_filter.json").read_text())),
        meta["vocab"], arrays["idf"], arrays["components"], meta["dim"], meta["sublinear_tf"], meta["normalize"],
    )


class HashtagStage:
    """Preparation stage writing the ``hashtag`` modality (see the module docstring)."""

    modalities = ("hashtag",)
    fitted = True

    def __init__(self, **settings: Any):
        self.settings = HashtagSettings(**settings)

    def config(self) -> dict[str, Any]:
        return {"stage": "hashtag", "version": 1, **asdict(self.settings)}

    def inputs_hash(self, raw: RawDataset) -> str:
        return frame_hash(raw.posts, ["account_id", "caption"])

    def fit(self, counts: Sequence[Mapping[str, int]], train: np.ndarray) -> HashtagModel:
        """Fit filter, vocabulary, idf and SVD on the rows of ``counts`` where ``train`` is True."""
        from sklearn.decomposition import TruncatedSVD

        s = self.settings

        train_counts = [counts[i] for i in np.flatnonzero(train)]
        filt = HashtagFilter(**s.spam).fit({str(i): Counter(c) for i, c in enumerate(train_counts)})
        df: Counter = Counter()
        for c in train_counts:
            df.update(t for t in c if not filt.is_spam(t))
        n = len(train_counts)
        eligible = [(t, k) for t, k in df.items() if k >= s.min_df and k <= s.max_df * n]
        eligible.sort(key=lambda tk: (-tk[1], tk[0]))
        vocab = sorted(t for t, _ in eligible[: s.max_features])
        idf = np.array([np.log((1 + n) / (1 + df[t])) + 1.0 for t in vocab], dtype=np.float64)
        model = HashtagModel(filt, vocab, idf, np.zeros((0, len(vocab))), s.dim, s.sublinear_tf, s.normalize)
        x_train = model.tfidf([{t: k for t, k in c.items() if not filt.is_spam(t)} for c in train_counts])
        k = min(s.dim, len(vocab) - 1, n - 1)
        if k >= 1:
            svd = TruncatedSVD(n_components=k, algorithm="randomized", n_iter=7, random_state=s.seed)
            svd.fit(x_train)
            model.components = svd.components_.astype(np.float64)
        return model

    @classmethod
    def encode_new(cls, store, raw: RawDataset, accounts: list[str], workdir: Path, config: dict[str, Any],
                   device: str = "cpu") -> StageOutput:
        """The saved spam filter, TF-IDF and SVD on the new accounts' hashtag counts."""
        model = load_hashtag_model(workdir)
        per_account = count_hashtags(parse_captions(raw.posts), accounts)
        features, present = model.transform_counts([dict(per_account.get(a, {})) for a in accounts])
        return StageOutput(features, present)

    def run(self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path) -> dict[str, StageOutput]:
        per_account = count_hashtags(parse_captions(raw.posts), accounts)
        counts = [dict(per_account.get(a, {})) for a in accounts]
        train = np.array([a in train_accounts for a in accounts])
        model = self.fit(counts, train)
        model.save(workdir)
        features, present = model.transform_counts(counts)
        dropped = sum(1 for c in counts for t in c if model.filter.is_spam(t))
        note = f"TF-IDF over {len(model.vocab)} training hashtags -> SVD {model.components.shape[0]} of {self.settings.dim} dims"
        if model.components.shape[0] == 0:
            note += "; vocabulary too small for an SVD: all rows are zero"
            log.warning("hashtag: %s", note)
        stats = {"accounts": len(accounts), "train_accounts": int(train.sum()), "vocabulary": len(model.vocab),
                 "svd_components": int(model.components.shape[0]), "accounts_present": int(present.sum())}
        skipped = {"spam_tag_uses": dropped}
        if (~present).any():
            skipped["accounts_without_kept_hashtags"] = int((~present).sum())
        return {"hashtag": StageOutput(features, present, counts=stats, skipped=skipped, note=note)}
