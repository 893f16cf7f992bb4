"""``bamir-rank ckpt_path=... brand=NAME top_k=20``: ranked influencers per brand (:mod:`bamir.ranking.app`)."""

from __future__ import annotations

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="rank")
def main(cfg: DictConfig) -> None:
    from bamir.cli.errors import app_errors
    from bamir.ranking.app import rank
    from bamir.tracking import job_run

    with app_errors(cfg), job_run():  # a user error (unknown name, other store, missing file): one message, exit 2
        rank(cfg)


if __name__ == "__main__":
    main()
