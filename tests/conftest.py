"""Shared fixtures: a tiny planted feature store and composed Hydra configs on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import bamir.cli  # noqa: F401  (registers the configs' resolvers, as every app does)

os.environ.setdefault("WANDB_MODE", "disabled")
torch.set_num_threads(1)  # the test machine has 2 cores; avoid oversubscription

CONF_DIR = "../conf"
FAST_OVERRIDES = [
    "dataset=planted_tiny",
    "model=bamir_small",
    "logger=csv",
    "trainer=cpu",
    "trainer.max_epochs=2",
    "trainer.enable_progress_bar=false",
    "trainer.enable_model_summary=false",
    "data.batch_size=64",
]


def compose_config(name: str, root: Path, overrides: list[str] | None = None, fast: bool = True) -> DictConfig:
    """Compose ``conf/<name>.yaml`` as the app would, with outputs under ``root``."""
    GlobalHydra.instance().clear()
    with initialize(version_base="1.3", config_path=CONF_DIR):
        quick = [o for o in FAST_OVERRIDES if name == "train" or not o.startswith("model=")] if fast else []
        cfg = compose(config_name=name, return_hydra_config=True, overrides=[*quick, *(overrides or [])])
    with open_dict(cfg):
        cfg.paths.root_dir = str(root)
        cfg.paths.output_dir = str(root / "run")
        cfg.hydra.runtime.output_dir = str(root / "run")
        cfg.hydra.job.num = 0
    HydraConfig().set_config(cfg)
    GlobalHydra.instance().clear()
    return cfg


@pytest.fixture(scope="session")
def shared_data(tmp_path_factory) -> Path:
    """One data folder for the whole session, so the planted store is built once."""
    return tmp_path_factory.mktemp("data")


@pytest.fixture
def cfg_train(tmp_path, shared_data) -> DictConfig:
    cfg = compose_config("train", tmp_path)
    with open_dict(cfg):
        cfg.paths.data_dir = str(shared_data)
    return cfg


@pytest.fixture(scope="session")
def planted_store(shared_data):
    from bamir.data.planted import ensure_planted_store

    return ensure_planted_store(shared_data / "stores" / "planted-tiny-0", brands_per_category=3,
                                influencers=120, positives_per_brand=5)
