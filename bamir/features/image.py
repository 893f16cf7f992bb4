"""Image modalities: ``object`` (classifier probabilities) and ``scene`` (scene-parsing areas).

Per post, an image model gives a class distribution ``p_post`` [C]; per account the posts
are pooled (docs/method.md section 6)::

    published:  v_a = softmax( sum_posts  p_post * [p_post > threshold] )     (threshold 0.1)
    mean:       v_a = mean_posts p_post
    max:        v_a = max_posts  p_post  (element-wise)

* **object** (:class:`ObjectStage`): any timm classifier by name (default ``resnet101``,
  1,000 ImageNet classes); ``p_post = softmax(logits)``.
* **scene** (:class:`SceneStage`): a UperNet scene parser from ``transformers``
  (``UperNetForSemanticSegmentation``, ResNet-50 backbone by default, 365 classes as in the
  published Places scene head). ``p_post`` is the image's class-area distribution, computed
  at the decode head's own resolution (1/4 of the input) **before any upsampling**: the
  mean over decoder pixels of the per-pixel softmax (``area: soft``) or the share of
  pixels whose arg-max is each class (``area: hard``). The published UPerNet also had an
  image-level scene head that ``transformers`` does not implement; area pooling is the
  stand-in.

Weights come from a local file or folder named in config (``weights``): a timm checkpoint
file for object, a ``save_pretrained`` folder for scene. With ``weights: null`` a
random-initialised model is used (nothing is ever downloaded) and both the run log and
the manifest note say so in plain words.

Throughput: batched inference under ``torch.inference_mode``; files are read (and on CPU
decoded and resized) in DataLoader worker processes; on CUDA the JPEG bytes are decoded
on the GPU (``torchvision.io.decode_jpeg(device="cuda")``) and resized there, the model
runs under bf16 autocast; channels-last memory format everywhere (also on CPU, where
oneDNN convolutions are several times faster in it). Missing or undecodable images are skipped and
counted (``skipped`` in the manifest), never fatal; an account with no usable image has
``present = False`` and a zero row.

The stages run as Lightning predict loops (:class:`ImageShards` picks a process's images,
:class:`ImagePredictor` encodes them, :class:`ShardAccumulator` pools them): one shard per
``shard_size`` accounts is written under the work folder as soon as it is complete, shards
are spread over every device and node of the extraction Trainer
(:mod:`bamir.features.extraction`), global rank zero merges them, and a rerun after a kill
resumes from the finished shards.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
from pathlib import Path
from typing import Any, Iterator, Sequence

import torch
from lightning.pytorch import LightningDataModule, LightningModule
from safetensors import safe_open
from safetensors.torch import save as st_save
from torch.utils.data import DataLoader, Dataset
from torchvision.io import ImageReadMode, decode_image, decode_jpeg
from torchvision.transforms.v2 import functional as TF

from bamir.data.schema import RawDataset
from bamir.features.base import StageOutput
from bamir.features.common import resolve_device, resolve_workers
from bamir.features.extraction import extraction_trainer, shards_of_rank
from bamir.utils import atomic_write_bytes, atomic_write_json, stable_hash

log = logging.getLogger(__name__)

OK, MISSING, CORRUPT = 0, 1, 2
STATUS_REASON = {MISSING: "missing_file", CORRUPT: "corrupt_image"}
POOLINGS = ("published", "mean", "max")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


# --------------------------------------------------------------------------- decoding
def _is_jpeg(data: torch.Tensor) -> bool:
    return data.numel() > 3 and int(data[0]) == 0xFF and int(data[1]) == 0xD8


def resize_crop(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize the shorter side to ``size`` (antialiased) and centre-crop to ``size`` x ``size``."""
    if image.shape[-2:] != (size, size):
        image = TF.resize(image, [size], antialias=True)
        image = TF.center_crop(image, [size, size])
    return image


def decode_bytes(data: torch.Tensor) -> torch.Tensor:
    """Decode encoded image bytes to uint8 RGB [3, H, W] on the CPU (torchvision, then PIL)."""
    try:
        image = decode_image(data, mode=ImageReadMode.RGB)
    except Exception:
        import io

        import numpy as np
        from PIL import Image

        with Image.open(io.BytesIO(data.numpy().tobytes())) as pil:
            array = np.asarray(pil.convert("RGB"))
        image = torch.from_numpy(array.copy()).permute(2, 0, 1)
    if image.ndim != 3 or image.shape[0] != 3 or min(image.shape[1:]) < 1:
        raise ValueError(f"unexpected decoded shape {tuple(image.shape)}")
    return image


class ImageFiles(Dataset):
    """Image files read in worker processes.

    ``decode=True``: items are ``(key, uint8 [3, size, size], status)``, decoded and
    resized in the worker. ``decode=False``: items are ``(key, uint8 bytes, status)`` for
    decoding on the model's device. ``key`` is ``keys[i]`` (e.g. the account row) or ``i``.
    """

    def __init__(self, paths: Sequence[Path], size: int, decode: bool, keys: Sequence[int] | None = None):
        self.paths = list(paths)
        self.keys = list(keys) if keys is not None else None
        self.size = size
        self.decode = decode

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        key = index if self.keys is None else self.keys[index]
        try:
            data = torch.frombuffer(bytearray(Path(path).read_bytes()), dtype=torch.uint8)
        except OSError:
            return key, self._blank(), MISSING
        if data.numel() == 0:
            return key, self._blank(), CORRUPT
        if not self.decode:
            return key, data, OK
        try:
            return key, resize_crop(decode_bytes(data), self.size).contiguous(), OK
        except Exception:
            return key, self._blank(), CORRUPT

    def _blank(self) -> torch.Tensor:
        return torch.zeros((3, self.size, self.size), dtype=torch.uint8) if self.decode else torch.zeros(0, dtype=torch.uint8)


def _worker_init(_: int) -> None:
    torch.set_num_threads(1)  # one decode/resize per worker process; the workers are the parallelism


def _collate(items):
    index = torch.tensor([i for i, _, _ in items], dtype=torch.long)
    status = torch.tensor([s for _, _, s in items], dtype=torch.long)
    data = [d for _, d, _ in items]
    if items and items[0][1].ndim == 3:
        data = torch.stack(data)
    return index, data, status


# --------------------------------------------------------------------------- encoders
class ImageEncoder:
    """A model + preprocessing that maps image files to per-image class distributions.

    Subclasses build ``self.model`` and implement :meth:`distributions`.
    """

    #: short name used in notes and logs
    kind = "image"

    def __init__(
        self,
        *,
        image_size: int,
        batch_size: int = 64,
        num_workers: int | str = "auto",
        device: str | None = "auto",
        decode: str = "auto",
        amp: str | bool = "auto",
        channels_last: str | bool = True,
        compile: bool = False,
        mean: Sequence[float] = IMAGENET_MEAN,
        std: Sequence[float] = IMAGENET_STD,
    ):
        self.image_size = int(image_size)
        self.batch_size = int(batch_size)
        self.num_workers = resolve_workers(num_workers)
        if decode not in ("auto", "worker", "device"):
            raise ValueError(f"decode must be 'auto', 'worker' or 'device', got {decode!r}")
        self._decode, self._amp = decode, amp
        self.device = resolve_device(device)
        self._resolve_for_device()
        # channels-last pays on CPUs too (oneDNN): ResNet-18 @64 px ran 5.8x and ResNet-101 @224 px
        # 4.4x faster here than contiguous NCHW; "auto" is kept as a synonym of True
        self.channels_last = channels_last in (True, "auto")
        self.compile = bool(compile)
        self.mean = torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1)
        self.std = torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1)
        self.model: torch.nn.Module | None = None
        self.random_weights = True

    # subclasses --------------------------------------------------------------
    def build(self) -> torch.nn.Module:  # pragma: no cover - abstract
        raise NotImplementedError

    def distributions(self, pixels: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        """[B, 3, S, S] normalised pixels -> [B, C] float32 class distributions."""
        raise NotImplementedError

    @property
    def num_classes(self) -> int:  # pragma: no cover - abstract
        raise NotImplementedError

    # shared ------------------------------------------------------------------
    def _resolve_for_device(self) -> None:
        """Decoding place and autocast for ``self.device`` ("auto": on the GPU, bf16 there)."""
        cuda = self.device.type == "cuda"
        self.decode = ("device" if cuda else "worker") if self._decode == "auto" else self._decode
        self.amp_dtype = torch.bfloat16 if (self._amp is True or (self._amp == "auto" and cuda)) else None

    def to(self, device: torch.device | str) -> "ImageEncoder":
        """Move the encoder (and its model, if built) to ``device``; "auto" settings follow it."""
        self.device = torch.device(device)
        self._resolve_for_device()
        if self.model is not None:
            self.model = self.model.to(self.device)
        self.mean, self.std = self.mean.to(self.device), self.std.to(self.device)
        return self

    def prepare_model(self) -> None:
        if self.model is not None:
            return
        model = self.build().eval().to(self.device)
        if self.channels_last:
            model = model.to(memory_format=torch.channels_last)
        if self.compile:
            model = torch.compile(model)
        self.model = model
        self.mean = self.mean.to(self.device)
        self.std = self.std.to(self.device)

    def normalise(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, 3, S, S] (any device) -> normalised float on the model's device."""
        x = images.to(self.device, non_blocking=True).float().div_(255.0)
        x = x.sub_(self.mean).div_(self.std)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    @torch.inference_mode()
    def run_model(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 images [B, 3, S, S] -> class distributions [B, C] float32 on the device."""
        self.prepare_model()
        x = self.normalise(images)
        if self.amp_dtype is not None:
            with torch.autocast(self.device.type, dtype=self.amp_dtype):
                return self.distributions(x).float()
        return self.distributions(x).float()

    def _decode_on_device(self, data: list[torch.Tensor], status: torch.Tensor) -> torch.Tensor:
        """Decode a batch of encoded images on the model's device (JPEG batched, others on CPU)."""
        size = self.image_size
        out = torch.zeros((len(data), 3, size, size), dtype=torch.uint8, device=self.device)
        jpeg = [i for i, d in enumerate(data) if status[i] == OK and _is_jpeg(d)]
        decoded: dict[int, torch.Tensor] = {}
        if jpeg:
            try:
                images = decode_jpeg([data[i] for i in jpeg], mode=ImageReadMode.RGB, device=self.device)
                decoded.update(zip(jpeg, images))
            except Exception:  # one bad file fails the batch call: isolate it
                for i in jpeg:
                    try:
                        decoded[i] = decode_jpeg(data[i], mode=ImageReadMode.RGB, device=self.device)
                    except Exception:
                        pass
        by_shape: dict[tuple[int, ...], list[int]] = {}
        for i, d in enumerate(data):
            if status[i] != OK:
                continue
            try:
                image = decoded.get(i)
                if image is None:  # not a JPEG, or the device decoder refused it
                    image = decoded[i] = decode_bytes(d).to(self.device)
                if image.ndim != 3 or image.shape[0] != 3:
                    raise ValueError("not an RGB image")
                by_shape.setdefault(tuple(image.shape), []).append(i)
            except Exception:
                status[i] = CORRUPT
        for rows in by_shape.values():  # one batched resize per source size
            out[rows] = resize_crop(torch.stack([decoded[i] for i in rows]), size)
        return out

    def loader(self, paths: Sequence[Path], keys: Sequence[int] | None = None) -> DataLoader:
        """Batches ``(keys [B], images or bytes, status [B])`` of ``paths`` (see :class:`ImageFiles`)."""
        workers = self.num_workers
        return DataLoader(
            ImageFiles(paths, self.image_size, decode=self.decode == "worker", keys=keys),
            batch_size=self.batch_size,
            shuffle=False,
            num_workers=workers,
            collate_fn=_collate,
            worker_init_fn=_worker_init if workers else None,
            pin_memory=self.device.type == "cuda" and self.decode == "worker",
            persistent_workers=False,
            prefetch_factor=4 if workers else None,
        )

    def encode_files(self, paths: Sequence[Path]) -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        """Yield ``(indices, distributions [B, C] on device, status [B])`` batch by batch.

        Rows whose status is not OK (missing or corrupt file) hold zeros.
        """
        self.prepare_model()
        for index, data, status in self.loader(paths):
            yield index, self.encode_batch(data, status), status

    def encode_batch(self, data: torch.Tensor | list[torch.Tensor], status: torch.Tensor) -> torch.Tensor:
        """One loader batch -> distributions [B, C] on the device (zeros where status is not OK).

        ``status`` is updated in place for images the device decoder finds corrupt.
        """
        images = self._decode_on_device(data, status) if self.decode == "device" else data
        probs = self.run_model(images)
        bad = (status != OK).to(probs.device)
        if bad.any():
            probs = probs.masked_fill(bad.unsqueeze(1), 0.0)
        return probs


class ObjectEncoder(ImageEncoder):
    """timm classifier; per-image distribution = softmax over its classes."""

    kind = "object"

    def __init__(self, model: str = "resnet101", weights: str | None = None, num_classes: int | None = None,
                 seed: int = 0, **kwargs: Any):
        import timm

        self.model_name = model
        self.weights = weights
        self.seed = seed
        self._num_classes = num_classes
        # Resolve the preprocessing (mean/std) from the model's pretrained config, no weights loaded.
        cfg = timm.models.get_pretrained_cfg(model) if hasattr(timm.models, "get_pretrained_cfg") else None
        cfg = cfg.to_dict() if cfg is not None and hasattr(cfg, "to_dict") else {}
        kwargs.setdefault("mean", tuple(cfg.get("mean", IMAGENET_MEAN)))
        kwargs.setdefault("std", tuple(cfg.get("std", IMAGENET_STD)))
        super().__init__(**kwargs)

    def build(self) -> torch.nn.Module:
        import timm

        extra = {} if self._num_classes is None else {"num_classes": self._num_classes}
        if self.weights:
            path = Path(self.weights).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"object: weights file {path} does not exist")
            model = timm.create_model(self.model_name, pretrained=True, pretrained_cfg_overlay={"file": str(path)}, **extra)
            self.random_weights = False
        else:
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = timm.create_model(self.model_name, pretrained=False, **extra)
            self.random_weights = True
        self._num_classes = int(model.num_classes)
        return model

    @property
    def num_classes(self) -> int:
        self.prepare_model()
        return int(self._num_classes)

    def distributions(self, pixels: torch.Tensor) -> torch.Tensor:
        return self.model(pixels).float().softmax(dim=1)


#: UperNet backbones by name: (transformers config class name, its kwargs)
SCENE_BACKBONES: dict[str, tuple[str, dict[str, Any]]] = {
    "resnet50": ("ResNetConfig", {"depths": [3, 4, 6, 3], "hidden_sizes": [256, 512, 1024, 2048], "layer_type": "bottleneck"}),
    "resnet101": ("ResNetConfig", {"depths": [3, 4, 23, 3], "hidden_sizes": [256, 512, 1024, 2048], "layer_type": "bottleneck"}),
    "resnet18": ("ResNetConfig", {"depths": [2, 2, 2, 2], "hidden_sizes": [64, 128, 256, 512], "layer_type": "basic"}),
    "convnext-tiny": ("ConvNextConfig", {"depths": [3, 3, 9, 3], "hidden_sizes": [96, 192, 384, 768]}),
    "convnext-small": ("ConvNextConfig", {"depths": [3, 3, 27, 3], "hidden_sizes": [96, 192, 384, 768]}),
}


class SceneEncoder(ImageEncoder):
    """UperNet scene parser; per-image distribution = class areas at the decoder's resolution."""

    kind = "scene"

    def __init__(self, backbone: str = "resnet50", backbone_overrides: dict[str, Any] | None = None,
                 num_labels: int = 365, decoder_hidden_size: int = 512, weights: str | None = None,
                 area: str = "soft", seed: int = 0, **kwargs: Any):
        if area not in ("soft", "hard"):
            raise ValueError(f"scene area must be 'soft' or 'hard', got {area!r}")
        if backbone not in SCENE_BACKBONES:
            raise ValueError(f"scene backbone {backbone!r} unknown; choose one of {sorted(SCENE_BACKBONES)}")
        self.backbone = backbone
        self.backbone_overrides = dict(backbone_overrides or {})
        self.num_labels = int(num_labels)
        self.decoder_hidden_size = int(decoder_hidden_size)
        self.weights = weights
        self.area = area
        self.seed = seed
        super().__init__(**kwargs)

    def build(self) -> torch.nn.Module:
        import transformers
        from transformers import UperNetConfig, UperNetForSemanticSegmentation

        if self.weights:
            path = Path(self.weights).expanduser()
            if not path.exists():
                raise FileNotFoundError(f"scene: weights folder {path} does not exist")
            model = UperNetForSemanticSegmentation.from_pretrained(str(path), local_files_only=True, use_auxiliary_head=False)
            self.random_weights = False
        else:
            config_cls, base = SCENE_BACKBONES[self.backbone]
            backbone_cfg = getattr(transformers, config_cls)(
                **{**base, **self.backbone_overrides}, out_features=["stage1", "stage2", "stage3", "stage4"]
            )
            config = UperNetConfig(backbone_config=backbone_cfg, num_labels=self.num_labels,
                                   hidden_size=self.decoder_hidden_size, use_auxiliary_head=False)
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(self.seed)
                model = UperNetForSemanticSegmentation(config)
            self.random_weights = True
        self.num_labels = int(model.config.num_labels)
        return model

    @property
    def num_classes(self) -> int:
        self.prepare_model()
        return self.num_labels

    def decoder_logits(self, pixels: torch.Tensor) -> torch.Tensor:
        """Logits [B, C, h, w] at the decode head's own resolution (no upsampling)."""
        model = self.model
        features = model.backbone(pixels).feature_maps
        return model.decode_head(features)

    def distributions(self, pixels: torch.Tensor) -> torch.Tensor:
        logits = self.decoder_logits(pixels).float()
        if self.area == "soft":
            return logits.softmax(dim=1).mean(dim=(2, 3))
        b, c = logits.shape[:2]
        labels = logits.argmax(dim=1).flatten(1)
        counts = torch.zeros((b, c), device=logits.device).scatter_add_(1, labels, torch.ones_like(labels, dtype=torch.float32))
        return counts / labels.shape[1]


# --------------------------------------------------------------------------- pooling
class Pool:
    """Per-account pooling of per-post distributions (see the module docstring)."""

    def __init__(self, rows: int, classes: int, how: str, threshold: float, device: torch.device):
        if how not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {how!r}")
        self.how = how
        self.threshold = float(threshold)
        self.acc = torch.zeros((rows, classes), dtype=torch.float32, device=device)
        self.count = torch.zeros(rows, dtype=torch.long, device=device)

    def add(self, rows: torch.Tensor, probs: torch.Tensor) -> None:
        rows = rows.to(self.acc.device)
        if self.how == "published":
            self.acc.index_add_(0, rows, probs * (probs > self.threshold))
        elif self.how == "mean":
            self.acc.index_add_(0, rows, probs)
        else:
            self.acc.scatter_reduce_(0, rows.unsqueeze(1).expand_as(probs), probs, "amax", include_self=True)
        self.count.index_add_(0, rows, torch.ones_like(rows))

    def below_threshold(self) -> int:
        """Accounts with images none of whose classes passed the threshold (published pooling:
        their vector is the uniform softmax of zeros, the same for all of them)."""
        if self.how != "published":
            return 0
        return int(((self.count > 0) & (self.acc.amax(dim=1) <= 0)).sum())

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        present = self.count > 0
        out = self.acc.clone()
        if self.how == "published":
            out = torch.softmax(out, dim=1)
        elif self.how == "mean":
            out = out / self.count.clamp(min=1).unsqueeze(1)
        out[~present] = 0.0
        return out.cpu(), present.cpu()


# --------------------------------------------------------------------------- stage
def _inside(root: Path, value: str) -> str:
    """``value`` when it names a file inside the dataset folder, else "" (never opened: no image)."""
    from bamir.data.validate import image_file

    return value if value and image_file(root, value) is not None else ""


def _image_index(raw: RawDataset, accounts: Sequence[str]) -> tuple[list[int], list[Path], int]:
    """(account row, absolute path) of every post with an image, in account-row order, and
    the number of posts without an image."""
    import pandas as pd

    row_of = {a: i for i, a in enumerate(accounts)}
    image = raw.posts["image"].fillna("").astype(str).map(lambda value: _inside(raw.root, value))
    row = raw.posts["account_id"].map(row_of)
    has = (image != "") & row.notna()
    frame = pd.DataFrame({"row": row[has].astype(int), "image": image[has]}).sort_values("row", kind="stable")
    return frame["row"].tolist(), [raw.root / p for p in frame["image"]], int((image == "").sum())


# --------------------------------------------------------------------------- predict loop over shards
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
        _write_shard(self.shards_dir / f"{s:05d}.safetensors", features, present, meta)


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
            _check_plan(self.shards_dir, self.plan)
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


# --------------------------------------------------------------------------- stage
class ImageStage:
    """Shared stage logic for :class:`ObjectStage` and :class:`SceneStage`: sharded, resumable,
    distributed over every device and node of the extraction Trainer (``bamir.features.extraction``).

    Keyword arguments other than ``pooling``, ``threshold``, ``shard_size`` and
    ``progress`` go to the encoder. Only settings that change the numbers (``_result_defaults``
    of the subclass, plus pooling and threshold) enter :meth:`config` and so the staleness
    hash; batch size, workers, devices, decoding place and autocast do not.
    """

    modalities: tuple[str, ...] = ()
    fitted = False  # nothing fitted: the split does not change the result
    distributed = True  # runs as a predict loop on every rank of the extraction Trainer
    encoder_cls: type[ImageEncoder] = ImageEncoder
    _result_defaults: dict[str, Any] = {}

    def __init__(self, *, pooling: str = "published", threshold: float = 0.1, shard_size: int = 256,
                 progress: bool = True, **encoder: Any):
        if pooling not in POOLINGS:
            raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
        self.pooling = pooling
        self.threshold = float(threshold)
        self.shard_size = int(shard_size)
        self.progress = progress
        self.encoder_args = {**self._result_defaults, **encoder}
        self._encoder: ImageEncoder | None = None

    @property
    def encoder(self) -> ImageEncoder:
        if self._encoder is None:
            self._encoder = self.encoder_cls(**self.encoder_args)
        return self._encoder

    def config(self) -> dict[str, Any]:
        result = {k: self.encoder_args[k] for k in self._result_defaults}
        return {"stage": self.modalities[0], "version": 1, "pooling": self.pooling, "threshold": self.threshold, **result}

    def inputs_hash(self, raw: RawDataset) -> str:
        """Hash of the post -> image table and each image file's size and mtime (not its bytes)."""
        posts = raw.posts
        entries = []
        for account, image in zip(posts["account_id"].tolist(), posts["image"].fillna("").astype(str).tolist()):
            if not _inside(raw.root, image):
                continue
            try:
                st = (raw.root / image).stat()
                entries.append((account, image, st.st_size, st.st_mtime_ns))
            except OSError:
                entries.append((account, image, -1, -1))
        return stable_hash(entries)

    def weights_note(self) -> str:
        """The plain-words statement of where the model's weights came from."""
        args = self.encoder_args
        what = args.get("model") or f"UperNet ({args.get('backbone')} backbone)"
        if not args.get("weights"):
            return (f"{self.modalities[0]}: {what} with RANDOM-INITIALISED weights (no local checkpoint configured, "
                    f"weights: null); these features carry no pretrained semantics")
        return f"{self.modalities[0]}: {what} with weights from {args['weights']}"

    # ------------------------------------------------------------------ run
    def run(self, raw: RawDataset, accounts: list[str], train_accounts: set[str], workdir: Path,
            trainer: Any = None) -> dict[str, StageOutput] | None:
        """Encode every image on the ranks of ``trainer`` (default: one local device) and pool
        per account; returns the modality on global rank zero and None on the other ranks."""
        name = self.modalities[0]
        start = time.perf_counter()
        rows, paths, no_image = _image_index(raw, accounts)
        shards = ImageShards(self.encoder, rows, paths, accounts, self.shard_size, Path(workdir) / "shards")
        note = self.weights_note()
        if not self.encoder_args.get("weights"):
            log.warning(note)
        trainer = trainer if trainer is not None else extraction_trainer(progress=self.progress)
        with warnings.catch_warnings():  # every shard finished already: an empty loader is expected
            warnings.filterwarnings("ignore", message=".*length of `DataLoader`.*zero.*")
            warnings.filterwarnings("ignore", message=".*does not have many workers.*")
            warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning's pytree use, newer torch
            trainer.predict(ImagePredictor(self.encoder, self.pooling, self.threshold), datamodule=shards,
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
            f, p, meta = _read_shard(shards.shard_file(s))
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
                    f"{self.threshold} in any image: published pooling gives them all the same uniform vector")
            log.warning("%s: %s", name, text)
            note = f"{note}; {text}"
        log.info("%s: %d accounts, %d/%d images used, skipped %s (%.1fs)", name, n, counts["images_ok"],
                 counts["posts_with_image"], skipped or "nothing", time.perf_counter() - start)
        return StageOutput(features_t, present_t, counts=counts, skipped=skipped, note=note)


def _check_plan(shards_dir: Path, plan: dict[str, Any]) -> None:
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


def _write_shard(path: Path, features: torch.Tensor, present: torch.Tensor, meta: dict[str, Any]) -> None:
    data = st_save({"features": features.contiguous(), "present": present.contiguous()},
                   metadata={"meta": json.dumps(meta, default=lambda o: str(o).lower())})
    atomic_write_bytes(path, data)


def _read_shard(path: Path) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    with safe_open(str(path), framework="pt") as handle:
        meta = json.loads((handle.metadata() or {}).get("meta", "{}"))
        return handle.get_tensor("features"), handle.get_tensor("present"), meta


class ObjectStage(ImageStage):
    """The ``object`` modality: timm classifier probabilities pooled per account.

    Args: ``model`` (timm name, default ``resnet101``), ``weights`` (local checkpoint file
    or null), ``image_size``, ``pooling`` (published | mean | max), ``threshold``,
    ``batch_size``, ``num_workers``, ``decode`` (auto | worker | device), ``amp``,
    ``channels_last``, ``compile``, ``shard_size``, ``seed``. The devices are the
    extraction Trainer's (``features.extraction``).
    """

    modalities = ("object",)
    encoder_cls = ObjectEncoder
    _result_defaults = {"model": "resnet101", "weights": None, "num_classes": None, "image_size": 224, "seed": 0}


class SceneStage(ImageStage):
    """The ``scene`` modality: UperNet class areas pooled per account.

    Args: ``backbone`` (resnet50 | resnet101 | resnet18 | convnext-tiny | convnext-small),
    ``backbone_overrides`` (dict passed to the backbone config), ``num_labels`` (365),
    ``decoder_hidden_size``, ``weights`` (local ``save_pretrained`` folder or null),
    ``area`` (soft | hard), ``image_size`` and the loader/device options of
    :class:`ObjectStage`.
    """

    modalities = ("scene",)
    encoder_cls = SceneEncoder
    _result_defaults = {"backbone": "resnet50", "backbone_overrides": {}, "num_labels": 365, "decoder_hidden_size": 512,
                        "weights": None, "area": "soft", "image_size": 256, "seed": 0}
