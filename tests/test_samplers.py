"""Negative samplers: never a known positive, the right structure, the right distributions."""

import pytest
import torch

from bamir.samplers import (
    FixedTripletSampler, KBucketSampler, MixedSampler, PopularitySampler, SameCategorySampler,
    TrainingData, UniformSampler,
)

N_BRANDS, N_INF = 6, 30


@pytest.fixture
def data():
    """6 brands in 2 categories; each brand has 8 positives (dense, so exclusion matters)."""
    g = torch.Generator().manual_seed(0)
    brands, positives = [], []
    for b in range(N_BRANDS):
        chosen = torch.randperm(N_INF, generator=g)[:8] + N_BRANDS
        brands += [b] * 8
        positives += chosen.tolist()
    category = torch.full((N_BRANDS + N_INF,), -1)
    category[:N_BRANDS] = torch.tensor([0, 0, 0, 1, 1, 1])
    brands, positives = torch.tensor(brands), torch.tensor(positives)
    return TrainingData(brands=brands, positives=positives, pool=torch.unique(positives), category=category,
                        num_accounts=N_BRANDS + N_INF, triplet_sets={"fixed": torch.tensor([[0, 6, 7], [5, 8, 9]])})


def _is_positive(data, brand, inf):
    keys = set((data.brands * data.num_accounts + data.positives).tolist())
    return (brand * data.num_accounts + inf).apply_(lambda k: k in keys).bool()


SAMPLERS = [
    UniformSampler(negatives=2, repeats=3),
    UniformSampler(negatives=3, repeats=3, replacement=False),
    SameCategorySampler(negatives=2, repeats=3),
    MixedSampler(),
    MixedSampler(uniform_replacement=False),
    KBucketSampler(k=5),
    PopularitySampler(negatives=3, alpha=1.0),
]


@pytest.mark.parametrize("sampler", SAMPLERS, ids=lambda s: type(s).__name__)
def test_never_returns_a_known_positive(sampler, data):
    rows = sampler.sample(data, torch.Generator().manual_seed(1))
    negatives = rows[:, 2:]
    assert not _is_positive(data, rows[:, :1].expand_as(negatives).clone(), negatives.clone()).any()
    assert torch.isin(negatives, data.pool).all()
    # the (brand, positive) columns are the training positives
    assert _is_positive(data, rows[:, 0].clone(), rows[:, 1].clone()).all()


def test_structure_of_each_sampler(data):
    g = torch.Generator().manual_seed(0)
    p = len(data.brands)
    assert UniformSampler(negatives=2, repeats=3).sample(data, g).shape == (3 * p, 4)
    assert KBucketSampler(k=5).sample(data, g).shape == (p, 6)
    rows = MixedSampler(uniform=3, same_category=1, repeats=5).sample(data, g)
    assert rows.shape == (p * 4 * 5, 3), "each negative its own triplet, as published (67,700 = 3,385 x 4 x 5)"
    # each positive appears 4 times per round: 3 uniform then 1 same-category
    grouped = rows.view(5, p, 4, 3)
    assert (grouped[..., 0] == data.brands.view(1, p, 1)).all()
    assert (grouped[..., 1] == data.positives.view(1, p, 1)).all()


def test_same_category_negatives_come_from_the_category(data):
    rows = SameCategorySampler(negatives=1, repeats=20).sample(data, torch.Generator().manual_seed(2))
    cat_members = {c: set(data.positives[data.category[data.brands] == c].tolist()) for c in (0, 1)}
    for brand, neg in rows[:, [0, 2]].tolist():
        assert neg in cat_members[int(data.category[brand])]
    # in the mix, the 4th negative of each group is the same-category one
    mixed = MixedSampler().sample(data, torch.Generator().manual_seed(3)).view(-1, 4, 3)
    for brand, neg in mixed[:, 3, [0, 2]].tolist():
        assert neg in cat_members[int(data.category[brand])]


def test_unknown_category_falls_back_to_uniform(data):
    data.category[:] = -1
    rows = SameCategorySampler().sample(data, torch.Generator().manual_seed(0))
    assert torch.isin(rows[:, 2], data.pool).all()


def test_uniform_distribution_is_uniform_over_allowed(data):
    """Frequencies over one brand's allowed negatives are flat (chi-square test)."""
    from scipy.stats import chisquare

    rows = UniformSampler(negatives=20, repeats=100).sample(data, torch.Generator().manual_seed(4))  # at most the pool (24)
    negs = rows[rows[:, 0] == 0][:, 2:].reshape(-1)
    allowed = data.pool[~torch.isin(data.pool, data.positives[data.brands == 0])]
    counts = torch.stack([(negs == a).sum() for a in allowed]).numpy()
    assert counts.sum() == len(negs)
    assert chisquare(counts).pvalue > 0.001


def test_without_replacement_rows_are_uniform_permutations():
    """replacement=False: a row of 3 negatives from 3 allowed influencers is a permutation of them,
    each of the 6 orders equally likely (chi-square test); with replacement, rows repeat some."""
    from scipy.stats import chisquare

    # one brand, pool 1..5, positives 1 and 2: allowed negatives 3, 4, 5
    data = TrainingData(brands=torch.tensor([0, 0]), positives=torch.tensor([1, 2]), pool=torch.arange(1, 6),
                        category=torch.full((6,), -1), num_accounts=6, triplet_sets={})
    rows = UniformSampler(negatives=3, repeats=600, replacement=False).sample(data, torch.Generator().manual_seed(6))
    negatives = rows[:, 2:]
    assert (negatives.sort(dim=1).values == torch.tensor([3, 4, 5])).all()
    orders = torch.unique(negatives, dim=0, return_counts=True)[1]
    assert len(orders) == 6 and chisquare(orders.numpy()).pvalue > 0.001
    repeated = UniformSampler(negatives=3, repeats=50).sample(data, torch.Generator().manual_seed(6))[:, 2:]
    assert (repeated.sort(dim=1).values.diff(dim=1) == 0).any()
    with pytest.raises(RuntimeError, match="repeats within their row"):
        UniformSampler(negatives=4, replacement=False, max_tries=5).sample(data, torch.Generator())


def test_popularity_follows_degree(data):
    """Draw frequencies are proportional to (1 + degree) ** alpha among allowed negatives."""
    sampler = PopularitySampler(negatives=20, alpha=1.0, repeats=200)  # at most the pool (24) per positive
    rows = sampler.sample(data, torch.Generator().manual_seed(5))
    negs = rows[rows[:, 0] == 0][:, 2:].reshape(-1)
    allowed = data.pool[~torch.isin(data.pool, data.positives[data.brands == 0])]
    weights = (1.0 + data.degree()[allowed].double())
    expected = weights / weights.sum()
    observed = torch.stack([(negs == a).sum() for a in allowed]).double() / len(negs)
    assert torch.allclose(observed, expected, atol=0.01)


def test_fixed_triplets_keep_training_brands_only(data):
    data.brands = data.brands[data.brands != 5]
    rows = FixedTripletSampler("fixed").sample(data, torch.Generator())
    assert rows.tolist() == [[0, 6, 7]]
    with pytest.raises(KeyError, match="not in the store"):
        FixedTripletSampler("absent").sample(data, torch.Generator())


def test_impossible_exclusion_is_a_clear_error():
    data = TrainingData(brands=torch.tensor([0, 0]), positives=torch.tensor([1, 2]), pool=torch.tensor([1, 2]),
                        category=torch.tensor([-1, -1, -1]), num_accounts=3, triplet_sets={})
    with pytest.raises(RuntimeError, match="pool is too small"):
        UniformSampler(max_tries=5).sample(data, torch.Generator())


def test_deterministic_for_a_seed(data):
    a = MixedSampler().sample(data, torch.Generator().manual_seed(9))
    b = MixedSampler().sample(data, torch.Generator().manual_seed(9))
    assert torch.equal(a, b)
