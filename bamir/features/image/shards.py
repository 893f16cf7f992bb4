"""The image stages' Lightning predict loop over resumable shards: :class:`ImageShards` deals each
process its shards, :class:`ImagePredictor` encodes their images, :class:`ShardAccumulator` pools
them per account and writes a shard as soon as it is complete."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any, Sequence

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch.utils.data import DataLoader

from bamir.features.extraction import shards_of_rank
from bamir.utils import atomic_write_bytes, atomic_write_json, stable_hash
from bamir.features.image.decoding import CORRUPT, MISSING, OK, STATUS_REASON
from bamir.features.image.encoders import ImageEncoder
from bamir.features.image.pooling import Pool

log = logging.getLogger(__name__)

class ShardAccumulator:
    """Pools the per-image distributions of some shards and writes each shard once complete.

    Shard ``s`` holds account rows ``s * shard_size .. (s + 1) * shard_size - 1``; its file
    ``<shards_dir>/<s>.safetensors`` has the pooled ``features`` [shard_size, C], ``present``
    and its counts (images used, skipped by reason, accounts with a uniform vector) and the
    rank that wrote it.
    """

    def __init__(self, shards_dir: Path, shard_size: int, remaining: dict[int, int], classes: int,
                 pooling: str, threshold: float, device: torch.device, rank: int = 0, world_size: int = 1):
        self.shards_dir, self.size, self.classes = Path(shards_dir), int(shard_size), int(classes)
        self.pooling, self.threshold, self.device = pooling, float(threshold), device
        self.written_by = {"rank": int(rank), "world_size": int(world_size)}
        self.remaining = dict(remaining)
        self.pools: dict[int, Pool] = {}
        self.stats: dict[int, dict[Any, int]] = {}
        for s, count in self.remaining.items():
            if count == 0:  # no image in the whole shard: write it now
                self._close(s)

    def add(self, rows: torch.Tensor, probs: torch.Tensor, status: torch.Tensor) -> None:
        """Pool one batch: account ``rows`` [B], distributions ``probs`` [B, C], ``status`` [B]."""
        rows, status = rows.cpu(), status.cpu()
        shard_of = rows // self.size
        for s in shard_of.unique().tolist():
            mask = shard_of == s
            if s not in self.pools:
                self._open(s)
            ok = mask & (status == OK)
            if ok.any():
                self.pools[s].add(rows[ok] - s * self.size, probs[ok.to(probs.device)])
            st = self.stats[s]
            st["posts_with_image"] += int(mask.sum())
            st["images_ok"] += int(ok.sum())
            for code in (MISSING, CORRUPT):
                st[code] += int((mask & (status == code)).sum())
            self.remaining[s] -= int(mask.sum())
            if self.remaining[s] == 0:
                self._close(s)

    def _open(self, s: int) -> None:
        self.pools[s] = Pool(self.size, self.classes, self.pooling, self.threshold, self.device)
        self.stats[s] = {"posts_with_image": 0, "images_ok": 0, MISSING: 0, CORRUPT: 0}

    def _close(self, s: int) -> None:
        if s not in self.pools:  # a shard without images
            self._open(s)
        pool, st = self.pools.pop(s), self.stats.pop(s)
        features, present = pool.result()
        meta = {"counts": {"posts_with_image": st["posts_with_image"], "images_ok": st["images_ok"],
                           "accounts_uniform": pool.below_threshold()},
                "skipped": {STATUS_REASON[k]: st[k] for k in (MISSING, CORRUPT) if st[k]}, **self.written_by}
        write_shard(self.shards_dir / f"{s:05d}.safetensors", features, present, meta)


class ImageShards(LightningDataModule):
    """The images this process encodes: those of its unfinished shards.

    In ``setup`` global rank zero compares the shard plan (accounts, shard size, image
    list) with the one on disk and discards shards of another plan; after a barrier every
    rank takes its shards (:func:`bamir.features.extraction.shards_of_rank`) that have no
    file yet.
    """

    def __init__(self, encoder: ImageEncoder, rows: list[int], paths: list[Path], accounts: Sequence[str],
                 shard_size: int, shards_dir: Path):
        super().__init__()
        self.encoder, self.rows, self.paths = encoder, rows, paths
        self.shard_size, self.shards_dir = int(shard_size), Path(shards_dir)
        self.n_shards = max(1, -(-len(accounts) // self.shard_size))
        self.plan = {"accounts": stable_hash(list(accounts)), "shard_size": self.shard_size,
                     "shards": self.n_shards, "images": stable_hash([str(p) for p in paths])}
        self.todo: list[int] = []  # this process's unfinished shards ...
        self.remaining: dict[int, int] = {}  # ... their numbers of images ...
        self.todo_rows: list[int] = []  # ... and those images' account rows and paths
        self.todo_paths: list[Path] = []
        self.resumed = 0
        self.allow_zero_length_dataloader_with_multiple_devices = True  # a rank may have no shard left, or none

    def shard_file(self, s: int) -> Path:
        return self.shards_dir / f"{s:05d}.safetensors"

    def setup(self, stage: str) -> None:
        trainer = self.trainer
        if trainer.is_global_zero:
            check_plan(self.shards_dir, self.plan)
        trainer.strategy.barrier("image-shard-plan")
        done = {s for s in range(self.n_shards) if self.shard_file(s).is_file()}
        self.resumed = len(done)
        mine = shards_of_rank(self.n_shards, trainer.global_rank, trainer.world_size)
        self.todo = [s for s in mine if s not in done]
        self.remaining = {s: 0 for s in self.todo}
        keep = [i for i, r in enumerate(self.rows) if r // self.shard_size in self.remaining]
        self.todo_rows, self.todo_paths = [self.rows[i] for i in keep], [self.paths[i] for i in keep]
        for r in self.todo_rows:
            self.remaining[r // self.shard_size] += 1
        if done and trainer.is_global_zero:
            log.info("%s: resuming, %d of %d shards already done", self.shards_dir.parent.name, len(done), self.n_shards)

    def predict_dataloader(self) -> DataLoader:
        return self.encoder.loader(self.todo_paths, keys=self.todo_rows)

    def transfer_batch_to_device(self, batch: Any, device: torch.device, dataloader_idx: int) -> Any:
        return batch  # the encoder moves pixels itself; JPEG bytes stay on the CPU for decode_jpeg(device=cuda)


class ImagePredictor(LightningModule):
    """Per-image class distributions (``predict_step``), pooled into shard files as they come."""

    def __init__(self, encoder: ImageEncoder, pooling: str, threshold: float):
        super().__init__()
        self.encoder, self.pooling, self.threshold = encoder, pooling, float(threshold)
        self.accumulator: ShardAccumulator | None = None

    def setup(self, stage: str) -> None:
        self.encoder.to(self.trainer.strategy.root_device)
        self.encoder.prepare_model()
        shards: ImageShards = self.trainer.datamodule
        self.accumulator = ShardAccumulator(shards.shards_dir, shards.shard_size, shards.remaining, self.encoder.num_classes,
                                            self.pooling, self.threshold, self.encoder.device,
                                            self.trainer.global_rank, self.trainer.world_size)

    def predict_step(self, batch: Any, batch_idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        rows, data, status = batch
        return rows, self.encoder.encode_batch(data, status), status

    def on_predict_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self.accumulator.add(*outputs)




def check_plan(shards_dir: Path, plan: dict[str, Any]) -> None:
    """Keep the shards under ``shards_dir`` only if they were computed for ``plan``."""
    plan_file = shards_dir / "plan.json"
    if plan_file.is_file():
        try:
            same = json.loads(plan_file.read_text()) == plan
        except json.JSONDecodeError:
            same = False
        if same:
            return
        log.info("%s: shard plan changed, discarding old shards", shards_dir)
        shutil.rmtree(shards_dir)
    shards_dir.mkdir(parents=True, exist_ok=True)
    atomic_write_json(plan_file, plan)


def write_shard(path: Path, features: torch.Tensor, present: torch.Tensor, meta: dict[str, Any]) -> None:
    data = st_save({"features": features.contiguous(), "present": present.contiguous()},
                   metadata={"meta": json.dumps(meta, default=lambda o: str(o).lower())})
    atomic_write_bytes(path, data)


def read_shard(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        return handle.get_tensor("features"), handle.get_tensor("present"), meta
