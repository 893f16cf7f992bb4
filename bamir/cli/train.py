"""``bamir-train``: build the feature store if needed, train, test, print the metric table."""

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR
from bamir.train import train


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="train")
def main(cfg: DictConfig) -> float | None:
    metrics = train(cfg)
    return metrics.get(cfg.get("optimized_metric"))  # read by sweepers


if __name__ == "__main__":
    main()
