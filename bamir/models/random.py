"""Random ranker (the RAND row of docs/method.md sections 4-5).

Every (brand, candidate) pair gets an independent uniform score, a hash of the seed and the
two account rows::

    s(b, i) = u(seed, b, i),   u ~ U[0, 1)   (SplitMix64 of (seed, b, i), top 53 bits)

The score depends on nothing but ``(seed, b, i)``: it is the same however the brands are
batched or the candidates ordered, and the same on every machine. Its expected AUC is 0.5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from bamir.models.base import RankingModule

_MASK = np.uint64(0xFFFFFFFFFFFFFFFF)


def splitmix64(x: np.ndarray) -> np.ndarray:
    """The SplitMix64 finaliser (Steele et al., 2014) on ``uint64`` arrays (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def pair_uniform(seed: int, brands: Tensor, candidates: Tensor) -> Tensor:
    """``[B, C]`` float64 uniforms in [0, 1), one per ``(seed, brand row, candidate row)``."""
    key = splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    b = brands.detach().cpu().numpy().astype(np.uint64)[:, None]
    c = candidates.detach().cpu().numpy().astype(np.uint64)[None, :]
    h = splitmix64(splitmix64(key ^ (b << np.uint64(32))) ^ c)
    return torch.from_numpy((h >> np.uint64(11)).astype(np.float64) * 2.0**-53)


class RandomRanker(RankingModule):
    """Seeded random scores; no parameters, nothing to train.

    Args:
        input_dims: unused (every model gets the store's dims).
        seed: the scores are a function of ``(seed, brand row, candidate row)`` only.

    Shapes: ``branch_scores(brands [B], candidates [C]) -> {"random": [B, C]}``.
    """

    def __init__(self, input_dims: dict[str, int] | None = None, seed: int = 24,
                 store_fingerprint: dict | None = None):
        super().__init__(seed=seed)
        self.save_hyperparameters()

    @property
    def modalities(self) -> list[str]:
        return []

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        scores = pair_uniform(self.seed, brands, candidates)
        return {"random": scores.to(device=brands.device, dtype=torch.float32)}
