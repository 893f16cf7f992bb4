"""Time and peak memory of each preparation stage on a synthetic preset.

Generates the synthetic dataset ``--preset`` (conf/synthetic/) under ``--root`` if it is
missing, prepares a fresh feature store with the feature preset ``--features``
(conf/features/), and prints per stage the wall time and the peak resident memory of the
preparing process during that stage (both from the store's manifest; DataLoader worker
processes are not included in the memory figure).

    python benchmarks/prepare_stages.py --preset small --features small
    python benchmarks/prepare_stages.py --preset paper --features small features.scene=null
"""

from __future__ import annotations

import argparse
import logging
import shutil
import time
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", help="synthetic dataset preset (conf/synthetic)")
    parser.add_argument("--features", default="small", help="feature preset (conf/features)")
    parser.add_argument("--root", default="data/bench", help="where the raw dataset and the store go")
    parser.add_argument("--keep-store", action="store_true", help="reuse an existing store (only stale stages run)")
    parser.add_argument("overrides", nargs="*", help="Hydra overrides of conf/prepare.yaml, e.g. features.scene=null")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    for noisy in ("gensim", "smart_open"):
        logging.getLogger(noisy).setLevel(logging.WARNING)

    from bamir.data.synthetic.generator import ensure_synthetic
    from bamir.features.pipeline import prepare

    root = Path(args.root)
    raw_root = root / "raw" / args.preset
    store_root = root / "stores" / f"{args.preset}-{args.features}"
    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        synthetic = OmegaConf.to_container(compose(f"synthetic/{args.preset}"), resolve=True)
        synthetic = synthetic.get("synthetic", synthetic)
        cfg = compose("prepare", overrides=[f"features={args.features}", f"raw_root={raw_root}",
                                            f"store_root={store_root}", *args.overrides])
    t = time.perf_counter()
    ensure_synthetic(raw_root, synthetic, seed=0)
    print(f"raw dataset {raw_root} ready in {time.perf_counter() - t:.1f}s")
    if store_root.exists() and not args.keep_store:
        shutil.rmtree(store_root)
    report: dict = {}
    t = time.perf_counter()
    store = prepare(raw_root, store_root, cfg.features, split=cfg.split, progress=False, report=report)
    total = time.perf_counter() - t

    print(f"\npreset {args.preset}, features {args.features} ({' '.join(args.overrides) or 'no overrides'}): "
          f"{store.num_accounts} accounts")
    print(f"{'stage':<12}{'status':<10}{'seconds':>9}{'peak RSS MiB':>14}  counts")
    for name, entry in report.items():
        for modality in entry["modalities"]:
            rec = store.record(modality)
            counts = {k: v for k, v in rec["counts"].items() if k != "peak_rss_mib"}
            print(f"{modality:<12}{entry['status']:<10}{rec['seconds'] or 0:>9.1f}"
                  f"{rec['counts'].get('peak_rss_mib', -1):>14}  {counts} skipped={rec['skipped']}")
    print(f"total {total:.1f}s")


if __name__ == "__main__":
    main()
