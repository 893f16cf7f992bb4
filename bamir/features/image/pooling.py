"""Pooling the posts' class distributions into one vector per account (published, mean or max)."""

from __future__ import annotations

import torch

from bamir.features.settings import POOLINGS


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
