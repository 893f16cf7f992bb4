"""Hostile and broken input: linear-time text parsing, bounded pickles, validation at the door,
config refusals and readable errors (file, row, field or config key; exit code 2)."""

from __future__ import annotations

import pickle
import time

import pytest

from bamir.data.safe_pickle import UnsafePickleError, bounded_repr, load_plain_pickle
from bamir.features.text import preprocess, tokenize

# ------------------------------------------------------------------ hostile texts (linear time)
MILLION = 1_000_000
HOSTILE_TEXTS = {
    "one long word": "a" * MILLION,
    "at signs": "a@" * (MILLION // 2),
    "only at signs": "@" * MILLION,
    "one at sign in the middle": "x" * (MILLION // 2) + "@" + "y" * (MILLION // 2),
    "dots and at signs": "a.b@" * (MILLION // 4),
    "apostrophes": "'a" * (MILLION // 2),
    "long url": "http://" + "a" * MILLION,
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXTS))
def test_text_patterns_are_linear_on_a_million_character_token(name):
    preprocess("warm up the caches")
    start = time.perf_counter()
    preprocess(HOSTILE_TEXTS[name])
    assert time.perf_counter() - start < 5  # quadratic patterns took minutes here


def test_links_emails_and_mentions_are_still_removed():
    assert tokenize("Mail me at jo.doe@mail.com, see www.x.io or https://y.z/a and ping @nat_geo now") == \
        ["mail", "me", "at", "see", "or", "and", "ping", "now"]


# ------------------------------------------------------------------ hostile pickles (bounded)
def _doubling(levels: int) -> list:
    """Each list holds the previous one twice: tiny on disk, 2**levels items once expanded."""
    value: list = []
    for _ in range(levels):
        value = [value, value]
    return value


def _nested_pickle(levels: int) -> bytes:
    """[[[...]]] ``levels`` deep, written opcode by opcode (pickle.dumps would recurse): EMPTY_LIST, APPEND."""
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."


@pytest.mark.parametrize("data, limit", [(pickle.dumps(_doubling(60), protocol=4), "expands to more than"),
                                         (_nested_pickle(100_000), "nests deeper than")], ids=["shared", "deep"])
def test_hostile_pickle_is_refused_quickly_naming_file_and_limit(tmp_path, data, limit):
    path = tmp_path / "sorted_360_brand_list.pkl"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match=limit) as info:
        load_plain_pickle(path)
    assert time.perf_counter() - start < 5
    assert str(path) in str(info.value)


def test_bounded_repr_of_a_huge_shared_structure():
    assert len(bounded_repr(_doubling(60))) < 2000
    assert len(bounded_repr("x" * MILLION)) < 100


def test_release_name_check_prints_a_bounded_repr(tmp_path):
    from bamir.data.release import ReleaseError, _check_names

    huge = _doubling(20)  # within the limits, a million items once printed in full
    with pytest.raises(ReleaseError, match="item 1 is") as info:
        _check_names(["ok", huge], tmp_path / "sorted_360_brand_list.pkl", "brand")
    assert len(str(info.value)) < 2000
