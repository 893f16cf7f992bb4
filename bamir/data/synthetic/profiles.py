"""Observable profiles: usernames, biographies, profile business categories.

Biographies show an account's interests through role nouns and interest words of its
topics (each drawn from its own topics with probability ``signal.biography``, otherwise
from a random topic), its home city, and contact boilerplate. Brands' biographies and
business categories may name their own category; influencers' never name a brand's.
"""

from __future__ import annotations

import numpy as np

from bamir.data.synthetic.vocabulary import (BRAND_BUSINESS, BRAND_SUFFIX, EMOJI, FIRST_NAMES,
                                             GENERIC_BUSINESS, NAME_SYLLABLES, TOPICS)
from bamir.data.synthetic.world import REGIONS, Accounts
from bamir.data.schema import CATEGORIES

_SURNAME_BITS = ("ray", "lee", "moss", "vale", "fox", "gray", "hart", "king", "lane", "wood", "rose", "stone")


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def brand_names(n: int, category: np.ndarray, rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """Display names and unique usernames of ``n`` brands."""
    names, users, seen = [], [], set()
    for b in range(n):
        while True:
            syll = rng.choice(NAME_SYLLABLES, size=int(rng.integers(2, 4)))
            stem = "".join(syll)
            suffix = _pick(rng, BRAND_SUFFIX[CATEGORIES[category[b]]]) if rng.random() < 0.6 else ""
            user = stem + suffix
            if user not in seen and len(stem) >= 4:
                break
        seen.add(user)
        users.append(user)
        names.append(stem.capitalize() + (" " + suffix.capitalize() if suffix else ""))
    return names, users


def influencer_usernames(latent: Accounts, taken: set[str], rng: np.random.Generator) -> list[str]:
    users = []
    seen = set(taken)
    main = latent.theta.argmax(axis=1)
    for i in range(len(main)):
        first = _pick(rng, FIRST_NAMES)
        sep = _pick(rng, ("", ".", "_"))
        u = rng.random()
        if u < 0.3:
            word = _pick(rng, TOPICS[main[i]].words)
            if rng.random() < 0.5:
                # the main topic's word: a weak, realistic hint of interests, not of any brand
                user = f"{first}{sep}{word}"
            else:
                user = f"{word}{sep}with{sep}{first}"
        elif u < 0.7:
            user = f"{first}{sep}{_pick(rng, _SURNAME_BITS)}"
        else:
            user = f"the{sep}{first}{sep}{_pick(rng, ('diaries', 'life', 'world', 'daily', 'edit', 'journal'))}"
        base = user
        while user in seen:
            user = f"{base}{int(rng.integers(1, 100))}"
        seen.add(user)
        users.append(user)
    return users


def external_handles(n: int, taken: set[str], rng: np.random.Generator) -> list[str]:
    """Accounts mentioned in captions that are not in the dataset (photographers, friends, venues)."""
    out, seen = [], set(taken)
    while len(out) < n:
        handle = f"{_pick(rng, FIRST_NAMES)}{_pick(rng, ('', '_', '.'))}{_pick(rng, _SURNAME_BITS)}" \
                 f"{_pick(rng, ('photo', 'studio', 'films', 'official', 'xo', 'art', 'eats', 'co'))}"
        if handle not in seen:
            seen.add(handle)
            out.append(handle)
    return out


def _topic_draw(theta: np.ndarray, purity: float, rng: np.random.Generator) -> int:
    """An account topic (prob. ``purity``) or a random one."""
    if rng.random() < purity:
        return int(rng.choice(len(theta), p=theta / theta.sum()))
    return int(rng.integers(len(TOPICS)))


def influencer_bio(theta: np.ndarray, region: int, username: str, purity: float, rng: np.random.Generator) -> str:
    parts = []
    roles = []
    for _ in range(int(rng.integers(1, 3))):
        topic = TOPICS[_topic_draw(theta, purity, rng)]
        roles.append(_pick(rng, topic.roles))
    roles = list(dict.fromkeys(roles))
    join = _pick(rng, (" & ", " | ", " + ", ", "))
    role_text = join.join(roles)
    parts.append(role_text.capitalize() if rng.random() < 0.7 else role_text)
    if rng.random() < 0.8:
        topic = TOPICS[_topic_draw(theta, purity, rng)]
        word = _pick(rng, topic.words)
        parts.append(_pick(rng, (f"{word} lover", f"{word} addict", f"all things {word}", f"{word} enthusiast",
                                 f"living for {word}", f"{word} everyday")))
    if rng.random() < 0.6:
        parts.append(f"📍{_pick(rng, REGIONS[region][2])}")
    if rng.random() < 0.4:
        parts.append(f"📩 {username.replace('.', '').replace('_', '')}@gmail.com")
    elif rng.random() < 0.3:
        parts.append(_pick(rng, ("DM for collabs", "Collabs: link below", "Business inquiries via email")))
    if rng.random() < 0.5:
        parts.append("".join(rng.choice(EMOJI, size=int(rng.integers(1, 3)))))
    sep = _pick(rng, (" | ", " • ", "\n", " "))
    return sep.join(parts)


def brand_bio(name: str, username: str, theta: np.ndarray, category: int, region: int,
              targets: np.ndarray, rng: np.random.Generator) -> str:
    topic = TOPICS[int(rng.choice(len(theta), p=theta / theta.sum()))]
    w1, w2 = rng.choice(topic.words, size=2, replace=False)
    slogan = _pick(rng, (f"{w1.capitalize()} for every {w2}", f"Made for {w1} and {w2}",
                         f"Your {w1}, our {w2}", f"Where {w1} meets {w2}"))
    opener = _pick(rng, (f"Official {name} account", f"Welcome to {name}", f"{name}", f"The official home of {name}"))
    cat = CATEGORIES[category]
    parts = [opener, slogan]
    if rng.random() < 0.5:
        parts.append(_pick(rng, (f"Your favourite {cat} brand", f"{cat.capitalize()} since {int(rng.integers(1950, 2018))}",
                                 f"Independent {cat} brand")))
    cities = [REGIONS[region][2][0]] + [REGIONS[r][2][0] for r in np.flatnonzero(targets) if r != region]
    parts.append("📍 " + " · ".join(cities))
    parts.append(_pick(rng, ("Shop now ⬇️", "Link in bio", f"#{username}", "Tag us to be featured")))
    return " | ".join(parts)


def influencer_business(theta: np.ndarray, purity: float, rng: np.random.Generator) -> str:
    if rng.random() < purity:
        return _pick(rng, TOPICS[int(theta.argmax())].business)
    return _pick(rng, GENERIC_BUSINESS)


def brand_business(category: int, rng: np.random.Generator) -> str:
    return _pick(rng, BRAND_BUSINESS[CATEGORIES[category]])
