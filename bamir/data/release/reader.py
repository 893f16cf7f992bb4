"""Reading the release folder: every file loaded and checked (shapes, indices, id maps, names),
nothing written; no file can run code."""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from bamir.data.safe_pickle import UnsafePickleError, bounded_repr, loads_plain_pickle

from bamir.data.release.layout import (BRAND_LIST, CATEGORY_LIST, COMMON_FILES, IMAGE_DIM, INF_LIST, TEST_LABEL_FILE,
                                       TRIPLET_FILE, ReleaseError, inf_image_file, side_files)

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
