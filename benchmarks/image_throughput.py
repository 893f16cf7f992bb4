"""Image-feature throughput: images/s end to end from JPEG files on disk, and model-only.

* **end to end**: :meth:`bamir.features.image.encoders.ImageEncoder.encode_files` over ``--images``
  JPEG files written to a temp folder (``--source-size`` px, ~photo-like content): file
  read, decode (DataLoader workers on CPU, ``decode_jpeg(device='cuda')`` on GPU), resize,
  normalise, model, softmax / class areas. The first batch is a warm-up and not timed.
* **model only**: the same encoder's ``run_model`` on uint8 batches already on the device
  (normalise + model + softmax), the limit the end-to-end figure is compared with.

Runs on whatever device is available (``--device``). Examples::

    python benchmarks/image_throughput.py                                   # resnet101 @224 (paper object)
    python benchmarks/image_throughput.py --model resnet18 --image-size 64  # the small preset
    python benchmarks/image_throughput.py --scene --backbone resnet50 --image-size 256   # paper scene
    python benchmarks/image_throughput.py --scene --backbone resnet18 --decoder-hidden 64 --image-size 32
    python benchmarks/image_throughput.py --batch-size 256 --images 20000 --workers 15   # on a GPU
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from bamir.features.image.encoders import ObjectEncoder, SceneEncoder
from bamir.features.settings import ObjectSettings, SceneSettings


def write_jpegs(folder: Path, count: int, size: int, seed: int = 0) -> list[Path]:
    """``count`` JPEG files of ``size`` x ``size`` px (smooth gradients + noise: photo-like file sizes)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:size, 0:size] / size
    paths = []
    distinct = min(count, 64)
    blobs = []
    for k in range(distinct):
        a, b = rng.integers(0, 256, size=(2, 3))
        img = a[None, None] * (1 - xs[..., None]) + b[None, None] * ys[..., None] + rng.normal(0, 12, (size, size, 3))
        buf = io.BytesIO()
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(buf, format="JPEG", quality=90)
        blobs.append(buf.getvalue())
    for k in range(count):
        path = folder / f"{k:06d}.jpg"
        path.write_bytes(blobs[k % distinct])
        paths.append(path)
    return paths


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="resnet101", help="timm model name (object encoder)")
    parser.add_argument("--scene", action="store_true", help="benchmark the UperNet scene encoder instead")
    parser.add_argument("--backbone", default="resnet50", help="UperNet backbone (with --scene)")
    parser.add_argument("--decoder-hidden", type=int, default=512, help="UperNet decode-head width (with --scene)")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--source-size", type=int, default=320, help="side of the JPEG files on disk")
    parser.add_argument("--images", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--workers", default="auto")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--decode", default="auto", choices=["auto", "worker", "device"])
    parser.add_argument("--compile", action="store_true")
    parser.add_argument("--model-batches", type=int, default=5, help="timed batches for the model-only figure")
    parser.add_argument("--json", help="append the result as one JSON line to this file")
    args = parser.parse_args()

    workers = args.workers if args.workers == "auto" else int(args.workers)
    common = dict(image_size=args.image_size, batch_size=args.batch_size, num_workers=workers, decode=args.decode,
                  compile=args.compile)
    if args.scene:
        encoder = SceneEncoder(SceneSettings(backbone=args.backbone, decoder_hidden_size=args.decoder_hidden, **common),
                               device=args.device)
        label = f"UperNet-{args.backbone}/{args.decoder_hidden} (365 classes, areas at 1/4 res)"
    else:
        encoder = ObjectEncoder(ObjectSettings(model=args.model, **common), device=args.device)
        label = args.model
    encoder.prepare_model()
    device = encoder.device
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else f"cpu ({torch.get_num_threads()} threads)"
    print(f"{label} @ {args.image_size}px, batch {args.batch_size}, device {name}, decode in {encoder.decode}, "
          f"{encoder.num_workers} workers, amp {encoder.amp_dtype}, channels_last {encoder.channels_last}")

    # model only
    x = torch.randint(0, 256, (args.batch_size, 3, args.image_size, args.image_size), dtype=torch.uint8, device=device)
    encoder.run_model(x)
    sync(device)
    t = time.perf_counter()
    for _ in range(args.model_batches):
        encoder.run_model(x)
    sync(device)
    model_only = args.model_batches * args.batch_size / (time.perf_counter() - t)

    # end to end from files
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_jpegs(Path(tmp), args.images + args.batch_size, args.source_size)
        seen = 0
        start = None
        for index, probs, status in encoder.encode_files(paths):
            if start is None:  # first batch: warm-up (worker start, cudnn autotune)
                sync(device)
                start = time.perf_counter()
                continue
            seen += len(index)
        sync(device)
        end_to_end = seen / (time.perf_counter() - start)
        assert int((status != 0).sum()) == 0

    print(f"model only : {model_only:9.1f} images/s")
    print(f"end to end : {end_to_end:9.1f} images/s  ({100 * end_to_end / model_only:.0f}% of model only; "
          f"{seen} files of {args.source_size}px)")
    if args.json:
        with open(args.json, "a") as handle:
            handle.write(json.dumps({"model": label, "image_size": args.image_size, "batch": args.batch_size,
                                     "device": name, "decode": encoder.decode, "workers": encoder.num_workers,
                                     "model_only": model_only, "end_to_end": end_to_end}) + "\n")


if __name__ == "__main__":
    main()
