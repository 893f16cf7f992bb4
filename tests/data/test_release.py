"""The importer of the published BAMIR release layout, on a small fixture in that layout."""

from __future__ import annotations

import os
import pickle
import shutil
import sys
from collections import defaultdict
from pathlib import Path
from typing import Callable

import numpy as np
import pytest
import torch

from tests.helpers.release import ReleaseFixture, write_release_fixture

from bamir.data.release import (
    TRIPLET_FILE,
    ReleaseError,
    import_release,
    infer_categories,
    read_release,
)
from bamir.data.safe_pickle import UnsafePickleError, load_plain_pickle, loads_plain_pickle
from bamir.store import FeatureStore

#: A real copy of the published release, for test_real_release: the path of its
#: ``train_test_split`` folder (docs/release.md section 8). Unset: that test is skipped.
RELEASE_ENV = "BAMIR_RELEASE_DIR"


# ------------------------------------------------------------------ helpers


class _Pwn:
    """Unpickling this runs a shell command (what a hostile pickle does)."""

    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"echo pwned > {self.marker}",))


class _Plain:
    pass


def _load(path: Path, name: str):
    if name.endswith(".pt"):
        return torch.load(path / name, weights_only=True)
    if name.endswith(".npy"):
        return np.load(path / name, allow_pickle=False)
    return pickle.loads((path / name).read_bytes())


def _save(path: Path, name: str, obj) -> None:
    if name.endswith(".pt"):
        torch.save(obj, path / name)
    elif name.endswith(".npy"):
        np.save(path / name, obj, allow_pickle=False)
    else:
        (path / name).write_bytes(pickle.dumps(obj, protocol=4))


def _partition(labels: dict[str, str]) -> list[list[str]]:
    groups: dict[str, list[str]] = defaultdict(list)
    for name, label in labels.items():
        groups[label].append(name)
    return sorted(sorted(g) for g in groups.values())


@pytest.fixture(scope="module")
def release(tmp_path_factory) -> ReleaseFixture:
    return write_release_fixture(tmp_path_factory.mktemp("release") / "train_test_split")


@pytest.fixture(scope="module")
def imported(release, tmp_path_factory) -> FeatureStore:
    return import_release(release.path, tmp_path_factory.mktemp("store") / "store")


@pytest.fixture
def copy(release, tmp_path) -> Path:
    """A private copy of the fixture release, free to damage."""
    return Path(shutil.copytree(release.path, tmp_path / "train_test_split"))


# ------------------------------------------------------------------ safe pickle


def test_plain_pickle_loads_plain_data(tmp_path):
    obj = {"a": [1, 2.5, "x", None, True, False, (3, "y")], 7: {"nested": [[]]}}
    cyclic: list = [1]
    cyclic.append(cyclic)
    for protocol in range(0, pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(obj, protocol=protocol))
        assert load_plain_pickle(path) == obj
    loaded = loads_plain_pickle(pickle.dumps(cyclic))
    assert loaded[0] == 1 and loaded[1] is loaded


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_plain_pickle_refuses_code_and_runs_nothing(tmp_path, protocol):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pickle"
    path.write_bytes(pickle.dumps([1, _Pwn(marker)], protocol=protocol))
    with pytest.raises(UnsafePickleError) as info:
        load_plain_pickle(path)
    assert str(path) in str(info.value) and "system" in str(info.value)
    assert info.value.refused.endswith(".system")
    assert not marker.exists()


@pytest.mark.parametrize(
    "obj, refused",
    [
        (_Plain(), "_Plain"),
        (np.arange(3), "numpy"),
        (torch.zeros(2), "torch"),
        ({1, 2}, "builtins.set"),
        (b"bytes", "builtins.bytes"),
        ([1, frozenset([2])], "builtins.frozenset"),
    ],
)
def test_plain_pickle_refuses_non_plain(tmp_path, obj, refused):
    path = tmp_path / "x.pkl"
    path.write_bytes(pickle.dumps(obj, protocol=4))
    with pytest.raises(UnsafePickleError) as info:
        load_plain_pickle(path)
    assert refused in info.value.refused and str(path) in str(info.value)


# ------------------------------------------------------------------ round trip


def test_accounts(release, imported):
    acc = imported.accounts
    brands = sorted(set(release.train_brand_index) | set(release.test_brand_index))
    infs = sorted(set(release.train_inf_index) | set(release.test_inf_index))
    assert acc["kind"].tolist() == ["brand"] * len(brands) + ["influencer"] * len(infs)
    assert acc["username"].tolist() == [release.brands[g] for g in brands] + [release.influencers[g] for g in infs]
    assert acc["account_id"].tolist() == acc["username"].tolist()
    assert (acc.loc[acc.kind == "influencer", "category"] == "").all()


def test_modalities_equal_file_rows(release, imported):
    path = release.path
    row = {name: r for r, name in enumerate(imported.account_ids)}
    overlap = set(release.overlap)
    for modality, stem in (("topic", "text_feature_lda"), ("concept", "hashtag_weighted_nod2vec_0615_r1_sqrt")):
        m = imported.load_modality(modality)
        assert m.present.all()
        for side, b_index, i_index in (
            ("train", release.train_brand_index, release.train_inf_index),
            ("test", release.test_brand_index, release.test_inf_index),
        ):
            b_file = _load(path, f"{side}_brand_{stem}.pt").float()
            i_file = _load(path, f"{side}_inf_{stem}.pt").float()
            for r, g in enumerate(b_index):
                assert torch.equal(m.features[row[release.brands[g]]], b_file[r])
            for r, g in enumerate(i_index):
                if side == "train" and g in overlap:
                    continue  # shared influencers take their test-file rows
                assert torch.equal(m.features[row[release.influencers[g]]], i_file[r]), (modality, side, g)
        record = imported.record(modality)
        assert record["counts"]["overlap_rows"] == len(release.overlap)
    assert imported.record("topic")["counts"]["overlap_rows_differ"] == release.overlap_differ
    assert imported.record("concept")["counts"]["overlap_rows_differ"] == 0
    assert "max abs difference" in imported.record("topic")["note"]

    obj, scene = imported.load_modality("object"), imported.load_modality("scene")
    assert obj.dim == 1000 and scene.dim == 365
    is_brand = torch.tensor((imported.accounts["kind"] == "brand").to_numpy())
    assert torch.equal(obj.present, is_brand) and torch.equal(scene.present, is_brand)
    for side, b_index in (("train", release.train_brand_index), ("test", release.test_brand_index)):
        image = _load(path, f"{side}_brand_mor_image_feature.pt")
        for r, g in enumerate(b_index):
            i = row[release.brands[g]]
            assert torch.equal(torch.cat([obj.features[i], scene.features[i]]), image[r])


def test_pairs_splits_triplets(release, imported):
    tb = [release.brands[g] for g in release.train_brand_index]
    ti = [release.influencers[g] for g in release.train_inf_index]
    sb = [release.brands[g] for g in release.test_brand_index]
    si = [release.influencers[g] for g in release.test_inf_index]
    expected = {(tb[b], ti[p]) for b, p in release.train_pairs}
    expected |= {(sb[b], si[p]) for b, p in zip(*np.nonzero(release.test_labels))}
    pairs = imported.pairs
    assert len(pairs) == len(expected)
    assert set(zip(pairs["brand"], pairs["influencer"])) == expected

    split = imported.splits["discover"]
    assert split["train_brands"] == tb and split["test_brands"] == sb and split["test_candidates"] == si

    triplets = imported.load_triplets("release")
    assert triplets.shape == release.triplets.shape
    ids = imported.account_ids
    back = [(ids[b], ids[p], ids[n]) for b, p, n in triplets.tolist()]
    assert back == [(tb[b], ti[p], ti[n]) for b, p, n in release.triplets.tolist()]

    counts = imported.manifest["dataset"]["counts"]
    assert counts["train_pairs"] == len(release.train_pairs)
    assert counts["test_pairs"] == int(release.test_labels.sum())
    assert counts["influencers_in_both_splits"] == len(release.overlap)


def test_inferred_categories_match_hidden(release, imported):
    acc = imported.accounts.set_index("username")
    train = {release.brands[g]: acc.loc[release.brands[g], "category"] for g in release.train_brand_index}
    hidden = {release.brands[g]: release.brand_category[g] for g in release.train_brand_index}
    assert all(label.startswith("inferred-") for label in train.values())
    assert _partition(train) == _partition(hidden)
    # a linked test brand is in the group of its hidden category
    name_of = {label: hidden[b] for b, label in train.items()}
    linked = 0
    for g in release.test_brand_index:
        label = acc.loc[release.brands[g], "category"]
        if label:
            linked += 1
            assert name_of[label] == release.brand_category[g]
    categories = imported.manifest["dataset"]["categories"]
    assert categories["inferred"] is True and categories["groups"] == len(set(hidden.values()))
    assert categories["test_brands_labelled"] == linked
    assert "inferred" in categories["note"]
    # groups numbered by their smallest training brand row
    first_row = {}
    for r, g in enumerate(release.train_brand_index):
        first_row.setdefault(train[release.brands[g]], r)
    assert sorted(first_row, key=first_row.get) == sorted(first_row)


def test_without_test_side(tmp_path):
    release = write_release_fixture(tmp_path / "rel", with_test=False)
    assert not (release.path / "test_label_list.npy").exists()
    store = import_release(release.path, tmp_path / "store")
    acc = store.accounts
    assert (acc.kind == "brand").sum() == len(release.train_brand_index)
    assert (acc.kind == "influencer").sum() == len(release.train_inf_index)
    split = store.splits["discover"]
    assert split["test_brands"] == [] and split["test_candidates"] == []
    assert len(store.pairs) == len(release.train_pairs)
    assert store.record("topic")["counts"]["overlap_rows"] == 0
    assert store.manifest["dataset"]["test_side"] is False
    train = {acc.username[i]: acc.category[i] for i in range(len(acc)) if acc.kind[i] == "brand"}
    hidden = {release.brands[g]: release.brand_category[g] for g in release.train_brand_index}
    assert _partition(train) == _partition(hidden)


def test_name_clash_is_disambiguated(tmp_path):
    release = write_release_fixture(tmp_path / "rel", name_clash=True)
    store = import_release(release.path, tmp_path / "store")
    acc = store.accounts
    shared = set(acc.loc[acc.kind == "brand", "username"]) & set(acc.loc[acc.kind == "influencer", "username"])
    assert len(shared) == 1
    name = shared.pop()
    ids = set(acc.loc[acc.username == name, "account_id"])
    assert ids == {f"brand:{name}", f"influencer:{name}"}
    assert (acc.loc[acc.username != name, "account_id"] == acc.loc[acc.username != name, "username"]).all()


def test_import_is_deterministic_and_replaces_a_store(release, imported, tmp_path):
    dst = tmp_path / "store"
    first = import_release(release.path, dst)
    (dst / "stale.safetensors").write_bytes(b"old")
    second = import_release(release.path, dst)
    assert not (dst / "stale.safetensors").exists()
    for store in (first, second):
        assert store.manifest["accounts"] == imported.manifest["accounts"]
        assert {k: v["sha256"] for k, v in store.manifest["modalities"].items()} == {
            k: v["sha256"] for k, v in imported.manifest["modalities"].items()
        }
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp folders left


def test_triplets_not_in_groups_of_four(copy, tmp_path):
    triplets = _load(copy, "train_label_triplet_hard13_five_samebrand.npy")
    _save(copy, "train_label_triplet_hard13_five_samebrand.npy", triplets[:-1])
    store = import_release(copy, tmp_path / "store")
    assert (store.accounts["category"] == "").all()
    assert store.manifest["dataset"]["categories"]["inferred"] is False
    assert store.load_triplets("release").shape[0] == len(triplets) - 1


def test_infer_categories_literal_rule_is_diagnostic():
    # brands 0,1 and 2,3 each see each other; 0 -> 2 is a one-way (false) edge
    pos = {0: [10], 1: [11], 2: [12], 3: [13]}
    rows = []
    for b, hard in ((0, 11), (1, 10), (2, 13), (3, 12), (0, 11), (1, 10), (2, 13), (3, 12), (0, 12)):
        rows += [(b, pos[b][0], 20)] * 3 + [(b, pos[b][0], hard)]
    result = infer_categories(np.asarray(rows), 4)
    assert result.stats["groups_union_all_edges"] == 1
    assert result.n_groups == 2 and result.train_groups == [0, 0, 1, 1]


def test_feature_dtype(release, tmp_path):
    store = import_release(release.path, tmp_path / "s16", feature_dtype=torch.float16)
    topic = store.load_modality("topic").features
    assert topic.dtype == torch.float32 and torch.equal(topic, topic.half().float())
    with pytest.raises(ValueError):
        import_release(release.path, tmp_path / "bad", feature_dtype=torch.int64)
    assert not (tmp_path / "bad").exists()


# ------------------------------------------------------------------ bad inputs


def _drop(*names: str) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        for name in names:
            (path / name).unlink()
    return mutate


def _edit(name: str, change: Callable) -> Callable[[Path], None]:
    def mutate(path: Path) -> None:
        _save(path, name, change(_load(path, name)))
    return mutate


def _with_row(tensor: torch.Tensor, row: int, value: float) -> torch.Tensor:
    tensor = tensor.clone()
    tensor[row, 0] = value
    return tensor


def _swap_two(mapping: dict) -> dict:
    keys = list(mapping)
    out = dict(mapping)
    out[keys[0]], out[keys[1]] = mapping[keys[1]], mapping[keys[0]]
    return out


def _set_entry(array: np.ndarray, index: tuple, value) -> np.ndarray:
    array = array.copy()
    array[index] = value
    return array


BAD_CASES = {
    "missing train file": (_drop("train_inf_text_feature_lda.pt"), ["train_inf_text_feature_lda.pt"]),
    "missing name list": (_drop("sorted_3748_inf_list.pkl"), ["sorted_3748_inf_list.pkl"]),
    "missing triplets": (
        _drop("train_label_triplet_hard13_five_samebrand.npy", "category_list.pickle"),
        ["train_label_triplet_hard13_five_samebrand.npy", "category_list.pickle"],
    ),
    "partial test side": (
        _drop("test_label_list.npy", "test_brand_mor_image_feature.pt"),
        ["partial test side", "test_label_list.npy", "test_brand_mor_image_feature.pt"],
    ),
    "extra row": (
        _edit("train_brand_text_feature_lda.pt", lambda t: torch.cat([t, t[:1]])),
        ["train_brand_text_feature_lda.pt", "shape"],
    ),
    "image dim": (_edit("test_brand_mor_image_feature.pt", lambda t: t[:, :-1].clone()), ["test_brand_mor_image_feature.pt", "1365"]),
    "topic dim disagrees": (_edit("train_inf_text_feature_lda.pt", lambda t: t[:, :-1].clone()), ["train_inf_text_feature_lda.pt", "shape"]),
    "test dim disagrees": (
        _edit("test_brand_text_feature_lda.pt", lambda t: t[:, :-1].clone()),
        ["test_inf_text_feature_lda.pt"],  # checked against its own brand file first
    ),
    "concept dtype": (_edit("train_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", lambda t: t.float()), ["train_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", "dtype"]),
    "lda dtype": (_edit("test_inf_text_feature_lda.pt", lambda t: t.double()), ["test_inf_text_feature_lda.pt", "float32"]),
    "not a tensor": (_edit("train_brand_mor_image_feature.pt", lambda t: {"x": t}), ["train_brand_mor_image_feature.pt", "expected a tensor"]),
    "nan row": (
        _edit("train_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", lambda t: _with_row(t, 3, float("nan"))),
        ["train_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", "row 3", "NaN"],
    ),
    "inf row": (_edit("test_brand_text_feature_lda.pt", lambda t: _with_row(t, 1, float("inf"))), ["test_brand_text_feature_lda.pt", "row 1"]),
    "brand map swapped": (_edit("train_brand_node_id.pkl", _swap_two), ["train_brand_node_id.pkl", "disagree"]),
    "inverse brand map": (_edit("test_node_brand_id.pkl", _swap_two), ["test_node_brand_id.pkl", "disagree"]),
    "inf map without offset": (
        _edit("train_inf_node_id.pkl", lambda m: {g: node - 12 for g, node in m.items()}),
        ["train_inf_node_id.pkl", "row + 12"],
    ),
    "inf map missing key": (
        _edit("test_node_inf_id.pkl", lambda m: dict(list(m.items())[1:])),
        ["test_node_inf_id.pkl", "1 missing"],
    ),
    "index list repeats": (_edit("discover_train_inf_index.pickle", lambda x: x[:-1] + x[:1]), ["discover_train_inf_index.pickle", "global index"]),
    "index out of range": (_edit("discover_test_brand_index.pickle", lambda x: x[:-1] + [999]), ["discover_test_brand_index.pickle", "999"]),
    "index not int": (_edit("discover_train_brand_index.pickle", lambda x: [str(x[0])] + x[1:]), ["discover_train_brand_index.pickle", "integer"]),
    "brand in both splits": (
        _edit("discover_test_brand_index.pickle", lambda x: x),  # replaced in the test below
        ["discover_test_brand_index.pickle"],
    ),
    "negative out of range": (
        _edit("train_label_triplet_hard13_five_samebrand.npy", lambda a: _set_entry(a, (5, 2), 40)),
        ["train_label_triplet_hard13_five_samebrand.npy", "row 5", "negative"],
    ),
    "brand row negative": (
        _edit("train_label_triplet_hard13_five_samebrand.npy", lambda a: _set_entry(a, (0, 0), -1)),
        ["train_label_triplet_hard13_five_samebrand.npy", "row 0", "brand"],
    ),
    "triplets float": (_edit("train_label_triplet_hard13_five_samebrand.npy", lambda a: a.astype(np.float64)), ["train_label_triplet_hard13_five_samebrand.npy", "dtype"]),
    "triplets object array": (None, ["train_label_triplet_hard13_five_samebrand.npy", "allow_pickle"]),
    "labels not 0/1": (_edit("test_label_list.npy", lambda a: _set_entry(a, (1, 2), 2)), ["test_label_list.npy", "(1, 2)"]),
    "labels shape": (_edit("test_label_list.npy", lambda a: a[:, :-1]), ["test_label_list.npy", "shape"]),
    "name list with a number": (_edit("sorted_360_brand_list.pkl", lambda x: x[:-1] + [5]), ["sorted_360_brand_list.pkl"]),
    "duplicate username": (_edit("sorted_3748_inf_list.pkl", lambda x: x[:-1] + x[:1]), ["sorted_3748_inf_list.pkl", "positions"]),
    "corrupt pickle": (None, ["train_node_inf_id.pkl", "not a readable pickle"]),
    "truncated tensor": (None, ["test_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt", "weights_only"]),
    "test inf image alone": (None, ["test_inf_mor_image_feature.pt"]),
}


@pytest.mark.parametrize("case", sorted(BAD_CASES))
def test_bad_input_names_file_and_writes_nothing(case, copy, release, tmp_path):
    mutate, expected = BAD_CASES[case]
    if case == "brand in both splits":
        test_index = list(release.test_brand_index)
        test_index[0] = release.train_brand_index[0]
        _save(copy, "discover_test_brand_index.pickle", test_index)
        _save(copy, "test_brand_node_id.pkl", {g: r for r, g in enumerate(test_index)})
        _save(copy, "test_node_brand_id.pkl", {r: g for r, g in enumerate(test_index)})
        expected = ["discover_test_brand_index.pickle", "brand-disjoint"]
    elif case == "triplets object array":
        np.save(copy / "train_label_triplet_hard13_five_samebrand.npy", np.array([[1, "x", None]], dtype=object), allow_pickle=True)
    elif case == "corrupt pickle":
        data = (copy / "train_node_inf_id.pkl").read_bytes()
        (copy / "train_node_inf_id.pkl").write_bytes(data[: len(data) // 2])
    elif case == "truncated tensor":
        data = (copy / "test_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt").read_bytes()
        (copy / "test_inf_hashtag_weighted_nod2vec_0615_r1_sqrt.pt").write_bytes(data[:100])
    elif case == "test inf image alone":
        _drop(*[p.name for p in copy.glob("test_*")], *[p.name for p in copy.glob("discover_test_*")])(copy)
        torch.save(torch.zeros(15, 1365), copy / "test_inf_mor_image_feature.pt")
    else:
        mutate(copy)
    dst = tmp_path / "out" / "store"
    with pytest.raises(ReleaseError) as info:
        import_release(copy, dst)
    for text in expected:
        assert text in str(info.value), (case, str(info.value))
    assert not (tmp_path / "out").exists()


def test_malicious_pickle_in_release_runs_nothing(copy, tmp_path):
    marker = tmp_path / "pwned"
    (copy / "discover_train_inf_index.pickle").write_bytes(pickle.dumps(_Pwn(marker), protocol=2))
    with pytest.raises(ReleaseError) as info:
        import_release(copy, tmp_path / "store")
    assert "discover_train_inf_index.pickle" in str(info.value) and "system" in str(info.value)
    assert not marker.exists() and not (tmp_path / "store").exists()


def test_malicious_pt_runs_nothing(copy, tmp_path):
    marker = tmp_path / "pwned"
    torch.save({"x": _Pwn(marker)}, copy / "train_brand_text_feature_lda.pt", _use_new_zipfile_serialization=True)
    with pytest.raises(ReleaseError) as info:
        read_release(copy)
    assert "train_brand_text_feature_lda.pt" in str(info.value)
    assert not marker.exists()


def test_error_leaves_an_existing_store_untouched(copy, release, tmp_path):
    dst = tmp_path / "store"
    import_release(copy, dst)
    before = {p.name: p.read_bytes() for p in dst.rglob("*") if p.is_file()}
    (copy / "train_brand_mor_image_feature.pt").unlink()
    with pytest.raises(ReleaseError):
        import_release(copy, dst)
    assert {p.name: p.read_bytes() for p in dst.rglob("*") if p.is_file()} == before


def test_refuses_to_replace_a_folder_that_is_not_a_store(release, tmp_path):
    dst = tmp_path / "mine"
    dst.mkdir()
    (dst / "notes.txt").write_text("keep me")
    with pytest.raises(ReleaseError, match="not a feature store"):
        import_release(release.path, dst)
    assert [p.name for p in dst.iterdir()] == ["notes.txt"]


# ------------------------------------------------------------------ command line


def test_cli(release, tmp_path, monkeypatch, capsys):
    from bamir.cli.import_release import main

    dst = tmp_path / "cli-store"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["bamir-import-release", f"src={release.path}", f"dst={dst}"])
    main()
    out = capsys.readouterr().out
    assert FeatureStore(dst).num_accounts > 0
    for text in ("accounts:", "topic", "dim    19", "object", "1000", "pairs:", "split discover", "groups inferred"):
        assert text in out, out
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cli-store"]  # no outputs/ or .hydra/

    monkeypatch.setattr(sys, "argv", ["bamir-import-release", f"src={tmp_path / 'nowhere'}", f"dst={tmp_path / 'x'}"])
    with pytest.raises(SystemExit) as info:
        main()
    assert info.value.code == 2 and "nowhere" in capsys.readouterr().err


# ------------------------------------------------------------------ the real release


def _real_release() -> Path:
    """The folder ``$BAMIR_RELEASE_DIR``, or a skip that says loudly why the real release is not tested."""
    value = os.environ.get(RELEASE_ENV, "").strip()
    if not value:
        pytest.skip(f"real release not tested: set {RELEASE_ENV}=.../train_test_split (the published BAMIR release)")
    path = Path(value).expanduser()
    if not (path / TRIPLET_FILE).is_file():
        pytest.skip(f"real release not tested: {RELEASE_ENV}={value} is not a train_test_split folder (no {TRIPLET_FILE})")
    return path


def test_real_release(tmp_path):
    store = import_release(_real_release(), tmp_path / "store")
    counts = store.manifest["dataset"]["counts"]
    assert counts["train_brands"] == 286 and counts["train_influencers"] == 3075
    assert counts["train_pairs"] == 3385 and counts["triplets"] == 67700
    assert store.load_triplets("release").shape == (67700, 3)
    split = store.splits["discover"]
    assert len(split["train_brands"]) == 286
    assert store.record("topic")["dim"] == 19 and store.record("concept")["dim"] == 128
    categories = store.manifest["dataset"]["categories"]
    assert categories["groups"] == 12 and sum(categories["group_sizes"]) == 286
    acc = store.accounts
    assert (acc["account_id"] != acc["username"]).sum() == acc["account_id"].str.contains(":").sum() > 0
    if counts["test_brands"]:
        assert counts["test_brands"] == 74 and counts["test_candidates"] == 797
        assert counts["test_pairs"] == 824 and counts["influencers_in_both_splits"] == 124
