"""Feature store: round trip, atomic records, and every corruption named on load."""

import json

import pandas as pd
import pytest
import torch

from bamir.store import FeatureStore, StoreError


def _accounts():
    return pd.DataFrame({
        "account_id": ["b1", "b2", "i1", "i2", "i3"],
        "username": ["b1", "b2", "i1", "i2", "i3"],
        "kind": ["brand", "brand", "influencer", "influencer", "influencer"],
        "category": ["food", "auto", "", "", ""],
    })


def _store(tmp_path):
    pairs = pd.DataFrame({"brand": ["b1", "b2"], "influencer": ["i1", "i2"]})
    splits = {"discover": {"train_brands": ["b1"], "test_brands": ["b2"], "test_candidates": ["i2", "i3"]}}
    store = FeatureStore.create(tmp_path, _accounts(), pairs, splits, dataset={"name": "unit"})
    store.write_modality("topic", torch.arange(15.0).view(5, 3), config={"k": 3}, inputs_hash="abc")
    return store


def test_round_trip(tmp_path):
    _store(tmp_path)
    again = FeatureStore(tmp_path)
    topic = again.load_modality("topic")
    assert torch.equal(topic.features, torch.arange(15.0).view(5, 3))
    assert topic.present.all() and topic.dim == 3
    assert again.account_ids == ["b1", "b2", "i1", "i2", "i3"]
    assert again.pairs["influencer"].tolist() == ["i1", "i2"]
    assert again.splits["discover"]["test_candidates"] == ["i2", "i3"]
    record = again.record("topic")
    assert record["config"] == {"k": 3} and record["dim"] == 3 and record["rows"] == 5
    assert again.is_fresh("topic", {"k": 3}, "abc")
    assert not again.is_fresh("topic", {"k": 4}, "abc")
    assert not again.is_fresh("topic", {"k": 3}, "other-inputs")
    assert not again.is_fresh("object", {}, None)
    assert not list(tmp_path.glob("*.tmp")), "no temp files left behind"


def test_partial_modality_and_triplets(tmp_path):
    store = _store(tmp_path)
    present = torch.tensor([True, True, False, False, False])
    store.write_modality("image", torch.randn(5, 2), present)
    store.write_triplets("fixed", torch.tensor([[0, 2, 3]]))
    again = FeatureStore(tmp_path)
    assert again.load_modality("image").present.tolist() == present.tolist()
    assert again.load_triplets("fixed").tolist() == [[0, 2, 3]]
    with pytest.raises(StoreError, match="row index"):
        store.write_triplets("bad", torch.tensor([[0, 2, 9]]))


def test_corrupt_file_detected_by_hash(tmp_path):
    _store(tmp_path)
    path = tmp_path / "topic.safetensors"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(StoreError, match=r"topic\.safetensors.*hash"):
        FeatureStore(tmp_path).load_modality("topic")


def test_missing_file_and_unknown_modality(tmp_path):
    _store(tmp_path)
    (tmp_path / "topic.safetensors").unlink()
    store = FeatureStore(tmp_path)
    with pytest.raises(StoreError, match="missing"):
        store.load_modality("topic")
    with pytest.raises(StoreError, match="no modality 'scene'"):
        store.load_modality("scene")
    with pytest.raises(StoreError, match="manifest.json is missing"):
        FeatureStore(tmp_path / "nowhere")


def test_wrong_shape_in_manifest(tmp_path):
    _store(tmp_path)
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    manifest["modalities"]["topic"]["dim"] = 4
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(StoreError, match=r"shape \(5, 3\).*\(5, 4\)"):
        FeatureStore(tmp_path).load_modality("topic")


def test_nan_row_is_refused_with_account(tmp_path):
    store = _store(tmp_path)
    bad = torch.zeros(5, 2)
    bad[3, 1] = float("nan")
    with pytest.raises(StoreError, match=r"row 3 \(i2\)"):
        store.write_modality("scene", bad)
    # a NaN in a row marked absent is fine
    store.write_modality("scene", bad, torch.tensor([True, True, True, False, True]))


def test_bad_tables_named(tmp_path):
    accounts = _accounts()
    accounts.loc[3, "kind"] = "celebrity"
    with pytest.raises(StoreError, match="row 3, field kind"):
        FeatureStore.create(tmp_path, accounts, pd.DataFrame({"brand": [], "influencer": []}), {})
    pairs = pd.DataFrame({"brand": ["b1"], "influencer": ["ghost"]})
    with pytest.raises(StoreError, match="row 0, field influencer: unknown account 'ghost'"):
        FeatureStore.create(tmp_path, _accounts(), pairs, {})
    splits = {"discover": {"train_brands": ["i1"], "test_brands": [], "test_candidates": []}}
    with pytest.raises(StoreError, match=r"train_brands\[0\].*influencer, not a brand"):
        FeatureStore.create(tmp_path, _accounts(), pd.DataFrame({"brand": [], "influencer": []}), splits)


def test_changed_account_order_drops_modalities(tmp_path):
    store = _store(tmp_path)
    assert store.modalities == ["topic"]
    pairs = pd.DataFrame({"brand": ["b1"], "influencer": ["i1"]})
    same = FeatureStore.create(tmp_path, _accounts(), pairs, {})
    assert same.modalities == ["topic"], "same accounts keep their matrices"
    other = FeatureStore.create(tmp_path, _accounts().iloc[::-1], pairs, {})
    assert other.modalities == [], "rows no longer line up"
