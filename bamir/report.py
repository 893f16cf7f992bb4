"""Plain-text reports of a run's metrics."""

from __future__ import annotations

#: display order of the ranking metrics (METHOD.md section 2)
METRIC_ORDER = ("auc_global", "auc_brand", "auc_pairs", "cauc", "recall@10", "recall@50", "mrr", "map", "medr",
                "ndcg@10", "n_queries")


def metric_table(metrics: dict[str, float | None]) -> str:
    """A Markdown table: one row per split prefix (val, test), one column per ranking metric."""
    splits: dict[str, dict[str, float | None]] = {}
    for key, value in metrics.items():
        prefix, _, name = key.partition("/")
        if name in METRIC_ORDER:
            splits.setdefault(prefix, {})[name] = value
    if not splits:
        return "(no ranking metrics)"
    columns = [m for m in METRIC_ORDER if any(m in row for row in splits.values())]
    lines = ["| split | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for split, row in splits.items():
        cells = []
        for m in columns:
            v = row.get(m)
            cells.append("" if v is None else (f"{v:.0f}" if m in ("medr", "n_queries") else f"{v:.3f}"))
        lines.append(f"| {split} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
