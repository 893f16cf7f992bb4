"""The benchmark's Markdown tables: point estimates with CIs and p-values, and the per-fold table."""

from __future__ import annotations

import math

import pandas as pd


LABELS = {"auc_global": "AUC (global)", "auc_brand": "AUC (brand)", "auc_pairs": "AUC (pairs)", "cauc": "cAUC",
          "recall@10": "R@10", "recall@50": "R@50", "mrr": "MRR", "map": "MAP", "medr": "MedR", "ndcg@10": "NDCG@10"}


def markdown_fold_table(folds: pd.DataFrame) -> str:
    """Each (model, fold)'s point metrics, mean over seeds: one Markdown table."""
    metrics = [m for m in dict.fromkeys(folds["metric"]) if folds.loc[folds["metric"] == m, "value"].notna().any()]
    wide = folds.groupby(["model", "fold", "metric"], sort=False)["value"].mean().unstack("metric")
    sizes = folds.groupby(["model", "fold"], sort=False)[["brands", "candidates"]].first()
    lines = ["Per fold: each fold's own metrics (its brands against its candidates), mean over seeds.", "",
             "| model | fold | brands x candidates | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |",
             "|---|---|---|" + "---|" * len(metrics)]
    for (model, fold), row in wide.iterrows():
        size = sizes.loc[(model, fold)]
        cells = [_fmt(m, float(row[m])) for m in metrics]
        lines.append(f"| {model} | {fold} | {int(size.brands)} x {int(size.candidates)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _fmt(metric: str, value: float) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return f"{value:.1f}" if metric == "medr" else f"{value:.3f}"


def markdown_table(table: pd.DataFrame, level: float = 0.95, split: str = "test") -> str:
    """Two Markdown tables: mean [CI] per model and metric, then the paired test against the reference."""
    metrics = list(dict.fromkeys(table["metric"]))
    models = list(dict.fromkeys(table["model"]))
    cell = {(r.model, r.metric): r for r in table.itertuples()}
    seeds = {r.model: r.seeds for r in table.itertuples()}
    brands = int(table["brands"].iloc[0])
    head = "| model | seeds | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |"
    rule = "|---|---|" + "---|" * len(metrics)
    which = {"test": "test brands", "val": "validation brands",
             "cv": "training brands, each reported by the model of the cross-validation fold that held it out"
             }.get(split, f"{split} brands")
    lines = [f"Mean over seeds [{level:.0%} CI, bootstrap over {brands} {which}]; MedR: lower is better.", "",
             head, rule]
    if split == "cv":
        lines[0] += (" The global AUC compares scores within a fold only: the pair-weighted mean of the folds' "
                     "global AUCs.")
    for model in models:
        cells = [f"{_fmt(m, cell[model, m].mean)} [{_fmt(m, cell[model, m].ci_low)}, {_fmt(m, cell[model, m].ci_high)}]"
                 for m in metrics]
        lines.append(f"| {model} | {seeds[model]} | " + " | ".join(cells) + " |")
    reference = table["reference"].iloc[0]
    if reference:
        lines += ["", f"Paired bootstrap test against `{reference}`: difference of means (two-sided p).", "",
                  "| model | " + " | ".join(LABELS.get(m, m) for m in metrics) + " |", "|---|" + "---|" * len(metrics)]
        for model in models:
            if model == reference:
                continue
            cells = []
            for m in metrics:
                r = cell[model, m]
                if math.isnan(r.delta):
                    cells.append("")
                    continue
                p = "p<0.001" if r.p_value < 0.001 else f"p={r.p_value:.3f}"
                cells.append(f"{r.delta:+.1f} ({p})" if m == "medr" else f"{r.delta:+.3f} ({p})")
            lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
