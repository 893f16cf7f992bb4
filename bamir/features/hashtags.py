"""Hashtags and mentions from captions, per-account counts, and like/follow-spam filtering.

BAMIR (step 3 of the concept pipeline, see ``docs/method.md`` section 7) gathers
the hashtags of each account's captions and drops the ones that exist only to farm likes
and follows before linking hashtags to concepts. This module does that part.

**Extraction.** A hashtag is ``#`` (or the full-width ``＃``) followed by a run of Unicode
word characters: letters, digits, ``_``, combining marks (so Devanagari, Thai, Arabic
tags stay whole) and the zero-width (non-)joiners. The run ends at whitespace,
punctuation, symbols or emoji (``#love❤️`` -> ``love``, ``#fun!`` -> ``fun``). A ``#``
glued to a preceding word (``C#``, ``page#anchor``, ``&#39;``) starts no hashtag, except
right after another hashtag (``#a#b`` -> ``a``, ``b``, as Instagram links them). A tag
must contain a letter (``#1`` is not a tag) and is NFKC-normalised and case-folded
(``#ＹＯＧＡ`` -> ``yoga``). Mentions are ``@`` + 1 to 30 of ``[\\w.]`` not glued to a
preceding word (so e-mail addresses are not mentions), trailing dots removed.

**Counts.** ``count(a, t)`` is the number of account ``a``'s posts whose caption uses tag
``t`` (a tag repeated within one caption counts once).

**Spam.** A tag is spam when (1) it is on the maintained list :data:`SPAM_HASHTAGS`
(``like4like``, ``followforfollow``, ``l4l``, ``f4f``, ``instagood``...), or (2) it
matches the farming pattern ``<verb>{4,for,to}<verb>`` over like/follow/comment/share/
spam/shoutout/tag (``likes4follows``, ``comment4comment``), or (3) the frequency rule:
it is used by more than ``max_account_share`` of the accounts the filter is fitted on
(generic tags carry no interest signal). The frequency rule is fitted on training
accounts only and applies only when at least ``min_accounts`` accounts were seen.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Iterable, Mapping

import pandas as pd

from bamir.features.text import mark_class

#: Like/follow-farming and generic "engagement" tags (case-folded, without ``#``).
SPAM_HASHTAGS: frozenset[str] = frozenset(
    """
    like4like likeforlike likeforlikes likes4likes l4l likeback likebackteam liker likers
    likes like instalike instalikes instalikes likeall likealways likesforlikes tagsforlikes
    tagforlikes tags4likes likeme likemypic likemypost likesforfollow likeforfollow
    follow4follow followforfollow followforfollowback followback followbackteam f4f
    followme follow follows followers follower followall followtrain followalways
    followmenow pleasefollow teamfollowback instafollow follow4followback
    comment4comment commentforcomment c4c comments shoutout4shoutout shoutoutforshoutout
    s4s spam4spam spamforspam share4share tagforfollow tflers tfl
    instagood photooftheday picoftheday instadaily instamood instagram insta ig igers
    instapic instaphoto instalove bestoftheday photoofday potd webstagram statigram
    iphoneonly all_shots
    """.split()
)

_SPAM_PATTERN = re.compile(
    r"^(?:(?:like|follow|comment|share|spam|shoutout|tag)s?"
    r"(?:4|for|to|back)(?:like|follow|comment|share|spam|shoutout|tag)s?(?:back)?"
    r"|[lfcs]4[lfcs]|[lfcs]4[lfcs]4[lfcs])$"
)

_JOINERS = "\u200c\u200d"
_TRIM = "\u200c\u200d\ufe0e\ufe0f"
_MAX_TAG_LEN = 100


@lru_cache(maxsize=1)
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str]]:
    body = f"(?:\\w|[{mark_class()}{_JOINERS}])+"
    tag = re.compile(f"#({body})")
    mention = re.compile(r"(?<![\w@.])@([\w.]{1,30})")
    return tag, mention


def _normalise(text: Any) -> str | None:
    if not isinstance(text, str) or not text:
        return None
    try:
        return unicodedata.normalize("NFKC", text)
    except Exception:  # pragma: no cover - normalize accepts any str today
        return text


def extract_hashtags(text: Any, max_len: int = _MAX_TAG_LEN) -> list[str]:
    """The hashtags of one caption, in order, NFKC-normalised and case-folded (repeats kept).

    Any input is accepted: non-strings (``None``, NaN) give ``[]``.

    >>> extract_hashtags("Sunday #Brunch! #coffee☕ #1 C# #a#b #ＹＯＧＡ")
    ['brunch', 'coffee', 'a', 'b', 'yoga']
    """
    text = _normalise(text)
    if text is None or "#" not in text:
        return []
    pattern = _patterns()[0]
    tags: list[str] = []
    last_end = -1
    for match in pattern.finditer(text):
        start = match.start()
        if start > 0 and start != last_end:
            prev = text[start - 1]
            if prev == "&" or prev == "_" or prev.isalnum() or (
                unicodedata.category(prev)[0] == "M" and not ("\ufe00" <= prev <= "\ufe0f" or prev == "\u20e3")
            ):  # glued to a word; an emoji's variation selector or keycap mark does not glue
                continue
        last_end = match.end()
        tag = unicodedata.normalize("NFKC", match.group(1).casefold()).strip(_TRIM)
        if not tag or len(tag) > max_len or not any(ch.isalpha() for ch in tag):
            continue
        tags.append(tag)
    return tags


def extract_mentions(text: Any) -> list[str]:
    """The ``@usernames`` mentioned in one caption, case-folded, in order (repeats kept).

    >>> extract_mentions("with @Nike and @adidas_uk. mail me@x.com")
    ['nike', 'adidas_uk']
    """
    text = _normalise(text)
    if text is None or "@" not in text:
        return []
    names = []
    for match in _patterns()[1].finditer(text):
        name = match.group(1).rstrip(".").casefold()
        if name and any(ch.isalnum() for ch in name):
            names.append(name)
    return names


def parse_captions(posts: pd.DataFrame) -> pd.DataFrame:
    """One row per post: ``account_id``, ``hashtags`` and ``mentions`` (tuples of distinct items).

    ``posts`` needs the ``account_id`` and ``caption`` columns of the raw posts table.
    """
    captions = posts["caption"].tolist() if "caption" in posts else [None] * len(posts)
    hashtags = [tuple(dict.fromkeys(extract_hashtags(c))) for c in captions]
    mentions = [tuple(dict.fromkeys(extract_mentions(c))) for c in captions]
    return pd.DataFrame(
        {"account_id": posts["account_id"].astype(str).tolist(), "hashtags": hashtags, "mentions": mentions},
        index=posts.index,
    )


def count_hashtags(parsed: pd.DataFrame, accounts: Iterable[str] | None = None) -> dict[str, Counter]:
    """Per-account hashtag counts (number of the account's posts using each tag).

    ``parsed`` is the output of :func:`parse_captions`; ``accounts`` (optional) restricts
    the result and makes sure each listed account has an entry, possibly empty.
    """
    listed = None if accounts is None else list(accounts)
    wanted = None if listed is None else set(listed)
    counts: dict[str, Counter] = {a: Counter() for a in (listed or ())}
    for account, tags in zip(parsed["account_id"], parsed["hashtags"]):
        if wanted is not None and account not in wanted:
            continue
        if tags:
            counts.setdefault(account, Counter()).update(tags)
        else:
            counts.setdefault(account, Counter())
    return counts


def is_farming_tag(tag: str) -> bool:
    """True for a tag on :data:`SPAM_HASHTAGS` or matching the like/follow farming pattern."""
    return tag in SPAM_HASHTAGS or _SPAM_PATTERN.match(tag) is not None


@dataclass
class HashtagFilter:
    """Drops like/follow-farming tags: the maintained list, the pattern, and a frequency rule.

    ``fit`` learns the frequent tags (used by more than ``max_account_share`` of the
    accounts it sees, when it sees at least ``min_accounts``); fit it on training accounts
    only so that test accounts cannot change what is filtered.
    """

    max_account_share: float = 0.4
    min_accounts: int = 20
    use_list: bool = True
    use_pattern: bool = True
    extra: frozenset[str] = frozenset()
    frequent: frozenset[str] = field(default_factory=frozenset)

    def fit(self, counts: Mapping[str, Counter]) -> "HashtagFilter":
        n = len(counts)
        self.frequent = frozenset()
        if n >= max(1, self.min_accounts) and self.max_account_share < 1:
            users: Counter = Counter()
            for tags in counts.values():
                users.update(tags.keys())
            limit = self.max_account_share * n
            self.frequent = frozenset(t for t, k in users.items() if k > limit)
        return self

    def is_spam(self, tag: str) -> bool:
        if tag in self.frequent or tag in self.extra:
            return True
        if self.use_list and tag in SPAM_HASHTAGS:
            return True
        return self.use_pattern and _SPAM_PATTERN.match(tag) is not None

    def filter_counts(self, counts: Mapping[str, Counter]) -> tuple[dict[str, Counter], Counter]:
        """``counts`` without spam tags, and how many (account, tag) entries each dropped tag had."""
        kept: dict[str, Counter] = {}
        dropped: Counter = Counter()
        cache: dict[str, bool] = {}
        for account, tags in counts.items():
            keep = Counter()
            for tag, k in tags.items():
                spam = cache.get(tag)
                if spam is None:
                    spam = cache[tag] = self.is_spam(tag)
                if spam:
                    dropped[tag] += 1
                else:
                    keep[tag] = k
            kept[account] = keep
        return kept, dropped

    def filter_tags(self, tags: Iterable[str]) -> tuple[str, ...]:
        return tuple(t for t in tags if not self.is_spam(t))

    def state(self) -> dict[str, Any]:
        return {
            "max_account_share": self.max_account_share,
            "min_accounts": self.min_accounts,
            "use_list": self.use_list,
            "use_pattern": self.use_pattern,
            "extra": sorted(self.extra),
            "frequent": sorted(self.frequent),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> "HashtagFilter":
        return cls(
            max_account_share=float(state["max_account_share"]),
            min_accounts=int(state["min_accounts"]),
            use_list=bool(state["use_list"]),
            use_pattern=bool(state["use_pattern"]),
            extra=frozenset(state.get("extra", ())),
            frequent=frozenset(state.get("frequent", ())),
        )
