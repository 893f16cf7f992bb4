"""Training throughput: bamir's loop against a naive loop of the same model, in one run.

Ours: the Lightning loop, features held by the model, index batches from the data module.
Naive (as the published code does it): a per-example ``Dataset`` returning feature tensors,
``DataLoader`` default collate, a plain Python loop calling each encoder on the brand once and on
the positive and the negative separately. Same model (text + concept branches, published
widths), same loss, same optimizer, same batch size.

    python benchmarks/train_speed.py                      # planted store with the release's dims
    python benchmarks/train_speed.py --store data/stores/release --sampler release
    python benchmarks/train_speed.py --device cuda --threads 8 --batch-sizes 32,4096

Prints triplets per second (median of ``--repeats`` interleaved runs), their ratio, and the
projected wall time of the published protocol (100 epochs x 67,700 triplets).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, Dataset

from bamir.data.planted import make_planted_store
from bamir.datamodule import RankingDataModule
from bamir.models.bamir import BamirModel
from bamir.samplers import FixedTripletSampler, MixedSampler

BRANCHES = {
    "content": {"fusion": "product", "margin": 4.0, "encoders": {"topic": {"inputs": ["topic"], "hidden": [128, 512]}}},
    "concept": {"fusion": "product", "margin": 2.0, "encoders": {"concept": {"inputs": ["concept"], "hidden": [1024, 512]}}},
}
PUBLISHED_TRIPLETS = 100 * 67_700


class _Triplets(Dataset):
    """Per-example dataset: the feature tensors of one (brand, positive, negative)."""

    def __init__(self, rows, features):
        self.rows, self.features = rows, features

    def __len__(self):
        return len(self.rows)

    def __getitem__(self, i):
        b, p, n = self.rows[i].tolist()
        return tuple(self.features[m][r] for r in (b, p, n) for m in ("topic", "concept"))


def naive_loop(model: BamirModel, rows, features, batch_size: int, steps: int, device: str = "cpu") -> float:
    """Triplets per second of the per-example loop (each batch copied to ``device``, as published)."""
    loader = DataLoader(_Triplets(rows, features), batch_size=batch_size, shuffle=True)
    model = model.to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.002)
    enc_t, enc_c = model.encoders["content"]["topic"], model.encoders["concept"]["concept"]
    model.train()
    done, start = 0, time.perf_counter()
    for batch in loader:
        bt, bc, pt, pc, nt, nc = (x.to(device, non_blocking=True) for x in batch)
        brand_t, brand_c = enc_t(bt), enc_c(bc)  # the brand once per triplet, as the public code does
        s_t = [(brand_t * enc_t(x)).sum(-1) for x in (pt, nt)]
        s_c = [(brand_c * enc_c(x)).sum(-1) for x in (pc, nc)]
        loss = F.relu(4 - s_t[0] + s_t[1]).sum() + F.relu(2 - s_c[0] + s_c[1]).sum()
        loss = loss + F.softplus((s_t[1] + s_c[1]) - (s_t[0] + s_c[0])).sum()
        loss = loss + 0.001 * sum(p.abs().sum() for p in model.parameters())
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        done += len(bt)
        if done >= steps * batch_size:
            break
    if device != "cpu":
        torch.cuda.synchronize()
    return done / (time.perf_counter() - start)


def our_loop(datamodule: RankingDataModule, batch_size: int, steps: int, seed: int, device: str = "cpu") -> float:
    """Triplets per second of bamir's Lightning loop (setup excluded)."""
    datamodule.batch_size = batch_size
    model = BamirModel(datamodule.dims, BRANCHES, seed=seed,  # the optimizer of conf/model/bamir.yaml
                       optimizer=lambda params: torch.optim.Adam(params, lr=0.002, fused=True))
    model.attach_features(datamodule.features)
    trainer = L.Trainer(accelerator="gpu" if device == "cuda" else "cpu", devices=1, max_steps=steps, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0)
    timer = _StepTimer()
    trainer.callbacks.append(timer)
    trainer.fit(model, datamodule=datamodule)
    return timer.rate(batch_size)


WARMUP_STEPS = 10


class _StepTimer(L.Callback):
    """Times batches after the first few (warm-up) steps."""

    def __init__(self, warmup: int = WARMUP_STEPS):
        self.warmup, self.count, self.start = warmup, 0, None

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        if self.count == self.warmup:
            self.start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if pl_module.device.type == "cuda":  # time finished work, not queued kernels
            torch.cuda.synchronize()
        self.count += 1
        self.end = time.perf_counter()

    def rate(self, batch_size: int) -> float:
        return (self.count - self.warmup) * batch_size / (self.end - self.start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", help="feature store with topic and concept (default: a planted one)")
    parser.add_argument("--sampler", default="mixed", choices=["mixed", "release"])
    parser.add_argument("--batch-sizes", default="32,256")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    args = parser.parse_args()
    if args.steps <= WARMUP_STEPS:
        parser.error(f"--steps must exceed the {WARMUP_STEPS} warm-up steps that are not timed")
    torch.set_num_threads(args.threads)
    L.seed_everything(24, verbose=False)

    with tempfile.TemporaryDirectory() as tmp:  # the planted store, when none is given, is removed at the end
        store = args.store
        if store is None:
            store = Path(tmp) / "planted"
            make_planted_store(store, brands_per_category=24, influencers=3000, positives_per_brand=12, modalities={
                "topic": {"dim": 19, "share": 0.6, "noise": 0.6, "simplex": True},
                "concept": {"dim": 128, "share": 0.6, "noise": 0.6, "simplex": False}})
        measure(args, store)


def measure(args: argparse.Namespace, store: str | Path) -> None:
    """Print the table of ``args``'s batch sizes on ``store``."""
    sampler = FixedTripletSampler("release") if args.sampler == "release" else MixedSampler()
    datamodule = RankingDataModule(str(store), sampler=sampler, val_fraction=0.0, modalities=["topic", "concept"])
    datamodule.setup()
    rows = datamodule.train_dataloader().sampler.rows.rows
    features = datamodule.features

    where = torch.cuda.get_device_name() if args.device == "cuda" else f"{args.threads} CPU thread(s)"
    print(f"store {store}: {len(rows)} training rows; {where}; {args.steps} steps x {args.repeats}")
    print("| batch | ours (triplets/s) | naive (triplets/s) | ratio | published protocol, ours | naive |")
    print("|---|---|---|---|---|---|")
    for batch_size in (int(b) for b in args.batch_sizes.split(",")):
        ours, naive = [], []
        for _ in range(args.repeats):
            ours.append(our_loop(datamodule, batch_size, args.steps, seed=24, device=args.device))
            model = BamirModel(datamodule.dims, BRANCHES)
            naive.append(naive_loop(model, rows, features, batch_size, args.steps, device=args.device))
        o, n = statistics.median(ours), statistics.median(naive)
        print(f"| {batch_size} | {o:,.0f} | {n:,.0f} | {o / n:.2f}x | "
              f"{PUBLISHED_TRIPLETS / o / 60:.1f} min | {PUBLISHED_TRIPLETS / n / 60:.1f} min |", flush=True)


if __name__ == "__main__":
    main()
