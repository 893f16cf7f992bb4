"""``bamir-import-release src=PATH dst=PATH``: the published BAMIR release -> feature store (:mod:`bamir.data.release.app`)."""

from __future__ import annotations

import sys

import hydra
from omegaconf import DictConfig, OmegaConf

from bamir.cli import CONFIG_DIR


@hydra.main(config_path=CONFIG_DIR, config_name="import_release", version_base="1.3")
def main(cfg: DictConfig) -> None:
    from bamir.cli.errors import app_errors

    if OmegaConf.is_missing(cfg, "src"):
        print("usage: bamir-import-release src=PATH/train_test_split [dst=PATH/store]", file=sys.stderr)
        sys.exit(2)
    with app_errors(cfg):
        from bamir.data.release.app import import_task

        import_task(cfg)


if __name__ == "__main__":
    main()
