"""Reading post images: decoding (JPEG on the GPU when there is one), resize and centre crop, and the
Dataset of files a DataLoader's workers read; a missing or undecodable file is a status, never an error."""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

import torch
from torch.utils.data import Dataset
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2 import functional as TF


OK, MISSING, CORRUPT = 0, 1, 2
STATUS_REASON = {MISSING: "missing_file", CORRUPT: "corrupt_image"}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def is_jpeg(data: torch.Tensor) -> bool:
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


def worker_init(_: int) -> None:
    torch.set_num_threads(1)  # one decode/resize per worker process; the workers are the parallelism


def collate_images(items):
    index = torch.tensor([i for i, _, _ in items], dtype=torch.long)
    status = torch.tensor([s for _, _, s in items], dtype=torch.long)
    data = [d for _, d, _ in items]
    if items and items[0][1].ndim == 3:
        data = torch.stack(data)
    return index, data, status
