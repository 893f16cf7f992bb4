"""Nothing lost, nothing silent: bamir never overwrites a folder it did not write.

A user's folder (a web app with its own ``manifest.json``) given to bamir-import-release,
bamir-synthesize or bamir-prepare is refused with a message naming the folder and
``overwrite=true``, every byte unchanged; a bamir folder of another kind is refused too; a
user's file in a dataset bamir wrote stops its replacement; ``overwrite=true`` replaces; a
replacement that fails half-way leaves the old folder as it was.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
from pathlib import Path

import pytest

from bamir.data.release import ReleaseError, import_release
from bamir.data.synthetic import synthesize
from bamir.features.pipeline import prepare, staging_root
from bamir.ownership import FEATURE_STORE, MARKER, RELEASE_STORE, SYNTHETIC, OwnershipError, kind_of
from bamir.store import FeatureStore
from tests.helpers.prep import make_raw, tiny_stages
from tests.helpers.release import write_release_fixture

SMALL = {"name": "tiny", "brands_per_category": 2, "influencers": 100, "posts_per_account": 2, "test_brands": 6,
         "progress": False}
CHEAP = tiny_stages(object=None, scene=None)


def tree_hash(folder: Path) -> str:
    """One hash of every path and file content under ``folder``."""
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        digest.update(str(path.relative_to(folder)).encode())
        if path.is_file():
            digest.update(path.read_bytes())
    return digest.hexdigest()


def web_app(folder: Path) -> Path:
    """A user's folder that happens to hold a ``manifest.json``."""
    (folder / "sub").mkdir(parents=True)
    (folder / "manifest.json").write_text('{"name": "my web app", "start_url": "/"}')
    (folder / "important.txt").write_text("do not lose me")
    (folder / "sub" / "thesis.tex").write_text(r"\documentclass{article}")
    return folder


@pytest.fixture(scope="module")
def release(tmp_path_factory):
    return write_release_fixture(tmp_path_factory.mktemp("release") / "train_test_split")


@pytest.fixture(scope="module")
def raw(tmp_path_factory) -> Path:
    return make_raw(tmp_path_factory.mktemp("raw") / "raw")


@pytest.fixture(scope="module")
def prepared(raw, tmp_path_factory) -> Path:
    store = tmp_path_factory.mktemp("prepared") / "store"
    prepare(raw, store, CHEAP, progress=False)
    return store


def _cli(monkeypatch, main, *args: str) -> int:
    monkeypatch.setattr(sys, "argv", ["bamir", *args])
    try:
        main()
    except SystemExit as exit_:
        return int(exit_.code or 0)
    return 0


def _refused(capsys, folder: Path) -> str:
    err = capsys.readouterr().err
    assert str(folder) in err and "overwrite=true" in err, err
    return err


# ------------------------------------------------------------------ the reported cases


def test_a_users_folder_is_refused_by_every_app(release, raw, tmp_path, monkeypatch, capsys):
    from bamir.cli import import_release as import_app
    from bamir.cli import prepare as prepare_app
    from bamir.cli import synthesize as synthesize_app

    monkeypatch.chdir(tmp_path)
    app = web_app(tmp_path / "webapp")
    before = tree_hash(app)
    assert _cli(monkeypatch, import_app.main, f"src={release.path}", f"dst={app}") == 2
    _refused(capsys, app)
    assert _cli(monkeypatch, synthesize_app.main, "preset=tiny", f"out={app}") == 2
    _refused(capsys, app)
    assert _cli(monkeypatch, prepare_app.main, f"raw_root={raw}", f"store_root={app}",
                f"hydra.run.dir={tmp_path / 'run'}") == 2
    assert "not a feature store bamir wrote" in _refused(capsys, app)
    assert tree_hash(app) == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(f".{app.name}.")] == [".webapp.lock"]  # nothing half-built


def test_a_prepared_store_is_refused_by_import_release(release, prepared):
    before = tree_hash(prepared)
    with pytest.raises(ReleaseError, match="a bamir feature store, not a feature store imported") as info:
        import_release(release.path, prepared)
    assert str(prepared) in str(info.value) and "overwrite=true" in str(info.value)
    assert tree_hash(prepared) == before


def test_another_seed_keeps_the_users_file(tmp_path):
    out = synthesize(tmp_path / "data", SMALL, seed=0)
    (out / "notes.txt").write_text("my notes")
    before = tree_hash(out)
    with pytest.raises(OwnershipError, match=r"notes\.txt.*overwrite=true"):
        synthesize(out, SMALL, seed=1, overwrite=True)
    from bamir.data.synthetic import ensure_synthetic

    with pytest.raises(OwnershipError, match=r"notes\.txt"):
        ensure_synthetic(out, SMALL, seed=1)
    assert tree_hash(out) == before
    # without the user's file, the other seed replaces the dataset (still marked as bamir's)
    (out / "notes.txt").unlink()
    ensure_synthetic(out, SMALL, seed=1)
    assert json.loads((out / MARKER).read_text())["kind"] == SYNTHETIC
    assert "seed1" in (out / "dataset.yaml").read_text()


def test_another_kind_of_bamir_folder_is_refused(raw, prepared, tmp_path):
    synthetic = synthesize(tmp_path / "synthetic", SMALL, seed=0)
    before = tree_hash(synthetic)
    with pytest.raises(OwnershipError, match="a bamir synthetic dataset, not a feature store"):
        prepare(raw, synthetic, CHEAP, progress=False)
    with pytest.raises(OwnershipError, match="a bamir feature store, not a synthetic dataset"):
        synthesize(prepared, SMALL, seed=0, overwrite=True)
    assert tree_hash(synthetic) == before


# ------------------------------------------------------------------ overwrite=true


def test_overwrite_true_replaces_a_users_folder(release, raw, tmp_path, monkeypatch):
    from bamir.cli import synthesize as synthesize_app

    monkeypatch.chdir(tmp_path)
    data = web_app(tmp_path / "data")
    assert _cli(monkeypatch, synthesize_app.main, "preset=tiny", "synthetic.influencers=100",
                "synthetic.posts_per_account=2", "synthetic.progress=false", f"out={data}", "overwrite=true") == 0
    assert kind_of(data) == SYNTHETIC and not (data / "important.txt").exists()

    store = prepare(raw, web_app(tmp_path / "store"), CHEAP, progress=False, foreign=True)
    assert kind_of(store.root) == FEATURE_STORE and not (store.root / "important.txt").exists()
    assert store.modalities == ["hashtag", "interaction", "topic"] and not staging_root(store.root).exists()

    imported = import_release(release.path, web_app(tmp_path / "release"), foreign=True)
    assert kind_of(imported.root) == RELEASE_STORE and not (imported.root / "sub").exists()


def test_prepare_keeps_a_users_file_in_its_store(raw, prepared, tmp_path):
    store = tmp_path / "store"
    shutil.copytree(prepared, store)
    (store / "notes.txt").write_text("mine")
    report: dict = {}
    prepare(raw, store, CHEAP, progress=False, report=report)
    assert {r["status"] for r in report.values()} == {"fresh"}
    assert (store / "notes.txt").read_text() == "mine"


# ------------------------------------------------------------------ failures and older folders


def test_a_failed_replacement_leaves_the_old_folder(release, raw, tmp_path, monkeypatch):
    import bamir.data.synthetic.generator as generator

    def fail(*args, **kwargs):
        raise RuntimeError("disk on fire")

    data = synthesize(tmp_path / "data", SMALL, seed=0)
    imported = import_release(release.path, tmp_path / "release").root
    user = web_app(tmp_path / "user")
    before = {p: tree_hash(p) for p in (data, imported, user)}
    monkeypatch.setattr(generator, "_write_affinity", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        synthesize(data, SMALL, seed=1, overwrite=True)
    monkeypatch.setattr(FeatureStore, "write_triplets", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        import_release(release.path, imported)
    monkeypatch.setattr(FeatureStore, "write_modality", fail)
    with pytest.raises(RuntimeError, match="disk on fire"):
        prepare(raw, user, CHEAP, progress=False, foreign=True)
    assert {p: tree_hash(p) for p in before} == before
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".lock")) == [
        ".user.new", "data", "release", "user"]  # only prepare's resumable staging folder is left beside


def test_folders_of_earlier_versions_are_recognised(release, raw, prepared, tmp_path):
    """No marker: a store by its manifest's keys and schema version, a dataset by the generator's provenance."""
    store = tmp_path / "store"
    shutil.copytree(prepared, store)
    (store / MARKER).unlink()
    data = synthesize(tmp_path / "data", SMALL, seed=0)
    (data / MARKER).unlink()
    imported = import_release(release.path, tmp_path / "release").root
    (imported / MARKER).unlink()
    assert (kind_of(store), kind_of(data), kind_of(imported)) == (FEATURE_STORE, SYNTHETIC, RELEASE_STORE)
    report: dict = {}
    prepare(raw, store, CHEAP, progress=False, report=report)
    assert {r["status"] for r in report.values()} == {"fresh"}
    assert json.loads((store / MARKER).read_text())["kind"] == FEATURE_STORE  # claimed on its next use
    import_release(release.path, imported)
    assert kind_of(imported) == RELEASE_STORE and (imported / MARKER).is_file()
    assert kind_of(web_app(tmp_path / "app")) is None
