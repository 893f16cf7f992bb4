"""The image stages, ``object`` and ``scene``: encode every image of every account on the extraction
Trainer's devices and nodes, pool per account, merge the shards on global rank zero."""

from __future__ import annotations

import logging
import os
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any, Sequence

import torch

from bamir.data.schema import RawDataset
from bamir.features.base import StageOutput
from bamir.features.extraction import device_trainer, extraction_trainer
from bamir.utils import stable_hash
from bamir.features.image.encoders import ImageEncoder, ObjectEncoder, SceneEncoder
from bamir.features.settings import ImageSettings, ObjectSettings, SceneSettings
from bamir.features.image.shards import ImagePredictor, ImageShards, read_shard

log = logging.getLogger(__name__)


def _image_index(raw: RawDataset, accounts: Sequence[str]) -> tuple[list[int], list[Path], int]:
    """(account row, absolute path) of every post with an image, in account-row order, and
    the number of posts without an image."""
    import pandas as pd

    from bamir.data.validate import ImagePaths

    paths = ImagePaths(raw.root)
    row_of = {a: i for i, a in enumerate(accounts)}
    image = raw.posts["image"].fillna("").astype(str).map(lambda value: value if value and paths.file(value) else "")
    row = raw.posts["account_id"].map(row_of)
    has = (image != "") & row.notna()
    frame = pd.DataFrame({"row": row[has].astype(int), "image": image[has]}).sort_values("row", kind="stable")
    return frame["row"].tolist(), [raw.root / p for p in frame["image"]], int((image == "").sum())




class ImageStage:
    """Shared stage logic for :class:`ObjectStage` and :class:`SceneStage`: sharded, resumable,
    distributed over every device and node of the extraction Trainer (``bamir.features.extraction``).

    Keyword arguments are the subclass's settings (:class:`~bamir.features.settings.ObjectSettings`,
    :class:`~bamir.features.settings.SceneSettings`). Only those that change the numbers (their
    ``result()``, pooling and threshold) enter :meth:`config` and so the staleness hash; batch
    size, workers, decoding place and autocast do not, nor the devices (the extraction Trainer's).
    """

    modalities: tuple[str, ...] = ()
    fitted = False  # nothing fitted: the split does not change the result
    distributed = True  # runs as a predict loop on every rank of the extraction Trainer
    encoder_cls: type[ImageEncoder] = ImageEncoder
    settings_cls: type[ImageSettings] = ImageSettings

    def __init__(self, progress: bool = True, **settings: Any):
        self.settings = self.settings_cls(**settings)
        self.progress = progress
        self._encoder: ImageEncoder | None = None

    @property
    def encoder(self) -> ImageEncoder:
        if self._encoder is None:
            self._encoder = self.encoder_cls(self.settings)
        return self._encoder

    def config(self) -> dict[str, Any]:
        s = self.settings
        return {"stage": self.modalities[0], "version": 1, "pooling": s.pooling, "threshold": s.threshold, **s.result()}

    def inputs_hash(self, raw: RawDataset) -> str:
        """Hash of the post -> image table and each image file's size and mtime (not its bytes)."""
        from bamir.data.validate import ImagePaths

        posts, paths = raw.posts, ImagePaths(raw.root)
        entries = []
        for account, image in zip(posts["account_id"].tolist(), posts["image"].fillna("").astype(str).tolist()):
            if not image:
                continue
            unsafe, file = paths.check(image)
            if unsafe:
                continue
            try:
                st = os.stat(file)
                entries.append((account, image, st.st_size, st.st_mtime_ns))
            except OSError:
                entries.append((account, image, -1, -1))
        return stable_hash(entries)

    def weights_note(self) -> str:
        """The plain-words statement of where the model's weights came from."""
        s = self.settings
        what = getattr(s, "model", None) or f"UperNet ({getattr(s, 'backbone', None)} backbone)"
        if not s.weights:
            return (f"{self.modalities[0]}: {what} with RANDOM-INITIALISED weights (no local checkpoint configured, "
                    f"weights: null); these features carry no pretrained semantics")
        return f"{self.modalities[0]}: {what} with weights from {s.weights}"

    # ------------------------------------------------------------------ run
    @classmethod
    def encode_new(cls, store, raw: RawDataset, accounts: list[str], workdir: Path, config: dict[str, Any],
                   device: str = "cpu") -> StageOutput:
        """The stage with the store's recorded settings on ``device`` (nothing fitted: same model, same seed)."""
        settings = {k: v for k, v in config.items() if k not in ("stage", "version")}
        stage = cls(**settings, num_workers=0, progress=False)
        with tempfile.TemporaryDirectory(prefix=f"bamir-coldstart-{stage.modalities[0]}-") as tmp:
            return stage.run(raw, list(accounts), set(), Path(tmp), trainer=device_trainer(device))[stage.modalities[0]]

    def run(self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path,
            trainer: Any = None) -> dict[str, StageOutput] | None:
        """Encode every image on the ranks of ``trainer`` (default: one local device) and pool
        per account; returns the modality on global rank zero and None on the other ranks."""
        name = self.modalities[0]
        start = time.perf_counter()
        rows, paths, no_image = _image_index(raw, accounts)
        shards = ImageShards(self.encoder, rows, paths, accounts, self.settings.shard_size, Path(workdir) / "shards")
        note = self.weights_note()
        if not self.settings.weights:
            log.warning(note)
        trainer = trainer if trainer is not None else extraction_trainer(progress=self.progress)
        with warnings.catch_warnings():  # every shard finished already: an empty loader is expected
            warnings.filterwarnings("ignore", message=".*length of `DataLoader`.*zero.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning's pytree use, newer torch
            trainer.predict(ImagePredictor(self.encoder, self.settings.pooling, self.settings.threshold), datamodule=shards,
                            return_predictions=False)
        trainer.strategy.barrier(f"{name}-shards-written")
        if not trainer.is_global_zero:
            return None
        missing = [s for s in range(shards.n_shards) if not shards.shard_file(s).is_file()]
        if missing:
            raise RuntimeError(f"{name}: shards {missing[:10]}{'...' if len(missing) > 10 else ''} of {shards.n_shards} "
                               f"were not written under {shards.shards_dir} (a rank failed); rerun to compute them")
        return {name: self._merge(shards, len(accounts), no_image, note, start)}

    def _merge(self, shards: ImageShards, n: int, no_image: int, note: str, start: float) -> StageOutput:
        name = self.modalities[0]
        features, present, counts, skipped = [], [], {"posts_with_image": 0, "images_ok": 0}, {}
        for s in range(shards.n_shards):
            f, p, meta = read_shard(shards.shard_file(s))
            features.append(f)
            present.append(p)
            for k, v in meta.get("counts", {}).items():
                counts[k] = counts.get(k, 0) + int(v)
            for k, v in meta.get("skipped", {}).items():
                skipped[k] = skipped.get(k, 0) + int(v)
        features_t = torch.cat(features)[:n]
        present_t = torch.cat(present)[:n]
        counts.update(accounts=n, accounts_present=int(present_t.sum()), posts_without_image=no_image,
                      shards=shards.n_shards, shards_resumed=shards.resumed)
        uniform = counts.get("accounts_uniform", 0)
        if uniform:
            text = (f"{uniform} of {counts['accounts_present']} accounts had no class above the threshold "
                    f"{self.settings.threshold} in any image: published pooling gives them all the same uniform vector")
            log.warning("%s: %s", name, text)
            note = f"{note}; {text}"
        log.info("%s: %d accounts, %d/%d images used, skipped %s (%.1fs)", name, n, counts["images_ok"],
                 counts["posts_with_image"], skipped or "nothing", time.perf_counter() - start)
        return StageOutput(features_t, present_t, counts=counts, skipped=skipped, note=note)




class ObjectStage(ImageStage):
    """The ``object`` modality: timm classifier probabilities pooled per account
    (settings: :class:`~bamir.features.settings.ObjectSettings`)."""

    modalities = ("object",)
    encoder_cls = ObjectEncoder
    settings_cls = ObjectSettings


class SceneStage(ImageStage):
    """The ``scene`` modality: UperNet class areas pooled per account
    (settings: :class:`~bamir.features.settings.SceneSettings`)."""

    modalities = ("scene",)
    encoder_cls = SceneEncoder
    settings_cls = SceneSettings
