"""Neighbour cosine ranker: the hubness-corrected cosine plus what similar training brands chose.

A brand-to-brand transfer (item-based collaborative filtering across brands): for a brand ``b``, its
nearest training brands ``b'`` by one *similarity group* ``g`` of modalities (for the release: the
brands' image vectors, object and scene, which the influencers lack; or the text side, topic and
concept) vote with the influencers they are known to have chosen. With the unit-normalised rows
``u_m(a) = x_m(a) / |x_m(a)|`` of the cosine modalities ``m`` (topic, concept) and the known positives
``P(b')`` of the training brands::

    s(b, i) = sum_m  < w_m (.) u_m(b), u_m(i) >                         cosine part
            - beta r(i)                                                 hubness part (hub_k > 0)
            + sum_g sum_m  gamma_gm < n_gm(b), u_m(i) >                 neighbour part

    n_gm(b) = sum_{b'}  a_g(b, b')  mean_{p in P(b')} u_m(p)            profile of b's neighbours
    a_g(b, .) = softmax over the k_g nearest training brands b' != b of S_g(b, b') / tau_g
    S_g(b, b') = sum_{m' in g} < u_m'(b), u_m'(b') >                    brand-to-brand similarity

- The cosine and hubness parts, the loss (a full softmax over the training pool), the learned cosine
  weights ``w_m``, ``beta`` and the logit scale are those of
  :class:`~bamir.models.residual_cosine.ResidualCosine` (see its docstring), of which this is a subclass;
  its learned residual branches are available but off in ``conf/model/neighbour_cosine.yaml``.
- ``gamma_gm``: one learned weight per (group, cosine modality), initialised at ``neighbour_init``
  (0: the score is the hubness-corrected cosine at initialisation; training moves the weights, and
  the best epoch on the inner validation carve is tested).
- The reference brands ``b'`` and their positives are the brands the run fits and their training
  pairs (:meth:`attach_data`); a brand is never its own neighbour, so a training brand's profile,
  scored in the loss, is made of the other brands' choices only, as a new brand's is.
- Brand side only: the similarity group is read for brands (``b`` and ``b'``), never for candidates,
  so a modality the influencers lack (the release's image vectors, served with ``data.missing=neutral``)
  can be a similarity group. A group whose modalities are not all served is dropped (logged).
- It factorises: brand side ``gamma_gm n_gm(b)`` ``[n, d_m]``, candidate side ``u_m(i)``; the
  ranking app's fast path applies.

Shapes: :meth:`branch_scores` ``(brands [B], candidates [C]) -> {branch: [B, C]}`` with the branches
``cos_<m>``, ``hub``, ``res_<k>`` (when configured) and ``nb_<g>_<m>``; :meth:`branch_embeddings`
``(rows [n], side) -> {branch: [n, d]}``.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from bamir.models.residual_cosine import ResidualCosine

log = logging.getLogger(__name__)


class NeighbourCosine(ResidualCosine):
    """:class:`~bamir.models.residual_cosine.ResidualCosine` plus the neighbour part (module docstring).

    Args:
        input_dims: ``{modality: dim}`` of the attached feature store.
        neighbours: ``{group: {similarity: [modality...], k: int, temperature: float}}``: the brand
            similarity groups; a group whose similarity modalities are not all served is dropped (logged).
        neighbour_init: initial ``gamma_gm``; ``learn_neighbours``: whether they are learned.
        **kwargs: those of :class:`~bamir.models.residual_cosine.ResidualCosine` (``cosine``, ``hub_k``, ...).
    """

    def __init__(
        self,
        input_dims: dict[str, int],
        neighbours: dict[str, dict[str, Any]] | None = None,
        neighbour_init: float = 0.0,
        learn_neighbours: bool = True,
        **kwargs: Any,
    ):
        super().__init__(input_dims, **kwargs)
        self.save_hyperparameters(ignore=["optimizer", "scheduler"])
        neighbours = dict(neighbours or {})
        for name, spec in neighbours.items():
            if int(spec.get("k", 10)) < 1 or float(spec.get("temperature", 0.1)) <= 0:
                raise ValueError(f"neighbour group {name!r}: k must be >= 1 and temperature > 0, got {spec}")
            if not spec.get("similarity"):
                raise ValueError(f"neighbour group {name!r}: name its similarity modalities")
        self.requested_modalities = tuple(sorted(set(self.requested_modalities)
                                                 | {m for g in neighbours.values() for m in g["similarity"]}))
        self.groups: dict[str, dict[str, Any]] = {}
        for name, spec in neighbours.items():
            missing = [m for m in spec["similarity"] if m not in input_dims]
            if missing:
                log.info("neighbour cosine: group %r dropped, %s not served", name, missing)
                continue
            self.groups[name] = {"similarity": list(spec["similarity"]), "k": int(spec.get("k", 10)),
                                 "temperature": float(spec.get("temperature", 0.1))}
        if self.groups and not self.cosine:
            raise ValueError("neighbour cosine: the neighbour part scores with the cosine modalities, and none is served")
        self.neighbour_weights = nn.ParameterDict({
            f"{g}_{m}": nn.Parameter(torch.tensor(float(neighbour_init)), requires_grad=learn_neighbours)
            for g in self.groups for m in self.cosine})
        self._nb_brands: Tensor | None = None  # [R] reference brand rows
        self._nb_pairs: tuple[Tensor, Tensor] | None = None  # (reference index [P], positive row [P])

    # ------------------------------------------------------------------ data
    @property
    def modalities(self) -> list[str]:
        return sorted(set(super().modalities) | {m for g in self.groups.values() for m in g["similarity"]})

    def attach_data(self, datamodule) -> None:
        """The pool, the known positives and the reference brands (:class:`ResidualCosine`), and the
        training pairs the neighbour part transfers."""
        super().attach_data(datamodule)
        data = getattr(datamodule, "train_data", None)
        if data is not None:
            self.set_neighbours(data.brands, data.positives)

    def set_neighbours(self, brands: Tensor, positives: Tensor) -> None:
        """The training pairs ``(brands [P], positives [P])`` (account rows): the reference brands are
        their distinct brands."""
        brands, positives = brands.long().cpu(), positives.long().cpu()
        reference, index = torch.unique(brands, return_inverse=True)
        if self.groups and len(reference) < 2:
            raise ValueError("neighbour cosine: the neighbour part needs at least two training brands")
        self._nb_brands, self._nb_pairs = reference, (index, positives)

    # ------------------------------------------------------------------ scoring
    def _check_neighbours(self) -> None:
        if self._nb_brands is None:
            raise RuntimeError("the neighbour part needs the training pairs: attach_data(datamodule) or set_neighbours()")

    def _centroids(self, device: torch.device) -> dict[str, Tensor]:
        """``{m: [R, d_m]}``: each reference brand's mean unit vector of its positives."""
        self._check_neighbours()
        index, positives = (t.to(device) for t in self._nb_pairs)
        n = len(self._nb_brands)
        count = torch.bincount(index, minlength=n).clamp(min=1).to(torch.get_default_dtype())[:, None]
        out = {}
        for m in self.cosine:
            u = self._unit(m, positives)
            out[m] = torch.zeros(n, u.shape[1], dtype=u.dtype, device=device).index_add_(0, index, u) / count.to(u.dtype)
        return out

    def neighbour_weights_of(self, rows: Tensor, group: str) -> Tensor:
        """``a_g(rows, .)``: ``[n, R]``, the softmax over each row's ``k`` nearest reference brands (itself excluded)."""
        self._check_neighbours()
        spec = self.groups[group]
        reference = self._nb_brands.to(rows.device)
        sims = sum(self._unit(m, rows) @ self._unit(m, reference).T for m in spec["similarity"])  # [n, R]
        sims = sims.masked_fill(rows[:, None] == reference[None, :], float("-inf"))
        top = sims.topk(min(spec["k"], len(reference) - 1), dim=1)
        weights = torch.softmax(top.values / spec["temperature"], dim=1)
        return torch.zeros_like(sims).scatter_(1, top.indices, weights)

    def branch_embeddings(self, rows: Tensor, side: str) -> dict[str, Tensor]:
        """:class:`ResidualCosine`'s, plus ``nb_<g>_<m>``: ``gamma_gm n_gm`` (brand side) and ``u_m`` (candidates)."""
        out = super().branch_embeddings(rows, side)
        if not self.groups:
            return out
        if side == "brand":
            centroids = self._centroids(rows.device)
            for g in self.groups:
                a = self.neighbour_weights_of(rows, g)
                for m in self.cosine:
                    out[f"nb_{g}_{m}"] = self.neighbour_weights[f"{g}_{m}"] * (a @ centroids[m])
        else:
            for g in self.groups:
                for m in self.cosine:
                    out[f"nb_{g}_{m}"] = F.normalize(self.features(m, rows), dim=-1)
        return out
