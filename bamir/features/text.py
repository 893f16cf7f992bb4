"""Offline text normalisation shared by the text stages (concept linking, topics).

A text becomes a list of terms in four steps, all offline and deterministic:

1. URLs, e-mail addresses and ``@mentions`` are removed;
2. words are the maximal runs of Unicode letters (with inner apostrophes), case-folded;
3. each word is lemmatised with simplemma's English dictionary (``running`` -> ``run``,
   ``photographers`` -> ``photographer``);
4. gensim's English stop words and words shorter than ``min_len`` are dropped.

Used by BAMIR (biography and business-category words are mapped to concepts through
ConceptNet, see :mod:`bamir.features.concept.linking`) and by the LDA topic stage.
"""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache
from typing import Iterable

from gensim.parsing.preprocessing import STOPWORDS as _GENSIM_STOPWORDS

#: gensim's English stop words (337 words), as a frozenset.
STOP_WORDS: frozenset[str] = frozenset(_GENSIM_STOPWORDS)

# Every pattern here runs in linear time on any input (a 1M-character token included): a
# whitespace-separated run is scanned once, and an e-mail is found with ``str.find``, not
# with a backtracking ``\S+@\S+\.\S+`` (quadratic on a long run without spaces).
_RUN = re.compile(r"\S+")
_URL_OR_MENTION = re.compile(r"(?:https?://|www\.)\S+|(?<!\w)@[\w.]+")


def is_email(run: str) -> bool:
    """Whether a whitespace-free ``run`` reads as an e-mail: ``x@y.z`` (some text around each part)."""
    at = run.find("@", 1)
    return at >= 0 and run.find(".", at + 2, len(run) - 1) >= 0


def _strip_run(match: re.Match[str]) -> str:
    run = match.group()
    return " " if is_email(run) else _URL_OR_MENTION.sub(" ", run)


def strip_links(text: str) -> str:
    """``text`` with URLs, e-mail addresses and ``@mentions`` replaced by spaces."""
    return _RUN.sub(_strip_run, text)


@lru_cache(maxsize=1)
def mark_class() -> str:
    """A regex character-class body matching every Unicode combining mark (category M*).

    Python's ``re`` has no ``\\p{M}``, and ``\\w`` leaves out marks such as Devanagari
    vowel signs and viramas, which would split words like "नमस्ते". Built once per
    process from :mod:`unicodedata` (about 0.2 s).
    """
    import sys

    parts: list[str] = []
    start = prev = None
    for cp in range(sys.maxunicode + 1):
        if unicodedata.category(chr(cp))[0] != "M":
            continue
        if start is None:
            start = prev = cp
        elif cp == prev + 1:
            prev = cp
        else:
            parts.append(_range(start, prev))
            start = prev = cp
    if start is not None:
        parts.append(_range(start, prev))
    return "".join(parts)


def _range(lo: int, hi: int) -> str:
    return f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}"


@lru_cache(maxsize=1)
def _word_pattern() -> re.Pattern[str]:
    # A word: letters (with their combining marks), then optionally apostrophe + letters
    # ("don't", "l'amour"). Digits, underscores, symbols and emoji split words.
    letter = r"[^\W\d_]"
    body = f"{letter}(?:{letter}|[{mark_class()}])*"
    return re.compile(f"{body}(?:['\u2019]{body})*")


def normalise(text: str) -> str:
    """NFKC-normalise and case-fold ``text`` (full-width letters become ASCII)."""
    return unicodedata.normalize("NFKC", text).casefold()


def tokenize(text: str | None) -> list[str]:
    """Case-folded words of ``text`` (URLs, e-mails and @mentions removed).

    >>> tokenize("Travel photographer @nat_geo. Coffee & dogs! https://x.io")
    ['travel', 'photographer', 'coffee', 'dogs']
    """
    if not isinstance(text, str) or not text:
        return []
    text = strip_links(normalise(text))
    return [word.replace("\u2019", "'") for word in _word_pattern().findall(text)]


@lru_cache(maxsize=200_000)
def lemmatize(word: str, lang: str = "en") -> str:
    """The dictionary lemma of one case-folded word (the word itself when unknown)."""
    import simplemma

    try:
        lemma = simplemma.lemmatize(word, lang=lang)
    except Exception:  # simplemma raises on some exotic input; keep the word
        return word
    return lemma.casefold() if lemma else word


def preprocess(
    text: str | None,
    *,
    lemmatise: bool = True,
    stop_words: Iterable[str] | None = STOP_WORDS,
    min_len: int = 2,
    lang: str = "en",
) -> list[str]:
    """Tokenise, lemmatise and drop stop words: the terms of one document.

    >>> preprocess("I am running marathons and eating cakes")
    ['run', 'marathon', 'eat', 'cake']
    """
    stops = stop_words if isinstance(stop_words, (set, frozenset)) else frozenset(stop_words or ())
    terms = []
    for word in tokenize(text):
        if word in stops:
            continue
        term = lemmatize(word, lang) if lemmatise else word
        if len(term) < min_len or term in stops:
            continue
        terms.append(term)
    return terms


def ngrams(terms: list[str], n: int = 2, sep: str = " ") -> list[str]:
    """Adjacent ``n``-grams of ``terms`` joined by ``sep`` (``["ice", "cream"]`` -> ``["ice cream"]``)."""
    return [sep.join(terms[i : i + n]) for i in range(len(terms) - n + 1)]
