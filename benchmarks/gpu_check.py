"""The image stages' GPU path checked against the CPU: same statuses, same distributions up to bf16.

Encodes JPEG files (plus a PNG, a corrupt file, a truncated JPEG and a missing path, which the
device decoder must hand back to the CPU decoder or count) twice with the same random-initialised
networks: on the CPU as the reference (decoding in worker processes, float32) and on ``--device``
(``decode_jpeg(device=...)``, bf16 autocast on CUDA, channels-last). Per encoder it reports
whether the statuses agree, the worst per-image total-variation distance between the two
distributions, and the median Pearson correlation of their log-probabilities, against the same
correlation between *different* images (what a wrong decode would look like). Exits 1 when a
check fails; ``--json`` appends the figures as one line.

    python benchmarks/gpu_check.py --device cuda     # on a GPU (benchmarks/gpu.sh runs it first)
    python benchmarks/gpu_check.py --device cpu      # the same decoding path on the CPU: a dry run
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bamir.features.image.decoding import OK
from bamir.features.image.encoders import ObjectEncoder, SceneEncoder
from bamir.features.settings import ObjectSettings, SceneSettings
from image_throughput import write_jpegs

ENCODERS = {
    "object": (ObjectEncoder, ObjectSettings, {"model": "resnet18"}),
    "scene": (SceneEncoder, SceneSettings, {"backbone": "resnet18", "decoder_hidden_size": 64}),
}


def sample_files(folder: Path, count: int, size: int) -> list[Path]:
    """``count`` JPEGs, then a PNG, a corrupt file, a truncated JPEG and a path that does not exist."""
    paths = write_jpegs(folder, count, size)
    png = folder / "picture.png"
    Image.fromarray(np.random.default_rng(1).integers(0, 256, (size, size, 3), dtype=np.uint8)).save(png)
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(b"not an image at all")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(paths[0].read_bytes()[: len(paths[0].read_bytes()) // 3])
    return [*paths, png, corrupt, truncated, folder / "missing.jpg"]


def encode(kind: str, paths: list[Path], image_size: int, device: str, **settings) -> tuple[torch.Tensor, torch.Tensor]:
    """Distributions [N, C] (float32, CPU) and statuses [N] of ``paths``."""
    cls, settings_cls, arguments = ENCODERS[kind]
    encoder = cls(settings_cls(**arguments, image_size=image_size, batch_size=16, seed=0, **settings), device=device)
    probs = torch.zeros(len(paths), encoder.num_classes)
    status = torch.full((len(paths),), -1, dtype=torch.long)
    for index, batch, batch_status in encoder.encode_files(paths):
        probs[index] = batch.float().cpu()
        status[index] = batch_status.long()
    return probs, status


def log_prob_correlations(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Per-row Pearson correlation of ``log a`` and ``log b`` (rows are distributions)."""
    la, lb = a.clamp_min(1e-12).log(), b.clamp_min(1e-12).log()
    la, lb = la - la.mean(1, keepdim=True), lb - lb.mean(1, keepdim=True)
    return (la * lb).sum(1) / (la.norm(dim=1) * lb.norm(dim=1)).clamp_min(1e-12)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--images", type=int, default=48, help="JPEG files (at least 2)")
    parser.add_argument("--image-size", type=int, default=64)
    parser.add_argument("--source-size", type=int, default=96, help="side of the files on disk")
    parser.add_argument("--amp", default="auto", choices=["auto", "bf16", "off"],
                        help="autocast on --device (auto: bf16 on CUDA, none on the CPU)")
    parser.add_argument("--min-correlation", type=float, default=0.995,
                        help="least median log-probability correlation with the CPU reference")
    parser.add_argument("--max-tv", type=float, default=0.05, help="largest total-variation distance allowed")
    parser.add_argument("--json", help="append the figures as one JSON line to this file")
    args = parser.parse_args()
    if args.images < 2:
        parser.error("--images must be at least 2 (the reference compares different images)")

    failed = False
    with tempfile.TemporaryDirectory() as tmp:
        paths = sample_files(Path(tmp), args.images, args.source_size)
        for kind in ENCODERS:
            reference, ref_status = encode(kind, paths, args.image_size, device="cpu", decode="worker", amp=False,
                                           num_workers=0)
            amp = {"auto": "auto", "bf16": True, "off": False}[args.amp]
            probs, status = encode(kind, paths, args.image_size, device=args.device, decode="device", amp=amp,
                                   num_workers=0)
            ok = ref_status == OK
            same = log_prob_correlations(probs[ok], reference[ok])
            others = log_prob_correlations(reference[ok], reference[ok].roll(1, dims=0))
            tv = 0.5 * (probs[ok] - reference[ok]).abs().sum(1)
            figures = {
                "encoder": kind, "device": str(torch.device(args.device)),
                "gpu": torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else None,
                "statuses_equal": bool(torch.equal(status, ref_status)),
                "ok_images": int(ok.sum()), "max_tv": float(tv.max()),
                "median_correlation": statistics.median(same.tolist()),
                "median_correlation_other_images": statistics.median(others.tolist()),
            }
            passed = (figures["statuses_equal"] and figures["max_tv"] <= args.max_tv
                      and figures["median_correlation"] >= args.min_correlation)
            failed |= not passed
            print(f"{kind:6s} {'PASS' if passed else 'FAIL'}: statuses equal {figures['statuses_equal']} "
                  f"({figures['ok_images']} images ok of {len(paths)}), max TV {figures['max_tv']:.4f}, "
                  f"log-prob correlation with the CPU {figures['median_correlation']:.4f} "
                  f"(different images: {figures['median_correlation_other_images']:.4f})")
            if args.json:
                with open(args.json, "a") as handle:
                    handle.write(json.dumps(figures) + "\n")
    raise SystemExit(1 if failed else 0)


if __name__ == "__main__":
    main()
