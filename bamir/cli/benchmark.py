"""``bamir-benchmark``: rankers x seeds on one dataset -> a table with bootstrap CIs, paired tests, plots.

    bamir-benchmark dataset=planted                       # the peers suite, seeds 0 1 2
    bamir-benchmark suite=ablation_sampler 'seeds=[0,1]'
    bamir-benchmark 'models=[random,sbr,oracle]' suite=none
"""

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="benchmark")
def main(cfg: DictConfig) -> None:
    from bamir.benchmark import run_benchmark  # after Hydra has parsed the command line: --help stays fast
    from bamir.cli.errors import app_errors
    from bamir.tracking import job_run

    with app_errors(cfg), job_run():
        run_benchmark(cfg)


if __name__ == "__main__":
    main()
