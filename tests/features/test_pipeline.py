"""bamir-prepare: staleness, resume after a kill, skipped counts, the Hydra app and ensure_features."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from bamir.features.image.encoders import ObjectEncoder
from bamir.features.pipeline import ensure_features, prepare
from bamir.store import FeatureStore
from tests.helpers.prep import make_raw, tiny_stages
from tests.helpers.paths import REPO

CHEAP = tiny_stages(scene=None)  # the scene encoder is covered in test_image.py


def _records(store: FeatureStore) -> dict:
    return {m: {k: store.record(m)[k] for k in ("sha256", "written", "config_hash", "inputs_hash")} for m in store.modalities}


@pytest.fixture(scope="module")
def raw_root(tmp_path_factory):
    return make_raw(tmp_path_factory.mktemp("raw"))


@pytest.fixture(scope="module")
def prepared(raw_root, tmp_path_factory):
    store_root = tmp_path_factory.mktemp("store")
    report: dict = {}
    store = prepare(raw_root, store_root, CHEAP, progress=False, report=report)
    return store_root, store, report


def test_first_run_computes_everything(prepared):
    _, store, report = prepared
    assert store.modalities == ["hashtag", "interaction", "object", "topic"]
    assert {r["status"] for r in report.values()} == {"computed"}
    obj = store.record("object")
    assert obj["skipped"] == {"missing_file": 1, "corrupt_image": 2}  # corrupt/missing images counted, not fatal
    assert obj["counts"]["posts_without_image"] == 2
    assert "RANDOM-INITIALISED" in obj["note"]
    # random weights put no class above 0.1: published pooling gives all accounts one uniform vector, said plainly
    assert obj["counts"]["accounts_uniform"] == 16 and "same uniform vector" in obj["note"]
    assert obj["seconds"] > 0 and obj["counts"]["peak_rss_mib"] > 0
    artifact = store.manifest["artifacts"]["topic"]
    assert "lda.model" in artifact["files"] and (store.root / artifact["workdir"] / "lda.model").is_file()
    assert store.load_modality("topic").dim == 3 and store.num_accounts == 16


def test_second_run_recomputes_nothing(prepared, raw_root):
    store_root, store, _ = prepared
    before = _records(FeatureStore(store_root))
    written = {p: p.stat().st_mtime_ns for p in store_root.rglob("*") if p.is_file() and ".lock" not in p.name}
    report: dict = {}
    again = prepare(raw_root, store_root, CHEAP, progress=False, report=report)
    assert {r["status"] for r in report.values()} == {"fresh"}
    assert _records(again) == before
    # a fresh store is only read: processes that share it (DDP ranks, sweep jobs) never see it change
    assert {p: p.stat().st_mtime_ns for p in written} == written


def test_a_store_that_cannot_be_locked_is_still_read(prepared, raw_root, monkeypatch, caplog):
    """A store shared read-only (no lock file can be made beside it) is checked and used."""
    import logging

    import filelock

    def refuse(self, *args, **kwargs):
        raise PermissionError(13, "Permission denied", self.lock_file)

    monkeypatch.setattr(filelock.FileLock, "acquire", refuse)
    store_root, _, _ = prepared
    report: dict = {}
    with caplog.at_level(logging.INFO, logger="bamir.utils"):
        prepare(raw_root, store_root, CHEAP, progress=False, report=report)
    assert {r["status"] for r in report.values()} == {"fresh"}
    assert "cannot lock" in caplog.text and "going on unlocked" in caplog.text


def test_an_unchanged_dataset_is_validated_once(raw_root, prepared, tmp_path, monkeypatch):
    """The store records the fingerprint of the dataset it validated (tables' sizes and times): preparing
    again from the same files skips the validator; an edited table is validated again and its errors stop it."""
    import bamir.data.validate as validate

    raw, store_root = tmp_path / "raw", tmp_path / "store"
    shutil.copytree(raw_root, raw)  # copies keep their modification times: the same fingerprint
    shutil.copytree(prepared[0], store_root)
    # this dataset has no knowledge files, which no configured stage reads: valid for these stages
    assert FeatureStore(store_root).manifest["dataset"]["validated"]["knowledge"] is False
    calls = []
    monkeypatch.setattr(validate, "validate_dataset",
                        lambda *args, _real=validate.validate_dataset, **kwargs: calls.append(args) or _real(*args, **kwargs))
    report: dict = {}
    prepare(raw, store_root, CHEAP, progress=False, report=report)
    assert calls == [] and {r["status"] for r in report.values()} == {"fresh"}
    with pytest.raises(validate.ValidationError, match="knowledge/conceptnet.csv"):  # a stage that reads them
        prepare(raw, store_root, {**CHEAP, "concept": {"_target_": "bamir.features.concept.stage.ConceptStage"}},
                progress=False)
    assert len(calls) == 1
    splits = json.loads((raw / "splits.json").read_text())
    splits["discover"]["train_brands"].append(splits["discover"]["test_brands"][0])  # a brand on both sides
    (raw / "splits.json").write_text(json.dumps(splits))
    with pytest.raises(validate.ValidationError, match="split_overlap"):
        prepare(raw, store_root, CHEAP, progress=False)
    assert len(calls) == 2


@pytest.mark.slow
def test_processes_preparing_one_store_take_turns(raw_root, tmp_path):
    """Two processes prepare the same store at once (jobs of a parallel sweep, SLURM tasks):
    the store's lock makes one compute every stage while the other waits and finds it fresh."""
    import os
    import subprocess
    import sys

    script = ("import json, sys; from bamir.features.pipeline import prepare; from tests.helpers.prep import tiny_stages; "
              "report = {}; prepare(sys.argv[1], sys.argv[2], tiny_stages(scene=None), progress=False, report=report); "
              "print('REPORT', json.dumps({k: v['status'] for k, v in report.items()}))")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
           "OMP_NUM_THREADS": "1"}
    store = tmp_path / "store"
    jobs = [subprocess.Popen([sys.executable, "-c", script, str(raw_root), str(store)], env=env, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)]
    reports = []
    for job in jobs:
        out, err = job.communicate(timeout=600)
        assert job.returncode == 0, err[-3000:]
        reports.append(json.loads(out.split("REPORT", 1)[1]))
    assert sorted(tuple(sorted(set(r.values()))) for r in reports) == [("computed",), ("fresh",)], reports
    assert FeatureStore(store).modalities == ["hashtag", "interaction", "object", "topic"]


def test_config_change_recomputes_only_that_stage(raw_root, prepared, tmp_path):
    store_root = tmp_path / "store"
    shutil.copytree(prepared[0], store_root)
    before = _records(FeatureStore(store_root))
    report: dict = {}
    changed = tiny_stages(scene=None, object={"pooling": "mean"})
    store = prepare(raw_root, store_root, changed, progress=False, report=report)
    assert {n: r["status"] for n, r in report.items()} == {
        "topic": "fresh", "object": "computed", "interaction": "fresh", "hashtag": "fresh"}
    after = _records(store)
    assert after["object"]["config_hash"] != before["object"]["config_hash"]
    assert {m: after[m] for m in after if m != "object"} == {m: before[m] for m in before if m != "object"}
    # the old object work folder is gone, the new one is recorded
    work = list((store_root / "work" / "object").iterdir())
    assert len(work) == 1 and store.manifest["artifacts"]["object"]["workdir"].endswith(work[0].name)
    # a batch size or worker change is not a config change
    report = {}
    prepare(raw_root, store_root, tiny_stages(scene=None, object={"pooling": "mean", "batch_size": 3}),
            progress=False, report=report)
    assert report["object"]["status"] == "fresh"


def test_input_and_split_changes(raw_root, prepared, tmp_path):
    raw = tmp_path / "raw"
    shutil.copytree(raw_root, raw)
    store_root = tmp_path / "store"
    shutil.copytree(prepared[0], store_root)
    # a different split: the fitted stages recompute, the image stage (nothing fitted) does not
    splits = json.loads((raw / "splits.json").read_text())
    splits["discover"]["train_brands"], splits["discover"]["test_brands"] = ["b0"], ["b1", "b2", "b3"]
    splits["discover"]["test_candidates"].append("i3")  # a positive of b1: the split stays valid (prepare validates)
    (raw / "splits.json").write_text(json.dumps(splits))
    report: dict = {}
    prepare(raw, store_root, CHEAP, progress=False, report=report)
    assert {n: r["status"] for n, r in report.items()} == {
        "topic": "computed", "object": "fresh", "interaction": "computed", "hashtag": "computed"}
    # a replaced image file: only the image stage recomputes
    (raw / "images" / "i0_p0.jpg").write_bytes((raw / "images" / "i1_p0.jpg").read_bytes())
    report = {}
    prepare(raw, store_root, CHEAP, progress=False, report=report)
    assert {n: r["status"] for n, r in report.items()} == {
        "topic": "fresh", "object": "computed", "interaction": "fresh", "hashtag": "fresh"}


def test_resume_from_shards_after_a_kill(raw_root, prepared, tmp_path, monkeypatch):
    stages = tiny_stages(topic=None, scene=None, interaction=None, hashtag=None)  # object, 4 shards of 5 accounts
    calls = {"n": 0}
    original = ObjectEncoder.run_model

    def dies_on_fourth_batch(self, images):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return original(self, images)

    monkeypatch.setattr(ObjectEncoder, "run_model", dies_on_fourth_batch)
    with pytest.raises(RuntimeError, match="simulated crash"):
        prepare(raw_root, tmp_path / "store", stages, progress=False)
    shards = sorted((tmp_path / "store" / "work" / "object").glob("*/shards/*.safetensors"))
    assert 1 <= len(shards) < 4
    monkeypatch.setattr(ObjectEncoder, "run_model", original)
    calls["n"] = 0
    store = prepare(raw_root, tmp_path / "store", stages, progress=False)
    record = store.record("object")
    assert record["counts"]["shards_resumed"] == len(shards)
    assert record["skipped"] == {"missing_file": 1, "corrupt_image": 2}
    # the resumed result equals an uninterrupted run
    clean = prepared[1].load_modality("object")
    assert torch.allclose(store.load_modality("object").features, clean.features, atol=1e-6)


def test_hydra_app_and_ensure_features(raw_root, tmp_path):
    from hydra import compose, initialize_config_dir

    from bamir.cli.prepare import run

    conf = REPO / "conf"
    with initialize_config_dir(config_dir=str(conf), version_base="1.3"):
        cfg = compose("prepare", overrides=[
            f"raw_root={raw_root}", f"store_root={tmp_path / 'store'}", "progress=false",
            "features.scene=null", "features.concept=null", "features.object=null",
            "features.topic.num_topics=4", "features.topic.passes=2", "features.topic.no_below=1",
            "features.hashtag.min_df=1", "features.hashtag.dim=4",
        ])
        paper = compose("prepare", overrides=["features=paper"])
    assert paper.features.object.model == "resnet101" and paper.features.scene.num_labels == 365
    assert paper.features.scene._target_ == "bamir.features.image.SceneStage"
    store = run(cfg)
    assert store.modalities == ["hashtag", "interaction", "topic"]
    assert store.record("topic")["dim"] == 4
    # ensure_features generates a missing raw dataset first, then prepares
    target = tmp_path / "generated"
    made = ensure_features(target, tmp_path / "store2", tiny_stages(object=None, scene=None),
                           generate=lambda: make_raw(target))
    assert made.modalities == ["hashtag", "interaction", "topic"]
    with pytest.raises(FileNotFoundError, match="no raw dataset"):
        ensure_features(tmp_path / "nothing", tmp_path / "store3", {})
