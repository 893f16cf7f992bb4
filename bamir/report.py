"""Plain-text reports of a run's metrics."""

from __future__ import annotations

from typing import Any

from bamir.metric_names import display_order


#: row order of the table (other splits follow)
SPLIT_ORDER = {"val": 0, "test": 1}
#: why a cAUC column can be empty: said under the table instead of showing an empty column
CAUC_UNDEFINED = ("cauc: not defined here: it ranks each brand's positives against the positives of other "
                  "evaluated brands of its category, and no evaluated brand has such a peer")


def metric_rows(metrics: dict[str, Any]) -> tuple[list[str], list[tuple[str, list[str]]]]:
    """Columns and ``(split, formatted cells)`` rows of the ranking metrics in ``metrics``.

    Keys are ``<split>/<metric>``; a key ``best/epoch`` (the evaluated checkpoint's epoch) labels every
    row ``<split> (epoch N)``, so a reader sees which weights each row describes. A metric that is
    undefined (None) in every row has no column.
    """
    splits: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        prefix, _, name = key.partition("/")
        if name and display_order([name]):
            splits.setdefault(prefix, {})[name] = value
    columns = display_order({m for row in splits.values() for m, v in row.items() if v is not None})
    epoch = metrics.get("best/epoch")
    rows = []
    for split, row in sorted(splits.items(), key=lambda item: SPLIT_ORDER.get(item[0], len(SPLIT_ORDER))):
        cells = []
        for m in columns:
            v = row.get(m)
            cells.append("" if v is None else (f"{v:.0f}" if m in ("medr", "n_queries") else f"{v:.3f}"))
        rows.append((split if epoch is None else f"{split} (epoch {int(epoch)})", cells))
    return columns, rows


def metric_table(metrics: dict[str, Any]) -> str:
    """A Markdown table: one row per split prefix (val, test), one column per ranking metric."""
    columns, rows = metric_rows(metrics)
    if not rows:
        return "(no ranking metrics)"
    lines = ["| split | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    lines += [f"| {split} | " + " | ".join(cells) + " |" for split, cells in rows]
    if "cauc" not in columns and any(key.endswith("/cauc") for key in metrics):
        lines.append(CAUC_UNDEFINED)
    return "\n".join(lines)
