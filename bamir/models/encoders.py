"""Per-modality encoders and branch fusions."""

from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor, nn


class MLPEncoder(nn.Sequential):
    """``in_dim -> hidden[0] -> ... -> hidden[-1]``: Linear layers with LeakyReLU between them, the
    last layer linear (BAMIR: topic 19 -> 128 -> 512, image 1365 -> 1024 -> 1024 -> 1024 -> 512,
    concept 128 -> 1024 -> 512).

    With ``h_0 = x`` and ``L = len(hidden)`` layers::

        h_k = D_k(LeakyReLU(W_k h_{k-1} + b_k))      k = 1 .. L - 1
        f(x) = W_L h_{L-1} + b_L

    where ``D_k`` is dropout of rate ``dropout`` if hidden layer ``k - 1`` (0-based) is in
    ``dropout_after``, else the identity. ``dropout_after=None`` puts dropout behind every hidden layer
    (``0 .. L - 2``); the public BAMIR code has ``[0]`` for the topic and image encoders and ``[]`` for
    the concept encoder. (It applies dropout before the activation; for LeakyReLU, which commutes
    with multiplication by a non-negative number, ``LeakyReLU(m z / (1 - p)) = m LeakyReLU(z) / (1 - p)``
    for a mask ``m`` in {0, 1}: the two orders compute the same function.)

    ``init_std``: weights and biases drawn from ``N(0, init_std^2)`` (the public code: 0.1); None keeps
    PyTorch's default (``U(-1/sqrt(fan_in), 1/sqrt(fan_in))``).

    Shapes: ``[*, in_dim] -> [*, hidden[-1]]``.
    """

    def __init__(self, in_dim: int, hidden: list[int], dropout: float = 0.5, negative_slope: float = 0.01,
                 dropout_after: Sequence[int] | None = None, init_std: float | None = None):
        if not hidden:
            raise ValueError("an encoder needs at least one layer size")
        hidden_layers = range(len(hidden) - 1)  # the layers an activation (and dropout) can follow
        after = set(hidden_layers) if dropout_after is None else {int(k) for k in dropout_after}
        if not after <= set(hidden_layers):
            raise ValueError(f"dropout_after={sorted(after)}: an encoder with layer sizes {list(hidden)} has hidden "
                             f"layers {list(hidden_layers)} (the last layer is the output, never followed by dropout)")
        layers: list[nn.Module] = []
        sizes = [in_dim, *hidden]
        for k, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
            layers.append(nn.Linear(a, b))
            if k < len(hidden) - 1:
                layers.append(nn.LeakyReLU(negative_slope))
                if k in after:
                    layers.append(nn.Dropout(dropout))
        super().__init__(*layers)
        self.out_dim = hidden[-1]
        self.dropout_after = sorted(after)
        if init_std is not None:
            for layer in self:
                if isinstance(layer, nn.Linear):
                    nn.init.normal_(layer.weight, std=init_std)
                    nn.init.normal_(layer.bias, std=init_std)


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
