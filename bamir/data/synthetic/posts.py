"""Posts: captions with hashtags and mentions, image topics, likes, comments, timestamps.

A post has one topic, drawn from its account's topic mixture. Its caption fills a template
with words of that topic (each slot with probability ``signal.caption``; otherwise a
generic word or a word of a random topic), then adds hashtags (the topic's with probability
``signal.hashtag``; otherwise like/follow spam, generic or random tags) and mentions.
The image draws the post's topic motif with probability ``signal.image``, else a random
motif, filtered by the account's style. Timestamps follow the account's rhythm: a posting
rate, a preferred local hour, and its region's UTC offset; the crawl ends on ``crawl_date``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from bamir.data.synthetic.vocabulary import (BRAND_TEMPLATES, EMOJI, GENERIC_TAGS, GENERIC_WORDS,
                                             INFLUENCER_TEMPLATES, MENTION_TEMPLATES, SPAM_TAGS, TOPICS)
from bamir.data.synthetic.world import REGIONS

_SLOT = re.compile(r"\{([wge])\}")


def _compile(template: str) -> list[tuple[str, str]]:
    out, pos = [], 0
    for match in _SLOT.finditer(template):
        if match.start() > pos:
            out.append(("lit", template[pos:match.start()]))
        out.append((match.group(1), ""))
        pos = match.end()
    if pos < len(template):
        out.append(("lit", template[pos:]))
    return out


_INFLUENCER = [_compile(t) for t in INFLUENCER_TEMPLATES]
_BRAND = [_compile(t) for t in BRAND_TEMPLATES]
_MENTION = [_compile(t.replace("{u}", "\x00")) for t in MENTION_TEMPLATES]


@dataclass
class Habits:
    """How one account posts."""

    rate: float           # posts per week
    hour: float           # preferred local hour
    hour_sd: float
    offset: int           # UTC offset of the home region
    hashtags: float       # mean hashtags per post
    spam: float           # share of hashtags that are like/follow spam
    emoji: float          # chance an emoji slot gets an emoji
    comment_ratio: float  # comments per like
    city: str


def habits(kind: str, style: np.ndarray, region: int, rng: np.random.Generator) -> Habits:
    brand = kind == "brand"
    return Habits(
        rate=float(rng.uniform(3, 10)) if brand else float(np.clip(np.exp(rng.normal(np.log(3), 0.6)), 0.5, 14)),
        hour=float(rng.normal(12, 2)) if brand else float(rng.normal(19, 2.5)),
        hour_sd=float(rng.uniform(0.7, 2.5)),
        offset=REGIONS[region][1],
        hashtags=float(np.clip(np.exp(rng.normal(np.log(2.5 if brand else 4.5), 0.6)), 0.3, 20)),
        spam=0.0 if brand else float(rng.beta(1.2, 4.0)),
        emoji=float(1 / (1 + np.exp(-(style[5] - 0.3)))),
        comment_ratio=float(rng.uniform(0.01, 0.05)),
        city=REGIONS[region][2][int(rng.integers(len(REGIONS[region][2])))],
    )


def _word(topic: int, purity: float, rng: np.random.Generator) -> str:
    u = rng.random()
    if u < purity:
        words = TOPICS[topic].words
    elif u < purity + (1 - purity) / 2:
        words = GENERIC_WORDS
    else:
        words = TOPICS[int(rng.integers(len(TOPICS)))].words
    return words[int(rng.integers(len(words)))]


def _fill(template, topic: int, purity: float, emoji: float, rng: np.random.Generator, handle: str = "") -> str:
    out = []
    for kind, text in template:
        if kind == "lit":
            out.append(text.replace("\x00", handle))
        elif kind == "w":
            out.append(_word(topic, purity, rng))
        elif kind == "g":
            out.append(GENERIC_WORDS[int(rng.integers(len(GENERIC_WORDS)))])
        elif rng.random() < emoji:
            out.append(EMOJI[int(rng.integers(len(EMOJI)))])
    return re.sub(r"\s+", " ", "".join(out)).strip()


def _hashtags(topic: int, h: Habits, purity: float, rng: np.random.Generator) -> list[str]:
    n = int(rng.poisson(h.hashtags))
    tags: list[str] = []
    for _ in range(n):
        u = rng.random()
        if u < purity:
            pool = TOPICS[topic].hashtags
        elif rng.random() < h.spam:
            pool = SPAM_TAGS
        elif rng.random() < 0.5:
            pool = GENERIC_TAGS
        else:
            pool = TOPICS[int(rng.integers(len(TOPICS)))].hashtags
        tag = pool[int(rng.integers(len(pool)))]
        if rng.random() < 0.1:
            tag = tag.capitalize()
        if tag.lower() not in {t.lower() for t in tags}:
            tags.append(tag)
    return tags


def caption(kind: str, topic: int, h: Habits, signal: dict, rng: np.random.Generator,
            mentions: list[str], brand_tag: str | None = None) -> str:
    templates = _BRAND if kind == "brand" else _INFLUENCER
    purity = float(signal["caption"])
    text = _fill(templates[int(rng.integers(len(templates)))], topic, purity, h.emoji, rng)
    if rng.random() < 0.35:
        text += (" " if text[-1:] in "?!." else _pick_sep(rng)) + _fill(templates[int(rng.integers(len(templates)))], topic, purity, h.emoji, rng)
    text = text[:1].upper() + text[1:]
    if rng.random() < 0.06:
        text += f" in {h.city}"
    for handle in mentions:
        text += " " + _fill(_MENTION[int(rng.integers(len(_MENTION)))], topic, purity, h.emoji, rng, handle)
    tags = _hashtags(topic, h, float(signal["hashtag"]), rng)
    if brand_tag and rng.random() < 0.5:
        tags.insert(0, brand_tag)
    if tags:
        text += ("\n\n" if rng.random() < 0.4 else " ") + " ".join("#" + t for t in tags)
    return text


def _pick_sep(rng: np.random.Generator) -> str:
    return (". ", "! ", " - ", "\n")[int(rng.integers(4))]


def timestamps(n: int, h: Habits, crawl_end: datetime, rng: np.random.Generator) -> list[str]:
    """``n`` ISO 8601 UTC timestamps, newest first."""
    gaps = rng.gamma(2.0, 7.0 / h.rate / 2.0, n)  # days between posts
    days = np.cumsum(gaps) + rng.exponential(7.0 / h.rate / 2)
    out = []
    for d in days:
        day = (crawl_end - timedelta(days=float(d))).date()
        local = float(np.clip(rng.normal(h.hour, h.hour_sd), 0, 23.99))
        moment = datetime(day.year, day.month, day.day, tzinfo=timezone.utc) + timedelta(hours=local - h.offset)
        moment = moment.replace(microsecond=0) + timedelta(seconds=int(rng.integers(0, 60)))
        out.append(min(moment, crawl_end))
    out.sort(reverse=True)
    return [m.strftime("%Y-%m-%dT%H:%M:%S+00:00") for m in out]


def engagement(n: int, followers: int, rate: float, h: Habits, topics: np.ndarray, main: int,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    base = followers * rate
    boost = np.where(topics == main, 1.25, 1.0)
    likes = np.round(base * boost * np.exp(rng.normal(0, 0.45, n))).astype(np.int64)
    comments = np.round(likes * h.comment_ratio * np.exp(rng.normal(0, 0.5, n))).astype(np.int64)
    return likes, comments


def image_topic(topic: int, purity: float, rng: np.random.Generator) -> int:
    return topic if rng.random() < purity else int(rng.integers(len(TOPICS)))
