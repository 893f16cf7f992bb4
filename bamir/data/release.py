"""Import the published BAMIR release (``train_test_split/`` folder) into a feature store.

The release holds precomputed features of the "discover" split of the Gan et al. (2019)
data: per side (train, and optionally test) the brands' and influencers' global indices in
row order, node-id maps, LDA topic vectors, node2vec concept vectors and the brands' image
vectors (object 1000 + scene 365), the training triplets and the test label matrix. See
``docs/release.md`` for the layout, file by file.

:func:`read_release` loads and checks every file (nothing is written);
:func:`import_release` turns the result into a :class:`~bamir.features.store.FeatureStore`:

- accounts: the brands, then the influencers, of either side, each in global-index order;
  ``account_id`` = username, with a ``brand:``/``influencer:`` prefix only where a brand and
  an influencer share a name in the release's name lists (4 names in the real release);
- modalities ``topic``, ``concept``, ``object``, ``scene``; a test candidate that is also a
  training influencer takes its row from the *test* files, so the published test protocol
  is reproduced exactly (the manifest counts how many such rows there were and how many
  differ from their training rows);
- pairs: the distinct (brand, positive) of the triplet file, then the test label matrix;
- split ``discover``; triplet set ``release`` (the release's own triplets, as store rows);
- categories: the release has only the category *names*, so brand categories are inferred
  from the same-category negative of every triplet group (:func:`infer_categories`).

Files are read with ``torch.load(weights_only=True)``, ``numpy.load(allow_pickle=False)``
and :func:`~bamir.data.safe_pickle.loads_plain_pickle`; no file of the release can run code.
"""

from __future__ import annotations

import hashlib
import io
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from bamir.data.safe_pickle import UnsafePickleError, bounded_repr, loads_plain_pickle
from bamir.features.store import FeatureStore, StoreError
from bamir.ownership import RELEASE_STORE, OwnershipError, built_beside, check_target
from bamir.utils import stable_hash

#: Global name lists (position = global index).
BRAND_LIST = "sorted_360_brand_list.pkl"
INF_LIST = "sorted_3748_inf_list.pkl"
CATEGORY_LIST = "category_list.pickle"

OBJECT_DIM = 1000
SCENE_DIM = 365
IMAGE_DIM = OBJECT_DIM + SCENE_DIM

TRIPLET_FILE = "train_label_triplet_hard13_five_samebrand.npy"
TEST_LABEL_FILE = "test_label_list.npy"

#: How the triplet file is built: per positive, NEGATIVES_PER_POSITIVE negatives, the one at
#: HARD_POSITION being a same-category negative.
NEGATIVES_PER_POSITIVE = 4
HARD_POSITION = 3

DEFAULT_SPLIT = "discover"
TRIPLET_SET = "release"


def side_files(side: str) -> dict[str, str]:
    """The required files of one side (``train`` or ``test``), by role."""
    files = {
        "brand_index": f"discover_{side}_brand_index.pickle",
        "inf_index": f"discover_{side}_inf_index.pickle",
        "brand_node_id": f"{side}_brand_node_id.pkl",
        "node_brand_id": f"{side}_node_brand_id.pkl",
        "inf_node_id": f"{side}_inf_node_id.pkl",
        "node_inf_id": f"{side}_node_inf_id.pkl",
        "brand_lda": f"{side}_brand_text_feature_lda.pt",
        "inf_lda": f"{side}_inf_text_feature_lda.pt",
        "brand_concept": f"{side}_brand_hashtag_weighted_nod2vec_0615_r1_sqrt.pt",
        "inf_concept": f"{side}_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt",
        "brand_image": f"{side}_brand_mor_image_feature.pt",
    }
    if side == "train":
        files["triplets"] = TRIPLET_FILE
    else:
        files["labels"] = TEST_LABEL_FILE
    return files


def inf_image_file(side: str) -> str:
    """The (optional) influencer image file of one side; the public release has it, some
    copies of the folder do not (docs/release.md section 3)."""
    return f"{side}_inf_mor_image_feature.pt"


COMMON_FILES = (BRAND_LIST, INF_LIST, CATEGORY_LIST)


class ReleaseError(ValueError):
    """The release folder is incomplete or inconsistent. The message names the file."""


# ---------------------------------------------------------------------------- reading


@dataclass
class ReleaseSide:
    """One side (train or test) of the release, checked, in the files' row order."""

    name: str
    brand_index: list[int]
    inf_index: list[int]
    brand_lda: torch.Tensor
    inf_lda: torch.Tensor
    brand_concept: torch.Tensor
    inf_concept: torch.Tensor
    brand_image: torch.Tensor
    inf_image: torch.Tensor | None = None


@dataclass
class Release:
    """The whole release folder, loaded and checked."""

    src: Path
    brands: list[str]
    influencers: list[str]
    category_names: list[str]
    train: ReleaseSide
    triplets: np.ndarray
    test: ReleaseSide | None = None
    test_labels: np.ndarray | None = None
    file_hashes: dict[str, str] = field(default_factory=dict)


class _Reader:
    """Reads files of one folder, hashing each, turning every failure into a ReleaseError."""

    def __init__(self, src: Path):
        self.src = src
        self.hashes: dict[str, str] = {}

    def path(self, name: str) -> Path:
        return self.src / name

    def _bytes(self, name: str) -> bytes:
        path = self.path(name)
        try:
            data = path.read_bytes()
        except OSError as err:
            raise ReleaseError(f"{path}: cannot read ({err})") from err
        self.hashes[name] = hashlib.sha256(data).hexdigest()
        return data

    def pickle(self, name: str) -> Any:
        path = self.path(name)
        data = self._bytes(name)
        try:
            return loads_plain_pickle(data, str(path))
        except UnsafePickleError as err:
            raise ReleaseError(str(err)) from err  # names the file and the refused global, type or limit
        except Exception as err:  # corrupt or truncated pickle
            raise ReleaseError(f"{path}: not a readable pickle ({type(err).__name__}: {err})") from err

    def tensor(self, name: str, dtype: torch.dtype, rows: int, dim: int | None, usernames: Sequence[str]) -> torch.Tensor:
        """A 2-d tensor of ``dtype`` with ``rows`` rows (and ``dim`` columns when given), all finite."""
        path = self.path(name)
        data = self._bytes(name)
        try:
            value = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
        except Exception as err:
            raise ReleaseError(
                f"{path}: cannot load with torch.load(weights_only=True) ({type(err).__name__}: {err})"
            ) from err
        if not isinstance(value, torch.Tensor):
            raise ReleaseError(f"{path}: expected a tensor, found {type(value).__name__}")
        if value.layout != torch.strided:
            raise ReleaseError(f"{path}: expected a dense tensor, found layout {value.layout}")
        if value.dtype != dtype:
            raise ReleaseError(f"{path}: dtype {value.dtype}, expected {dtype}")
        want = f"{rows} x {dim if dim is not None else 'D'}"
        if value.ndim != 2 or value.shape[0] != rows or (dim is not None and value.shape[1] != dim):
            raise ReleaseError(f"{path}: shape {tuple(value.shape)}, expected {want}")
        finite = torch.isfinite(value).all(dim=1)
        if not bool(finite.all()):
            row = int((~finite).nonzero()[0, 0])
            raise ReleaseError(f"{path}: row {row} ({usernames[row]!r}) has NaN or inf values")
        return value

    def npy(self, name: str) -> np.ndarray:
        path = self.path(name)
        data = self._bytes(name)
        try:
            return np.load(io.BytesIO(data), allow_pickle=False)
        except Exception as err:
            raise ReleaseError(
                f"{path}: cannot load with numpy.load(allow_pickle=False) ({type(err).__name__}: {err})"
            ) from err


def _check_names(value: Any, path: Path, what: str) -> list[str]:
    if not isinstance(value, list):
        raise ReleaseError(f"{path}: expected a list of {what} usernames, found {type(value).__name__}")
    for position, name in enumerate(value):
        if not isinstance(name, str) or not name:
            raise ReleaseError(f"{path}: item {position} is {bounded_repr(name)}, expected a non-empty username")
    seen: dict[str, int] = {}
    for position, name in enumerate(value):
        if name in seen:
            raise ReleaseError(f"{path}: username {name!r} at positions {seen[name]} and {position}")
        seen[name] = position
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_index(value: Any, path: Path, size: int, what: str) -> list[int]:
    if not isinstance(value, list):
        raise ReleaseError(f"{path}: expected a list of global {what} indices, found {type(value).__name__}")
    seen: dict[int, int] = {}
    for row, index in enumerate(value):
        if not _is_int(index):
            raise ReleaseError(f"{path}: row {row} is {bounded_repr(index)}, expected an integer global index")
        if not 0 <= index < size:
            raise ReleaseError(f"{path}: row {row}: global index {index} outside 0..{size - 1}")
        if index in seen:
            raise ReleaseError(f"{path}: global index {index} at rows {seen[index]} and {row}")
        seen[index] = row
    return value


def _check_id_maps(forward: Any, backward: Any, fpath: Path, bpath: Path, index: list[int], offset: int, ipath: Path) -> None:
    """``forward``: global index -> node id (= row + offset); ``backward``: its inverse."""
    want = {g: row + offset for row, g in enumerate(index)}
    for value, path, expected, key_what in (
        (forward, fpath, want, "global index -> node id"),
        (backward, bpath, {node: g for g, node in want.items()}, "node id -> global index"),
    ):
        if not isinstance(value, dict):
            raise ReleaseError(f"{path}: expected a dict {key_what}, found {type(value).__name__}")
        for key, item in value.items():
            if not (_is_int(key) and _is_int(item)):
                raise ReleaseError(f"{path}: entry {bounded_repr(key)}: {bounded_repr(item)} is not an integer pair ({key_what})")
        missing = [k for k in expected if k not in value]
        extra = [k for k in value if k not in expected]
        if missing or extra:
            raise ReleaseError(
                f"{path}: keys disagree with {ipath.name} ({len(index)} rows, node ids from {offset}): "
                f"{len(missing)} missing (e.g. {missing[:3]}), {len(extra)} unexpected (e.g. {extra[:3]})"
            )
        wrong = [k for k, v in expected.items() if value[k] != v]
        if wrong:
            k = wrong[0]
            raise ReleaseError(
                f"{path}: {len(wrong)} entries disagree with {ipath.name} (node id = row + {offset}); "
                f"e.g. {k} -> {value[k]}, expected {expected[k]}"
            )


def _read_side(reader: _Reader, side: str, brands: list[str], influencers: list[str], with_inf_image: bool) -> ReleaseSide:
    files = side_files(side)
    p = reader.path
    brand_index = _check_index(reader.pickle(files["brand_index"]), p(files["brand_index"]), len(brands), "brand")
    inf_index = _check_index(reader.pickle(files["inf_index"]), p(files["inf_index"]), len(influencers), "influencer")
    nb = len(brand_index)
    _check_id_maps(
        reader.pickle(files["brand_node_id"]), reader.pickle(files["node_brand_id"]),
        p(files["brand_node_id"]), p(files["node_brand_id"]), brand_index, 0, p(files["brand_index"]),
    )
    _check_id_maps(
        reader.pickle(files["inf_node_id"]), reader.pickle(files["node_inf_id"]),
        p(files["inf_node_id"]), p(files["node_inf_id"]), inf_index, nb, p(files["inf_index"]),
    )
    b_names = [brands[g] for g in brand_index]
    i_names = [influencers[g] for g in inf_index]
    brand_lda = reader.tensor(files["brand_lda"], torch.float32, nb, None, b_names)
    inf_lda = reader.tensor(files["inf_lda"], torch.float32, len(inf_index), brand_lda.shape[1], i_names)
    brand_concept = reader.tensor(files["brand_concept"], torch.float64, nb, None, b_names)
    inf_concept = reader.tensor(files["inf_concept"], torch.float64, len(inf_index), brand_concept.shape[1], i_names)
    brand_image = reader.tensor(files["brand_image"], torch.float32, nb, IMAGE_DIM, b_names)
    inf_image = None
    if with_inf_image:
        inf_image = reader.tensor(inf_image_file(side), torch.float32, len(inf_index), IMAGE_DIM, i_names)
    return ReleaseSide(side, brand_index, inf_index, brand_lda, inf_lda, brand_concept, inf_concept, brand_image, inf_image)


def read_release(src: str | Path) -> Release:
    """Load and check every file of a release folder; raise :class:`ReleaseError` on any problem.

    The training side is required; the test side is read when any of its files is present,
    and then all of them must be.
    """
    src = Path(src)
    if not src.is_dir():
        raise ReleaseError(f"{src}: not a folder")
    train_files = [*COMMON_FILES, *side_files("train").values()]
    missing = [name for name in train_files if not (src / name).is_file()]
    if missing:
        raise ReleaseError(f"{src}: training-side files missing: {', '.join(missing)}")
    test_names = list(side_files("test").values())
    test_present = [name for name in test_names if (src / name).is_file()]
    if test_present and len(test_present) != len(test_names):
        absent = [name for name in test_names if name not in test_present]
        raise ReleaseError(
            f"{src}: partial test side: {len(test_present)} of {len(test_names)} files present; "
            f"missing: {', '.join(absent)}"
        )
    with_test = bool(test_present)
    train_inf_image = (src / inf_image_file("train")).is_file()
    test_inf_image = (src / inf_image_file("test")).is_file()
    if with_test and train_inf_image != test_inf_image:
        have, lack = (inf_image_file("train"), inf_image_file("test"))[:: 1 if train_inf_image else -1]
        raise ReleaseError(f"{src / lack}: missing while {have} is present (influencer image files go in pairs)")
    if not with_test and test_inf_image:
        raise ReleaseError(f"{src / inf_image_file('test')}: present without the rest of the test side")

    reader = _Reader(src)
    brands = _check_names(reader.pickle(BRAND_LIST), src / BRAND_LIST, "brand")
    influencers = _check_names(reader.pickle(INF_LIST), src / INF_LIST, "influencer")
    categories = reader.pickle(CATEGORY_LIST)
    if not isinstance(categories, list) or not all(isinstance(c, str) and c for c in categories):
        raise ReleaseError(f"{src / CATEGORY_LIST}: expected a list of category names, found {bounded_repr(categories)}")

    train = _read_side(reader, "train", brands, influencers, train_inf_image)
    triplets = _check_triplets(reader.npy(TRIPLET_FILE), src / TRIPLET_FILE, train)

    test = labels = None
    if with_test:
        test = _read_side(reader, "test", brands, influencers, test_inf_image)
        both = sorted(set(train.brand_index) & set(test.brand_index))
        if both:
            raise ReleaseError(
                f"{src / side_files('test')['brand_index']}: {len(both)} brands are also training brands "
                f"(e.g. {[brands[g] for g in both[:3]]}); the split must be brand-disjoint"
            )
        for what in ("lda", "concept"):
            dtrain, dtest = getattr(train, f"brand_{what}").shape[1], getattr(test, f"brand_{what}").shape[1]
            if dtrain != dtest:
                raise ReleaseError(
                    f"{src / side_files('test')['brand_' + what]}: {dtest} columns, the training files have {dtrain}"
                )
        labels = _check_labels(reader.npy(TEST_LABEL_FILE), src / TEST_LABEL_FILE, test)
    return Release(src, brands, influencers, list(categories), train, triplets, test, labels, dict(reader.hashes))


def _check_triplets(value: np.ndarray, path: Path, train: ReleaseSide) -> np.ndarray:
    if not np.issubdtype(value.dtype, np.integer):
        raise ReleaseError(f"{path}: dtype {value.dtype}, expected int64")
    if value.ndim != 2 or value.shape[1] != 3:
        raise ReleaseError(f"{path}: shape {value.shape}, expected T x 3 (brand row, positive row, negative row)")
    value = value.astype(np.int64, copy=False)
    limits = (len(train.brand_index), len(train.inf_index), len(train.inf_index))
    for col, (limit, what) in enumerate(zip(limits, ("brand", "positive influencer", "negative influencer"))):
        bad = (value[:, col] < 0) | (value[:, col] >= limit)
        if bad.any():
            row = int(bad.nonzero()[0][0])
            raise ReleaseError(
                f"{path}: row {row}: {what} row {int(value[row, col])} outside 0..{limit - 1} "
                f"(the training side has {limit} {what.split()[-1]}s)"
            )
    return value


def _check_labels(value: np.ndarray, path: Path, test: ReleaseSide) -> np.ndarray:
    if not (np.issubdtype(value.dtype, np.integer) or value.dtype == np.bool_):
        raise ReleaseError(f"{path}: dtype {value.dtype}, expected int64 0/1")
    want = (len(test.brand_index), len(test.inf_index))
    if value.shape != want:
        raise ReleaseError(f"{path}: shape {value.shape}, expected {want[0]} x {want[1]} (test brands x candidates)")
    bad = (value != 0) & (value != 1)
    if bad.any():
        r, c = (int(x[0]) for x in bad.nonzero())
        raise ReleaseError(f"{path}: entry ({r}, {c}) is {value[r, c]}, expected 0 or 1")
    return value.astype(bool)


# ---------------------------------------------------------------------- categories


@dataclass
class CategoryInference:
    """Brand groups inferred from the same-category negatives of the triplet file.

    ``train_groups[r]`` / ``test_groups[r]``: the group of training / test brand row ``r``
    (-1: could not be linked). Groups are numbered by their smallest training brand row.
    """

    train_groups: list[int]
    test_groups: list[int]
    n_groups: int
    inferred: bool
    reason: str | None = None
    stats: dict[str, int] = field(default_factory=dict)

    @property
    def group_sizes(self) -> list[int]:
        counts = Counter(g for g in self.train_groups if g >= 0)
        return [counts[g] for g in range(self.n_groups)]


def infer_categories(
    triplets: np.ndarray,
    n_brands: int,
    *,
    n_test_brands: int = 0,
    test_brands_of: Mapping[int, set[int]] | None = None,
    group: int = NEGATIVES_PER_POSITIVE,
    hard_position: int = HARD_POSITION,
) -> CategoryInference:
    """Group training brands by category from the triplet file's same-category negatives.

    In the release, every (brand, positive) has ``group`` consecutive triplets whose negative
    at ``hard_position`` is an influencer of another brand of the same category. When that
    negative is a training positive of exactly one other training brand b', it is evidence
    that b and b' share a category (an edge b -> b', weighted by how often it is seen).

    The literal rule -- union every such edge, take connected components -- collapses the
    real release into a single group (kept as ``stats["groups_union_all_edges"]``): a hard
    negative drawn through a *test* brand of b's category that is also the sole training
    positive of a brand of another category gives a false edge (about 100 of the 15,079
    single-owner hard negatives of the real file). So:

    1. groups are the Louvain modularity communities (networkx, fixed seed) of the
       undirected graph whose edge weight is the evidence in both directions; a community
       of one brand, or a brand without any evidence, is left unlabelled (-1). On the real
       training file this gives 12 groups of 23-24 brands, the same partition as unioning
       only the edges seen in both directions;
    2. with the test side, hard negatives that are test candidates (``test_brands_of``:
       train influencer row -> test brand rows it is a positive of) are kept out of step 1
       (they are the source of the false edges) and used to link test brands: such a
       negative of b, not explained by a training brand of b's group, that is a positive
       of a single test brand t, is a vote for t in b's group; t takes the group with the
       strictly largest vote.
    """
    test_brands_of = test_brands_of or {}
    none = CategoryInference([-1] * n_brands, [-1] * n_test_brands, 0, False)
    t = np.asarray(triplets)
    if t.shape[0] == 0 or t.shape[0] % group:
        none.reason = f"{t.shape[0]} triplets is not a multiple of {group} negatives per positive"
        return none
    blocks = t.reshape(-1, group, 3)
    if not ((blocks[:, :, 0] == blocks[:, :1, 0]).all() and (blocks[:, :, 1] == blocks[:, :1, 1]).all()):
        none.reason = f"the triplets do not come in runs of {group} sharing one (brand, positive)"
        return none

    owners: dict[int, set[int]] = defaultdict(set)  # influencer row -> training brands it is a positive of
    for b, p in t[:, :2].tolist():
        owners[p].add(b)

    stats: Counter[str] = Counter()
    edges: Counter[tuple[int, int]] = Counter()
    via_test: list[tuple[int, int]] = []
    for b, n in zip(blocks[:, 0, 0].tolist(), blocks[:, hard_position, 2].tolist()):
        stats["hard_negatives"] += 1
        if n in test_brands_of:
            stats["hard_negatives_test_candidates"] += 1
            via_test.append((b, n))
            continue
        others = owners.get(n, set()) - {b}
        if len(others) == 1:
            edges[(b, next(iter(others)))] += 1
            stats["hard_negatives_single_owner"] += 1
        else:
            stats["hard_negatives_ambiguous" if others else "hard_negatives_no_owner"] += 1

    # the literal rule (union every edge), kept as a diagnostic
    literal = _UnionFind(n_brands)
    for a, b in edges:
        literal.union(a, b)
    stats["groups_union_all_edges"] = len({literal.find(x) for x in range(n_brands) if literal.size(x) > 1})

    stats["edges"] = len(edges)
    stats["mutual_edges"] = sum(1 for a, b in edges if a < b and (b, a) in edges)
    groups = sorted((c for c in _communities(edges, n_brands) if len(c) > 1), key=min)
    train_groups = [-1] * n_brands
    for g, members in enumerate(groups):
        for b in members:
            train_groups[b] = g
    stats["unlabelled_train_brands"] = train_groups.count(-1)

    votes: dict[int, Counter[int]] = defaultdict(Counter)
    for b, n in via_test:
        g = train_groups[b]
        if g < 0 or any(train_groups[o] == g for o in owners.get(n, set()) - {b}):
            continue
        test_owners = test_brands_of[n]
        if len(test_owners) == 1:
            votes[next(iter(test_owners))][g] += 1
    test_groups = [-1] * n_test_brands
    for tb, counter in votes.items():
        ranked = counter.most_common(2)
        if len(ranked) == 1 or ranked[0][1] > ranked[1][1]:
            test_groups[tb] = ranked[0][0]
    stats["linked_test_brands"] = sum(g >= 0 for g in test_groups)
    return CategoryInference(train_groups, test_groups, len(groups), True, None, dict(stats))


def _communities(edges: Mapping[tuple[int, int], int], n: int, seed: int = 0) -> list[set[int]]:
    """Louvain communities of the undirected graph summing the directed edge weights."""
    import networkx as nx

    graph = nx.Graph()
    graph.add_nodes_from(range(n))
    for (a, b), w in sorted(edges.items()):
        if graph.has_edge(a, b):
            graph[a][b]["weight"] += w
        else:
            graph.add_edge(a, b, weight=w)
    return [set(c) for c in nx.community.louvain_communities(graph, weight="weight", seed=seed)]


class _UnionFind:
    """Union-find whose root is always the smallest member."""

    def __init__(self, n: int):
        self.parent = list(range(n))
        self.sizes = [1] * n

    def find(self, x: int) -> int:
        parent = self.parent
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(self, a: int, b: int) -> None:
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            lo, hi = min(ra, rb), max(ra, rb)
            self.parent[hi] = lo
            self.sizes[lo] += self.sizes[hi]

    def size(self, x: int) -> int:
        return self.sizes[self.find(x)]


# ------------------------------------------------------------------------ building


def _account_ids(brands: list[str], influencers: list[str], shared: set[str]) -> tuple[list[str], list[str]]:
    """Account ids = usernames, prefixed ``brand:`` / ``influencer:`` where the name is in ``shared``."""
    b_ids = [f"brand:{n}" if n in shared else n for n in brands]
    i_ids = [f"influencer:{n}" if n in shared else n for n in influencers]
    return b_ids, i_ids


def _category_label(group: int) -> str:
    return f"inferred-{group:02d}" if group >= 0 else ""


def _fill(n: int, dim: int, parts: list[tuple[list[int], torch.Tensor]]) -> tuple[torch.Tensor, torch.Tensor]:
    """A float64 [n, dim] matrix and present mask from (store rows, source rows) parts; later parts win."""
    out = torch.zeros(n, dim, dtype=torch.float64)
    present = torch.zeros(n, dtype=torch.bool)
    for rows, values in parts:
        index = torch.as_tensor(rows, dtype=torch.long)
        out[index] = values.to(torch.float64)
        present[index] = True
    return out, present


def _overlap(train_rows: dict[int, int], test_rows: dict[int, int], a: torch.Tensor, b: torch.Tensor) -> tuple[int, int, float]:
    """Overlapping accounts (by global index), how many rows differ, max abs difference."""
    common = sorted(set(train_rows) & set(test_rows))
    if not common:
        return 0, 0, 0.0
    x = a[[train_rows[g] for g in common]].to(torch.float64)
    y = b[[test_rows[g] for g in common]].to(torch.float64)
    diff = (x - y).abs()
    return len(common), int((diff > 0).any(dim=1).sum()), float(diff.max())


def _check_dst(dst: Path, foreign: bool) -> None:
    try:
        check_target(dst, RELEASE_STORE, foreign=foreign)
    except OwnershipError as err:
        raise ReleaseError(str(err)) from None


def import_release(
    src: str | Path,
    dst: str | Path,
    *,
    feature_dtype: torch.dtype = torch.float32,
    split: str = DEFAULT_SPLIT,
    foreign: bool = False,
) -> FeatureStore:
    """Read the release folder ``src``, check it, and write it as a feature store at ``dst``.

    Everything is read and checked before anything is written; the store is built in a
    temporary folder next to ``dst`` and moved into place at the end, so on any error
    ``dst`` is left as it was. An earlier import at ``dst`` is replaced; any other non-empty
    folder (a user's, another kind of bamir folder, an import holding the user's own files) is
    refused unless ``foreign`` (the app's ``overwrite=true``; :func:`bamir.ownership.check_target`).
    ``feature_dtype`` is the dtype the features are rounded
    to before writing (the store keeps float32).
    """
    if not (isinstance(feature_dtype, torch.dtype) and feature_dtype.is_floating_point):
        raise ValueError(f"feature_dtype must be a floating torch dtype, got {feature_dtype!r}")
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    _check_dst(dst, foreign)
    release = read_release(src)
    train, test = release.train, release.test
    sides = [train] + ([test] if test is not None else [])

    # accounts: brands, then influencers, each in global-index order
    brand_globals = sorted({g for s in sides for g in s.brand_index})
    inf_globals = sorted({g for s in sides for g in s.inf_index})
    b_names = [release.brands[g] for g in brand_globals]
    i_names = [release.influencers[g] for g in inf_globals]
    # clashes are taken over the full name lists (not only the imported accounts), so an
    # account keeps its id whether or not the test side is present
    b_ids, i_ids = _account_ids(b_names, i_names, set(release.brands) & set(release.influencers))
    brand_row = {g: r for r, g in enumerate(brand_globals)}
    inf_row = {g: len(brand_globals) + r for r, g in enumerate(inf_globals)}
    ids = b_ids + i_ids
    n = len(ids)

    # categories
    test_brands_of: dict[int, set[int]] = {}
    if test is not None:
        assert release.test_labels is not None
        train_inf_row = {g: r for r, g in enumerate(train.inf_index)}
        for col, g in enumerate(test.inf_index):
            if g in train_inf_row:
                test_brands_of[train_inf_row[g]] = set(np.nonzero(release.test_labels[:, col])[0].tolist())
    inference = infer_categories(
        release.triplets, len(train.brand_index),
        n_test_brands=len(test.brand_index) if test is not None else 0, test_brands_of=test_brands_of,
    )
    category = [""] * n
    for r, g in enumerate(train.brand_index):
        category[brand_row[g]] = _category_label(inference.train_groups[r])
    if test is not None:
        for r, g in enumerate(test.brand_index):
            category[brand_row[g]] = _category_label(inference.test_groups[r])
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "username": b_names + i_names,
            "kind": ["brand"] * len(b_ids) + ["influencer"] * len(i_ids),
            "category": category,
        }
    )
    if accounts["account_id"].duplicated().any():
        dup = accounts["account_id"][accounts["account_id"].duplicated()].iloc[0]
        raise ReleaseError(f"{src / INF_LIST}: account id {dup!r} is not unique after disambiguation")

    # pairs
    train_b = [ids[brand_row[g]] for g in train.brand_index]
    train_i = [ids[inf_row[g]] for g in train.inf_index]
    distinct = list(dict.fromkeys(map(tuple, release.triplets[:, :2].tolist())))
    pair_rows = [(train_b[b], train_i[p]) for b, p in distinct]
    n_train_pairs = len(pair_rows)
    if test is not None:
        assert release.test_labels is not None
        test_b = [ids[brand_row[g]] for g in test.brand_index]
        test_i = [ids[inf_row[g]] for g in test.inf_index]
        for b, p in zip(*np.nonzero(release.test_labels)):
            pair_rows.append((test_b[b], test_i[p]))
    pairs = pd.DataFrame(pair_rows, columns=["brand", "influencer"])

    splits = {
        split: {
            "train_brands": train_b,
            "test_brands": test_b if test is not None else [],
            "test_candidates": test_i if test is not None else [],
        }
    }

    # modalities (float64 while assembling; rows of test files last, so they win)
    def parts(attr_b: str, attr_i: str) -> list[tuple[list[int], torch.Tensor]]:
        out = []
        for s in sides:
            out.append(([brand_row[g] for g in s.brand_index], getattr(s, attr_b)))
            values = getattr(s, attr_i) if attr_i else None
            if values is not None:
                out.append(([inf_row[g] for g in s.inf_index], values))
        return out

    def overlap(attr: str) -> tuple[int, int, float]:
        if test is None or getattr(train, attr) is None or getattr(test, attr) is None:
            return 0, 0, 0.0
        return _overlap(
            {g: r for r, g in enumerate(train.inf_index)}, {g: r for r, g in enumerate(test.inf_index)},
            getattr(train, attr), getattr(test, attr),
        )

    fh = release.file_hashes
    modalities: dict[str, dict[str, Any]] = {}
    for name, attr in (("topic", "lda"), ("concept", "concept")):
        features, present = _fill(n, getattr(train, f"brand_{attr}").shape[1], parts(f"brand_{attr}", f"inf_{attr}"))
        rows, differ, max_diff = overlap(f"inf_{attr}")
        files = [side_files(s.name)[f"{k}_{attr}"] for s in sides for k in ("brand", "inf")]
        modalities[name] = dict(
            features=features, present=present, files=files,
            counts={"brands": len(brand_globals), "influencers": len(inf_globals),
                    "overlap_rows": rows, "overlap_rows_differ": differ},
            skipped={},
            note=(
                f"from the release's {', '.join(files)}; {rows} influencers are in both the training files and "
                f"the test files and take their test-file rows (published test protocol); {differ} of them "
                f"differ from their training rows, max abs difference {max_diff:.3g}"
                if test is not None else f"from the release's {', '.join(files)} (training side only)"
            ),
        )
    has_inf_image = train.inf_image is not None
    image, image_present = _fill(n, IMAGE_DIM, parts("brand_image", "inf_image" if has_inf_image else ""))
    rows, differ, max_diff = overlap("inf_image")
    image_files = [side_files(s.name)["brand_image"] for s in sides]
    if has_inf_image:
        image_files += [inf_image_file(s.name) for s in sides]
    for name, cols in (("object", slice(0, OBJECT_DIM)), ("scene", slice(OBJECT_DIM, IMAGE_DIM))):
        skipped = {} if has_inf_image else {"influencer_without_image_file": len(inf_globals)}
        where = "brands and influencers" if has_inf_image else "brands only (the release folder has no influencer image features)"
        modalities[name] = dict(
            features=image[:, cols].contiguous(), present=image_present, files=image_files,
            counts={"brands": len(brand_globals), "influencers": len(inf_globals) if has_inf_image else 0,
                    "overlap_rows": rows, "overlap_rows_differ": differ},
            skipped=skipped,
            note=f"columns {cols.start}..{cols.stop - 1} of the 1365-d image vectors in {', '.join(image_files)}; "
                 f"present for {where}"
                 + (f"; {rows} overlapping influencers take their test-file rows ({differ} differ, "
                    f"max abs difference {max_diff:.3g})" if rows else ""),
        )

    triplets = torch.as_tensor(
        np.stack(
            [
                np.asarray([brand_row[g] for g in train.brand_index])[release.triplets[:, 0]],
                np.asarray([inf_row[g] for g in train.inf_index])[release.triplets[:, 1]],
                np.asarray([inf_row[g] for g in train.inf_index])[release.triplets[:, 2]],
            ],
            axis=1,
        )
    ) if len(release.triplets) else torch.zeros(0, 3, dtype=torch.int64)

    cat_record: dict[str, Any] = {
        "names": release.category_names,
        "inferred": inference.inferred,
        "groups": inference.n_groups,
        "group_sizes": inference.group_sizes,
        "train_brands_labelled": sum(g >= 0 for g in inference.train_groups),
        "test_brands_labelled": sum(g >= 0 for g in inference.test_groups),
        "stats": inference.stats,
        "note": (
            "the release gives only the category names, not which brand is in which: categories "
            f"'inferred-NN' are {inference.n_groups} groups of brands linked through the same-category "
            f"negative (position {HARD_POSITION + 1} of every {NEGATIVES_PER_POSITIVE}) of the triplet file, "
            "numbered by smallest training brand row; they are not mapped to names; '' = not linked"
            if inference.inferred else f"categories not inferred: {inference.reason}"
        ),
    }
    dataset = {
        "name": "bamir-release",
        "source": "BAMIR public release, train_test_split/ (Gan et al. 2019 'discover' split)",
        "src": str(src.resolve()),
        "split": split,
        "test_side": test is not None,
        "influencer_image_features": has_inf_image,
        "counts": {
            "brands": len(brand_globals), "influencers": len(inf_globals),
            "train_brands": len(train.brand_index), "train_influencers": len(train.inf_index),
            "test_brands": len(test.brand_index) if test else 0,
            "test_candidates": len(test.inf_index) if test else 0,
            "train_pairs": n_train_pairs, "test_pairs": len(pair_rows) - n_train_pairs,
            "triplets": int(len(release.triplets)),
            "influencers_in_both_splits": len(set(train.inf_index) & set(test.inf_index)) if test else 0,
        },
        "categories": cat_record,
        "files": dict(sorted(fh.items())),
    }

    try:
        with built_beside(dst, RELEASE_STORE, __name__) as tmp:
            store = FeatureStore.create(tmp, accounts, pairs, splits, dataset=dataset)
            for name, m in modalities.items():
                store.write_modality(
                    name,
                    m["features"].to(feature_dtype),
                    m["present"],
                    config={"importer": "bamir.data.release", "files": m["files"], "feature_dtype": str(feature_dtype)},
                    inputs_hash=stable_hash({f: fh[f] for f in m["files"]}),
                    seconds=round(time.perf_counter() - started, 3),
                    counts=m["counts"],
                    skipped=m["skipped"],
                    note=m["note"],
                )
            store.write_triplets(
                TRIPLET_SET, triplets,
                note=f"{TRIPLET_FILE}: {len(triplets)} (brand, positive, negative) triplets as store rows",
            )
    except StoreError as err:
        raise ReleaseError(f"{src}: the store rejected the import: {err}") from err
    return FeatureStore(dst)
