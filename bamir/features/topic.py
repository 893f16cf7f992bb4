"""Topic modality: an LDA topic distribution per account (docs/method.md section 6).

Each account's captions are joined into one document, turned into terms offline
(:func:`bamir.features.text.preprocess`: tokenise, lemmatise, drop stop words), and a
gensim LDA with ``num_topics`` topics (published: 19) is fitted on the **training accounts
only** (:func:`bamir.features.common.train_accounts`). Every account's topic distribution
``theta_a = gamma_a / sum(gamma_a)`` (the variational posterior, as gensim's
``get_document_topics`` returns it, without its probability cut-off) is then inferred
with the fitted model, so the held-out side never shapes the topics.

The dictionary and the model are saved under the stage's work folder (``lda.dict``,
``lda.model``); :func:`load_topic_model` reloads them to encode new accounts later
(cold start) without refitting.

``LdaMulticore`` is used when more than one worker is available (``workers``; ``"auto"``
= one less than the usable cores); on a machine with one or two cores the single-process
``LdaModel`` does the same online variational Bayes without the worker processes.
"""

from __future__ import annotations

import logging
import time
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from bamir.data.schema import RawDataset
from bamir.features.base import StageOutput
from bamir.features.common import frame_hash, joined_captions, resolve_workers
from bamir.features.settings import TopicSettings
from bamir.features.text import preprocess

log = logging.getLogger(__name__)

MODEL_FILE = "lda.model"
DICT_FILE = "lda.dict"


def documents_to_terms(documents: Sequence[str], settings: TopicSettings) -> list[list[str]]:
    return [preprocess(doc, lemmatise=settings.lemmatise, min_len=settings.min_len) for doc in documents]


def fit_lda(train_terms: Sequence[Sequence[str]], settings: TopicSettings):
    """Fit a dictionary and an LDA model on tokenised training documents."""
    from gensim.corpora import Dictionary
    from gensim.models import LdaModel, LdaMulticore

    dictionary = Dictionary(train_terms)
    n_docs = len(train_terms)
    # filter_extremes with no_below above the corpus size would empty a tiny corpus
    dictionary.filter_extremes(
        no_below=min(settings.no_below, max(1, n_docs // 2)), no_above=settings.no_above if n_docs > 2 else 1.0,
        keep_n=settings.keep_n,
    )
    if len(dictionary) == 0:
        raise ValueError("LDA: the training documents leave an empty vocabulary after filtering")
    corpus = [dictionary.doc2bow(doc) for doc in train_terms]
    workers = resolve_workers(settings.workers)
    common = dict(
        corpus=corpus, id2word=dictionary, num_topics=settings.num_topics, passes=settings.passes,
        iterations=settings.iterations, chunksize=settings.chunksize, eta=settings.eta,
        random_state=settings.random_state, eval_every=None, dtype=np.float64,
    )
    if workers >= 2 and settings.alpha != "auto":
        with _workers_from_forkserver():
            model = LdaMulticore(workers=workers, alpha=settings.alpha, **common)
    else:
        model = LdaModel(alpha=settings.alpha, **common)
    return dictionary, model


@contextmanager
def _workers_from_forkserver() -> Iterator[None]:
    """Make gensim's LdaMulticore start its worker pool from the forkserver.

    By default its workers are forked from this process, which by then runs other threads (W&B's,
    torch's, a progress bar's); a child forked while one of them holds a lock (logging's, an
    allocator's) waits for it forever, and ``Pool.terminate`` with it. Workers forked from the
    single-threaded fork server inherit no such lock.
    """
    import multiprocessing

    import gensim.models.ldamulticore as ldamulticore

    context = multiprocessing.get_context("forkserver")
    saved = ldamulticore.Pool, ldamulticore.Queue
    ldamulticore.Pool, ldamulticore.Queue = context.Pool, context.Queue
    try:
        yield
    finally:
        ldamulticore.Pool, ldamulticore.Queue = saved


class TopicModel:
    """A fitted dictionary + LDA model that maps documents to topic distributions."""

    def __init__(self, dictionary, lda, settings: TopicSettings):
        self.dictionary = dictionary
        self.lda = lda
        self.settings = settings

    @property
    def num_topics(self) -> int:
        return int(self.lda.num_topics)

    def transform_terms(self, terms: Sequence[Sequence[str]], chunk: int = 4096) -> torch.Tensor:
        """Topic distributions [len(terms), num_topics] (rows sum to 1)."""
        out = np.zeros((len(terms), self.num_topics), dtype=np.float64)
        for start in range(0, len(terms), chunk):
            bows = [self.dictionary.doc2bow(doc) for doc in terms[start : start + chunk]]
            gamma, _ = self.lda.inference(bows)
            out[start : start + len(bows)] = gamma / gamma.sum(axis=1, keepdims=True)
        return torch.from_numpy(out).float()

    def transform(self, documents: Sequence[str]) -> torch.Tensor:
        """Topic distributions of raw documents (captions joined)."""
        return self.transform_terms(documents_to_terms(documents, self.settings))

    def save(self, folder: str | Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.dictionary.save(str(folder / DICT_FILE))
        self.lda.save(str(folder / MODEL_FILE))
        import json

        (folder / "lda_settings.json").write_text(json.dumps(asdict(self.settings), indent=2, default=str))


def load_topic_model(folder: str | Path) -> TopicModel:
    """Reload the topic model a :class:`TopicStage` saved in its work folder."""
    import json

    from gensim.corpora import Dictionary
    from gensim.models import LdaModel

    folder = Path(folder)
    settings = TopicSettings(**json.loads((folder / "lda_settings.json").read_text()))
    return TopicModel(Dictionary.load(str(folder / DICT_FILE)), LdaModel.load(str(folder / MODEL_FILE)), settings)


class TopicStage:
    """Preparation stage writing the ``topic`` modality (see the module docstring)."""

    modalities = ("topic",)
    fitted = True  # reads the split: fitted on training accounts only

    @classmethod
    def encode_new(cls, store, raw: RawDataset, accounts: list[str], workdir: Path, config: dict[str, Any],
                   device: str = "cpu") -> StageOutput:
        """The saved LDA infers the new accounts' topic mix from their captions."""
        model = load_topic_model(workdir)
        terms = documents_to_terms(joined_captions(raw, accounts), model.settings)
        return StageOutput(model.transform_terms(terms), torch.tensor([len(t) > 0 for t in terms]))

    def __init__(self, **settings: Any):
        self.settings = TopicSettings(**settings)

    def config(self) -> dict[str, Any]:
        return {"stage": "topic", "version": 1, **asdict(self.settings)}

    def inputs_hash(self, raw: RawDataset) -> str:
        return frame_hash(raw.posts, ["account_id", "caption"])

    def run(
        self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path
    ) -> dict[str, StageOutput]:
        start = time.perf_counter()
        terms = documents_to_terms(joined_captions(raw, accounts), self.settings)
        present = torch.tensor([len(t) > 0 for t in terms], dtype=torch.bool)
        train_idx = [i for i, a in enumerate(accounts) if a in train_accounts and terms[i]]
        if not train_idx:
            raise ValueError("topic: no training account has caption text to fit LDA on")
        t_tok = time.perf_counter() - start
        dictionary, lda = fit_lda([terms[i] for i in train_idx], self.settings)
        model = TopicModel(dictionary, lda, self.settings)
        model.save(workdir)
        features = model.transform_terms(terms)
        counts = {
            "accounts": len(accounts),
            "train_documents": len(train_idx),
            "vocabulary": len(dictionary),
            "tokens": int(sum(len(t) for t in terms)),
            "workers": resolve_workers(self.settings.workers) if type(lda).__name__ == "LdaMulticore" else 1,
        }
        empty = int(raw.posts["caption"].fillna("").astype(str).str.strip().eq("").sum())
        skipped = {k: n for k, n in (("no_caption_text", int((~present).sum())), ("empty_captions", empty)) if n}
        log.info(
            "topic: %d topics over %d terms, fitted on %d training documents (tokenising %.1fs, total %.1fs)",
            model.num_topics, len(dictionary), len(train_idx), t_tok, time.perf_counter() - start,
        )
        note = f"{type(lda).__name__}, fitted on {len(train_idx)} training accounts; model in the stage work folder"
        return {"topic": StageOutput(features, present, counts=counts, skipped=skipped, note=note)}
