"""Per-modality encoders and branch fusions."""

from __future__ import annotations

import torch
from torch import Tensor, nn


class MLPEncoder(nn.Sequential):
    """``in_dim -> hidden[0] -> ... -> hidden[-1]``: Linear layers with LeakyReLU and dropout
    between them, the last layer linear (BAMIR: topic 19 -> 128 -> 512,
    image 1365 -> 1024 -> 1024 -> 1024 -> 512, concept 128 -> 1024 -> 512; dropout 0.5).

    Shapes: ``[*, in_dim] -> [*, hidden[-1]]``.
    """

    def __init__(self, in_dim: int, hidden: list[int], dropout: float = 0.5, negative_slope: float = 0.01):
        if not hidden:
            raise ValueError("an encoder needs at least one layer size")
        layers: list[nn.Module] = []
        sizes = [in_dim, *hidden]
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if k < len(hidden) - 1:
                layers += [nn.LeakyReLU(negative_slope), nn.Dropout(dropout)]
        super().__init__(*layers)
        self.out_dim = hidden[-1]


def fuse(embeddings: list[Tensor], how: str) -> Tensor:
    """Fuse same-sized modality embeddings ``[*, d]`` of one branch.

    ``product``: element-wise product (BAMIR's content = topic (x) image);
    ``sum``: element-wise sum; ``concat``: concatenation along the last axis.
    """
    if how == "product":
        out = embeddings[0]
        for e in embeddings[1:]:
            out = out * e
        return out
    if how == "sum":
        return torch.stack(embeddings).sum(0)
    if how == "concat":
        return torch.cat(embeddings, dim=-1)
    raise ValueError(f"unknown fusion {how!r}: use product, sum or concat")
