"""``bamir-train``: build the feature store if needed, train, test, print the metric table."""

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    from bamir.cli.errors import app_errors
    from bamir.train import train_task  # after Hydra has parsed the command line: --help stays fast

    with app_errors(cfg):
        return train_task(cfg)  # the run's best validation value of optimized_metric, read by sweepers


if __name__ == "__main__":
    main()
