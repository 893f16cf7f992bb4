"""Checkpoints that are whole and belong to their run.

- :class:`AtomicCheckpointIO` writes every checkpoint through a temporary file in the same
  folder, fsync and a rename (``conf/trainer/default.yaml``): a full disk or a kill while
  saving leaves the previous ``last.ckpt`` as it was.
- :func:`read_checkpoint` reads one whole before a run uses it, naming the file when it
  cannot (:class:`CheckpointError`).
- every checkpoint carries its run's composed config (``bamir_config``,
  :class:`bamir.callbacks.RunConfigInCheckpoints`); :func:`check_same_run` refuses to resume a run's
  own ``last.ckpt`` under other ``ckpt_match`` settings (a command rerun in its folder with other settings).
- :func:`newest_matching_run` is ``ckpt_path=last``: the newest checkpoint among earlier runs
  whose saved config (``.hydra/config.yaml``) agrees with this one on ``ckpt_match``.
- :func:`load_checkpoint` rebuilds a ranker with the data module of its store, serving the data
  as in training; :func:`check_store` refuses a store other than the one it was trained on
  (:class:`OtherStoreError`).
"""

from __future__ import annotations

import io
import logging
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.plugins.io import TorchCheckpointIO
from omegaconf import DictConfig, OmegaConf

from bamir.callbacks import RUN_CONFIG
from bamir.utils import atomic_write_bytes

log = logging.getLogger(__name__)


class CheckpointError(ValueError):
    """A checkpoint that cannot be used: unreadable, truncated, or of a run with another config."""


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing each file atomically (temporary file, fsync, rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any = None) -> None:
        buffer = io.BytesIO()
        torch.save(checkpoint, buffer)
        atomic_write_bytes(path, buffer.getvalue())


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The checkpoint at ``path``, read whole; :class:`CheckpointError` naming it when it cannot be."""
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise CheckpointError(
            f"{path}: not a readable checkpoint, truncated or corrupt ({type(err).__name__}: {err}); "
            "delete it to start afresh, or pass ckpt_path=PATH of another checkpoint"
        ) from None
    if not isinstance(checkpoint, dict) or "state_dict" not in checkpoint:
        raise CheckpointError(f"{path}: not a Lightning checkpoint (no state_dict)")
    return checkpoint


def newest_matching_run(runs: Path, cfg: DictConfig, exclude: Path) -> str:
    """``runs/**/checkpoints/last.ckpt`` of the newest run (outside ``exclude``) whose saved config
    agrees with ``cfg`` on the keys ``cfg.ckpt_match``; :class:`CheckpointError` naming what differs."""
    exclude = exclude.resolve()
    found = [p for p in runs.rglob("checkpoints/last.ckpt") if exclude not in p.resolve().parents]
    if not found:
        raise FileNotFoundError(f"ckpt_path=last: no checkpoints/last.ckpt under {runs}")
    found.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    keys = list(cfg.ckpt_match)
    for path in found:
        if not config_differences(cfg, path.parent.parent, keys):
            log.info("ckpt_path=last: %s (the newest run under %s with the same %s)", path, runs, ", ".join(keys))
            return str(path)
    differences = "; ".join(config_differences(cfg, found[0].parent.parent, keys)[:10])
    raise CheckpointError(
        f"ckpt_path=last: no run under {runs} has this run's {', '.join(keys)}; the newest, "
        f"{found[0].parent.parent}, differs: {differences}. Pass ckpt_path=PATH to resume it anyway"
    )


def check_same_run(path: str | Path, checkpoint: dict[str, Any], cfg: DictConfig) -> None:
    """:class:`CheckpointError` when the run that wrote ``checkpoint`` (its :data:`RUN_CONFIG`) differs from
    ``cfg`` on ``cfg.ckpt_match``, naming the settings; a checkpoint without a recorded config passes."""
    saved = checkpoint.get(RUN_CONFIG)
    if saved is None:
        log.warning("%s records no run config (written by an older bamir): resuming without checking its settings",
                    path)
        return
    keys = list(cfg.get("ckpt_match") or [])
    differences = settings_differences(_settings(OmegaConf.create(saved), keys), _settings(cfg, keys))
    if differences:
        raise CheckpointError(
            f"{path}: this folder's run was trained with other settings ({'; '.join(differences[:10])}); "
            f"run in a new folder, or pass ckpt_path={path} to resume it anyway")


def config_differences(cfg: DictConfig, run: Path, keys: list[str]) -> list[str]:
    """``key: value there, value here`` for each setting under ``keys`` where ``run``'s saved config differs."""
    saved_path = run / ".hydra" / "config.yaml"
    if not saved_path.is_file():
        return [f"it has no saved config ({saved_path})"]
    return settings_differences(_settings(OmegaConf.load(saved_path), keys), _settings(cfg, keys))


def settings_differences(there: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """``key: value there, value here`` for each flat setting (:func:`flat_settings`) that differs."""
    return [f"{k}: {there.get(k)!r} there, {here.get(k)!r} here"
            for k in sorted(set(there) | set(here)) if there.get(k) != here.get(k)]


def _settings(conf: DictConfig, keys: list[str]) -> dict[str, Any]:
    """The settings under ``keys``, unresolved (as Hydra saves them), as ``{"a.b": leaf}``."""
    tree = OmegaConf.to_container(conf, resolve=False)
    return flat_settings({k: tree.get(k) for k in keys})


def flat_settings(tree: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a.b": leaf}`` of nested dicts; lists and scalars are leaves."""
    if not isinstance(tree, dict):
        return {prefix: tree}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        out.update(flat_settings(value, f"{prefix}.{key}" if prefix else str(key)))
    return out


# ---------------------------------------------------------------- a ranker and its data from a checkpoint
class OtherStoreError(ValueError):
    """A checkpoint trained on another feature store than the one it is given."""


def load_checkpoint(path: str, datamodule):
    """Load a ranker checkpoint (``weights_only=True``) with a data module of its feature store.

    The data module serves the store as in training: one not set up yet takes the checkpoint's
    data settings (modalities, standardisation and its statistics;
    :meth:`~bamir.datamodule.RankingDataModule.load_state_dict`) and is set up here; one set up
    already must serve exactly those. Refuses (:class:`OtherStoreError`) a checkpoint trained on
    another account order, feature config or feature inputs, naming what differs; a
    truncated or unreadable file with its path (:class:`~bamir.checkpoints.CheckpointError`).
    """
    from bamir.datamodule import checkpoint_data
    from bamir.store import FeatureStore

    checkpoint = read_checkpoint(path)
    cls = _model_class(path, checkpoint)
    check_store(path, checkpoint, FeatureStore(datamodule.store_dir))
    datamodule.load_state_dict(checkpoint_data(checkpoint))
    datamodule.setup()
    model = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    model.attach_features(datamodule.features)
    model.attach_data(datamodule)
    return model


def _model_class(path: str, checkpoint: dict[str, Any]) -> type:
    import importlib

    qualname = checkpoint.get("bamir_model", "")
    module_name, _, class_name = qualname.rpartition(".")
    if not module_name.startswith("bamir.models."):
        raise ValueError(f"{path}: not a bamir model checkpoint (model class {qualname!r})")
    return getattr(importlib.import_module(module_name), class_name)


def check_store(path: str, checkpoint: dict[str, Any], store) -> None:
    """:class:`OtherStoreError` unless ``store`` has the account order and modalities (computed from the
    same inputs with the same configs) the checkpoint was trained on."""
    saved = checkpoint.get("hyper_parameters", {}).get("store_fingerprint") or {}
    if not saved:
        return
    current = store.fingerprint([n for n in saved.get("modalities", {}) if n in store.modalities])
    differences = []
    if saved.get("accounts") != current.get("accounts"):
        differences.append("the account order (a different dataset or split)")
    for name, record in saved.get("modalities", {}).items():
        if name not in current.get("modalities", {}):
            differences.append(f"modality {name!r} is missing from the store")
        else:
            here = current["modalities"][name]
            differences += [f"modality {name!r}: {key} {value!r} in the checkpoint, {here.get(key)!r} in the store"
                            for key, value in record.items() if here.get(key) != value]
    if differences:
        raise OtherStoreError(f"{path}: trained on another feature store: " + "; ".join(differences))
