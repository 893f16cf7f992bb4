"""The feature store: one float matrix per modality over one shared account order.

It is the contract between the producers of features (``bamir.features`` preparation, the
importers and generators of ``bamir.data``) and their consumers (training, evaluation,
ranking), so it sits below all of them and imports nothing of bamir but :mod:`bamir.utils`.

Layout of a store folder::

    manifest.json           schema version, provenance, per-file hashes, per-modality records
    accounts.csv            account_id, username, kind (brand | influencer), category; row i = matrix row i
    pairs.csv               brand, influencer[, score]: the known positive pairs (account ids)
    splits.json             {split name: {train_brands, test_brands, test_candidates}} (account ids)
    <modality>.safetensors  "features" float32 [N, dim] and "present" bool [N]
    triplets/<name>.safetensors   optional fixed training triplets, "triplets" int64 [T, 3] of account rows
    extras/<name>.safetensors     optional named tensors, e.g. the planted affinity of synthetic data

Every file is written atomically (temp file + rename) and its SHA-256 is kept in the
manifest, so a truncated or edited file is caught on load. A modality record also keeps the
config that produced it and hashes of that config and of the inputs read, so a preparation
stage can tell whether it is stale (:meth:`FeatureStore.is_fresh`).
"""

from __future__ import annotations

import hashlib
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save

from bamir.utils import atomic_write_bytes, atomic_write_json, file_hash, stable_hash

SCHEMA_VERSION = 1
ACCOUNT_COLUMNS = ("account_id", "username", "kind", "category")
ACCOUNT_KINDS = ("brand", "influencer")
SPLIT_KEYS = ("train_brands", "test_brands", "test_candidates")


class StoreError(ValueError):
    """A feature store is missing, inconsistent or corrupt. The message names the file."""


@dataclass(frozen=True)
class Modality:
    """One modality's matrix: ``features`` [N, dim] float32, ``present`` [N] bool."""

    name: str
    features: torch.Tensor
    present: torch.Tensor

    @property
    def dim(self) -> int:
        return int(self.features.shape[1])


class FeatureStore:
    """Read and write a feature store folder (see the module docstring for the layout)."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        manifest_path = self.root / "manifest.json"
        if not manifest_path.is_file():
            raise StoreError(f"{manifest_path}: no feature store here (manifest.json is missing)")
        try:
            self.manifest: dict[str, Any] = json.loads(manifest_path.read_text())
        except json.JSONDecodeError as err:
            raise StoreError(f"{manifest_path}: not valid JSON ({err})") from err
        version = self.manifest.get("schema_version")
        if version != SCHEMA_VERSION:
            raise StoreError(f"{manifest_path}: schema_version {version!r}, expected {SCHEMA_VERSION}")
        self._accounts: pd.DataFrame | None = None

    # ------------------------------------------------------------------ creation
    @classmethod
    def create(
        cls,
        root: str | Path,
        accounts: pd.DataFrame,
        pairs: pd.DataFrame,
        splits: Mapping[str, Mapping[str, list[str]]],
        dataset: Mapping[str, Any] | None = None,
    ) -> "FeatureStore":
        """Start a store (or reset its tables) from the account order, pairs and splits.

        Modality records already in the folder are kept only when the account order is
        unchanged; otherwise they are dropped, since their rows no longer line up.
        """
        root = Path(root)
        accounts = _check_accounts(accounts, "accounts")
        ids = set(accounts["account_id"])
        pairs = _check_pairs(pairs, ids, "pairs")
        splits = _check_splits(splits, accounts, "splits")

        accounts_csv = accounts.to_csv(index=False).encode()
        pairs_csv = pairs.to_csv(index=False).encode()
        splits_json = (json.dumps(splits, indent=2, sort_keys=True) + "\n").encode()
        accounts_hash = _bytes_hash(accounts_csv)

        old: dict[str, Any] = {}
        if (root / "manifest.json").is_file():
            try:
                old = json.loads((root / "manifest.json").read_text())
            except json.JSONDecodeError:
                old = {}
        keep = old.get("accounts", {}).get("sha256") == accounts_hash
        for name, data in (("accounts.csv", accounts_csv), ("pairs.csv", pairs_csv), ("splits.json", splits_json)):
            if not _same_bytes(root / name, data):  # an unchanged store is only read
                atomic_write_bytes(root / name, data)
        manifest = {
            "schema_version": SCHEMA_VERSION,
            "dataset": dict(dataset or {}),
            "accounts": {"count": len(accounts), "sha256": accounts_hash},
            "tables": {
                "pairs.csv": _bytes_hash(pairs_csv),
                "splits.json": _bytes_hash(splits_json),
            },
            "modalities": old.get("modalities", {}) if keep else {},
            "triplets": old.get("triplets", {}) if keep else {},
            "artifacts": old.get("artifacts", {}) if keep else {},
            "extras": old.get("extras", {}) if keep else {},
        }
        if manifest != old:
            atomic_write_json(root / "manifest.json", manifest)
        return cls(root)

    def _save_manifest(self) -> None:
        atomic_write_json(self.root / "manifest.json", self.manifest)

    def write_modality(
        self,
        name: str,
        features: torch.Tensor,
        present: torch.Tensor | None = None,
        *,
        config: Mapping[str, Any] | None = None,
        inputs_hash: str | None = None,
        seconds: float | None = None,
        counts: Mapping[str, int] | None = None,
        skipped: Mapping[str, int] | None = None,
        note: str | None = None,
    ) -> None:
        """Write one modality matrix (rows in the store's account order) and its record."""
        features = torch.as_tensor(features).detach().to("cpu", torch.float32).contiguous()
        n = self.num_accounts
        if features.ndim != 2 or features.shape[0] != n:
            raise StoreError(f"modality {name!r}: expected a matrix with {n} rows, got shape {tuple(features.shape)}")
        present = (
            torch.ones(n, dtype=torch.bool)
            if present is None
            else torch.as_tensor(present).to("cpu", torch.bool).contiguous()
        )
        if present.shape != (n,):
            raise StoreError(f"modality {name!r}: 'present' must have shape ({n},), got {tuple(present.shape)}")
        bad = ~torch.isfinite(features[present]).all(dim=1)
        if bad.any():
            row = int(torch.nonzero(present)[bad.nonzero()[0, 0]])
            raise StoreError(f"modality {name!r}: row {row} ({self.account_ids[row]}) has NaN or inf values")
        data = st_save({"features": features, "present": present})
        filename = f"{name}.safetensors"
        atomic_write_bytes(self.root / filename, data)
        config = dict(config or {})
        self.manifest["modalities"][name] = {
            "file": filename,
            "dim": int(features.shape[1]),
            "rows": n,
            "present": int(present.sum()),
            "sha256": _bytes_hash(data),
            "config": config,
            "config_hash": stable_hash(config),
            "inputs_hash": inputs_hash,
            "seconds": seconds,
            "counts": dict(counts or {}),
            "skipped": dict(skipped or {}),
            "note": note,
            "written": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        self._save_manifest()

    def write_triplets(self, name: str, triplets: torch.Tensor, note: str | None = None) -> None:
        """Keep a fixed table of (brand row, positive row, negative row) triplets."""
        triplets = torch.as_tensor(triplets).to("cpu", torch.int64).contiguous()
        if triplets.ndim != 2 or triplets.shape[1] != 3:
            raise StoreError(f"triplets {name!r}: expected shape [T, 3], got {tuple(triplets.shape)}")
        if triplets.numel() and (triplets.min() < 0 or triplets.max() >= self.num_accounts):
            raise StoreError(f"triplets {name!r}: row index outside 0..{self.num_accounts - 1}")
        data = st_save({"triplets": triplets})
        filename = f"triplets/{name}.safetensors"
        atomic_write_bytes(self.root / filename, data)
        self.manifest["triplets"][name] = {
            "file": filename,
            "rows": int(triplets.shape[0]),
            "sha256": _bytes_hash(data),
            "note": note,
        }
        self._save_manifest()

    def write_tensors(self, name: str, tensors: Mapping[str, torch.Tensor], note: str | None = None) -> None:
        """Keep named tensors that are not per-account matrices (e.g. the planted affinity
        ``[brands, influencers]`` with its ``brand_rows`` and ``influencer_rows``)."""
        data = st_save({k: torch.as_tensor(v).detach().cpu().contiguous() for k, v in tensors.items()})
        filename = f"extras/{name}.safetensors"
        record = {"file": filename, "sha256": _bytes_hash(data), "note": note}
        if self.manifest.get("extras", {}).get(name) == record and _same_bytes(self.root / filename, data):
            return
        atomic_write_bytes(self.root / filename, data)
        self.manifest.setdefault("extras", {})[name] = record
        self._save_manifest()

    def load_tensors(self, name: str) -> dict[str, torch.Tensor]:
        record = self.manifest.get("extras", {}).get(name)
        if record is None:
            raise StoreError(f"{self.root}: no tensors {name!r}; it has {sorted(self.manifest.get('extras', {}))}")
        return st_load(self._read_checked(self.root / record["file"], record["sha256"]))

    def record_artifact(self, name: str, record: Mapping[str, Any]) -> None:
        """Record a fitted preparation artifact (e.g. an LDA model file) in the manifest."""
        self.manifest["artifacts"][name] = dict(record)
        self._save_manifest()

    # ------------------------------------------------------------------ reading
    @property
    def num_accounts(self) -> int:
        return int(self.manifest["accounts"]["count"])

    @property
    def accounts(self) -> pd.DataFrame:
        if self._accounts is None:
            path = self.root / "accounts.csv"
            text = self._read_checked(path, self.manifest["accounts"]["sha256"]).decode()
            frame = pd.read_csv(io.StringIO(text), dtype={"account_id": str, "username": str, "kind": str, "category": str}, keep_default_na=False)
            self._accounts = _check_accounts(frame, str(path))
        return self._accounts

    @property
    def account_ids(self) -> list[str]:
        return self.accounts["account_id"].tolist()

    @property
    def pairs(self) -> pd.DataFrame:
        path = self.root / "pairs.csv"
        text = self._read_checked(path, self.manifest["tables"]["pairs.csv"]).decode()
        frame = pd.read_csv(io.StringIO(text), dtype={"brand": str, "influencer": str}, keep_default_na=False)
        return _check_pairs(frame, set(self.account_ids), str(path))

    @property
    def splits(self) -> dict[str, dict[str, list[str]]]:
        path = self.root / "splits.json"
        text = self._read_checked(path, self.manifest["tables"]["splits.json"]).decode()
        return _check_splits(json.loads(text), self.accounts, str(path))

    @property
    def modalities(self) -> list[str]:
        return sorted(self.manifest["modalities"])

    @property
    def triplet_sets(self) -> list[str]:
        return sorted(self.manifest["triplets"])

    def record(self, name: str) -> dict[str, Any]:
        try:
            return self.manifest["modalities"][name]
        except KeyError:
            raise StoreError(
                f"{self.root / 'manifest.json'}: no modality {name!r}; the store has {self.modalities}"
            ) from None

    def load_modality(self, name: str) -> Modality:
        """Load one modality, checking its hash, shape and that present rows are finite."""
        record = self.record(name)
        path = self.root / record["file"]
        tensors = st_load(self._read_checked(path, record["sha256"]))
        if set(tensors) != {"features", "present"}:
            raise StoreError(f"{path}: expected tensors 'features' and 'present', found {sorted(tensors)}")
        features, present = tensors["features"], tensors["present"]
        expected = (self.num_accounts, record["dim"])
        if tuple(features.shape) != expected:
            raise StoreError(f"{path}: 'features' has shape {tuple(features.shape)}, the manifest says {expected}")
        if tuple(present.shape) != (self.num_accounts,) or present.dtype != torch.bool:
            raise StoreError(f"{path}: 'present' must be bool of shape ({self.num_accounts},)")
        finite = torch.isfinite(features).all(dim=1)
        bad = present & ~finite
        if bad.any():
            row = int(bad.nonzero()[0, 0])
            raise StoreError(f"{path}: row {row} ({self.account_ids[row]}) has NaN or inf values")
        return Modality(name, features.float(), present)

    def load_triplets(self, name: str) -> torch.Tensor:
        try:
            record = self.manifest["triplets"][name]
        except KeyError:
            raise StoreError(f"{self.root}: no triplet set {name!r}; the store has {self.triplet_sets}") from None
        path = self.root / record["file"]
        return st_load(self._read_checked(path, record["sha256"]))["triplets"]

    def is_fresh(self, name: str, config: Mapping[str, Any], inputs_hash: str | None) -> bool:
        """True when modality ``name`` exists, its file is intact, and config and inputs are unchanged."""
        record = self.manifest["modalities"].get(name)
        if record is None or record.get("config_hash") != stable_hash(dict(config)):
            return False
        if record.get("inputs_hash") != inputs_hash:
            return False
        path = self.root / record["file"]
        return path.is_file() and file_hash(path) == record["sha256"]

    def fingerprint(self, modalities: list[str] | None = None) -> dict[str, Any]:
        """What a checkpoint remembers of the store: account order and per-modality config and inputs hashes."""
        names = self.modalities if modalities is None else modalities
        return {
            "accounts": self.manifest["accounts"]["sha256"],
            "modalities": {n: {key: self.record(n).get(key) for key in ("dim", "config_hash", "inputs_hash")}
                           for n in names},
        }

    def _read_checked(self, path: Path, expected_hash: str) -> bytes:
        if not path.is_file():
            raise StoreError(f"{path}: file listed in the manifest is missing")
        data = path.read_bytes()
        if _bytes_hash(data) != expected_hash:
            raise StoreError(f"{path}: content hash differs from the manifest (file changed or corrupt)")
        return data

    def __repr__(self) -> str:
        return f"FeatureStore({str(self.root)!r}, accounts={self.num_accounts}, modalities={self.modalities})"


def _bytes_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _same_bytes(path: Path, data: bytes) -> bool:
    return path.is_file() and path.stat().st_size == len(data) and path.read_bytes() == data


def _check_accounts(frame: pd.DataFrame, where: str) -> pd.DataFrame:
    missing = [c for c in ACCOUNT_COLUMNS if c not in frame.columns]
    if missing:
        raise StoreError(f"{where}: missing columns {missing}")
    frame = frame.loc[:, list(ACCOUNT_COLUMNS)].copy()
    frame["category"] = frame["category"].fillna("").astype(str)
    for row, (account_id, kind) in enumerate(zip(frame["account_id"], frame["kind"])):
        if not isinstance(account_id, str) or not account_id:
            raise StoreError(f"{where}: row {row}, field account_id: empty")
        if kind not in ACCOUNT_KINDS:
            raise StoreError(f"{where}: row {row}, field kind: {kind!r} is not one of {ACCOUNT_KINDS}")
    dup = frame["account_id"].duplicated()
    if dup.any():
        row = int(dup.to_numpy().nonzero()[0][0])
        raise StoreError(f"{where}: row {row}, field account_id: duplicate id {frame['account_id'].iloc[row]!r}")
    return frame.reset_index(drop=True)


def _check_pairs(frame: pd.DataFrame, ids: set[str], where: str) -> pd.DataFrame:
    for col in ("brand", "influencer"):
        if col not in frame.columns:
            raise StoreError(f"{where}: missing column {col!r}")
        unknown = ~frame[col].isin(ids)
        if unknown.any():
            row = int(unknown.to_numpy().nonzero()[0][0])
            raise StoreError(f"{where}: row {row}, field {col}: unknown account {frame[col].iloc[row]!r}")
    return frame.reset_index(drop=True)


def _check_splits(splits: Mapping[str, Any], accounts: pd.DataFrame, where: str) -> dict[str, dict[str, list[str]]]:
    kinds = dict(zip(accounts["account_id"], accounts["kind"]))
    out: dict[str, dict[str, list[str]]] = {}
    for name, split in splits.items():
        missing = [k for k in SPLIT_KEYS if k not in split]
        if missing:
            raise StoreError(f"{where}: split {name!r} lacks {missing}")
        for key, want in (("train_brands", "brand"), ("test_brands", "brand"), ("test_candidates", "influencer")):
            for position, account in enumerate(split[key]):
                if kinds.get(account) != want:
                    what = "unknown account" if account not in kinds else f"a {kinds[account]}, not a {want}"
                    raise StoreError(f"{where}: split {name!r}, {key}[{position}]: {account!r} is {what}")
        overlap = set(split["train_brands"]) & set(split["test_brands"])
        if overlap:
            raise StoreError(f"{where}: split {name!r}: brands in both train and test: {sorted(overlap)[:5]}")
        out[name] = {k: list(split[k]) for k in SPLIT_KEYS}
    return out
