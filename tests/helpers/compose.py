"""Composed Hydra configs for tests, as the apps compose them, with outputs under a test folder."""

from __future__ import annotations

from pathlib import Path

from hydra import compose, initialize
from hydra.core.global_hydra import GlobalHydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig, open_dict

import bamir.conf  # noqa: F401  (the resolvers and stage schemas, as the apps' import of the config package registers them)

CONF_DIR = "../../conf"
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
