"""``bamir-compare``: rows of finished benchmarks compared again from their saved scores (no training).

    bamir-compare 'benchmarks=[outputs/benchmark/runs/A]' reference=bamir_paper_5ep
    bamir-compare 'benchmarks=[outputs/benchmark/runs/A,outputs/benchmark/runs/B]' reference=cosine_text_concept
"""

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="compare")
def main(cfg: DictConfig) -> None:
    from bamir.benchmark.compare import compare  # after Hydra has parsed the command line: --help stays fast
    from bamir.cli.errors import app_errors

    with app_errors(cfg):
        compare(cfg)


if __name__ == "__main__":
    main()
