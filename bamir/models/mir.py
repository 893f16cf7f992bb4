"""MIR: micro-influencer ranking by Gan et al., "Seeking Micro-influencers for Brand Promotion",
ACM MM 2019 (docs/method.md section 5).

An account's post features are pooled into one visual vector ``x_v`` (here: the store's
``object`` + ``scene``, already pooled over the posts by the feature pipeline, which stands in
for MIR's weighted-average post pooling) and one text vector ``x_t`` (``topic`` + ``hashtag``).
Each goes through an MLP, and the two embeddings are fused by low-rank bilinear pooling
(Hadamard product of projections, Kim et al., ICLR 2017)::

    h_v = MLP_v(x_v)                (published: image -> 4096 -> 512)
    h_t = MLP_t(x_t)                (published: text 300 -> 300 -> 512; here in -> in -> d)
    f   = P^T ( tanh(U^T h_v) * tanh(V^T h_t) )          U: [d_v, r], V: [d_t, r], P: [r, d]
    s(b, i) = mean_k f_b[k] * f_i[k] = <f_b, f_i> / d

Training is listwise over Gan et al.'s k-bucket groups: a row ``(brand, positive, neg_1 ..
neg_{k-1})`` (the ``k_buckets`` sampler) gives scores ``s [k]`` and labels ``y = (1, 0, .., 0)``::

    L = sum_rows - sum_j (y_j / sum y) * log softmax(s)_j  +  l1 * sum |theta|

with SGD, lr 0.002, L1 0.001 as published. When the data config leaves out one side's
modalities, the fusion keeps the other side alone (``f = P^T tanh(U^T h)``).
"""

from __future__ import annotations

import logging
import math
from typing import Callable

import torch
from torch import Tensor, nn

from bamir.models.base import RankingModule
from bamir.models.encoders import MLPEncoder

log = logging.getLogger(__name__)


def listwise_loss(scores: Tensor, labels: Tensor) -> Tensor:
    """Cross-entropy of ``softmax(scores)`` against the normalised labels, summed over rows.

    ``scores [B, k]`` float, ``labels [B, k]`` (0/1 or weights, at least one positive per row).
    """
    target = labels.float() / labels.float().sum(-1, keepdim=True)
    return -(target * torch.log_softmax(scores, dim=-1)).sum()


class MirModel(RankingModule):
    """Gan et al.'s MIR ranker (see the module docstring).

    Args:
        input_dims: ``{modality: dim}`` of the attached store.
        visual: modalities concatenated into ``x_v`` (those missing are dropped).
        text: modalities concatenated into ``x_t``.
        visual_hidden: MLP_v layer sizes (published ``[4096, 512]``).
        text_hidden: MLP_t layer sizes; None = ``[text_in, embed_dim]`` (published 300 -> 300 -> 512).
        embed_dim: the default last size of MLP_t and the output size ``d`` of the fusion.
        rank: ``r`` of the low-rank bilinear pooling (None: ``embed_dim``).
        dropout: between MLP layers.
        standardize: z-score each input column with its mean and sd over all accounts of the store
            (label-free); the data module's own standardisation is off for MIR (``conf/model/mir.yaml``),
            which it would only repeat. The store's simplex features (topic, object, scene) are tiny per column;
            unscaled, the bilinear fusion starts at a flat saddle near zero and SGD at lr 0.002
            does not leave it.
        l1: weight of the L1 penalty on all parameters.
        score_scale: ``gamma`` in ``s = gamma * mean_k f_b[k] f_i[k]`` (1 = published; ``d`` = the inner product).

    Shapes: ``branch_scores(brands [B], candidates [C]) -> {"mir": [B, C]}``; ``embed(rows [*]) -> [*, d]``.
    """

    def __init__(
        self,
        input_dims: dict[str, int],
        visual: list[str] | None = None,
        text: list[str] | None = None,
        visual_hidden: list[int] | None = None,
        text_hidden: list[int] | None = None,
        embed_dim: int = 128,
        rank: int | None = None,
        dropout: float = 0.0,
        l1: float = 0.001,
        standardize: bool = True,
        score_scale: float = 1.0,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        seed: int = 24,
        store_fingerprint: dict | None = None,
    ):
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        self.l1 = l1
        self.standardize = standardize
        self.score_scale = float(score_scale)
        wanted = {"visual": list(visual if visual is not None else ["object", "scene"]),
                  "text": list(text if text is not None else ["topic", "hashtag"])}
        self.requested_modalities = tuple(sorted({m for names in wanted.values() for m in names}))
        self.inputs: dict[str, list[str]] = {}
        self.encoders = nn.ModuleDict()
        self.projections = nn.ModuleDict()
        rank = rank or embed_dim
        for side, names in wanted.items():
            used = [m for m in names if m in input_dims]
            if len(used) < len(names):
                log.info("MIR %s side: %s not served", side, [m for m in names if m not in input_dims])
            if not used:
                continue
            in_dim = sum(input_dims[m] for m in used)
            hidden = visual_hidden if side == "visual" else text_hidden
            hidden = list(hidden) if hidden is not None else (
                [512, embed_dim] if side == "visual" else [in_dim, embed_dim])
            self.inputs[side] = used
            self.encoders[side] = MLPEncoder(in_dim, hidden, dropout=dropout)
            self.projections[side] = nn.Linear(hidden[-1], rank)
        if not self.inputs:
            raise ValueError(f"MIR: neither visual {wanted['visual']} nor text {wanted['text']} is in the store")
        if len(self.inputs) == 1:
            log.info("MIR: only the %s side is available; no bilinear fusion", next(iter(self.inputs)))
        self.output = nn.Linear(rank, embed_dim)
        self.embed_dim = embed_dim
        # the standardisation, fitted at the first attach and kept in checkpoints
        self.input_modalities = sorted({m for names in self.inputs.values() for m in names})
        for name in self.input_modalities:
            self.register_buffer(f"mean_{name}", torch.zeros(input_dims[name]))
            self.register_buffer(f"scale_{name}", torch.ones(input_dims[name]))
        self.register_buffer("standardization_fitted", torch.tensor(False))

    def attach_features(self, features: dict[str, Tensor]) -> None:
        """Attach the store's matrices; the first time, fit the input standardisation on all their rows
        (later attaches, e.g. with cold-start rows appended, and loaded checkpoints keep it)."""
        super().attach_features(features)
        if bool(self.standardization_fitted):
            return
        for name in self.input_modalities:
            x = features[name].float()
            getattr(self, f"mean_{name}").copy_(x.mean(0))
            getattr(self, f"scale_{name}").copy_(x.std(0).clamp_min(1e-6).reciprocal())
        self.standardization_fitted.fill_(True)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Checkpoints written before the standardisation was saved: refit it at the next attach."""
        state = checkpoint.get("state_dict", {})
        for key, value in self.state_dict().items():
            if key.startswith(("mean_", "scale_")) or key == "standardization_fitted":
                state.setdefault(key, value)

    def inputs_of(self, name: str, rows: Tensor) -> Tensor:
        """Rows of one input modality, standardised when configured: ``rows [*] -> [*, dim]``."""
        x = self.features(name, rows)
        if self.standardize:
            x = (x - getattr(self, f"mean_{name}")) * getattr(self, f"scale_{name}")
        return x

    def embed(self, rows: Tensor) -> Tensor:
        """Fused account embedding ``rows [*] -> [*, d]``."""
        fused = None
        for side, names in self.inputs.items():
            x = torch.cat([self.inputs_of(m, rows) for m in names], dim=-1)
            z = torch.tanh(self.projections[side](self.encoders[side](x)))
            fused = z if fused is None else fused * z
        return self.output(fused)

    @property
    def modalities(self) -> list[str]:
        return list(self.input_modalities)

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        return {"mir": self.score_scale * (self.embed(brands) @ self.embed(candidates).T) / self.embed_dim}

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        """``sqrt(|gamma| / d) f(rows)``, the brand side carrying gamma's sign."""
        e = self.embed(rows) * math.sqrt(abs(self.score_scale) / self.embed_dim)
        return {"mir": -e if side == "brand" and self.score_scale < 0 else e}

    def row_scores(self, rows: Tensor) -> Tensor:
        """Scores of training rows ``(brand, items...) [B, 1 + k] -> [B, k]``."""
        e = self.embed(rows)
        return self.score_scale * (e[:, :1] * e[:, 1:]).mean(-1)

    def loss(self, rows: Tensor) -> dict[str, Tensor]:
        """Listwise loss of rows ``(brand, positive, negatives...)``: the positive is item 0."""
        scores = self.row_scores(rows)
        labels = torch.zeros_like(scores)
        labels[:, 0] = 1
        terms = {"listwise": listwise_loss(scores, labels),
                 "l1": self.l1 * self.l1_penalty()}
        terms["loss"] = terms["listwise"] + terms["l1"]
        return terms
