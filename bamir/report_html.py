"""A self-contained HTML report of a ranking run (jinja2): one file, images embedded as base64.

Per brand: its own sample posts, then its top influencers with thumbnails of their most
recent posts, score, followers, engagement and a bar of each branch's share of the score.
Above them, the training run's metric table (``metrics.json``) and its plots: learning
curves drawn from the CSV logger's ``metrics.csv`` and any PNG the run folder holds.

    from bamir.report_html import render_report
    render_report("outputs/rank/runs/<run>/ranking.json", "report.html")

The input is what ``bamir-rank`` writes as ``ranking.json`` (:func:`bamir.ranking.app.rank`);
thumbnails come from the raw dataset it names (``raw_root``; a new brand's own folder for
its posts). Nothing is fetched at view time: no script, font or style sheet from elsewhere.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import math
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

log = logging.getLogger(__name__)

TEMPLATE = "report.html.j2"
#: bar colours of the branches, in order (colour-blind safe)
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")


# --------------------------------------------------------------------------- images
class Thumbnails:
    """Recent post images of accounts as base64 JPEG data URIs (made once per file)."""

    def __init__(self, px: int = 96):
        self.px = int(px)
        self._cache: dict[Path, str | None] = {}
        self._posts: dict[Path, pd.DataFrame] = {}

    def posts(self, root: Path) -> pd.DataFrame:
        if root not in self._posts:
            from bamir.data.schema import POSTS, read_table

            try:
                frame = read_table(root, POSTS)
            except FileNotFoundError:
                frame = pd.DataFrame(columns=["account_id", "timestamp", "image", "caption"])
            frame = frame.copy()
            frame["image"] = frame["image"].fillna("").astype(str)
            frame = frame[frame["image"] != ""]
            self._posts[root] = frame.sort_values("timestamp", ascending=False, kind="stable")
        return self._posts[root]

    def recent(self, root: Path | None, account: str, n: int) -> list[dict[str, str]]:
        """Up to ``n`` thumbnails of the account's most recent posts with a readable image."""
        from bamir.data.validate import image_file

        if root is None or n <= 0:
            return []
        posts = self.posts(root)
        out = []
        for rec in posts[posts["account_id"].astype(str) == str(account)].itertuples():
            path = image_file(root, rec.image)  # never a file outside the dataset folder
            uri = None if path is None else self.data_uri(path)
            if uri is not None:
                caption = str(getattr(rec, "caption", "") or "")
                out.append({"src": uri, "title": caption[:140]})
            if len(out) >= n:
                break
        return out

    def data_uri(self, path: Path) -> str | None:
        if path not in self._cache:
            self._cache[path] = self._encode(path)
        return self._cache[path]

    def _encode(self, path: Path) -> str | None:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(path) as img:
                img = img.convert("RGB")
                img.thumbnail((self.px, self.px))
                buffer = io.BytesIO()
                img.save(buffer, format="JPEG", quality=80)
        except (OSError, UnidentifiedImageError, ValueError) as err:
            log.debug("thumbnail of %s skipped: %s", path, err)
            return None
        return "data:image/jpeg;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------- the training run
def run_metrics(run_dir: Path | None) -> dict[str, Any] | None:
    """``{"columns": [...], "rows": [(split, [values...])]}`` from the run's ``metrics.json``."""
    from bamir.report import metric_rows

    if run_dir is None or not (run_dir / "metrics.json").is_file():
        return None
    try:
        metrics = json.loads((run_dir / "metrics.json").read_text())
    except (OSError, ValueError):
        return None
    columns, rows = metric_rows(metrics)
    return {"columns": columns, "rows": rows} if rows else None


def run_plots(run_dir: Path | None, max_files: int = 6) -> list[dict[str, str]]:
    """Learning curves from ``csv/metrics.csv`` and the PNG files of the run folder, as data URIs."""
    if run_dir is None or not run_dir.is_dir():
        return []
    plots = []
    for csv_path in sorted(run_dir.glob("**/metrics.csv"))[:1]:
        plot = _learning_curves(csv_path)
        if plot:
            plots.append(plot)
    for png in sorted(run_dir.glob("**/*.png"))[:max_files]:
        data = png.read_bytes()
        plots.append({"title": png.name, "src": "data:image/png;base64," + base64.b64encode(data).decode("ascii")})
    return plots


def _learning_curves(path: Path) -> dict[str, str] | None:
    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError, pd.errors.EmptyDataError):
        return None
    if "epoch" not in frame:
        return None
    wanted = [c for c in frame.columns if c == "train/loss" or c in ("val/mrr", "val/map")
              or (c.startswith("val/auc") and not c.endswith("_best"))]
    if not wanted:
        return None
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    per_epoch = frame.groupby("epoch")[wanted].mean(numeric_only=True)
    fig, axes = plt.subplots(1, 2 if "train/loss" in wanted and len(wanted) > 1 else 1, figsize=(8, 3), squeeze=False)
    axes = axes[0]
    ax = 0
    if "train/loss" in wanted:
        axes[ax].plot(per_epoch.index, per_epoch["train/loss"], marker="o", color=PALETTE[0])
        axes[ax].set_title("training loss")
        axes[ax].set_xlabel("epoch")
        ax = min(ax + 1, len(axes) - 1)
    others = [c for c in wanted if c != "train/loss"]
    for i, column in enumerate(others):
        axes[ax].plot(per_epoch.index, per_epoch[column], marker="o", label=column, color=PALETTE[(i + 1) % len(PALETTE)])
    if others:
        axes[ax].set_title("validation")
        axes[ax].set_xlabel("epoch")
        axes[ax].legend(fontsize=8)
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=90)
    plt.close(fig)
    return {"title": "learning curves", "src": "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")}


# --------------------------------------------------------------------------- rendering
def _fmt_int(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{int(value):,}"


def _fmt_pct(value) -> str:
    return "–" if value is None or (isinstance(value, float) and not math.isfinite(value)) else f"{100 * value:.2f}%"


def render_report(ranking: Mapping[str, Any] | str | Path, out_path: str | Path, *, raw_root: str | Path | None = None,
                  run_dir: str | Path | None = None, thumbnails: int = 4, brand_posts: int = 6, thumb_px: int = 96,
                  max_brands: int | None = 50, title: str | None = None) -> Path:
    """Write the HTML report of a ranking (``ranking.json`` content or its path) to ``out_path``.

    Args:
        raw_root: raw dataset for thumbnails (default: the ranking's ``raw_root``).
        run_dir: the training run folder for metrics and plots (default: the ranking's ``train_run``).
        thumbnails: recent posts shown per influencer; brand_posts: sample posts per brand.
        thumb_px: thumbnail size (longest side, pixels).
        max_brands: at most this many brands in the report (None: all).
    """
    import jinja2

    if not isinstance(ranking, Mapping):
        ranking = json.loads(Path(ranking).read_text())
    raw = Path(raw_root) if raw_root else (Path(ranking["raw_root"]) if ranking.get("raw_root") else None)
    if raw is not None and not raw.is_dir():
        log.warning("report: raw dataset %s not found: no thumbnails", raw)
        raw = None
    run = Path(run_dir) if run_dir else (Path(ranking["train_run"]) if ranking.get("train_run") else None)
    thumbs = Thumbnails(thumb_px)
    branches = list(ranking.get("branches", []))
    colours = {b: PALETTE[i % len(PALETTE)] for i, b in enumerate(branches)}
    brands = []
    for brand in ranking["brands"][: max_brands or None]:
        root = Path(brand["posts_root"]) if brand.get("posts_root") else raw
        rows = []
        for item in brand["top"]:
            shares = item.get("shares") or {}
            bars = [{"branch": b, "width": round(100 * abs(shares.get(b) or 0.0), 1), "colour": colours[b],
                     "negative": (shares.get(b) or 0.0) < 0,
                     "label": f"{b}: {100 * (shares.get(b) or 0.0):+.0f}% ({(item['contributions'].get(b) or 0.0):+.3f})"}
                    for b in branches]
            rows.append({**item, "followers_text": _fmt_int(item.get("followers")),
                         "engagement_text": _fmt_pct(item.get("engagement")), "bars": bars,
                         "thumbs": thumbs.recent(raw, item["id"], thumbnails)})
        brands.append({**brand, "anchor": f"brand-{len(brands)}", "rows": rows,
                       "followers_text": _fmt_int(brand.get("followers")),
                       "engagement_text": _fmt_pct(brand.get("engagement")),
                       "posts": thumbs.recent(root, brand["id"], brand_posts)})
    env = jinja2.Environment(loader=jinja2.PackageLoader("bamir", "templates"),
                             autoescape=jinja2.select_autoescape(["html", "j2"]), undefined=jinja2.StrictUndefined)
    html = env.get_template(TEMPLATE).render(
        title=title or f"bamir ranking: {ranking.get('dataset') or 'dataset'}", ranking=ranking, brands=brands,
        omitted=max(0, len(ranking["brands"]) - len(brands)), branches=[{"name": b, "colour": colours[b]} for b in branches],
        metrics=run_metrics(run), plots=run_plots(run), thumb_px=thumb_px, has_raw=raw is not None,
    )
    from bamir.utils import atomic_write_text

    out = Path(out_path)
    atomic_write_text(out, html)
    return out
