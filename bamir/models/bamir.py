"""BAMIR: brand-aware micro-influencer ranking (the published model, docs/method.md section 8).

Brands and influencers go through the same per-modality MLP encoders. Modalities are grouped
into branches; within a branch the encoder outputs are fused (BAMIR's content branch:
``content = topic (x) image``, element-wise), and each branch scores a pair by an inner
product. The score is their sum::

    s(b, i) = sum_branch < f_branch(b), f_branch(i) >        (published: content + concept)

Training examples are rows ``(brand, positive, negative_1..n)``. With ``loss="triplet"``
(published), for each negative::

    L = sum_branch max(0, m_branch - s_branch(b, p) + s_branch(b, n))          (m: 4 content, 2 concept)
        + w_ce * CE(softmax([s(b, p), s(b, n)]), target = p)
    summed over the batch, + l1 * sum |theta|

With ``loss="listwise"`` (Gan et al.'s k-buckets): ``CE(softmax([s(b,p), s(b,n_1..n_k-1)]), p)``
plus the same L1 term.

Branches are declared in config; an encoder whose input modalities are not served is dropped
(and logged). The training app allows that only when the data config leaves them out
(``data.modalities``, ``data.missing=drop``), so no branch vanishes unnoticed.
"""

from __future__ import annotations

import logging
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bamir.models.base import RankingModule
from bamir.models.encoders import MLPEncoder, fuse

log = logging.getLogger(__name__)


class BamirModel(RankingModule):
    """BAMIR ranker.

    Args:
        input_dims: ``{modality: dim}`` of the attached feature store.
        branches: ``{branch: {fusion, margin, encoders: {name: {inputs: [modality...], hidden: [sizes]}}}}``.
        loss: ``"triplet"`` (BAMIR) or ``"listwise"`` (k-buckets).
        cross_entropy: weight of the cross-entropy term of the triplet loss.
        l1: weight of the L1 penalty on all parameters.
        dropout: dropout between encoder layers.
        store_fingerprint: what the checkpoint remembers of the feature store it was trained on.
    """

    def __init__(
        self,
        input_dims: dict[str, int],
        branches: dict[str, dict[str, Any]],
        loss: str = "triplet",
        cross_entropy: float = 1.0,
        l1: float = 0.001,
        dropout: float = 0.5,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        seed: int = 24,
        store_fingerprint: dict | None = None,
    ):
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        if loss not in ("triplet", "listwise"):
            raise ValueError(f"unknown loss {loss!r}: use triplet or listwise")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.loss_kind, self.cross_entropy, self.l1 = loss, cross_entropy, l1
        self.encoders = nn.ModuleDict()
        self.inputs: dict[str, dict[str, list[str]]] = {}
        self.fusion: dict[str, str] = {}
        self.margins: dict[str, float] = {}
        self.requested_modalities = tuple(sorted({m for spec in branches.values() for enc in spec["encoders"].values()
                                                  for m in enc["inputs"]}))
        for branch, spec in branches.items():
            encoders = nn.ModuleDict()
            self.inputs[branch] = {}
            for name, enc in spec["encoders"].items():
                missing = [m for m in enc["inputs"] if m not in input_dims]
                if missing:
                    log.info("branch %r: encoder %r dropped, %s not served", branch, name, missing)
                    continue
                in_dim = sum(input_dims[m] for m in enc["inputs"])
                encoders[name] = MLPEncoder(in_dim, list(enc["hidden"]), dropout=dropout)
                self.inputs[branch][name] = list(enc["inputs"])
            if not len(encoders):
                log.info("branch %r dropped: none of its encoders has its inputs", branch)
                del self.inputs[branch]
                continue
            self.encoders[branch] = encoders
            self.fusion[branch] = spec.get("fusion", "product")
            self.margins[branch] = float(spec.get("margin", 1.0))
        if not len(self.encoders):
            raise ValueError(f"no branch can be built from the store's modalities {sorted(input_dims)}")

    @property
    def modalities(self) -> list[str]:
        return sorted({m for branch in self.inputs.values() for inputs in branch.values() for m in inputs})

    def encode(self, branch: str, rows: Tensor) -> Tensor:
        """Branch embedding of accounts ``rows [*] -> [*, d]``."""
        embeddings = [
            encoder(torch.cat([self.features(m, rows) for m in self.inputs[branch][name]], dim=-1))
            for name, encoder in self.encoders[branch].items()
        ]
        return fuse(embeddings, self.fusion[branch])

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        return {b: self.encode(b, brands) @ self.encode(b, candidates).T for b in self.encoders}

    def row_scores(self, rows: Tensor) -> dict[str, Tensor]:
        """Scores of training rows ``[B, 1 + k]`` ``(brand, items...) -> {branch: [B, k]}``.

        Brands and items go through each encoder together, in one call.
        """
        out = {}
        for b in self.encoders:
            e = self.encode(b, rows)  # [B, 1 + k, d]
            out[b] = (e[:, :1] * e[:, 1:]).sum(-1)
        return out

    def loss(self, rows: Tensor) -> dict[str, Tensor]:
        """The training loss of rows ``(brand, positive, negatives...)`` and its terms."""
        scores = self.row_scores(rows)  # {branch: [B, 1 + n]}
        total = torch.stack(list(scores.values())).sum(0)
        terms: dict[str, Tensor] = {}
        if self.loss_kind == "triplet":
            for branch, s in scores.items():
                terms[f"hinge_{branch}"] = F.relu(self.margins[branch] - s[:, :1] + s[:, 1:]).sum()
            # CE of softmax([s_pos, s_neg]) with the positive as target = softplus(s_neg - s_pos)
            terms["cross_entropy"] = self.cross_entropy * F.softplus(total[:, 1:] - total[:, :1]).sum()
        else:
            target = torch.zeros(len(total), dtype=torch.long, device=total.device)
            terms["listwise"] = F.cross_entropy(total, target, reduction="sum")
        terms["l1"] = self.l1 * torch.stack(torch._foreach_norm(list(self.parameters()), 1)).sum()
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms

    def training_step(self, batch: Tensor, batch_idx: int) -> Tensor:
        terms = self.loss(batch)
        self.log("train/loss", terms["loss"], on_step=False, on_epoch=True, batch_size=len(batch))
        if batch_idx % self.trainer.log_every_n_steps == 0:  # the terms, sparsely: logging costs per call
            self.log_dict({f"train/{k}": v.detach() for k, v in terms.items() if k != "loss"}, on_step=True,
                          on_epoch=False, batch_size=len(batch))
        return terms["loss"]
