"""A model's loss on one fixed batch before and after a few optimiser steps."""

from __future__ import annotations

import torch


def fit_fixed_batch(model, rows: torch.Tensor, lr: float, steps: int) -> tuple[float, float]:
    """``(loss before, loss after)`` ``steps`` Adam steps at ``lr`` on the training rows ``rows``
    (``model.loss(rows)["loss"]``); the parameters are left trained."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    first = model.loss(rows)["loss"].item()
    for _ in range(steps):
        opt.zero_grad()
        model.loss(rows)["loss"].backward()
        opt.step()
    return first, model.loss(rows)["loss"].item()
