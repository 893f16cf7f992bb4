"""``bamir-prepare``: turn a raw dataset into the feature store (only what is missing or stale).

    bamir-prepare raw_root=data/raw/small                 # the default (small) feature preset
    bamir-prepare raw_root=data/raw/small features=paper  # ResNet-101 + UperNet, as published
    bamir-prepare features.scene=null                     # drop a stage
"""

from __future__ import annotations

import logging

import hydra
from omegaconf import DictConfig

from bamir.cli import CONFIG_DIR

log = logging.getLogger("bamir.prepare")


def run(cfg: DictConfig):
    """Prepare the store described by ``cfg`` (composed from conf/prepare.yaml); returns it."""
    from bamir.features.pipeline import prepare

    report: dict = {}
    store = prepare(cfg.raw_root, cfg.store_root, cfg.features, split=cfg.split,
                    progress=bool(cfg.get("progress", True)), report=report, foreign=cfg.overwrite)
    width = max((len(m) for m in store.modalities), default=8)
    lines = [f"{'modality':<{width}}  {'dim':>5}  {'present':>7}  {'seconds':>8}  {'status':<8}  skipped"]
    status = {m: r["status"] for r in report.values() for m in r["modalities"]}
    for name in store.modalities:
        rec = store.record(name)
        lines.append(f"{name:<{width}}  {rec['dim']:>5}  {rec['present']:>7}  {rec['seconds'] or 0:>8.1f}  "
                     f"{status.get(name, 'kept'):<8}  {rec['skipped'] or '-'}")
    log.info("feature store %s\n%s", store.root, "\n".join(lines))
    return store


@hydra.main(version_base="1.3", config_path=CONFIG_DIR, config_name="prepare")
def main(cfg: DictConfig) -> None:
    from bamir.cli.errors import app_errors
    from bamir.tracking import job_run

    with app_errors(cfg), job_run():  # a folder bamir does not own: one message, exit 2
        run(cfg)


if __name__ == "__main__":
    main()
