"""The generator's configuration: defaults (the ``small`` preset), merging and hashing.

``conf/synthetic/{tiny,small,paper}.yaml`` hold the presets (every knob documented there);
:data:`DEFAULTS` is ``small.yaml`` itself, read from the package, so that the generator also runs
from plain Python with a partial config. Keys that do not change the output (``workers``,
``progress``) are left out of the config hash.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from bamir.utils import stable_hash

#: Bumped whenever the same config and seed would produce different files.
GENERATOR_VERSION = 1

def _small_preset() -> dict[str, Any]:
    """``conf/synthetic/small.yaml``, shipped in the package as ``bamir.conf`` (every knob documented there)."""
    from importlib.resources import files

    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(files("bamir.conf").joinpath("synthetic", "small.yaml")))


#: The ``small`` preset: what a partial config is completed with (:func:`merge_config`).
DEFAULTS: dict[str, Any] = _small_preset()

NON_OUTPUT_KEYS = ("workers", "progress")


def _to_plain(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return cfg


def merge_config(cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS` updated with ``cfg`` (a dict or DictConfig); unknown keys raise KeyError."""
    merged = copy.deepcopy(DEFAULTS)
    plain = _to_plain(cfg) or {}

    def update(into: dict, new: Mapping, path: str) -> None:
        for key, value in new.items():
            if key not in into:
                raise KeyError(f"unknown synthetic config key {path}{key!r}")
            if isinstance(into[key], dict):
                if not isinstance(value, Mapping):
                    raise TypeError(f"synthetic config {path}{key} must be a mapping")
                update(into[key], value, f"{path}{key}.")
            else:
                into[key] = value

    update(merged, plain, "")
    return merged


def output_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a merged config that determines the output."""
    return {key: value for key, value in cfg.items() if key not in NON_OUTPUT_KEYS}


def config_hash(cfg: Mapping[str, Any] | None, seed: int) -> str:
    """Hash of what determines a generated dataset: output config, seed, generator version."""
    merged = merge_config(cfg)
    return stable_hash({"config": output_config(merged), "seed": int(seed), "generator_version": GENERATOR_VERSION})
