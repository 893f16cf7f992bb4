"""The benchmark's plots: recall@k curves, AUC per category, score distributions."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bamir.benchmark.scores import RunScores


def _pyplot():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_recall_curves(runs: dict[str, list[RunScores]], path: str | Path, max_k: int = 100,
                       split: str = "test") -> Path:
    """Recall@k for k = 1..max_k, one line per model (mean over brands with a positive, then over seeds)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for name, items in runs.items():
        curves = []
        for r in items:
            st = r.statistics(curve_k=max_k)
            curves.append(st["recall_curve"][st["n_pos"] > 0].mean(0))
        curve = torch.stack(curves).mean(0).numpy()
        ax.plot(np.arange(1, len(curve) + 1), curve, label=name)
    ax.set_xlabel("k")
    ax.set_ylabel("recall@k")
    ax.set_ylim(0, 1)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    which = {"val": "validation", "cv": "cross-validated"}.get(split, split)
    ax.set_title(f"Recall@k on the {which} brands")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def category_auc(runs: dict[str, list[RunScores]]) -> pd.DataFrame:
    """Per-brand AUC averaged by brand category (rows) for each model (columns), mean over seeds."""
    columns = {}
    for name, items in runs.items():
        per_seed = []
        for r in items:
            st = r.statistics(curve_k=1)
            cats = r.categories or [""] * len(r.brands)
            frame = pd.DataFrame({"category": [c or "(unknown)" for c in cats], "auc": st["auc"].numpy()})
            per_seed.append(frame.dropna().groupby("category")["auc"].mean())
        columns[name] = pd.concat(per_seed, axis=1).mean(axis=1)
    return pd.DataFrame(columns)


def plot_category_auc(runs: dict[str, list[RunScores]], path: str | Path) -> Path:
    """Grouped bars: per-category AUC (brand-averaged) of each model."""
    plt = _pyplot()
    table = category_auc(runs)
    n_cat, n_models = len(table.index), len(table.columns)
    fig, ax = plt.subplots(figsize=(max(6.4, 0.16 * n_cat * (n_models + 1)), 4.6))
    width = 0.8 / max(1, n_models)
    x = np.arange(n_cat)
    for j, name in enumerate(table.columns):
        ax.bar(x + (j - (n_models - 1) / 2) * width, table[name].to_numpy(), width, label=name)
    ax.set_xticks(x, table.index, rotation=45, ha="right")
    ax.axhline(0.5, color="grey", lw=0.8, ls="--")
    ax.set_ylim(0, 1)
    ax.set_ylabel("AUC (per brand, averaged)")
    ax.set_title("AUC by brand category")
    ax.legend(fontsize=7, ncol=min(5, n_models), loc="upper center", bbox_to_anchor=(0.5, -0.28), frameon=False)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)


def plot_score_distributions(runs: dict[str, list[RunScores]], path: str | Path, bins: int = 40) -> Path:
    """One panel per model: density of the test scores of positive and negative pairs (first seed)."""
    plt = _pyplot()
    names = list(runs)
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.6 * rows), squeeze=False)
    for ax, name in zip(axes.flat, names):
        r = runs[name][0]
        pos, neg = [], []
        for part in r.parts:  # a cross-validation's folds: their pairs together
            s = part.scores.double()
            finite = torch.isfinite(s)
            pos.append(s[part.labels & finite].numpy())
            neg.append(s[~part.labels & finite].numpy())
        pos, neg = np.concatenate(pos), np.concatenate(neg)
        edges = np.histogram_bin_edges(np.concatenate([pos, neg]), bins=bins)
        ax.hist(neg, bins=edges, density=True, alpha=0.55, label="negatives")
        ax.hist(pos, bins=edges, density=True, alpha=0.55, label="positives")
        ax.set_title(f"{name} (seed {r.seed})", fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle("Test scores of positive and negative pairs")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return Path(path)
