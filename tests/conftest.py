"""Shared fixtures: a tiny planted feature store and composed Hydra configs on it."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch
from omegaconf import DictConfig, open_dict

import bamir.cli  # noqa: F401  (registers the configs' resolvers, as every app does)
from tests.helpers.compose import compose_config

os.environ.setdefault("WANDB_MODE", "disabled")
torch.set_num_threads(1)  # the test machine has 2 cores; avoid oversubscription

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
