"""``bamir-eval ckpt_path=...``: evaluate a checkpoint on its dataset's validation and test splits."""

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    from bamir.cli.errors import app_errors
    from bamir.train import evaluate_task  # after Hydra has parsed the command line: --help stays fast

    with app_errors(cfg):
        evaluate_task(cfg)


if __name__ == "__main__":
    main()
