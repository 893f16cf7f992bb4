"""Which folders bamir may write: a ``.bamir-owned`` marker, checked before every write.

Every folder bamir writes (a feature store, an imported release, the planted store, a
synthetic dataset) holds a small JSON file :data:`MARKER` naming its kind and its writer.
Before writing, :func:`check_target` decides:

* absent or empty folder: written;
* a bamir folder of the asked kind: updated or replaced; when it is to be replaced whole,
  entries that are not part of that kind's layout (a user's own files) make it refuse
  rather than delete them;
* anything else (a user's folder, a bamir folder of another kind): refused with a message
  naming the folder and ``overwrite=true``, unless ``foreign`` (the apps' ``overwrite=true``)
  lets the folder be replaced.

Folders written by bamir before the marker existed are recognised by their own files: a
store by a ``manifest.json`` with the store's keys and schema version, a synthetic dataset
by the generator's provenance in ``dataset.yaml``.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Iterator

from bamir.data import schema
from bamir.utils import atomic_write_json, publish_dir

MARKER = ".bamir-owned"
OVERWRITE = "overwrite=true"
FEATURE_STORE, RELEASE_STORE, PLANTED_STORE, SYNTHETIC = "feature-store", "release-store", "planted-store", "synthetic-dataset"
LABELS = {
    FEATURE_STORE: "feature store",
    RELEASE_STORE: "feature store imported from the BAMIR release",
    PLANTED_STORE: "planted feature store",
    SYNTHETIC: "synthetic dataset",
}
_STORE_ENTRIES = ("manifest.json", "accounts.csv", "pairs.csv", "splits.json", "*.safetensors", "triplets", "extras",
                  "work")
_RAW_ENTRIES = (schema.DATASET_FILE, *(f"{t}.{ext}" for t in (schema.ACCOUNTS, schema.POSTS, schema.PAIRS)
                                       for ext in ("parquet", "csv")),
                schema.SPLITS_FILE, schema.IMAGES_DIR, schema.KNOWLEDGE_DIR, schema.AFFINITY_FILE, schema.DEFECTS_FILE)
#: Top-level names each kind's layout holds (glob patterns); ``.*.tmp`` are bamir's unfinished atomic writes.
LAYOUTS = {FEATURE_STORE: _STORE_ENTRIES, RELEASE_STORE: _STORE_ENTRIES, PLANTED_STORE: _STORE_ENTRIES,
           SYNTHETIC: _RAW_ENTRIES}
_STORE_KEYS = {"schema_version", "dataset", "accounts", "tables", "modalities"}


class OwnershipError(FileExistsError):
    """bamir refuses to write into a folder it does not own. The message names the folder and the key."""


def _read(path: Path) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def kind_of(folder: str | Path) -> str | None:
    """The kind of bamir folder ``folder`` is (its marker's, or recognised from an earlier bamir's files), or None."""
    folder = Path(folder)
    marker = _read(folder / MARKER)
    if isinstance(marker, dict) and marker.get("kind") in LAYOUTS:
        return marker["kind"]
    return _legacy_kind(folder)


def _legacy_kind(folder: Path) -> str | None:
    """A folder bamir wrote before the marker existed: a store manifest, or the generator's provenance."""
    from bamir.data.synthetic import is_synthetic
    from bamir.store import SCHEMA_VERSION

    manifest = _read(folder / "manifest.json")
    if isinstance(manifest, dict) and _STORE_KEYS <= set(manifest) and manifest["schema_version"] == SCHEMA_VERSION:
        dataset = manifest["dataset"] if isinstance(manifest["dataset"], dict) else {}
        if dataset.get("name") == "bamir-release":
            return RELEASE_STORE
        if dataset.get("name") == "planted":
            return PLANTED_STORE
        if "raw_root" in dataset:
            return FEATURE_STORE
    return SYNTHETIC if is_synthetic(folder) is not None else None


def unknown_entries(folder: str | Path, kind: str) -> list[str]:
    """Top-level entries of ``folder`` that are not part of ``kind``'s layout (a user's own files)."""
    patterns = (*LAYOUTS[kind], MARKER, ".*.tmp")
    return sorted(p.name for p in Path(folder).iterdir() if not any(fnmatch(p.name, pat) for pat in patterns))


def check_target(folder: str | Path, kind: str, *, foreign: bool = False, replaces: bool = True) -> bool:
    """Refuse (:class:`OwnershipError`) to write a ``kind`` folder at ``folder`` unless bamir may.

    ``replaces``: the writer replaces the folder whole (so a user's own files in it would be
    lost); otherwise it updates it in place and keeps them. ``foreign`` (``overwrite=true``)
    allows replacing anything. Returns True when the folder is to be replaced although it is
    not a bamir folder of this kind (the writer must then build beside it and swap).
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OwnershipError(f"{folder}: exists and is not a folder; refusing to replace it")
    if not folder.is_dir() or not any(folder.iterdir()):
        return False
    found = kind_of(folder)
    if found == kind:
        unknown = unknown_entries(folder, kind) if replaces and not foreign else []
        if unknown:
            raise OwnershipError(
                f"{folder}: holds files bamir did not write ({', '.join(unknown)}); refusing to replace the folder "
                f"and lose them. Move them away, or pass {OVERWRITE} to replace it anyway.")
        return False
    if foreign:
        return True
    what = f"a bamir {LABELS[found]}, not a {LABELS[kind]}" if found else \
        f"not empty and not a {LABELS[kind]} bamir wrote (no {MARKER} marker)"
    raise OwnershipError(
        f"{folder}: {what}; refusing to write into it. Choose another folder, or pass {OVERWRITE} "
        f"(bamir-prepare, bamir-synthesize, bamir-import-release) to replace it and lose its files.")


def claim(folder: str | Path, kind: str, writer: str) -> None:
    """Mark ``folder`` as bamir's ``kind`` folder, written by ``writer`` (no time stamp: outputs stay byte-identical)."""
    from bamir import __version__

    atomic_write_json(Path(folder) / MARKER, {"kind": kind, "writer": writer, "bamir_version": __version__})


@contextmanager
def built_beside(folder: str | Path, kind: str, writer: str) -> Iterator[Path]:
    """A new temporary folder beside ``folder``, marked as ``kind``: swapped in for ``folder`` when
    the block ends (:func:`bamir.utils.publish_dir`), removed if it fails, so ``folder`` stays as it was."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=folder.parent, prefix=f".{folder.name}.tmp-"))
    try:
        claim(tmp, kind, writer)
        yield tmp
        publish_dir(tmp, folder)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
