"""Short training runs for the models' tests: a few optimiser steps on one fixed batch, or a
few epochs of bamir-train on the planted store."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
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


def planted_run(where: Path, data_dir: Path, overrides: list[str], epochs: int = 3) -> tuple[dict, list[float]]:
    """``(metrics, epoch losses)`` of ``epochs`` epochs of bamir-train on the planted store with the
    quick test settings and ``overrides`` (a ``model=...`` among them), run in ``where``."""
    from omegaconf import open_dict

    from bamir.train import train
    from tests.helpers.compose import FAST_OVERRIDES, compose_config

    fast = [o for o in FAST_OVERRIDES if not o.startswith(("model=", "trainer.max_epochs="))]
    cfg = compose_config("train", where, [*fast, f"trainer.max_epochs={epochs}", *overrides], fast=False)
    with open_dict(cfg):
        cfg.paths.data_dir = str(data_dir)
    metrics = train(cfg)
    csv = next((Path(where) / "run").rglob("metrics.csv"))
    return metrics, pd.read_csv(csv)["train/loss"].dropna().tolist()
