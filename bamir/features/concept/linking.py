"""Account-concept weights from biography, business category and related hashtags.

BAMIR (Brand-Aware Micro-Influencer Ranking, 2023; steps 1, 2 and 4 of its concept
pipeline, ``docs/method.md`` section 7) links every account to a fixed set of
interest concepts ``C`` through three sources:

* **biography**: the biography's terms (tokenised, case-folded, lemmatised, stop words
  removed: :func:`bamir.features.text.preprocess`, plus adjacent bigrams for multi-word
  concepts) are mapped to concepts by the lexicon ``L(term, c)``: 1 when the term *is*
  the concept, ``edge_factor * min(1, w)`` when a ConceptNet edge of weight ``w`` joins
  the term and the concept (either direction, configured relations), else 0;
* **business category**: the profile's business category, mapped the same way;
* **hashtags**: ``R(c, t)``, the related hashtags of each concept, from a table (the
  published work scraped a hashtag-analysis site) or, without one, learned from the
  corpus (:func:`learn_related_hashtags`).

With ``n_s(a, c)`` the raw score of source ``s`` (a sum of ``L`` over the biography's
terms; the best ``L`` over the category's terms; ``sum_t count(a, t) R(c, t)`` over the
account's non-spam hashtags), each source is normalised to sum to one over concepts
(when ``normalise``) and the account-concept weight is

    W(a, c) = sum_s beta_s * n_s(a, c) / sum_c' n_s(a, c'),

with source weights ``beta`` (all 1 by default). Accounts with ``W(a, .) = 0`` have no
concept.

**Learned related hashtags.** A tag ``t`` *seeds* concept ``c`` with strength ``L(t', c)``
where ``t'`` is the tag or its lemma, or the tag equals the concept name without spaces
(``icecream`` seeds "ice cream"). Each concept's related tags are its seeds (weight = seed
strength) plus up to ``top_k`` more tags, the best of:

* tags that share captions with a seed ``s`` of ``c``: normalised PMI over posts
  ``npmi(s, t) = log(p(s,t) / p(s)p(t)) / -log p(s,t)``, weight = seed strength x npmi;
* tags used by the accounts whose biography or business category links to ``c``: npmi
  over accounts of "links to ``c``" and "uses ``t``" (this reaches concepts no tag names),

each with at least ``min_npmi`` and at least ``min_count`` shared posts / accounts. Fit it on
training accounts only.
"""

from __future__ import annotations

import math
import os
import unicodedata
from collections import Counter, defaultdict
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import scipy.sparse as sp
import torch

from bamir.features.concept.conceptnet import ConceptNetIndex, normalise_term
from bamir.features.settings import CONCEPT_SOURCES
from bamir.features.text import lemmatize, ngrams, preprocess



def normalise_hashtag(tag: str) -> str:
    """A table's hashtag in extracted form: no leading ``#``, NFKC, case-folded."""
    tag = unicodedata.normalize("NFKC", str(tag)).strip().lstrip("#＃")
    return unicodedata.normalize("NFKC", tag.casefold())


def compact(concept: str) -> str:
    """A concept name as a hashtag would spell it: ``"ice cream"`` -> ``"icecream"``."""
    return "".join(ch for ch in normalise_term(concept) if ch.isalnum())


def load_concepts(path: str | os.PathLike) -> list[str]:
    """The concept set from a CSV with a ``concept`` column (else its first column), in order, deduplicated."""
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    column = "concept" if "concept" in frame.columns else frame.columns[0]
    names = [normalise_term(c) for c in frame[column].tolist()]
    return list(dict.fromkeys(n for n in names if n))


def load_related_hashtags(
    path: str | os.PathLike, concepts: Sequence[str] | None = None
) -> dict[str, dict[str, float]]:
    """``{concept: {hashtag: weight}}`` from a CSV ``concept, hashtag[, weight]`` (weight 1 when absent).

    Rows naming a concept outside ``concepts`` (when given) are ignored.
    """
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    known = None if concepts is None else set(concepts)
    weights = frame["weight"].tolist() if "weight" in frame.columns else ["1"] * len(frame)
    table: dict[str, dict[str, float]] = defaultdict(dict)
    for concept, tag, weight in zip(frame["concept"].tolist(), frame["hashtag"].tolist(), weights):
        concept, tag = normalise_term(concept), normalise_hashtag(tag)
        if not concept or not tag or (known is not None and concept not in known):
            continue
        try:
            w = float(weight) if str(weight).strip() else 1.0
        except ValueError:
            w = 1.0
        if math.isfinite(w) and w > 0:
            table[concept][tag] = max(table[concept].get(tag, 0.0), w)
    return dict(table)


@dataclass
class ConceptLexicon:
    """``L(term, c)``: exact concept names (1.0) and ConceptNet neighbours (``edge_factor * min(1, w)``)."""

    concepts: list[str]
    entries: dict[str, dict[str, float]]

    @classmethod
    def build(
        cls, concepts: Sequence[str], conceptnet: ConceptNetIndex | None = None, edge_factor: float = 0.5
    ) -> "ConceptLexicon":
        concepts = [normalise_term(c) for c in concepts]
        entries: dict[str, dict[str, float]] = {}
        if conceptnet is not None and edge_factor > 0:
            for term, links in conceptnet.links_to(concepts).items():
                entries[term] = {c: edge_factor * min(1.0, max(0.0, w)) for c, w in links.items()}
        for concept in concepts:
            entries.setdefault(concept, {})[concept] = 1.0
        return cls(concepts=list(concepts), entries=entries)

    def lookup(self, term: str) -> dict[str, float]:
        return self.entries.get(term, {})

    def link_terms(self, terms: Sequence[str]) -> Counter:
        """Sum of ``L(term, c)`` over ``terms`` and their adjacent bigrams."""
        scores: Counter = Counter()
        for term in list(terms) + ngrams(list(terms), 2):
            for concept, w in self.lookup(term).items():
                scores[concept] += w
        return scores

    def link_text(self, text: str | None, best_only: bool = False) -> Counter:
        """Concept scores of a text; ``best_only`` keeps each concept's best term, not the sum."""
        terms = preprocess(text)
        if not best_only:
            return self.link_terms(terms)
        best: Counter = Counter()
        for term in terms + ngrams(terms, 2):
            for concept, w in self.lookup(term).items():
                best[concept] = max(best[concept], w)
        return best


def _npmi(joint: np.ndarray, left: np.ndarray, right: np.ndarray, n: int) -> np.ndarray:
    """Normalised PMI of co-occurrence counts ``joint`` with marginal counts ``left``, ``right`` out of ``n``."""
    p_joint = joint / n
    with np.errstate(divide="ignore", invalid="ignore"):
        value = np.log(p_joint / ((left / n) * (right / n))) / -np.log(p_joint)
    return np.where(p_joint >= 1.0, 1.0, value)


def learn_related_hashtags(
    post_tags: Iterable[Sequence[str]],
    lexicon: ConceptLexicon,
    *,
    account_tags: Sequence[Iterable[str]] | None = None,
    account_concepts: np.ndarray | torch.Tensor | None = None,
    top_k: int = 10,
    min_count: int = 3,
    min_npmi: float = 0.3,
) -> dict[str, dict[str, float]]:
    """Related hashtags per concept from seeds and co-occurrence (module docstring).

    ``post_tags`` are the (spam-filtered) tag tuples of the fitting posts, one per post.
    Optionally ``account_tags`` (the tags of each fitting account) with
    ``account_concepts`` (bool/float [accounts, C], the concepts each account's
    biography or business category links to) add account-level evidence: a tag used by
    the accounts of a concept, scored by the npmi of "account has the concept" and
    "account uses the tag" over the fitting accounts. This reaches concepts that no
    hashtag names.
    """
    vocab: dict[str, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    n_posts = 0
    for i, tags in enumerate(post_tags):
        n_posts = i + 1
        for tag in set(tags):
            rows.append(i)
            cols.append(vocab.setdefault(tag, len(vocab)))
    related: dict[str, dict[str, float]] = defaultdict(dict)
    candidates: dict[str, dict[str, float]] = defaultdict(dict)

    def offer(concept: str, tag: str, score: float) -> None:
        if score > candidates[concept].get(tag, 0.0):
            candidates[concept][tag] = score

    # seeds: tag (or its lemma) is a lexicon term, or spells the concept without spaces
    by_compact = defaultdict(list)
    for concept in lexicon.concepts:
        by_compact[compact(concept)].append(concept)
    seeds: dict[int, dict[str, float]] = {}
    for tag, j in vocab.items():
        strength: dict[str, float] = {}
        for form in {tag, lemmatize(tag)}:
            for concept, w in lexicon.lookup(form).items():
                strength[concept] = max(strength.get(concept, 0.0), w)
            for concept in by_compact.get(form, ()):
                strength[concept] = 1.0
        if strength:
            seeds[j] = strength
            for concept, w in strength.items():
                related[concept][tag] = max(related[concept].get(tag, 0.0), w)
    tags = list(vocab)

    # post level: tags sharing captions with a seed
    if seeds and n_posts and top_k > 0:
        x = sp.csr_matrix((np.ones(len(rows)), (rows, cols)), shape=(n_posts, len(tags)))
        seed_ids = np.asarray(sorted(seeds), dtype=np.int64)
        co = (x[:, seed_ids].T @ x).tocoo()  # [n_seeds, n_tags] shared posts
        df = np.asarray(x.sum(axis=0)).ravel()
        keep = (co.data >= min_count) & (seed_ids[co.row] != co.col)
        r, c, n = co.row[keep], co.col[keep], co.data[keep]
        npmi = _npmi(n, df[seed_ids[r]], df[c], n_posts)
        good = npmi >= min_npmi
        for si, tj, v in zip(r[good].tolist(), c[good].tolist(), npmi[good].tolist()):
            for concept, strength in seeds[int(seed_ids[si])].items():
                offer(concept, tags[tj], strength * v)

    # account level: tags used by the accounts whose profile links to the concept
    if account_tags is not None and account_concepts is not None and top_k > 0:
        linked = np.asarray(account_concepts, dtype=np.float64) > 0  # [A, C]
        a_vocab: dict[str, int] = {}
        a_rows, a_cols = [], []
        for i, account in enumerate(account_tags):
            for tag in set(account):
                a_rows.append(i)
                a_cols.append(a_vocab.setdefault(tag, len(a_vocab)))
        n_accounts = linked.shape[0]
        if a_rows and n_accounts:
            x = sp.csr_matrix((np.ones(len(a_rows)), (a_rows, a_cols)), shape=(n_accounts, len(a_vocab)))
            co = (sp.csr_matrix(linked.astype(np.float64)).T @ x).tocoo()  # [C, n_tags] shared accounts
            users = np.asarray(x.sum(axis=0)).ravel()
            members = linked.sum(axis=0)
            keep = co.data >= min_count
            r, c, n = co.row[keep], co.col[keep], co.data[keep]
            npmi = _npmi(n, members[r], users[c], n_accounts)
            good = npmi >= min_npmi
            a_tags = list(a_vocab)
            for ci, tj, v in zip(r[good].tolist(), c[good].tolist(), npmi[good].tolist()):
                offer(lexicon.concepts[ci], a_tags[tj], v)

    for concept, scores in candidates.items():
        best = sorted(scores.items(), key=lambda kv: (-kv[1], kv[0]))
        added = 0
        for tag, score in best:
            if added >= top_k:
                break
            if tag in related[concept]:
                continue
            related[concept][tag] = score
            added += 1
    return dict(related)


def related_matrix(related: Mapping[str, Mapping[str, float]], concepts: Sequence[str]) -> tuple[dict[str, int], sp.csr_matrix]:
    """The related-hashtag table as a sparse ``[n_tags, n_concepts]`` matrix and its tag vocabulary."""
    col = {c: i for i, c in enumerate(concepts)}
    vocab: dict[str, int] = {}
    rows, cols, vals = [], [], []
    for concept, tags in related.items():
        j = col.get(concept)
        if j is None:
            continue
        for tag, w in tags.items():
            rows.append(vocab.setdefault(tag, len(vocab)))
            cols.append(j)
            vals.append(float(w))
    matrix = sp.csr_matrix((vals, (rows, cols)), shape=(len(vocab), len(concepts)), dtype=np.float64)
    return vocab, matrix


@dataclass
class LinkResult:
    """``weights`` float32 [N, C] (``W`` of the module docstring) and per-source raw scores."""

    weights: torch.Tensor
    sources: dict[str, torch.Tensor]

    def linked(self) -> dict[str, int]:
        """Number of accounts with at least one concept, overall and per source."""
        out = {"any": int((self.weights.sum(1) > 0).sum())}
        for name, matrix in self.sources.items():
            out[name] = int((matrix.sum(1) > 0).sum())
        return out


def account_concept_weights(
    accounts: pd.DataFrame,
    hashtag_counts: Mapping[str, Mapping[str, int]],
    lexicon: ConceptLexicon,
    related: Mapping[str, Mapping[str, float]],
    source_weights: Mapping[str, float] | None = None,
    normalise: bool = True,
) -> LinkResult:
    """``W`` [N, C] for the rows of ``accounts`` (columns ``account_id``, ``biography``, ``business_category``).

    ``hashtag_counts`` maps account id to its (spam-filtered) tag counts.
    """
    concepts = lexicon.concepts
    col = {c: i for i, c in enumerate(concepts)}
    n, k = len(accounts), len(concepts)
    beta = {s: 1.0 for s in CONCEPT_SOURCES}
    beta.update({s: float(w) for s, w in (source_weights or {}).items()})
    unknown = set(beta) - set(CONCEPT_SOURCES)
    if unknown:
        raise ValueError(f"unknown concept sources {sorted(unknown)}: use {CONCEPT_SOURCES}")
    raw = {s: np.zeros((n, k), dtype=np.float64) for s in CONCEPT_SOURCES}
    biographies = accounts["biography"].tolist() if "biography" in accounts else [""] * n
    categories = accounts["business_category"].tolist() if "business_category" in accounts else [""] * n
    cache: dict[str, Counter] = {}
    for i, (bio, category) in enumerate(zip(biographies, categories)):
        if beta["biography"]:
            for concept, w in lexicon.link_text(bio).items():
                raw["biography"][i, col[concept]] = w
        if beta["business_category"] and isinstance(category, str) and category:
            scores = cache.get(category)
            if scores is None:
                scores = cache[category] = lexicon.link_text(category, best_only=True)
            for concept, w in scores.items():
                raw["business_category"][i, col[concept]] = w
    if beta["hashtags"] and related:
        vocab, rel = related_matrix(related, concepts)
        rows, cols, vals = [], [], []
        for i, account in enumerate(accounts["account_id"].tolist()):
            for tag, count in (hashtag_counts.get(account) or {}).items():
                j = vocab.get(tag)
                if j is not None:
                    rows.append(i)
                    cols.append(j)
                    vals.append(float(count))
        counts = sp.csr_matrix((vals, (rows, cols)), shape=(n, len(vocab)))
        raw["hashtags"] = np.asarray((counts @ rel).todense(), dtype=np.float64).reshape(n, k)
    total = np.zeros((n, k), dtype=np.float64)
    for source, matrix in raw.items():
        if not beta[source]:
            continue
        part = matrix
        if normalise:
            sums = matrix.sum(axis=1, keepdims=True)
            part = np.divide(matrix, sums, out=np.zeros_like(matrix), where=sums > 0)
        total += beta[source] * part
    return LinkResult(
        weights=torch.from_numpy(total.astype(np.float32)),
        sources={s: torch.from_numpy(m.astype(np.float32)) for s, m in raw.items()},
    )

