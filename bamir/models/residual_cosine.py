"""Residual cosine ranker: the unlearned cosine baseline plus learned corrections that start at zero.

For brand ``b``, candidate ``i``, the cosine modalities ``m`` (default: topic and concept) with
unit-normalised feature rows ``u_m(a) = x_m(a) / |x_m(a)|``, and the residual branches ``k``::

    s(b, i) = sum_m  < w_m (.) u_m(b), u_m(i) >                      cosine part
            + sum_k  alpha_k < g_k(x_k(b)), h_k(x_k(i)) >             residual part
            - beta r(i)                                               hubness part (hub_k > 0)

- ``w_m`` re-weights the cosine of modality ``m``: fixed at 1 (``cosine_weights="fixed"``: the
  cosine baseline's ``cos(x_b, x_i)``), one learned scalar per modality (``"scalar"``), or one learned
  weight per feature dimension (``"diagonal"``: a diagonal metric on the unit sphere). Initialised at 1.
- ``x_k`` is the concatenation of branch ``k``'s input modalities as served (standardised when
  ``data.standardize``); ``g_k`` (brand side) and ``h_k`` (candidate side) are MLP encoders
  (:class:`~bamir.models.encoders.MLPEncoder`), one shared encoder (``g_k = h_k``, ``shared=True``) or
  one per side.
- ``r(i)`` is the hubness of candidate ``i``: the mean of its ``hub_k`` largest cosine-part scores
  ``sum_m <w_m (.) u_m(b'), u_m(i)>`` against the training brands ``b'`` (the brands the run fits,
  from the data module; a brand is never its own neighbour), as in CSLS (Conneau et al. 2018): an
  influencer close to many brands is a worse match for any one of them. ``beta`` is learned from
  ``hub_init`` (or fixed, ``learn_hub=False``).
- ``alpha_k`` is a learned gate initialised at 0 (ReZero): at initialisation ``s`` is exactly the
  cosine baseline ``cos(topic) + cos(concept)`` (with ``hub_init=0``), and training moves away from it only as far as
  the loss asks; with model selection on the inner validation carve a run whose corrections do not
  help there keeps an epoch close to the cosine ranking.

Loss of training rows ``(brand b, positive p, negatives n_1..n_r)``, with a learned logit scale
``t = exp(theta)`` (initialised at ``1 / temperature``):

- ``loss="softmax"``: ``-log softmax_p(t s(b, p), t s(b, n) for n in N(b))`` averaged over the rows,
  where ``N(b)`` is the row's own negatives (``negatives="rows"``) or every influencer of the
  training pool that is not a known positive of ``b`` (``negatives="pool"``: a full softmax over the
  ~2,000 training influencers of the release; the pool and the positives come from the data
  module, :meth:`attach_data`);
- ``loss="bpr"``: ``mean softplus(t (s(b, n) - s(b, p)))`` over the row's negatives;
- ``direction``: ``"row"`` (the softmax over candidates above), ``"column"`` (over brands: for the
  positive ``p``, ``-log softmax_b(t s(b', p) for b' in R(p))`` with ``R(p)`` the training brands of
  which ``p`` is not a known positive, plus ``b``: which brand does this influencer belong to; blind
  to any per-candidate offset such as an influencer's number of training brands, which says
  nothing on a candidate list where every candidate is some brand's positive) or ``"both"``
  (their mean; ``loss="softmax"`` with ``negatives="pool"`` only);
- ``debias_degree``: each row weighted by ``1 / deg(p)`` (``deg``: the positive's number of training
  brands; weights normalised to mean 1 over the batch), so that every training influencer counts
  once, as every candidate of an evaluated split is about one brand's positive.

Regularisation is the optimiser's weight decay (AdamW in the configs), dropout in the encoders and
the choice of the best epoch on the inner validation carve.

Shapes: features ``[N, d_m]``; :meth:`branch_scores` ``(brands [B], candidates [C]) -> {branch: [B, C]}``
with branches ``cos_<m>``, ``hub`` and ``res_<k>``; :meth:`branch_embeddings` ``(rows [n], side) ->
{branch: [n, d]}`` (``d_m`` for ``cos_<m>``, 1 for ``hub``, the encoder's output width for ``res_<k>``); training rows
``[B, 2 + r]``.
"""

from __future__ import annotations

import logging
import math
from typing import Any, Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bamir.models.base import RankingModule
from bamir.models.encoders import MLPEncoder

log = logging.getLogger(__name__)


class ResidualCosine(RankingModule):
    """Cosine baseline + gated learned residual branches (see the module docstring for the maths).

    Args:
        input_dims: ``{modality: dim}`` of the attached feature store.
        cosine: the modalities of the cosine part (those not served are left out, logged).
        cosine_weights: ``"fixed"`` (1), ``"scalar"`` (one learned weight per modality) or ``"diagonal"``
            (one learned weight per dimension); all start at 1.
        branches: ``{name: {inputs: [modality...], hidden: [sizes...]}}`` residual branches; a branch whose
            inputs are not all served is dropped (logged). Empty: the cosine part only.
        shared: one encoder for brands and candidates (else one per side).
        dropout: dropout behind the encoders' hidden layers.
        gate_init: initial ``alpha_k`` (0: the score is the cosine's at initialisation).
        loss: ``"softmax"`` or ``"bpr"``.
        negatives: ``"rows"`` (the sampler's negatives) or ``"pool"`` (every non-positive training influencer).
        direction: ``"row"``, ``"column"`` or ``"both"`` (see the module docstring).
        debias_degree: weight each row by ``1 / deg(positive)`` (``negatives="pool"``).
        temperature: initial ``1 / t``; ``learn_temperature``: whether ``t`` is learned.
        hub_k: the number of nearest training brands of a candidate's hubness ``r``; 0: no hubness part.
        hub_init: initial ``beta``; ``learn_hub``: whether ``beta`` is learned.
        store_fingerprint: what the checkpoint remembers of the feature store it was trained on.
    """

    def __init__(
        self,
        input_dims: dict[str, int],
        cosine: list[str] | None = None,
        cosine_weights: str = "fixed",
        branches: dict[str, dict[str, Any]] | None = None,
        shared: bool = True,
        dropout: float = 0.2,
        gate_init: float = 0.0,
        loss: str = "softmax",
        negatives: str = "pool",
        direction: str = "row",
        debias_degree: bool = False,
        temperature: float = 0.1,
        learn_temperature: bool = True,
        hub_k: int = 0,
        hub_init: float = 0.0,
        learn_hub: bool = True,
        optimizer: Callable | None = None,
        scheduler: Callable | None = None,
        seed: int = 24,
        store_fingerprint: dict | None = None,
    ):
        super().__init__(optimizer=optimizer, scheduler=scheduler, seed=seed)
        if cosine_weights not in ("fixed", "scalar", "diagonal"):
            raise ValueError(f"unknown cosine_weights {cosine_weights!r}: use fixed, scalar or diagonal")
        if loss not in ("softmax", "bpr"):
            raise ValueError(f"unknown loss {loss!r}: use softmax or bpr")
        if negatives not in ("rows", "pool"):
            raise ValueError(f"unknown negatives {negatives!r}: use rows or pool")
        if direction not in ("row", "column", "both"):
            raise ValueError(f"unknown direction {direction!r}: use row, column or both")
        if direction != "row" and (loss != "softmax" or negatives != "pool"):
            raise ValueError(f"direction={direction} needs loss=softmax and negatives=pool")
        if loss == "bpr" and negatives == "pool":
            raise ValueError("loss=bpr takes the rows' negatives: set negatives=rows")
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        wanted = list(cosine) if cosine is not None else ["topic", "concept"]
        branches = dict(branches or {})
        self.requested_modalities = tuple(sorted(set(wanted) | {m for b in branches.values() for m in b["inputs"]}))
        self.cosine = [m for m in wanted if m in input_dims]
        if len(self.cosine) < len(wanted):
            log.info("residual cosine: %s not served; cosine of %s", sorted(set(wanted) - set(self.cosine)), self.cosine)
        self.cosine_weights = cosine_weights
        self.weights = nn.ParameterDict()
        if cosine_weights != "fixed":
            for m in self.cosine:
                size = input_dims[m] if cosine_weights == "diagonal" else 1
                self.weights[m] = nn.Parameter(torch.ones(size))
        self.inputs: dict[str, list[str]] = {}
        self.brand_encoders, self.candidate_encoders = nn.ModuleDict(), nn.ModuleDict()
        self.gates = nn.ParameterDict()
        for name, spec in branches.items():
            missing = [m for m in spec["inputs"] if m not in input_dims]
            if missing:
                log.info("residual cosine: branch %r dropped, %s not served", name, missing)
                continue
            in_dim = sum(input_dims[m] for m in spec["inputs"])
            self.inputs[name] = list(spec["inputs"])
            self.brand_encoders[name] = MLPEncoder(in_dim, list(spec["hidden"]), dropout=dropout)
            if not shared:
                self.candidate_encoders[name] = MLPEncoder(in_dim, list(spec["hidden"]), dropout=dropout)
            self.gates[name] = nn.Parameter(torch.tensor(float(gate_init)))
        if not self.cosine and not self.inputs:
            raise ValueError(f"residual cosine: nothing to score with the store's modalities {sorted(input_dims)}")
        self.shared = shared
        self.loss_kind, self.negative_kind, self.direction = loss, negatives, direction
        self.debias_degree = debias_degree
        self.hub_k = int(hub_k)
        if self.hub_k > 0 and self.cosine:
            self.hub = nn.Parameter(torch.tensor([float(hub_init)]), requires_grad=learn_hub)
        else:
            self.hub = None
        self._reference: Tensor | None = None
        self.log_scale = nn.Parameter(torch.tensor(math.log(1.0 / temperature)), requires_grad=learn_temperature)
        self._pool: Tensor | None = None
        self._known: Tensor | None = None
        self._column: Tensor | None = None

    # ------------------------------------------------------------------ data
    @property
    def modalities(self) -> list[str]:
        return sorted(set(self.cosine) | {m for inputs in self.inputs.values() for m in inputs})

    def attach_data(self, datamodule) -> None:
        """The training pool ``[M]`` and the known positives (``brand * N + influencer`` keys) for
        ``negatives="pool"``."""
        data = getattr(datamodule, "train_data", None)
        if data is not None:
            self.set_pool(data.pool, data.positive_keys(), data.num_accounts)
            self.set_reference(torch.unique(data.brands))

    def set_reference(self, brands: Tensor) -> None:
        """The training brands ``[R]`` (account rows) the hubness ``r`` is measured against."""
        self._reference = brands.long().cpu()

    def hubness(self, rows: Tensor) -> Tensor:
        """``r(rows)``: ``[n, 1]``, the mean of each row's ``hub_k`` largest cosine-part scores against the
        reference brands (a reference brand itself excluded: no brand is its own neighbour)."""
        if self._reference is None:
            raise RuntimeError("hub_k > 0 needs the training brands: attach_data(datamodule) or set_reference()")
        reference = self._reference.to(rows.device)
        b, c = self._cosine_embeddings(reference, "brand"), self._cosine_embeddings(rows, "candidate")
        sims = sum(c[m] @ b[m].T for m in b)  # [n, R]
        sims = sims.masked_fill(rows[:, None] == reference[None, :], float("-inf"))
        return sims.topk(min(self.hub_k, len(reference) - 1), dim=1).values.mean(1, keepdim=True)

    def set_pool(self, pool: Tensor, positive_keys: Tensor, num_accounts: int) -> None:
        """Negatives of the pool softmax: ``pool [M]`` account rows and the known positives as
        ``brand * num_accounts + influencer`` keys; kept as ``known [num_accounts, M]`` bool, whether
        pool entry ``j`` is a known positive of account row ``a``."""
        pool, keys = pool.long().cpu(), positive_keys.long().cpu()
        known = torch.zeros(num_accounts, len(pool), dtype=torch.bool)
        column = torch.full((num_accounts,), -1, dtype=torch.long)
        column[pool] = torch.arange(len(pool))
        brand, influencer = keys // num_accounts, keys % num_accounts
        inside = column[influencer] >= 0
        known[brand[inside], column[influencer[inside]]] = True
        self._pool, self._known, self._column = pool, known, column
        self._degree = torch.bincount(influencer, minlength=num_accounts).float()

    # ------------------------------------------------------------------ scoring
    def _unit(self, m: str, rows: Tensor) -> Tensor:
        return F.normalize(self.features(m, rows), dim=-1)

    def _encode(self, name: str, rows: Tensor, side: str) -> Tensor:
        x = torch.cat([self.features(m, rows) for m in self.inputs[name]], dim=-1)
        encoders = self.brand_encoders if side == "brand" or self.shared else self.candidate_encoders
        return encoders[name](x)

    def _cosine_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        """``{m: w_m (.) u_m(rows)}`` (brand side) or ``{m: u_m(rows)}`` (candidates), ``[n, d_m]`` each."""
        out = {}
        for m in self.cosine:
            u = self._unit(m, rows)
            out[m] = u * self.weights[m] if side == "brand" and m in self.weights else u
        return out

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        """``cos_<m>``: ``w_m (.) u_m`` (brand side) and ``u_m`` (candidates); ``res_<k>``: ``alpha_k g_k``
        (brand side) and ``h_k`` (candidates)."""
        out = {f"cos_{m}": e for m, e in self._cosine_embeddings(rows, side).items()}
        if self.hub is not None:  # brand side beta, candidate side -r(i): the inner product is -sum_m beta_m r_m(i)
            out["hub"] = self.hub.expand(len(rows), -1) if side == "brand" else -self.hubness(rows)
        for name in self.inputs:
            e = self._encode(name, rows, side)
            out[f"res_{name}"] = self.gates[name] * e if side == "brand" else e
        return out

    def branch_scores(self, brands: Tensor, candidates: Tensor) -> dict[str, Tensor]:
        b, c = self.branch_embeddings(brands, "brand"), self.branch_embeddings(candidates, "candidate")
        return {k: b[k] @ c[k].T for k in b}

    def _scores(self, brands: Tensor, items: Tensor) -> Tensor:
        """Total scores of brands ``[B]`` against their own items ``[B, k]`` -> ``[B, k]``."""
        b = self.branch_embeddings(brands, "brand")
        c = self.branch_embeddings(items.reshape(-1), "candidate")
        return sum((b[k][:, None, :] * c[k].view(*items.shape, -1)).sum(-1) for k in b)

    # ------------------------------------------------------------------ training
    def loss(self, rows: Tensor) -> dict[str, Tensor]:
        """Loss of training rows ``(brand, positive, negatives...) [B, 2 + r]`` and its terms."""
        brands, scale = rows[:, 0], self.log_scale.exp()
        terms: dict[str, Tensor] = {}
        if self.negative_kind == "rows":
            logits = scale * self._scores(brands, rows[:, 1:])  # [B, 1 + r]
            if self.loss_kind == "softmax":
                terms["softmax"] = F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=rows.device))
            else:
                terms["bpr"] = F.softplus(logits[:, 1:] - logits[:, :1]).mean()
        else:
            if self._pool is None:
                raise RuntimeError("negatives=pool needs the training pool: attach_data(datamodule) or set_pool()")
            weight = None
            if self.debias_degree:
                weight = 1.0 / self._degree.to(rows.device)[rows[:, 1]].clamp(min=1)
                weight = weight / weight.mean()
            if self.direction in ("row", "both"):
                terms["softmax_row"] = self._weighted(self._row_softmax(rows, scale), weight)
            if self.direction in ("column", "both"):
                terms["softmax_column"] = self._weighted(self._column_softmax(rows, scale), weight)
        value = torch.stack(list(terms.values())).mean()
        terms["scale"] = scale.detach()
        terms["loss"] = value
        return terms

    @staticmethod
    def _weighted(losses: Tensor, weight: Tensor | None) -> Tensor:
        return losses.mean() if weight is None else (losses * weight).mean()

    def _row_softmax(self, rows: Tensor, scale: Tensor) -> Tensor:
        """``[B]``: each row's positive against every pool influencer that is not a known positive of its brand."""
        brands, pool = rows[:, 0], self._pool.to(rows.device)
        b = self.branch_embeddings(brands, "brand")
        c_pool = self.branch_embeddings(pool, "candidate")
        positive = self._scores(brands, rows[:, 1:2])  # [B, 1]
        negative = sum(b[k] @ c_pool[k].T for k in b)  # [B, M]
        known = self._known.to(rows.device)[brands]  # [B, M]: the brand's positives are no negatives
        logits = scale * torch.cat([positive, negative], dim=1)  # [B, 1 + M]
        # masked after scaling: -inf times the scale's gradient would be NaN
        logits = logits.masked_fill(torch.cat([torch.zeros_like(known[:, :1]), known], dim=1), float("-inf"))
        return F.cross_entropy(logits, torch.zeros(len(rows), dtype=torch.long, device=rows.device), reduction="none")

    def _column_softmax(self, rows: Tensor, scale: Tensor) -> Tensor:
        """``[B]``: each row's brand against every reference (training) brand, for the row's positive influencer."""
        brands, positives = rows[:, 0], rows[:, 1]
        reference = self._reference.to(rows.device)  # [R]
        b = self.branch_embeddings(reference, "brand")
        c = self.branch_embeddings(positives, "candidate")
        logits = scale * sum(c[k] @ b[k].T for k in b)  # [B, R]
        target = reference[None, :] == brands[:, None]  # [B, R]
        # other brands this influencer is a known positive of are no negatives
        known = self._known.to(rows.device)[reference][:, self._column.to(rows.device)[positives]].T  # [B, R]
        logits = logits.masked_fill(known & ~target, float("-inf"))
        return F.cross_entropy(logits, target.float().argmax(1), reduction="none")
