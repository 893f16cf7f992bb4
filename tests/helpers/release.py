"""Write a small folder in the exact layout of the published BAMIR release (train_test_split/).

Same file names, Python types, tensor dtypes and id conventions as the real release
(``docs/release.md``): global indices are positions in the sorted name lists, node id
= row for brands and row + number of brands for influencers, LDA float32, concept float64,
brand image float32 [n, 1365], triplets int64 [T, 3] built the published way (per training
positive 3 random negatives + 1 same-category negative, the whole sampling 5 times), test
label matrix int64. Brand categories are hidden (the release only lists the names) and
returned in :class:`ReleaseFixture` so that category inference can be checked. Some
training influencers are also test candidates, and some of their test-file LDA rows differ
from their training rows, as in the real data.
"""

from __future__ import annotations

import pickle
import string
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

CATEGORY_NAMES = (
    "airline", "auto", "clothing", "drink", "electronics", "entertainment",
    "food", "jewelry", "makeup", "nonprofit", "services", "shoes",
)


@dataclass
class ReleaseFixture:
    """What was written, including the hidden truth."""

    path: Path
    brands: list[str]
    influencers: list[str]
    train_brand_index: list[int]
    train_inf_index: list[int]
    test_brand_index: list[int]
    test_inf_index: list[int]
    brand_category: dict[int, str]  # global brand index -> hidden category
    train_pairs: list[tuple[int, int]]  # (brand row, inf row) in the training files, distinct
    test_labels: np.ndarray
    triplets: np.ndarray
    overlap: list[int]  # global influencer indices in both splits
    overlap_differ: int  # how many of them have test-file LDA rows that differ
    with_test: bool
    files: list[str] = field(default_factory=list)


def _dump(path: Path, obj: object) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=4))


def _names(rng: np.random.Generator, count: int, taken: set[str], prefix: str = "") -> list[str]:
    letters = list(string.ascii_lowercase + string.digits + "._")
    out: list[str] = []
    while len(out) < count:
        name = prefix + "".join(rng.choice(letters[:26])) + "".join(rng.choice(letters, size=int(rng.integers(4, 10))))
        if name not in taken:
            taken.add(name)
            out.append(name)
    return out


def _assign(rng: np.random.Generator, n_items: int, n_owners: int, extra_share: float) -> list[set[int]]:
    """Each item gets one owner (every owner at least one item), some items a second owner."""
    order = rng.permutation(n_items)
    owners: list[set[int]] = [set() for _ in range(n_items)]
    for k, item in enumerate(order):
        owners[item].add(k % n_owners if k < n_owners else int(rng.integers(n_owners)))
    if n_owners > 1:
        for item in rng.choice(n_items, size=int(round(extra_share * n_items)), replace=False):
            owners[item].add(int(rng.choice([o for o in range(n_owners) if o not in owners[item]])))
    return owners


def write_release_fixture(
    path: str | Path,
    n_brands_train: int = 12,
    n_brands_test: int = 4,
    n_inf_train: int = 40,
    n_test_candidates: int = 15,
    with_test: bool = True,
    seed: int = 0,
    *,
    n_categories: int = 3,
    n_overlap: int = 5,
    overlap_differ: int = 2,
    topic_dim: int = 19,
    concept_dim: int = 128,
    repeats: int = 5,
    name_clash: bool = False,
) -> ReleaseFixture:
    """Write a release folder at ``path`` (created) and return what was written."""
    assert n_inf_train >= n_brands_train and n_test_candidates >= n_brands_test
    assert 0 <= n_overlap <= min(n_inf_train, n_test_candidates) and overlap_differ <= n_overlap
    rng = np.random.default_rng(seed)
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)

    n_brands = n_brands_train + n_brands_test
    n_infs = n_inf_train + n_test_candidates - n_overlap
    taken: set[str] = set()
    brands = sorted(_names(rng, n_brands, taken))
    influencers = _names(rng, n_infs, taken)
    if name_clash:  # one influencer has a brand's username
        influencers[0] = brands[int(rng.integers(n_brands))]
    influencers = sorted(influencers)

    brand_perm = rng.permutation(n_brands).tolist()
    train_b, test_b = brand_perm[:n_brands_train], brand_perm[n_brands_train:]
    inf_perm = rng.permutation(n_infs).tolist()
    train_i = inf_perm[:n_inf_train]
    overlap = sorted(rng.choice(train_i, size=n_overlap, replace=False).tolist())
    test_i = [int(g) for g in rng.permutation(overlap + inf_perm[n_inf_train:])]

    cats = CATEGORY_NAMES[:n_categories]
    brand_category: dict[int, str] = {}
    for ordered in (train_b, test_b):
        labels = [cats[k % n_categories] for k in range(len(ordered))]
        for g, c in zip(ordered, rng.permutation(labels)):
            brand_category[g] = str(c)

    # positives: owners[row] = brand rows of that side
    train_owners = _assign(rng, n_inf_train, n_brands_train, 0.1)
    test_owners = _assign(rng, len(test_i), n_brands_test, 0.1) if n_brands_test else [set() for _ in test_i]
    labels = np.zeros((n_brands_test, len(test_i)), dtype=np.int64)
    for col, owners in enumerate(test_owners):
        for b in owners:
            labels[b, col] = 1
    # every influencer's brands, by global index (train and test), for the hard-negative sampler
    brands_of: dict[int, set[int]] = {g: set() for g in range(n_infs)}
    for row, owners in enumerate(train_owners):
        brands_of[train_i[row]] |= {train_b[b] for b in owners}
    for col, owners in enumerate(test_owners):
        brands_of[test_i[col]] |= {test_b[b] for b in owners}

    train_pairs = sorted((b, row) for row, owners in enumerate(train_owners) for b in owners)
    positives_of: dict[int, set[int]] = {b: set() for b in range(n_brands_train)}
    for b, row in train_pairs:
        positives_of[b].add(row)
    triplets = []
    for _ in range(repeats):
        for b, row in train_pairs:
            g_b = train_b[b]
            others = [r for r in range(n_inf_train) if r not in positives_of[b]]
            for neg in rng.choice(others, size=min(3, len(others)), replace=False):
                triplets.append((b, row, int(neg)))
            # same category: an influencer of another brand (train or test) of b's category
            hard = [
                r for r in others
                if any(o != g_b and brand_category[o] == brand_category[g_b] for o in brands_of[train_i[r]])
            ]
            triplets.append((b, row, int(rng.choice(hard if hard else others))))
    triplet_array = np.asarray(triplets, dtype=np.int64).reshape(-1, 3)

    # features by global index, so a shared influencer has the same row on both sides
    lda_b = rng.dirichlet(np.full(topic_dim, 0.3), size=n_brands).astype(np.float32)
    lda_i = rng.dirichlet(np.full(topic_dim, 0.3), size=n_infs).astype(np.float32)
    concept_b = rng.normal(0, 0.1, size=(n_brands, concept_dim))
    concept_i = rng.normal(0, 0.1, size=(n_infs, concept_dim))
    image_b = (rng.random((n_brands, 1365)) ** 4).astype(np.float32)

    files: list[str] = []

    def save(name: str, obj: object) -> None:
        files.append(name)
        target = path / name
        if name.endswith(".pt"):
            torch.save(torch.from_numpy(np.ascontiguousarray(obj)), target)
        elif name.endswith(".npy"):
            np.save(target, obj, allow_pickle=False)
        else:
            _dump(target, obj)

    save("sorted_360_brand_list.pkl", brands)
    save("sorted_3748_inf_list.pkl", influencers)
    save("category_list.pickle", list(cats))

    def side(name: str, b_index: list[int], i_index: list[int], lda_inf: np.ndarray) -> None:
        nb = len(b_index)
        save(f"discover_{name}_brand_index.pickle", list(b_index))
        save(f"discover_{name}_inf_index.pickle", list(i_index))
        save(f"{name}_brand_node_id.pkl", {g: r for r, g in enumerate(b_index)})
        save(f"{name}_node_brand_id.pkl", {r: g for r, g in enumerate(b_index)})
        save(f"{name}_inf_node_id.pkl", {g: r + nb for r, g in enumerate(i_index)})
        save(f"{name}_node_inf_id.pkl", {r + nb: g for r, g in enumerate(i_index)})
        save(f"{name}_brand_text_feature_lda.pt", lda_b[b_index])
        save(f"{name}_inf_text_feature_lda.pt", lda_inf)
        save(f"{name}_brand_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", concept_b[b_index])
        save(f"{name}_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", concept_i[i_index])
        save(f"{name}_brand_mor_image_feature.pt", image_b[b_index])

    side("train", train_b, train_i, lda_i[train_i])
    save("train_label_triplet_hard13_five_samebrand.npy", triplet_array)
    if with_test:
        test_lda = lda_i[test_i].copy()
        for g in overlap[:overlap_differ]:  # the test files' LDA rows of a few shared influencers differ
            col = test_i.index(g)
            test_lda[col] = (0.9 * test_lda[col] + 0.1 / topic_dim).astype(np.float32)
        side("test", test_b, test_i, test_lda)
        save("test_label_list.npy", labels)

    return ReleaseFixture(
        path=path,
        brands=brands,
        influencers=influencers,
        train_brand_index=train_b,
        train_inf_index=train_i,
        test_brand_index=test_b if with_test else [],
        test_inf_index=test_i if with_test else [],
        brand_category=brand_category,
        train_pairs=train_pairs,
        test_labels=labels,
        triplets=triplet_array,
        overlap=overlap if with_test else [],
        overlap_differ=overlap_differ if with_test else 0,
        with_test=with_test,
        files=files,
    )
