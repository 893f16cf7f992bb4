"""BAMIR: brand-aware micro-influencer ranking (the published model, docs/method.md section 8).

Brands and influencers go through the same per-modality MLP encoders. Modalities are grouped
into branches; within a branch the encoder outputs are fused (BAMIR's content branch:
``content = topic (x) image``, element-wise), and each branch scores a pair by an inner
product. The score is their sum::

    s(b, i) = sum_branch < f_branch(b), f_branch(i) >        (published: content + concept)

Two extensions of bamir's own, off in the published model. With ``shared_encoders=False`` brands
go through encoders of their own (two towers, ``< g_branch(b), f_branch(i) >``): one shared encoder
makes each branch a positive semi-definite kernel of the two accounts' features, which cannot
express an asymmetric fit (a brand's preference for audiences unlike its own). With
``candidate_bias=True`` a linear read-out of the candidate's features is added, ``+ w . x_i``, a
brand-independent term (an influencer's engagement) that an inner product of encoders does not
express; it starts at zero.

Training examples are rows ``(brand, positive, negative_1..n)``. With ``loss="triplet"``
(published), over the batch ``B`` of rows and each negative ``n`` of a row::

    L = sum_B sum_n sum_branch max(0, m_branch - s_branch(b, p) + s_branch(b, n))   (m: 4 content, 2 concept)
        + w_ce * R_{B, n} CE(b, p, n)
        + l1 * sum_{theta in P} |theta|_1

    CE(b, p, n) = -log(softmax([s(b, p), s(b, n)])_0 + eps) = softplus(s(b, n) - s(b, p))   (eps = 0)

where ``R`` is the sum over the ``B x n`` (row, negative) pairs (``cross_entropy_reduction="sum"``)
or their mean (``"mean"``: the public code, whose hinges are summed over the batch but whose
cross-entropy is averaged; its rows have n = 1), ``eps`` is ``cross_entropy_eps`` (the public code
adds 1e-16 to the softmax before the log: a pair's CE is at most -log(1e-16) = 36.8 and its gradient
vanishes once ``s(b, n) - s(b, p)`` exceeds about 37), and ``P`` holds every parameter
(``l1_on="all"``) or the Linear layers' weight matrices only (``"weights"``: the public code,
biases unpenalised).

With ``loss="listwise"`` (Gan et al.'s k-buckets): ``CE(softmax([s(b,p), s(b,n_1..n_k-1)]), p)``
summed over the batch, plus the same L1 term.

Branches are declared in config; an encoder whose input modalities are not served is dropped
(and logged). The training app allows that only when the data config leaves them out
(``data.modalities``, ``data.missing=drop``), so no branch vanishes unnoticed.
"""

from __future__ import annotations

import copy
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
          An encoder may set ``dropout_after: [k...]``, the 0-based hidden layers followed by dropout
          (default: every hidden layer; :class:`~bamir.models.encoders.MLPEncoder`).
        loss: ``"triplet"`` (BAMIR) or ``"listwise"`` (k-buckets).
        cross_entropy: weight of the cross-entropy term of the triplet loss.
        cross_entropy_reduction: ``"sum"`` or ``"mean"`` of that term over the batch (the hinges are summed).
        cross_entropy_eps: ``eps`` of ``-log(softmax + eps)``; 0: the exact ``softplus`` form.
        l1: weight of the L1 penalty.
        l1_on: ``"all"`` parameters or the ``"weights"`` (matrices) only.
        dropout: dropout rate behind the encoders' hidden layers.
        init_std: weights and biases drawn from ``N(0, init_std^2)``; None: PyTorch's default.
        shared_encoders: brands and candidates through the same encoders (published); False: two towers.
        candidate_bias: add ``w . x_i``, a linear read-out of the candidate's features (a branch ``bias``).
        store_fingerprint: what the checkpoint remembers of the feature store it was trained on.
    """

    def __init__(
        self,
        input_dims: dict[str, int],
        branches: dict[str, dict[str, Any]],
        loss: str = "triplet",
        cross_entropy: float = 1.0,
        cross_entropy_reduction: str = "sum",
        cross_entropy_eps: float = 0.0,
        l1: float = 0.001,
        l1_on: str = "all",
        dropout: float = 0.5,
        init_std: float | None = None,
        shared_encoders: bool = True,
        candidate_bias: bool = False,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        seed: int = 24,
        store_fingerprint: dict | None = None,
    ):
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        if loss not in ("triplet", "listwise"):
            raise ValueError(f"unknown loss {loss!r}: use triplet or listwise")
        if cross_entropy_reduction not in ("sum", "mean"):
            raise ValueError(f"unknown cross_entropy_reduction {cross_entropy_reduction!r}: use sum or mean")
        if l1_on not in ("all", "weights"):
            raise ValueError(f"unknown l1_on {l1_on!r}: use all or weights")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.loss_kind, self.cross_entropy, self.l1 = loss, cross_entropy, l1
        self.cross_entropy_reduction, self.cross_entropy_eps = cross_entropy_reduction, cross_entropy_eps
        self.l1_on = l1_on
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
                after = enc.get("dropout_after")
                encoders[name] = MLPEncoder(in_dim, list(enc["hidden"]), dropout=dropout, init_std=init_std,
                                            dropout_after=None if after is None else list(after))
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
        # the brands' own tower starts as a copy of the candidates', the bias at zero: no random numbers drawn
        self.brand_encoders = None if shared_encoders else copy.deepcopy(self.encoders)
        self.bias = None
        if candidate_bias:
            self.bias = nn.utils.skip_init(nn.Linear, sum(input_dims[m] for m in self.modalities), 1)
            nn.init.zeros_(self.bias.weight)
            nn.init.zeros_(self.bias.bias)

    @property
    def modalities(self) -> list[str]:
        return sorted({m for branch in self.inputs.values() for inputs in branch.values() for m in inputs})

    def encode(self, branch: str, rows: Tensor, side: str = "candidate") -> Tensor:
        """Branch embedding of accounts ``rows [*] -> [*, d]`` on ``side`` (``"brand"``: the brands'
        tower when it has one)."""
        encoders = self.brand_encoders if side == "brand" and self.brand_encoders is not None else self.encoders
        embeddings = [
            encoder(torch.cat([self.features(m, rows) for m in self.inputs[branch][name]], dim=-1))
            for name, encoder in encoders[branch].items()
        ]
        return fuse(embeddings, self.fusion[branch])

    def candidate_bias(self, rows: Tensor) -> Tensor:
        """``w . x_i`` of accounts ``rows [*] -> [*]``."""
        return self.bias(torch.cat([self.features(m, rows) for m in self.modalities], dim=-1)).squeeze(-1)

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        b, c = self.branch_embeddings(brands, "brand"), self.branch_embeddings(candidates, "candidate")
        return {k: b[k] @ c[k].T for k in b}

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        """Each branch's embedding on ``side``; the bias branch is ``[1]`` for a brand, ``[w . x_i]`` for a
        candidate."""
        out = {b: self.encode(b, rows, side) for b in self.encoders}
        if self.bias is not None:
            out["bias"] = torch.ones(len(rows), 1, device=rows.device) if side == "brand" else \
                self.candidate_bias(rows)[:, None]
        return out

    def row_scores(self, rows: Tensor) -> dict[str, Tensor]:
        """Scores of training rows ``[B, 1 + k]`` ``(brand, items...) -> {branch: [B, k]}``.

        With shared encoders brands and items go through each encoder together, in one call.
        """
        out = {}
        for b in self.encoders:
            if self.brand_encoders is None:
                e = self.encode(b, rows)  # [B, 1 + k, d]
                brand, items = e[:, :1], e[:, 1:]
            else:
                brand, items = self.encode(b, rows[:, :1], "brand"), self.encode(b, rows[:, 1:])
            out[b] = (brand * items).sum(-1)
        if self.bias is not None:
            out["bias"] = self.candidate_bias(rows[:, 1:])
        return out

    def loss(self, rows: Tensor) -> dict[str, Tensor]:
        """The training loss of rows ``(brand, positive, negatives...)`` and its terms."""
        scores = self.row_scores(rows)  # {branch: [B, 1 + n]}
        total = torch.stack(list(scores.values())).sum(0)
        terms: dict[str, Tensor] = {}
        if self.loss_kind == "triplet":
            for branch, s in scores.items():
                if branch not in self.margins:
                    continue  # the candidate bias enters the cross-entropy only
                terms[f"hinge_{branch}"] = F.relu(self.margins[branch] - s[:, :1] + s[:, 1:]).sum()
            ce = self.triplet_cross_entropy(total)  # [B, n]
            reduced = ce.sum() if self.cross_entropy_reduction == "sum" else ce.mean()
            terms["cross_entropy"] = self.cross_entropy * reduced
        else:
            target = torch.zeros(len(total), dtype=torch.long, device=total.device)
            terms["listwise"] = F.cross_entropy(total, target, reduction="sum")
        terms["l1"] = self.l1 * self.l1_penalty(self.l1_on)
        terms["loss"] = torch.stack(list(terms.values())).sum()
        return terms

    def triplet_cross_entropy(self, total: Tensor) -> Tensor:
        """``[B, 1 + n]`` total scores ``(positive, negatives...)`` -> ``[B, n]`` cross-entropy of
        ``softmax([s_pos, s_neg])`` with the positive as target, for each negative:
        ``softplus(s_neg - s_pos)``, or ``-log(sigmoid(s_pos - s_neg) + eps)`` with ``eps > 0``."""
        if self.cross_entropy_eps == 0:
            return F.softplus(total[:, 1:] - total[:, :1])
        return -torch.log(torch.sigmoid(total[:, :1] - total[:, 1:]) + self.cross_entropy_eps)

