"""``bamir-eval ckpt_path=...``: evaluate a checkpoint on its dataset's validation and test splits."""

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR
from bamir.train import evaluate


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="eval")
def main(cfg: DictConfig) -> None:
    evaluate(cfg)


if __name__ == "__main__":
    main()
