"""``bamir-synthesize``: generate a synthetic raw dataset (Hydra app, ``conf/synthesize.yaml``).

    bamir-synthesize preset=tiny seed=0 out=data/synthetic/tiny

``preset=NAME`` is shorthand for the Hydra group override ``synthetic=NAME``. The dataset
is generated only if ``out`` is absent or holds another config's dataset (``force=true``
regenerates); a folder bamir did not write, or one holding files of the user's, is refused
unless ``overwrite=true``. Then it is validated, and the app exits 1 if the validator finds errors
(only possible when error-class defects were asked for).
"""

from __future__ import annotations

import logging
import sys
import time
from pathlib import Path

import hydra
from omegaconf import DictConfig, OmegaConf

from bamir.cli import CONFIG_DIR

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> int:
    from bamir.data.synthetic import config_hash, ensure_synthetic, synthesize
    from bamir.data.validate import validate_dataset

    preset = OmegaConf.to_container(cfg.synthetic, resolve=True)
    out = Path(str(cfg.out)).expanduser()
    start = time.perf_counter()
    if cfg.force:  # a folder bamir does not own raises OwnershipError: app_errors reports it, exit 2
        synthesize(out, preset, int(cfg.seed), overwrite=True, foreign=cfg.overwrite)
    else:
        ensure_synthetic(out, preset, int(cfg.seed), foreign=cfg.overwrite)
    elapsed = time.perf_counter() - start
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"dataset: {out} (preset {preset['name']}, seed {cfg.seed}, config {config_hash(preset, int(cfg.seed))[:12]}) "
          f"in {elapsed:.1f} s, {size / 2**20:.1f} MiB")
    if cfg.get("validate", True):
        report = validate_dataset(out)
        print(report.format(max_per_code=5))
        return 0 if report.ok else 1
    return 0


@hydra.main(config_path=CONFIG_DIR, config_name="synthesize", version_base="1.3")
def _app(cfg: DictConfig) -> int:
    from bamir.cli.errors import app_errors

    with app_errors(cfg):
        return run(cfg)


def _alias(arg: str) -> str:
    return "synthetic=" + arg.split("=", 1)[1] if arg.startswith("preset=") else arg


def main() -> None:
    sys.argv = [sys.argv[0]] + [_alias(a) for a in sys.argv[1:]]
    code = _app()
    if code:
        sys.exit(code)


if __name__ == "__main__":
    main()
