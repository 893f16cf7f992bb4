"""Negative samplers: the training examples of a ranking model, chosen by config.

Every sampler turns the training positives into a table of account-row indices
``[T, 2 + n]``: ``(brand, positive, negative_1, ..., negative_n)``. A triplet sampler has
``n = 1``; Gan et al.'s k-buckets groups have ``n = k - 1``. All work is vectorised on
tensors; a drawn negative that is a known positive of its brand is redrawn, so no sampler
ever returns one (RecBole-style "sampling configured, not coded").

Samplers:

- :class:`UniformSampler`: negatives uniform over the training influencers, drawn with replacement
  (a row may repeat one) or without (``replacement=False``: distinct within each row).
- :class:`SameCategorySampler`: hard negatives, influencers of other brands of the same category.
- :class:`MixedSampler`: BAMIR's "specific strategy": per positive 3 uniform + 1 same-category
  negative, each its own triplet, the whole sampling repeated 5 times (docs/method.md section 9;
  the public code draws the 3 uniform ones without replacement: ``uniform_replacement=False``).
- :class:`KBucketSampler`: Gan et al. (2019) k-buckets: groups of one positive and k - 1
  negatives of the same brand, for a listwise loss.
- :class:`PopularitySampler`: negatives drawn with probability proportional to
  ``(1 + degree) ** alpha`` (degree = number of training brands an influencer is linked to).
- :class:`FixedTripletSampler`: a triplet table kept in the feature store (e.g. the published
  release's own 67,700 triplets).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class TrainingData:
    """What a sampler draws from. All indices are feature-store account rows.

    Args:
        brands: ``[P]`` brand of each training positive pair.
        positives: ``[P]`` influencer of each training positive pair.
        pool: ``[M]`` candidate negatives (the training influencers).
        category: ``[N]`` category id of each account, ``-1`` where unknown.
        num_accounts: ``N``.
        triplet_sets: fixed triplet tables by name, ``[T, 3]`` each.
    """

    brands: Tensor
    positives: Tensor
    pool: Tensor
    category: Tensor
    num_accounts: int
    triplet_sets: dict[str, Tensor]

    def positive_keys(self) -> Tensor:
        """Sorted unique ``brand * N + influencer`` keys of the known positives."""
        return torch.unique(self.brands * self.num_accounts + self.positives)

    def degree(self) -> Tensor:
        """``[N]`` number of training positive pairs of each account."""
        return torch.bincount(self.positives, minlength=self.num_accounts)


class NegativeSampler:
    """Base class. Subclasses implement :meth:`draw`; :meth:`sample` adds exclusion and repeats.

    Args:
        repeats: how many times the whole sampling is repeated.
        resample_every_epoch: draw fresh negatives each epoch (else once, then shuffled).
        max_tries: redraw rounds for negatives that hit a known positive.
    """

    def __init__(self, repeats: int = 1, resample_every_epoch: bool = False, max_tries: int = 100):
        if repeats < 1:
            raise ValueError(f"repeats must be >= 1, got {repeats}")
        self.repeats = repeats
        self.resample_every_epoch = resample_every_epoch
        self.max_tries = max_tries

    def per_positive(self) -> dict[str, int]:
        """Negatives drawn per positive, by the config key that sets them."""
        return {}

    def check_pool(self, data: TrainingData) -> None:
        """Refuse more negatives per positive than the pool has influencers."""
        counts = self.per_positive()
        if sum(counts.values()) > len(data.pool):
            raise ValueError(f"{sum(counts.values())} negatives per positive (config keys {', '.join(counts)}) exceed "
                             f"the pool of {len(data.pool)} training influencers: allowed 1..{len(data.pool)} in all")

    def sample(self, data: TrainingData, generator: torch.Generator) -> Tensor:
        """Return ``[T, 2 + n]`` rows ``(brand, positive, negatives...)``."""
        self.check_pool(data)
        return torch.cat([self._sample_once(data, generator) for _ in range(self.repeats)])

    def _sample_once(self, data: TrainingData, generator: torch.Generator) -> Tensor:
        negatives = self.draw(data, data.brands, generator)  # [P, n]
        return torch.cat([data.brands[:, None], data.positives[:, None], negatives], dim=1)

    def draw(self, data: TrainingData, brands: Tensor, generator: torch.Generator) -> Tensor:
        """``[len(brands), n]`` negatives for each brand, never a known positive of it."""
        raise NotImplementedError

    def _exclude_positives(self, data, brands, negatives, redraw, generator, distinct: bool = False) -> Tensor:
        """Redraw the entries of ``negatives`` that are known positives of their brand, and with
        ``distinct`` those that repeat an earlier entry of their row.

        ``redraw(brand_rows, generator) -> [len(brand_rows)]`` draws one replacement each. With a
        uniform ``redraw`` the rows end uniform over the ordered tuples of distinct non-positives
        (the redraws never favour one allowed influencer over another), as sampling without
        replacement from the pool minus the brand's positives.
        """
        keys = data.positive_keys()
        n = negatives.shape[1]
        earlier = torch.ones(n, n, dtype=torch.bool).triu(1)  # [i, j]: i < j
        for _ in range(self.max_tries):
            bad = torch.isin(brands[:, None] * data.num_accounts + negatives, keys)
            if distinct and n > 1:
                bad |= ((negatives[:, :, None] == negatives[:, None, :]) & earlier).any(1)
            if not bad.any():
                return negatives
            rows, cols = bad.nonzero(as_tuple=True)
            negatives[rows, cols] = redraw(brands[rows], generator)
        what = "positives of their brand or repeats within their row" if distinct else "positives of their brand"
        raise RuntimeError(
            f"{type(self).__name__}: after {self.max_tries} redraws some negatives are still {what} "
            f"(account rows {brands[bad.any(dim=1)].unique()[:5].tolist()}): the negative pool "
            "is too small for these brands"
        )

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v}" for k, v in vars(self).items())
        return f"{type(self).__name__}({fields})"


def _uniform(pool: Tensor, count: int, generator: torch.Generator) -> Tensor:
    return pool[torch.randint(len(pool), (count,), generator=generator)]


class UniformSampler(NegativeSampler):
    """``negatives`` influencers per positive, uniform over the training pool minus the brand's positives.

    ``replacement=True``: each drawn independently (a row may hold one twice); ``False``: the row's
    negatives are distinct, a uniform draw without replacement (the public BAMIR code's
    ``randperm(non_positives)[:3]``).
    """

    def __init__(self, negatives: int = 1, replacement: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.negatives = negatives
        self.replacement = replacement

    def per_positive(self) -> dict[str, int]:
        return {"sampler.negatives": self.negatives}

    def draw(self, data, brands, generator):
        out = _uniform(data.pool, len(brands) * self.negatives, generator).view(len(brands), self.negatives)
        return self._exclude_positives(data, brands, out, lambda b, g: _uniform(data.pool, len(b), g), generator,
                                       distinct=not self.replacement)


class _CategoryPools:
    """CSR table: for each category, the influencers linked to a training brand of it."""

    def __init__(self, data: TrainingData):
        cat = data.category[data.brands]
        known = cat >= 0
        n_cat = int(data.category.max()) + 1 if (data.category >= 0).any() else 0
        key = torch.unique(cat[known] * data.num_accounts + data.positives[known])  # sorted by category
        self.members = key % data.num_accounts
        counts = torch.bincount(key // data.num_accounts, minlength=n_cat)
        self.counts = counts
        self.offsets = torch.cumsum(counts, 0) - counts
        self.category = data.category
        self.pool = data.pool
        self.own = torch.bincount(data.brands, minlength=data.num_accounts)  # a brand's own positives

    def draw(self, brands: Tensor, generator: torch.Generator) -> Tensor:
        """One same-category influencer per brand; uniform over the pool where the category is unknown or empty."""
        out = _uniform(self.pool, len(brands), generator)
        if len(self.counts) == 0:
            return out
        cat = self.category[brands]
        counts = torch.where(cat >= 0, self.counts[cat.clamp(min=0)], 0)
        has = counts > self.own[brands]  # some member is not the brand's own positive
        if has.any():
            u = torch.rand(int(has.sum()), generator=generator)
            pick = self.offsets[cat[has]] + (u * counts[has]).long().clamp(max=counts[has] - 1)
            out[has] = self.members[pick]
        return out


class SameCategorySampler(NegativeSampler):
    """Hard negatives: influencers of other brands of the same category as the brand.

    Brands of unknown category, or whose category has no influencer but their own positives,
    fall back to uniform negatives.
    """

    def __init__(self, negatives: int = 1, **kwargs):
        super().__init__(**kwargs)
        self.negatives = negatives

    def per_positive(self) -> dict[str, int]:
        return {"sampler.negatives": self.negatives}

    def draw(self, data, brands, generator):
        pools = _CategoryPools(data)
        repeated = brands.repeat_interleave(self.negatives)
        out = pools.draw(repeated, generator).view(len(brands), self.negatives)
        return self._exclude_positives(data, brands, out, pools.draw, generator)


class MixedSampler(NegativeSampler):
    """BAMIR's sampling: per positive ``uniform`` random + ``same_category`` hard negatives,
    each emitted as its own triplet, repeated ``repeats`` times (published: 3 + 1, x5).

    ``uniform_replacement``: whether the random negatives of one positive may repeat (True) or are
    distinct (False, the public code). The hard negative is drawn on its own and may equal one of them.
    """

    def __init__(self, uniform: int = 3, same_category: int = 1, repeats: int = 5, uniform_replacement: bool = True,
                 **kwargs):
        super().__init__(repeats=repeats, **kwargs)
        self.uniform = UniformSampler(uniform, replacement=uniform_replacement, max_tries=self.max_tries)
        self.same_category = SameCategorySampler(same_category, max_tries=self.max_tries)

    def per_positive(self) -> dict[str, int]:
        return {"sampler.uniform": self.uniform.negatives, "sampler.same_category": self.same_category.negatives}

    def _sample_once(self, data, generator):
        negatives = torch.cat(
            [self.uniform.draw(data, data.brands, generator), self.same_category.draw(data, data.brands, generator)],
            dim=1,
        )  # [P, uniform + same_category], the published order: random ones first
        n = negatives.shape[1]
        return torch.stack(
            [data.brands.repeat_interleave(n), data.positives.repeat_interleave(n), negatives.reshape(-1)], dim=1
        )


class KBucketSampler(UniformSampler):
    """Gan et al. (2019) k-buckets: one positive and ``k - 1`` uniform negatives per group."""

    def __init__(self, k: int = 4, **kwargs):
        if k < 2:
            raise ValueError(f"k must be >= 2, got {k}")
        super().__init__(negatives=k - 1, **kwargs)
        self.k = k

    def per_positive(self) -> dict[str, int]:
        return {"sampler.k": self.negatives}


class PopularitySampler(NegativeSampler):
    """Negatives drawn with probability ``(1 + degree) ** alpha`` over the pool (word2vec-style)."""

    def __init__(self, negatives: int = 1, alpha: float = 0.75, **kwargs):
        super().__init__(**kwargs)
        self.negatives = negatives
        self.alpha = alpha

    def per_positive(self) -> dict[str, int]:
        return {"sampler.negatives": self.negatives}

    def weights(self, data: TrainingData) -> Tensor:
        return (1.0 + data.degree()[data.pool].double()) ** self.alpha

    def draw(self, data, brands, generator):
        weights = self.weights(data)

        def one(b, g):
            return data.pool[torch.multinomial(weights, len(b), replacement=True, generator=g)]

        out = one(brands.repeat_interleave(self.negatives), generator).view(len(brands), self.negatives)
        return self._exclude_positives(data, brands, out, one, generator)


class FixedTripletSampler(NegativeSampler):
    """A triplet table from the feature store, restricted to the training brands."""

    def __init__(self, name: str = "release", **kwargs):
        super().__init__(**kwargs)
        self.name = name

    def sample(self, data, generator):
        if self.name not in data.triplet_sets:
            raise KeyError(f"triplet set {self.name!r} not in the store; it has {sorted(data.triplet_sets)}")
        triplets = data.triplet_sets[self.name]
        keep = torch.isin(triplets[:, 0], torch.unique(data.brands))
        return triplets[keep]
