"""SBR: unlearned content similarity (docs/method.md section 5; Gan et al., ACM MM 2019).

The features of brand and influencer are concatenated over the chosen modalities (image:
object + scene; text: topic), and the score is the mean of their element-wise product::

    x_a = [x_a^object ; x_a^scene ; x_a^topic]                  ([D], D = sum of the dims)
    s(b, i) = (1 / D) sum_d x_b[d] * x_i[d] = <x_b, x_i> / D

With ``normalize=true`` each modality block is L2-normalised first (a variant; the published
baseline uses the raw features).
"""

from __future__ import annotations

import logging
import math

import torch
import torch.nn.functional as F
from torch import Tensor

from bamir.models.base import RankingModule

log = logging.getLogger(__name__)


class SBR(RankingModule):
    """Mean of the element-wise product of concatenated features; no parameters.

    Args:
        input_dims: ``{modality: dim}`` of the attached store.
        modalities: concatenated in this order; those the store lacks are dropped (with a warning).
        normalize: L2-normalise each modality block before concatenating.

    Shapes: ``branch_scores(brands [B], candidates [C]) -> {"content": [B, C]}``.
    """

    def __init__(self, input_dims: dict[str, int], modalities: list[str] | None = None, normalize: bool = False,
                 seed: int = 24, store_fingerprint: dict | None = None):
        super().__init__(seed=seed)
        self.save_hyperparameters()
        wanted = list(modalities) if modalities is not None else ["object", "scene", "topic"]
        missing = [m for m in wanted if m not in input_dims]
        self.requested_modalities = tuple(wanted)
        self.used = [m for m in wanted if m in input_dims]
        if missing:
            log.info("SBR: %s not served; using %s", missing, self.used)
        if not self.used:
            raise ValueError(f"SBR: none of {wanted} is in the store ({sorted(input_dims)})")
        self.normalize = normalize
        self.dim = sum(input_dims[m] for m in self.used)

    def embed(self, rows: Tensor) -> Tensor:
        """``rows [*] -> [*, D]``: the concatenated features."""
        blocks = [self.features(m, rows) for m in self.used]
        if self.normalize:
            blocks = [F.normalize(x, dim=-1) for x in blocks]
        return torch.cat(blocks, dim=-1)

    @property
    def modalities(self) -> list[str]:
        return list(self.used)

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        return {"content": self.embed(brands) @ self.embed(candidates).T / self.dim}

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        return {"content": self.embed(rows) / math.sqrt(self.dim)}
