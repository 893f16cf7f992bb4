"""Hashtag and mention extraction (fuzzed), per-account counts and the spam filter."""

from __future__ import annotations

from collections import Counter

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bamir.features.hashtags import (
    SPAM_HASHTAGS,
    HashtagFilter,
    count_hashtags,
    extract_hashtags,
    extract_mentions,
    is_farming_tag,
    parse_captions,
)
from bamir.features.text import preprocess, tokenize


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Sunday #Brunch! #coffee☕ with friends", ["brunch", "coffee"]),
        ("#love❤️#life", ["love", "life"]),
        ("#a#b", ["a", "b"]),
        ("C# and page#anchor and &#39;quoted&#39;", []),
        ("http://example.com/page#section #real", ["real"]),
        ("#1 #2024goals #_ #__x", ["2024goals", "__x"]),
        ("#ＹＯＧＡ ＃ｆｕｎ", ["yoga", "fun"]),
        ("#नमस्ते #ครัว #café_life.", ["नमस्ते", "ครัว", "café_life"]),
        ("#Straße", ["strasse"]),
        ("#️⃣ keycap, # alone, ## double", []),
        ("trailing punctuation #fun!!! #end.", ["fun", "end"]),
        ("(#paren) [#bracket] \"#quoted\"", ["paren", "bracket", "quoted"]),
        ("#dup #Dup #DUP", ["dup", "dup", "dup"]),
    ],
)
def test_extract_hashtags_examples(text, expected):
    assert extract_hashtags(text) == expected


@pytest.mark.parametrize("value", [None, float("nan"), 3, b"#bytes", "", "#", "##", "＃"])
def test_extract_hashtags_non_text(value):
    assert extract_hashtags(value) == []
    assert extract_mentions(value) == []


def _well_formed(text) -> None:
    """What every extraction returns: tags without '#', spaces or a missing letter; names not ending in '.';
    no more tags than '#' signs (either width) in the text."""
    tags = extract_hashtags(text)
    for tag in tags:
        assert tag and not any(ch.isspace() for ch in tag)
        assert "#" not in tag and any(ch.isalpha() for ch in tag)
    assert len(tags) <= text.count("#") + text.count("＃")
    names = extract_mentions(text)
    for name in names:
        assert name and not name.endswith(".") and not any(ch.isspace() for ch in name)
    assert len(names) <= text.count("@") + text.count("＠")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.characters(codec=None, exclude_categories=())))
def test_extract_never_crashes_any_text(text):
    _well_formed(text)
    tokenize(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(list("#＃@&_.!?👍❤️\u200d\ufe0f\u0301 aZé1ค्\n\t")), max_size=40).map("".join))
def test_extract_is_well_formed_on_a_tricky_alphabet(text):
    _well_formed(text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet=st.characters(categories=("Ll", "Lo")), min_size=1, max_size=12), max_size=8))
def test_extract_round_trip(words):
    caption = " ".join(f"#{w}" for w in words)
    assert extract_hashtags(caption) == [extract_hashtags(f"#{w}")[0] for w in words]


def test_mentions():
    assert extract_mentions("with @Nike and @adidas_uk. mail me@x.com, @@x, @.") == ["nike", "adidas_uk"]
    assert extract_mentions("(@a.b.) @" + "x" * 40) == ["a.b", "x" * 30]


def test_parse_and_count():
    posts = pd.DataFrame(
        {
            "post_id": ["p1", "p2", "p3", "p4"],
            "account_id": ["a", "a", "b", "c"],
            "caption": ["#Run #run #gym @b", "#run", None, "no tags"],
        }
    )
    parsed = parse_captions(posts)
    assert parsed["hashtags"].tolist() == [("run", "gym"), ("run",), (), ()]
    assert parsed["mentions"].tolist() == [("b",), (), (), ()]
    counts = count_hashtags(parsed, ["a", "b", "z"])
    assert counts == {"a": Counter({"run": 2, "gym": 1}), "b": Counter(), "z": Counter()}


def test_spam_list_and_pattern():
    for tag in ("like4like", "followforfollow", "l4l", "f4f", "instagood", "likes4follows", "comment4comment"):
        assert is_farming_tag(tag), tag
    for tag in ("travel", "follower_art", "likeable", "coffee", "f4fun"):
        assert not is_farming_tag(tag), tag
    assert "like4like" in SPAM_HASHTAGS


def test_frequency_rule_fitted_on_given_accounts():
    counts = {f"a{i}": Counter({"generic": 1, f"own{i}": 2}) for i in range(30)}
    counts["a0"]["like4like"] = 1
    filt = HashtagFilter(max_account_share=0.5, min_accounts=20).fit(counts)
    assert filt.frequent == {"generic"}
    kept, dropped = filt.filter_counts(counts)
    assert kept["a0"] == Counter({"own0": 2})
    assert dropped == Counter({"generic": 30, "like4like": 1})
    # too few accounts: the frequency rule is off, the list still applies
    small = HashtagFilter(max_account_share=0.5, min_accounts=20).fit(dict(list(counts.items())[:5]))
    assert small.frequent == frozenset() and small.is_spam("like4like") and not small.is_spam("generic")
    assert HashtagFilter.from_state(filt.state()) == filt


def test_text_preprocess():
    assert tokenize("Travel photographer @nat_geo. Coffee & dogs! https://x.io") == [
        "travel", "photographer", "coffee", "dogs"]
    assert preprocess("I am running marathons and eating cakes") == ["run", "marathon", "eat", "cake"]
    assert preprocess("नमस्ते दुनिया", lemmatise=False) == ["नमस्ते", "दुनिया"]
    assert preprocess(None) == [] and preprocess("the and of") == []
