"""Speed-up of distributed feature extraction (features/extraction=ddp_cpu, 2 processes) against one.

Runs ``bamir-prepare`` on a synthetic preset with only the image stages (object, scene), once
with ``features/extraction=local`` and once with ``features/extraction=ddp_cpu``, ``--repeats``
times each, interleaved, into fresh stores, and compares the stage times the store's manifest
records (rank 0's wall time of each stage: the predict loops of every rank, the launch of the
second process and the merge). One torch thread and one loader worker per process, so two
processes use two cores. On a GPU node, ``features/extraction=ddp`` is the same code path.

    python benchmarks/extraction_speedup.py --preset small --repeats 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

CONF = Path(__file__).resolve().parents[1] / "conf"


def stage_seconds(extraction: str, raw: Path, store: Path, args: argparse.Namespace) -> dict[str, float]:
    env = {**os.environ, "WANDB_MODE": "disabled", "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "bamir.cli.prepare", f"raw_root={raw}", f"store_root={store}",
           f"features={args.features}", f"features/extraction={extraction}", "progress=false",
           "features.topic=null", "features.interaction=null", "features.hashtag=null", "features.concept=null",
           "features.object.num_workers=1", "features.scene.num_workers=1", f"hydra.run.dir={store}-run"]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if done.returncode:
        sys.exit(done.stdout[-2000:] + done.stderr[-3000:])
    manifest = json.loads((store / "manifest.json").read_text())
    return {m: manifest["modalities"][m]["seconds"] for m in ("object", "scene")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="small", help="synthetic dataset preset (conf/synthetic)")
    parser.add_argument("--features", default="small", help="feature preset (conf/features)")
    parser.add_argument("--root", default="data/bench", help="where the raw dataset goes")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()

    from bamir.data.synthetic.generator import ensure_synthetic

    with initialize_config_dir(config_dir=str(CONF), version_base="1.3"):
        synthetic = OmegaConf.to_container(compose(f"synthetic/{args.preset}"), resolve=True)
    raw = ensure_synthetic(Path(args.root) / "raw" / args.preset, synthetic.get("synthetic", synthetic), seed=0)
    work = Path(tempfile.mkdtemp(prefix="extraction-speedup-"))
    times: dict[str, list[dict[str, float]]] = {"local": [], "ddp_cpu": []}
    for repeat in range(args.repeats):
        for extraction in times:
            times[extraction].append(stage_seconds(extraction, raw.resolve(), work / f"{extraction}-{repeat}", args))

    def median(extraction: str, stage: str) -> float:
        return statistics.median(t[stage] for t in times[extraction])

    print(f"preset={args.preset} features={args.features}, median of {args.repeats}")
    print("| extraction | processes | object | scene | speed-up (object + scene) |")
    print("|---|---|---|---|---|")
    base = median("local", "object") + median("local", "scene")
    for extraction, processes in (("local", 1), ("ddp_cpu", 2)):
        o, s = median(extraction, "object"), median(extraction, "scene")
        print(f"| {extraction} | {processes} | {o:.1f} s | {s:.1f} s | {base / (o + s):.2f}x |")


if __name__ == "__main__":
    main()
