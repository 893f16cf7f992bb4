"""The latent world: brands, the influencer pool, the planted affinity, the positives, the split.

Mirrors how Gan et al. collected the real data: every brand "recruits" its micro-influencers
from a larger latent pool (the real influencers were found because a brand mentioned them),
and the dataset's influencers are the union of those recruited. A brand recruits the
pool influencers with the highest planted affinity plus pair noise; the pool size is chosen
so that the union has exactly the requested number of influencers, and the overlap between
brands gives the share of influencers linked to several brands.

Planted affinity (each term z-scored over all brand x pool pairs, then weighted)::

    A[b, i] = w_topic      * cos(theta_b, theta_i)                  topic fit
            + w_complement * theta_b' C theta_i / |theta_b||theta_i|  lifestyle complementarity (C: clusters)
            + w_category   * theta_i . profile(category_b)            category fit
            + w_style      * s_b . s_i / sqrt(6)                     style match (images, emoji use)
            + w_region     * targets_b . region_i / |targets_b|      audience region (bio city, posting hours)
            + w_reach      * rho_b * z(log followers_i)              brand-specific reach preference
            + w_engagement * z(log engagement_i)                     engagement rate

Positives of brand b are the top k_b pool influencers of ``A[b] + noise * std(A) * N(0, 1)``.
Ranking by ``A`` is therefore the best any model can do (the oracle): the pair noise is
independent of everything observable.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import numpy as np

from bamir.data.schema import CATEGORIES
from bamir.data.synthetic.vocabulary import CATEGORY_PROFILES, CLUSTERS, TOPIC_INDEX, TOPICS

AFFINITY_TERMS = ("topic", "complement", "category", "style", "region", "reach", "engagement")
#: The brand latents :func:`brand_affinity` can replace (fields of :class:`Accounts`).
BRAND_LATENTS = ("theta", "style", "targets", "reach")
#: A brand's reach preference: REACH_FROM_FOLLOWERS x z(log followers) + REACH_OWN x its own N(0, 1) draw.
REACH_FROM_FOLLOWERS, REACH_OWN = 0.6, 0.8
#: Style dimensions: brightness, warmth, saturation, contrast, grain (images), emoji use (captions).
STYLE_DIM = 6
#: Audience regions: name, UTC offset in hours, cities, weight among influencers.
REGIONS = (
    ("us_east", -5, ("NYC", "Boston", "Miami", "Atlanta", "Toronto"), 0.26),
    ("us_west", -8, ("LA", "San Francisco", "Seattle", "Vancouver", "San Diego"), 0.2),
    ("uk", 0, ("London", "Manchester", "Dublin", "Edinburgh", "Bristol"), 0.2),
    ("europe", 1, ("Paris", "Berlin", "Amsterdam", "Lisbon", "Barcelona"), 0.12),
    ("australia", 10, ("Sydney", "Melbourne", "Brisbane", "Perth", "Auckland"), 0.12),
    ("asia", 8, ("Singapore", "Hong Kong", "Manila", "Kuala Lumpur", "Bali"), 0.1),
)


@dataclass
class Accounts:
    """Latent attributes of a set of accounts (brands or influencers), one row each."""

    theta: np.ndarray        # [n, T] topic mixture
    style: np.ndarray        # [n, 3] visual style
    followers: np.ndarray    # [n] int
    engagement: np.ndarray   # [n] engagement rate (likes per follower per post)
    category: np.ndarray     # [n] category index, -1 for influencers
    reach: np.ndarray        # [n] brands: preference for bigger audiences; 0 for influencers
    region: np.ndarray       # [n] home region index
    targets: np.ndarray      # [n, R] regions the account addresses (brands: 1-3; influencers: home)


@dataclass
class World:
    brands: Accounts
    influencers: Accounts               # the dataset's influencers only
    affinity: np.ndarray                # [B, N] planted affinity (the oracle)
    terms: dict[str, np.ndarray]        # [B, N] each z-scored term
    scales: dict[str, tuple[float, float]]  # each raw term's mean and sd over brands x pool (its z-score)
    pool_scales: dict[str, tuple[float, float]]  # mean and sd of log followers / engagement over the pool
    positives: list[np.ndarray]         # per brand, influencer indices (0..N-1), best first
    scores: list[np.ndarray]            # per brand, the selection score of each positive
    test_brands: np.ndarray             # brand indices
    pool_size: int


def category_profiles() -> np.ndarray:
    """[12, T] topic weights per category, rows summing to 1."""
    profile = np.zeros((len(CATEGORIES), len(TOPICS)))
    for c, name in enumerate(CATEGORIES):
        for topic, weight in CATEGORY_PROFILES[name].items():
            profile[c, TOPIC_INDEX[topic]] = weight
    return profile / profile.sum(axis=1, keepdims=True)


def complement_matrix() -> np.ndarray:
    """[T, T] lifestyle complementarity: 1 for distinct topics sharing a cluster, 0 otherwise."""
    comp = np.zeros((len(TOPICS), len(TOPICS)))
    for cluster in CLUSTERS:
        idx = [TOPIC_INDEX[name] for name in cluster]
        for a in idx:
            for b in idx:
                if a != b:
                    comp[a, b] = 1.0
    return comp


def make_brands(cfg: dict, rng: np.random.Generator) -> Accounts:
    per = int(cfg["brands_per_category"])
    n = per * len(CATEGORIES)
    profiles = category_profiles()
    conc = float(cfg["affinity"]["brand_concentration"])
    category = np.repeat(np.arange(len(CATEGORIES)), per)
    own = float(cfg["affinity"]["brand_idiosyncrasy"])
    theta = np.stack([rng.dirichlet(conc * len(TOPICS) * profiles[c] / 4 + 0.02) for c in category])
    theta = (1 - own) * theta + own * rng.dirichlet(np.full(len(TOPICS), 0.3), size=n)
    log_f = rng.uniform(4.5, 6.7, n)
    followers = np.round(10 ** log_f).astype(np.int64)
    engagement = np.exp(rng.normal(np.log(0.008), 0.5, n))
    z = (log_f - log_f.mean()) / (log_f.std() + 1e-9)
    reach = REACH_FROM_FOLLOWERS * z + REACH_OWN * rng.normal(size=n)
    weights = np.array([r[3] for r in REGIONS])
    region = rng.choice(len(REGIONS), size=n, p=weights / weights.sum())
    targets = np.zeros((n, len(REGIONS)))
    targets[np.arange(n), region] = 1
    for b in range(n):
        extra = rng.choice(len(REGIONS), size=int(rng.integers(0, 3)), replace=False)
        targets[b, extra] = 1
    return Accounts(theta, rng.normal(size=(n, STYLE_DIM)), followers, engagement, category, reach,
                    region, targets)


def make_pool(cfg: dict, size: int, rng: np.random.Generator) -> Accounts:
    """Influencers with 1-3 interests: a main topic (by popularity) and others mostly from its clusters."""
    n_topics = len(TOPICS)
    popularity = np.array([topic.popularity for topic in TOPICS])
    popularity = popularity / popularity.sum()
    coherence = complement_matrix()
    conc = float(cfg["affinity"]["influencer_concentration"])
    main = rng.choice(n_topics, size=size, p=popularity)
    n_extra = rng.choice([0, 1, 2], size=size, p=[0.3, 0.45, 0.25])
    theta = np.zeros((size, n_topics))
    for i in range(size):
        picks = [main[i]]
        for _ in range(n_extra[i]):
            related = np.flatnonzero(coherence[main[i]])
            if rng.random() < 0.7 and len(related):
                picks.append(int(rng.choice(related)))
            else:
                picks.append(int(rng.choice(n_topics, p=popularity)))
        weights = rng.dirichlet(np.full(len(picks), 1.0 + conc))
        np.add.at(theta[i], picks, weights)
    theta = 0.95 * theta + 0.05 * rng.dirichlet(np.ones(n_topics), size=size)
    log_f = rng.uniform(np.log10(5_000), np.log10(100_000), size)
    followers = np.round(10 ** log_f).astype(np.int64)
    centre = np.log(0.035) - 0.5 * (log_f - 4.35)
    engagement = np.clip(np.exp(rng.normal(centre, 0.5)), 0.003, 0.25)
    weights = np.array([r[3] for r in REGIONS])
    region = rng.choice(len(REGIONS), size=size, p=weights / weights.sum())
    targets = np.zeros((size, len(REGIONS)))
    targets[np.arange(size), region] = 1
    return Accounts(theta, rng.normal(size=(size, STYLE_DIM)), followers, engagement,
                    np.full(size, -1), np.zeros(size), region, targets)


def _unit(x: np.ndarray) -> np.ndarray:
    return x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)


def pool_scales(pool: Accounts) -> dict[str, tuple[float, float]]:
    """Mean and sd of the pool's log followers and log engagement, which z-score them in the terms."""
    logs = {"followers": np.log(pool.followers), "engagement": np.log(pool.engagement)}
    return {k: (float(v.mean()), float(v.std())) for k, v in logs.items()}


def affinity_terms(brands: Accounts, pool: Accounts,
                   scales: dict[str, tuple[float, float]] | None = None) -> dict[str, np.ndarray]:
    """Raw (un-standardised) terms of the affinity, each [B, M]. ``scales``: the :func:`pool_scales`
    that z-score the influencers' log followers and engagement (None: those of ``pool``)."""
    tb, ti = _unit(brands.theta).astype(np.float32), _unit(pool.theta).astype(np.float32)
    profiles = _unit(category_profiles())
    scales = scales or pool_scales(pool)
    (f_mean, f_sd), (e_mean, e_sd) = scales["followers"], scales["engagement"]
    log_f, log_e = np.log(pool.followers), np.log(pool.engagement)
    terms = {
        "topic": tb @ ti.T,
        "complement": tb @ complement_matrix() @ ti.T,
        "category": profiles[brands.category] @ ti.T,
        "style": brands.style @ pool.style.T / np.sqrt(STYLE_DIM),
        "region": (brands.targets / brands.targets.sum(1, keepdims=True)) @ pool.targets.T,
        "reach": brands.reach[:, None] * ((log_f - f_mean) / f_sd)[None, :],
        "engagement": np.broadcast_to(((log_e - e_mean) / e_sd)[None, :],
                                      (len(brands.followers), len(pool.followers))),
    }
    return {k: np.asarray(v, dtype=np.float32) for k, v in terms.items()}


def brand_affinity(world: World, weights: dict, brands: np.ndarray | None = None, **latents: np.ndarray) -> np.ndarray:
    """``[len(brands), N]``: the planted affinity of ``brands`` (indices; None: all) over the dataset's
    influencers, with some of their latents replaced: ``theta`` ``[n, T]``, ``style`` ``[n, 6]``,
    ``targets`` ``[n, R]`` and ``reach`` ``[n]`` (the others stay the world's). Each term is z-scored
    with the world's own constants, so with nothing replaced it is ``world.affinity[brands]``::

        A'[b, i] = sum_k w_k (t_k(b', i) - mean_k) / sd_k,     b' = b with the given latents
    """
    unknown = sorted(set(latents) - set(BRAND_LATENTS))
    if unknown:
        raise ValueError(f"brand_affinity: no brand latent {unknown}; use {', '.join(BRAND_LATENTS)}")
    rows = np.arange(len(world.brands.followers)) if brands is None else np.asarray(brands)
    own = world.brands
    chosen = Accounts(*(np.asarray(latents[f.name]) if f.name in latents else getattr(own, f.name)[rows]
                        for f in fields(Accounts)))
    terms = affinity_terms(chosen, world.influencers, world.pool_scales)
    return sum(float(weights[k]) * (terms[k] - world.scales[k][0]) / world.scales[k][1]
               for k in AFFINITY_TERMS).astype(np.float32)


def expected_reach(world: World) -> np.ndarray:
    """``[B]``: each brand's reach preference as far as its posts tell, ``E[rho_b | followers_b]``.

    ``rho_b = 0.6 z(log followers_b) + 0.8 e_b`` (:func:`make_brands`), and ``e_b ~ N(0, 1)`` is drawn
    apart from everything a brand posts: for a brand never seen in training no ranker can know it,
    and the best it can use is ``E[rho_b | followers_b] = 0.6 z(log followers_b)``."""
    log_f = np.log10(world.brands.followers.astype(np.float64))
    return REACH_FROM_FOLLOWERS * (log_f - log_f.mean()) / (log_f.std() + 1e-9)


def expected_reach_affinity(world: World, weights: dict) -> np.ndarray:
    """The planted affinity with each brand's reach preference replaced by :func:`expected_reach`.
    An upper bound still: the other brand latents (topics, style, regions) are only seen through posts."""
    return brand_affinity(world, weights, reach=expected_reach(world))


def _scales(terms: dict[str, np.ndarray]) -> dict[str, tuple[float, float]]:
    """Each term's mean and sd (+1e-12), which z-score it."""
    return {k: (float(v.mean()), float(v.std()) + 1e-12) for k, v in terms.items()}


def positive_counts(cfg: dict, n_brands: int, rng: np.random.Generator) -> np.ndarray:
    """Positives per brand: 3 + a negative binomial, clipped to [min, max], total = round(mean * B)."""
    lo, hi = int(cfg["min_positives"]), int(cfg["max_positives"])
    mean = float(cfg["positives_per_brand"])
    extra = max(mean - lo, 0.1)
    r = 3.0
    counts = lo + rng.negative_binomial(r, r / (r + extra), n_brands)
    counts = np.clip(counts, lo, hi)
    target = int(round(mean * n_brands))
    while counts.sum() != target:
        step = 1 if counts.sum() < target else -1
        movable = np.flatnonzero((counts < hi) if step > 0 else (counts > lo))
        if len(movable) == 0:
            break
        counts[rng.choice(movable)] += step
    return counts


def _select(scores: np.ndarray, counts: np.ndarray, m: int) -> list[np.ndarray]:
    out = []
    for b, k in enumerate(counts):
        row = scores[b, :m]
        top = np.argpartition(-row, k - 1)[:k]
        out.append(top[np.argsort(-row[top], kind="stable")])
    return out


def _union(selected: list[np.ndarray]) -> np.ndarray:
    return np.unique(np.concatenate(selected))


def make_world(cfg: dict, rng: np.random.Generator) -> World:
    """Draw brands, a pool, the affinity and the positives; keep the recruited influencers."""
    aff = cfg["affinity"]
    n_target = int(cfg["influencers"])
    brands = make_brands(cfg, rng)
    counts = positive_counts(cfg, len(brands.followers), rng)
    if counts.sum() < n_target:
        raise ValueError(f"{counts.sum()} positive pairs cannot cover {n_target} influencers: "
                         "raise positives_per_brand or lower influencers")
    if counts.max() > n_target:
        raise ValueError(f"a brand drew {counts.max()} positives but there are only {n_target} influencers: "
                         f"lower max_positives (now {cfg['max_positives']}) or raise influencers")
    pool_max = max(int(counts.sum() * 15), n_target * 2)
    pool = make_pool(cfg, pool_max, rng)
    influencer_scales = pool_scales(pool)
    raw = affinity_terms(brands, pool, influencer_scales)
    scales = _scales(raw)
    terms = {k: ((v - scales[k][0]) / scales[k][1]).astype(np.float32) for k, v in raw.items()}
    affinity = sum(float(aff[k]) * terms[k] for k in AFFINITY_TERMS)
    noise = rng.standard_normal(affinity.shape, dtype=np.float32)
    scores = affinity + float(aff["noise"]) * float(affinity.std()) * noise

    # smallest pool whose union of recruits reaches the target (binary search on the pool size)
    lo, hi = max(n_target, int(counts.max())), pool_max
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_union(_select(scores, counts, mid))) >= n_target:
            hi = mid
        else:
            lo = mid + 1
    m = lo
    selected = _select(scores, counts, m)
    union = _union(selected)
    if len(union) < n_target:
        raise ValueError(f"could not recruit {n_target} influencers from a pool of {pool_max}")
    # trim the excess: the weakest single-brand recruits give their slot to the brand's best
    # remaining candidate among those already recruited (keeps every brand's count)
    sets = [list(s) for s in selected]
    owners: dict[int, list[int]] = {}
    for b, chosen in enumerate(sets):
        for i in chosen:
            owners.setdefault(int(i), []).append(b)
    excess = len(union) - n_target
    while excess > 0:
        singles = [(scores[bs[0], i], i) for i, bs in owners.items() if len(bs) == 1]
        _, drop = min(singles)
        b = owners.pop(drop)[0]
        sets[b].remove(drop)
        recruited = np.array(sorted(owners))
        candidates = recruited[~np.isin(recruited, sets[b])]
        best = int(candidates[np.argmax(scores[b, candidates])])
        sets[b].append(best)
        owners[best].append(b)
        excess -= 1
    keep = np.array(sorted(owners))
    index = {int(i): j for j, i in enumerate(keep)}
    positives, pos_scores = [], []
    for b, chosen in enumerate(sets):
        chosen = np.array(sorted(chosen, key=lambda i: -scores[b, i]))
        positives.append(np.array([index[int(i)] for i in chosen]))
        pos_scores.append(scores[b, chosen])

    influencers = Accounts(*(getattr(pool, f.name)[keep] for f in fields(Accounts)))
    test = _test_brands(brands.category, int(cfg["test_brands"]), rng)
    return World(brands, influencers, affinity[:, keep].astype(np.float32),
                 {k: v[:, keep] for k, v in terms.items()}, scales, influencer_scales,
                 positives, pos_scores, test, m)


def _test_brands(category: np.ndarray, n_test: int, rng: np.random.Generator) -> np.ndarray:
    """``n_test`` brands spread as evenly as possible over the categories."""
    n_cat = int(category.max()) + 1
    per = np.full(n_cat, n_test // n_cat)
    per[rng.permutation(n_cat)[: n_test % n_cat]] += 1
    chosen = []
    for c in range(n_cat):
        members = np.flatnonzero(category == c)
        if per[c] > len(members) - 1:
            raise ValueError(f"test_brands={n_test} leaves category {CATEGORIES[c]} without training brands")
        chosen.extend(rng.choice(members, per[c], replace=False).tolist())
    return np.array(sorted(chosen))
