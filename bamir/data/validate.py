"""Check a raw dataset folder against the schema (:mod:`bamir.data.schema`).

:func:`validate_dataset` returns a :class:`Report` of every violation, each naming the
file, the row (0-based data row of the table; line ``row + 2`` of a CSV with its header)
and the field. Errors make the dataset unusable as it is; warnings describe data a stage
can live with (empty biographies, posts without image, reposts, non-English captions).
:func:`require_valid` is the check every stage runs first: it raises
:class:`ValidationError` on errors and logs warnings. ``bamir-validate PATH`` prints the
report and exits 1 on errors.

Codes (severity): missing_file, unreadable, missing_key, schema_version, bad_categories,
count_mismatch, missing_column, missing_value, duplicate_id, bad_kind, unknown_category,
not_integer, negative_count, unknown_account, wrong_kind, bad_timestamp,
image_path_absolute, image_path_escapes, image_missing, image_unreadable, bad_score,
bad_split, split_overlap, split_brand_without_pairs, positive_not_candidate, bad_row,
bad_relation, bad_node, bad_info, affinity_shape (errors); extra_column, missing_provenance,
missing_default_split, influencer_category, empty_biography, empty_business_category,
duplicate_username, account_without_posts, no_image, duplicate_image_path, empty_caption,
caption_no_text, caption_non_english, duplicate_post, duplicate_pair, brand_without_pairs,
duplicate_in_split, duplicate_concept, unknown_concept, missing_counts,
missing_categories (warnings).
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import logging
import os
import re
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

import numpy as np
import pandas as pd

from bamir.data import schema

#: The validator's rules; raised when they change, so that :func:`dataset_fingerprint` changes too.
RULES_VERSION = 1

log = logging.getLogger(__name__)

ERROR, WARNING = "error", "warning"

#: Codes that are warnings; every other code is an error.
WARNING_CODES = frozenset({
    "extra_column", "missing_provenance", "missing_default_split", "influencer_category", "empty_biography",
    "empty_business_category", "duplicate_username", "account_without_posts", "no_image", "duplicate_image_path",
    "empty_caption", "caption_no_text", "caption_non_english", "duplicate_post", "duplicate_pair",
    "brand_without_pairs", "duplicate_in_split", "duplicate_concept", "unknown_concept", "missing_counts",
    "missing_categories",
})

# function words for the caption language heuristic
_ENGLISH = frozenset(("the and with my this for what all some so of to in on is it at a an we i you our your who "
                      "else back after before about still that was be are").split())
_FOREIGN = frozenset(("le la les des est et avec pour une dans du sur très nous je mon ma mes vous ce de c'est "
                      "el los las es con para muy del por mi y que qué más hoy día gracias "
                      "der das und mit ist ein eine für ich nicht sehr heute mein "
                      "il che della sono oggi molto mio di grazie tutti "
                      "os um uma não muito hoje meu foi com minha obrigado pelo vocês").split())
_TAGS = re.compile(r"[#@][\w.]+|https?://\S+")
_WORDS = re.compile(r"[^\W\d_]+(?:'[^\W\d_]+)?")


@dataclass(frozen=True)
class Issue:
    """One violation: where (file, row, field) and what."""

    severity: str
    code: str
    file: str
    row: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = self.file + (f" row {self.row}" if self.row is not None else "")
        where += f" [{self.field}]" if self.field else ""
        return f"{where}: {self.message}"


@dataclass
class Report:
    """Every issue found in one dataset folder, and what was counted."""

    root: Path
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == ERROR]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == WARNING]

    @property
    def ok(self) -> bool:
        return not self.errors

    def codes(self, severity: str | None = None) -> Counter:
        return Counter(i.code for i in self.issues if severity is None or i.severity == severity)

    def by_code(self, code: str) -> list[Issue]:
        return [i for i in self.issues if i.code == code]

    def format(self, max_per_code: int = 10) -> str:
        s = self.stats
        lines = [f"Dataset {self.root}"]
        if "accounts" in s:
            lines.append(f"  {s.get('accounts', 0)} accounts ({s.get('brands', 0)} brands, "
                         f"{s.get('influencers', 0)} influencers), {s.get('posts', 0)} posts, "
                         f"{s.get('images', 0)} images, {s.get('pairs', 0)} pairs")
        lines.append(f"  {len(self.errors)} errors, {len(self.warnings)} warnings"
                     + ("" if self.stats.get("images_checked", True) else " (image files not decoded)"))
        for title, severity in (("ERRORS", ERROR), ("WARNINGS", WARNING)):
            codes = self.codes(severity)
            if not codes:
                continue
            lines.append(title)
            for code, count in sorted(codes.items()):
                lines.append(f"  {code} ({count})")
                shown = [i for i in self.issues if i.code == code and i.severity == severity][:max_per_code]
                lines.extend(f"    {issue}" for issue in shown)
                if count > len(shown):
                    lines.append(f"    ... and {count - len(shown)} more")
        lines.append("OK" if self.ok else "INVALID")
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"root": str(self.root), "ok": self.ok, "stats": self.stats,
                "issues": [asdict(i) for i in self.issues]}

    def __str__(self) -> str:
        return self.format()


class ValidationError(ValueError):
    """A dataset failed validation; ``report`` holds every issue."""

    def __init__(self, report: Report):
        self.report = report
        super().__init__(report.format(max_per_code=5))


class _Collector:
    def __init__(self, tolerate: Iterable[str]):
        self.issues: list[Issue] = []
        self.tolerate = frozenset(tolerate)

    def add(self, code: str, file: str, row: int | None, fld: str | None, message: str) -> None:
        severity = WARNING if code in WARNING_CODES or code in self.tolerate else ERROR
        self.issues.append(Issue(severity, code, file, None if row is None else int(row), fld, message))


# ----------------------------------------------------------------------------------- helpers
def _missing(series: pd.Series) -> np.ndarray:
    return (series.isna() | (series.astype("string").fillna("").str.strip() == "")).to_numpy()


def _strings(series: pd.Series) -> pd.Series:
    return series.astype("string").fillna("")


def _check_counts(c: _Collector, frame: pd.DataFrame, name: str, columns: Iterable[str], id_col: str | None) -> None:
    for col in columns:
        if col not in frame.columns:
            continue
        values = frame[col]
        numeric = pd.to_numeric(values, errors="coerce")
        missing = _missing(values) if values.dtype == object or str(values.dtype).startswith(("string", "str")) \
            else values.isna().to_numpy()
        bad = numeric.isna().to_numpy() | ~np.isfinite(numeric.fillna(0).to_numpy(dtype=float))
        frac = ~bad & (np.where(bad, 0.0, numeric.fillna(0).to_numpy(dtype=float)) % 1 != 0)
        for r in np.flatnonzero(bad | frac):
            what = "missing" if missing[r] else f"{values.iloc[r]!r} is not an integer"
            c.add("not_integer", name, r, col, f"{_label(frame, r, id_col)}{what}")
        for r in np.flatnonzero(~bad & (numeric.fillna(0).to_numpy(dtype=float) < 0)):
            c.add("negative_count", name, r, col, f"{_label(frame, r, id_col)}{values.iloc[r]} is negative")


def _label(frame: pd.DataFrame, r: int, id_col: str | None) -> str:
    if id_col and id_col in frame.columns:
        return f"{id_col}={frame[id_col].iloc[r]!s}: "
    return ""


def caption_language(caption: str) -> str | None:
    """``"caption_no_text"`` (no letters at all), ``"caption_non_english"`` or None."""
    letters = [ch for ch in caption if ch.isalpha()]
    if not caption.strip() or not letters:
        return None if not caption.strip() else "caption_no_text"
    text = _TAGS.sub(" ", caption)
    body = [ch for ch in text if ch.isalpha()]
    if body and sum(ord(ch) > 0x24F for ch in body) > 0.5 * len(body):
        return "caption_non_english"
    words = _WORDS.findall(text.lower())
    english = sum(w in _ENGLISH for w in words)
    foreign = sum(w in _FOREIGN for w in words)
    if foreign >= 2 and foreign > english:
        return "caption_non_english"
    return None


def _read_table(c: _Collector, root: Path, table: str) -> tuple[pd.DataFrame | None, str]:
    try:
        path = schema.table_path(root, table)
    except FileNotFoundError:
        c.add("missing_file", f"{table}.parquet", None, None, f"no {table}.parquet or {table}.csv")
        return None, f"{table}.parquet"
    try:
        frame = schema.read_table(root, table)
    except Exception as exc:  # noqa: BLE001 - any reader failure is a finding
        c.add("unreadable", path.name, None, None, f"cannot read table: {exc}")
        return None, path.name
    frame = frame.reset_index(drop=True)
    required = [k for k in schema.COLUMNS[table] if k not in schema.OPTIONAL_COLUMNS[table]]
    for col in required:
        if col not in frame.columns:
            c.add("missing_column", path.name, None, col, f"required column {col!r} is missing")
    for col in frame.columns:
        if col not in schema.COLUMNS[table]:
            c.add("extra_column", path.name, None, col, f"column {col!r} is not part of the schema (ignored)")
    return frame, path.name


# ------------------------------------------------------------------------------------- rules
def _check_info(c: _Collector, root: Path) -> dict[str, Any]:
    path = root / schema.DATASET_FILE
    if not path.is_file():
        c.add("missing_file", schema.DATASET_FILE, None, None, "dataset.yaml is missing")
        return {}
    import yaml

    try:
        info = yaml.safe_load(path.read_text())
    except Exception as exc:  # noqa: BLE001
        c.add("unreadable", schema.DATASET_FILE, None, None, f"cannot parse YAML: {exc}")
        return {}
    if not isinstance(info, dict):
        c.add("unreadable", schema.DATASET_FILE, None, None, "top level is not a mapping")
        return {}
    for key in ("name", "schema_version"):
        if key not in info:
            c.add("missing_key", schema.DATASET_FILE, None, key, f"required key {key!r} is missing")
    if "schema_version" in info and info["schema_version"] != schema.SCHEMA_VERSION:
        c.add("schema_version", schema.DATASET_FILE, None, "schema_version",
              f"schema version {info['schema_version']!r} is not supported (expected {schema.SCHEMA_VERSION})")
    cats = info.get("categories")
    if cats is None:
        c.add("missing_categories", schema.DATASET_FILE, None, "categories",
              "no 'categories' list; brands are checked against the 12 categories of Gan et al.")
    elif not isinstance(cats, list) or not all(isinstance(x, str) and x for x in cats):
        c.add("bad_categories", schema.DATASET_FILE, None, "categories", "categories must be a list of names")
    if "provenance" not in info:
        c.add("missing_provenance", schema.DATASET_FILE, None, "provenance", "no provenance recorded")
    if "counts" not in info:
        c.add("missing_counts", schema.DATASET_FILE, None, "counts", "no counts recorded")
    elif not isinstance(info["counts"], dict):
        c.add("count_mismatch", schema.DATASET_FILE, None, "counts", "counts must be a mapping")
    return info


def _check_accounts(c: _Collector, acc: pd.DataFrame, name: str, categories: set[str] | None) -> None:
    if "account_id" in acc.columns:
        ids = _strings(acc["account_id"])
        for r in np.flatnonzero(_missing(acc["account_id"])):
            c.add("missing_value", name, r, "account_id", "empty account id")
        dup = ids.duplicated(keep="first").to_numpy() & ~_missing(acc["account_id"])
        for r in np.flatnonzero(dup):
            c.add("duplicate_id", name, r, "account_id", f"account id {ids.iloc[r]!r} appears more than once")
    kinds = _strings(acc["kind"]) if "kind" in acc.columns else None
    if kinds is not None:
        for r in np.flatnonzero(~kinds.isin(schema.ACCOUNT_KINDS).to_numpy()):
            c.add("bad_kind", name, r, "kind", f"{_label(acc, r, 'account_id')}kind {kinds.iloc[r]!r} "
                                               f"is not one of {', '.join(schema.ACCOUNT_KINDS)}")
    if kinds is not None and "category" in acc.columns:
        cats = _strings(acc["category"])
        brand = (kinds == "brand").to_numpy()
        for r in np.flatnonzero(brand & (cats.str.strip() == "").to_numpy()):
            c.add("missing_value", name, r, "category", f"{_label(acc, r, 'account_id')}brand without category")
        if categories is not None:
            bad = brand & (cats.str.strip() != "").to_numpy() & ~cats.isin(categories).to_numpy()
            for r in np.flatnonzero(bad):
                c.add("unknown_category", name, r, "category",
                      f"{_label(acc, r, 'account_id')}category {cats.iloc[r]!r} is not in dataset.yaml categories")
        infl = (kinds == "influencer").to_numpy() & (cats.str.strip() != "").to_numpy()
        for r in np.flatnonzero(infl):
            c.add("influencer_category", name, r, "category",
                  f"{_label(acc, r, 'account_id')}influencer has a category ({cats.iloc[r]!r}); it is ignored")
    if "username" in acc.columns:
        users = _strings(acc["username"])
        for r in np.flatnonzero(_missing(acc["username"])):
            c.add("missing_value", name, r, "username", f"{_label(acc, r, 'account_id')}empty username")
        dup = users.duplicated(keep="first").to_numpy() & ~_missing(acc["username"])
        for r in np.flatnonzero(dup):
            c.add("duplicate_username", name, r, "username", f"username {users.iloc[r]!r} appears more than once")
    for col, code, what in (("biography", "empty_biography", "empty biography"),
                            ("business_category", "empty_business_category", "empty business category")):
        if col in acc.columns:
            for r in np.flatnonzero(_missing(acc[col])):
                c.add(code, name, r, col, f"{_label(acc, r, 'account_id')}{what}")
    _check_counts(c, acc, name, ["followers"], "account_id")


_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")  # a Windows drive: C:\\ or C:/


class ImagePaths:
    """Resolves posts' ``image`` values to files inside the dataset folder ``root``.

    :meth:`check` follows symbolic links as :func:`os.path.realpath` does, but resolves each
    folder once and the file itself only when it is a link, so a table of 200,000 images costs
    one ``lstat`` each rather than one ``realpath``.
    """

    def __init__(self, root: str | os.PathLike):
        self.root = str(root)
        self.root_real = os.path.realpath(self.root)
        self._folders: dict[str, str] = {}

    def check(self, value: str) -> tuple[str | None, str]:
        """(problem code, message) for an unsafe image path, or (None, absolute path) when it is safe."""
        if value.startswith(("/", "\\")) or _DRIVE.match(value) or os.path.isabs(value):
            return "image_path_absolute", f"image path {value!r} is absolute; it must be relative to the dataset folder"
        if ".." in value.replace("\\", "/").split("/"):
            return "image_path_escapes", f"image path {value!r} leaves the dataset folder ('..')"
        full = os.path.join(self.root, value)
        folder, name = os.path.split(full)
        real_folder = self._folders.get(folder)
        if real_folder is None:
            real_folder = self._folders[folder] = os.path.realpath(folder)
        real = os.path.join(real_folder, name)
        if os.path.islink(real):
            real = os.path.realpath(real)
        if real != self.root_real and not real.startswith(self.root_real.rstrip(os.sep) + os.sep):
            return "image_path_escapes", f"image path {value!r} resolves outside the dataset folder (symlink to {real})"
        return None, full

    def file(self, value: str) -> Path | None:
        """The file of an ``image`` value, or None when the path is absolute or leaves the folder."""
        code, target = self.check(value)
        return None if code is not None else Path(target)


def image_file(root: str | os.PathLike, value: str) -> Path | None:
    """The file of a post's ``image`` value, or None when the path is absolute or leaves ``root``."""
    return ImagePaths(root).file(value)


def _decode(path: str) -> tuple[str | None, str | None]:
    """(sha1, None) for a readable image, (None, reason) otherwise."""
    from PIL import Image, UnidentifiedImageError

    try:
        data = Path(path).read_bytes()
        with Image.open(io.BytesIO(data)) as im:
            im.load()
            if im.width < 1 or im.height < 1:
                return None, "image has no pixels"
    except UnidentifiedImageError:
        return None, "not an image file"
    except Exception as exc:  # noqa: BLE001 - every decoder failure is a finding
        return None, f"{type(exc).__name__}: {exc}"
    return hashlib.sha1(data).hexdigest(), None


def _check_posts(c: _Collector, root: Path, posts: pd.DataFrame, name: str, account_ids: set[str] | None,
                 check_images: bool, workers: int) -> dict[str, Any]:
    stats: dict[str, Any] = {}
    if "post_id" in posts.columns:
        ids = _strings(posts["post_id"])
        for r in np.flatnonzero(_missing(posts["post_id"])):
            c.add("missing_value", name, r, "post_id", "empty post id")
        dup = ids.duplicated(keep="first").to_numpy() & ~_missing(posts["post_id"])
        for r in np.flatnonzero(dup):
            c.add("duplicate_id", name, r, "post_id", f"post id {ids.iloc[r]!r} appears more than once")
    if "account_id" in posts.columns and account_ids is not None:
        owners = _strings(posts["account_id"])
        for r in np.flatnonzero(~owners.isin(account_ids).to_numpy()):
            c.add("unknown_account", name, r, "account_id",
                  f"{_label(posts, r, 'post_id')}account {owners.iloc[r]!r} is not in the accounts table")
    if "timestamp" in posts.columns:
        raw = _strings(posts["timestamp"])
        parsed = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
        for r in np.flatnonzero(parsed.isna().to_numpy()):
            c.add("bad_timestamp", name, r, "timestamp",
                  f"{_label(posts, r, 'post_id')}{raw.iloc[r]!r} is not an ISO 8601 timestamp")
    _check_counts(c, posts, name, ["likes", "comments"], "post_id")

    hashes: dict[int, str] = {}
    if "image" in posts.columns:
        images = _strings(posts["image"])
        paths = ImagePaths(root)
        to_decode: list[tuple[int, str]] = []
        seen: dict[str, int] = {}
        n_images = 0
        for r, value in enumerate(images.tolist()):
            value = value.strip()
            if not value:
                c.add("no_image", name, r, "image", f"{_label(posts, r, 'post_id')}post has no image")
                continue
            n_images += 1
            if value in seen:
                c.add("duplicate_image_path", name, r, "image",
                      f"{_label(posts, r, 'post_id')}{value!r} is also the image of row {seen[value]}")
            else:
                seen[value] = r
            code, target = paths.check(value)
            if code is not None:
                c.add(code, name, r, "image", f"{_label(posts, r, 'post_id')}{target}")
                continue
            if not os.path.isfile(target):
                c.add("image_missing", name, r, "image", f"{_label(posts, r, 'post_id')}{value!r} does not exist")
                continue
            to_decode.append((r, target))
        stats["images"] = n_images
        if check_images and to_decode:
            with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
                results = list(pool.map(_decode, [t for _, t in to_decode], chunksize=256))
            for (r, _), (digest, reason) in zip(to_decode, results):
                if digest is None:
                    c.add("image_unreadable", name, r, "image",
                          f"{_label(posts, r, 'post_id')}{images.iloc[r]!r} cannot be decoded ({reason})")
                else:
                    hashes[r] = digest
            stats["images_decoded"] = len(hashes)
    if "caption" in posts.columns:
        captions = _strings(posts["caption"])
        for r, text in enumerate(captions.tolist()):
            if not text.strip():
                c.add("empty_caption", name, r, "caption", f"{_label(posts, r, 'post_id')}empty caption")
                continue
            code = caption_language(text)
            if code == "caption_no_text":
                c.add(code, name, r, "caption", f"{_label(posts, r, 'post_id')}caption has no words: {text!r}")
            elif code == "caption_non_english":
                c.add(code, name, r, "caption", f"{_label(posts, r, 'post_id')}caption looks non-English: "
                                                f"{text[:60]!r}")
        if "account_id" in posts.columns:
            _check_duplicates(c, posts, name, captions, hashes, check_images)
    return stats


def _check_duplicates(c: _Collector, posts: pd.DataFrame, name: str, captions: pd.Series,
                      hashes: dict[int, str], check_images: bool) -> None:
    """Reposts: same account, same caption and (when images are decoded) the same image bytes."""
    has_image = _strings(posts["image"]).str.strip() != "" if "image" in posts.columns else None
    stamps = pd.to_datetime(_strings(posts["timestamp"]), errors="coerce", utc=True, format="ISO8601") \
        if "timestamp" in posts.columns else pd.Series(pd.NaT, index=posts.index)
    groups: dict[tuple, list[int]] = {}
    owners = _strings(posts["account_id"]).tolist()
    for r, text in enumerate(captions.tolist()):
        if not text.strip():
            continue
        if check_images:
            if has_image is not None and has_image.iloc[r]:
                if r not in hashes:
                    continue  # unreadable or missing: reported already
                key = (owners[r], text, hashes[r])
            else:
                key = (owners[r], text, "")
        else:
            if len(text.strip()) < 20:
                continue
            key = (owners[r], text)
        groups.setdefault(key, []).append(r)
    for rows in groups.values():
        if len(rows) < 2:
            continue
        ordered = sorted(rows, key=lambda r: (stamps.iloc[r] if not pd.isna(stamps.iloc[r]) else pd.Timestamp.max.tz_localize("UTC"), r))
        first = ordered[0]
        for r in ordered[1:]:
            c.add("duplicate_post", name, r, "caption",
                  f"{_label(posts, r, 'post_id')}repeats post {posts['post_id'].iloc[first] if 'post_id' in posts.columns else first} "
                  "(same caption" + (" and image)" if check_images else ")"))


def _check_pairs(c: _Collector, pairs: pd.DataFrame, name: str, kind_of: dict[str, str] | None) -> None:
    for col, expected in (("brand", "brand"), ("influencer", "influencer")):
        if col not in pairs.columns:
            continue
        values = _strings(pairs[col])
        for r in np.flatnonzero(_missing(pairs[col])):
            c.add("missing_value", name, r, col, f"empty {col}")
        if kind_of is None:
            continue
        for r, v in enumerate(values.tolist()):
            if not v.strip():
                continue
            kind = kind_of.get(v)
            if kind is None:
                c.add("unknown_account", name, r, col, f"{col} {v!r} is not in the accounts table")
            elif kind != expected:
                c.add("wrong_kind", name, r, col, f"{col} {v!r} is a {kind}, not a {expected}")
    if {"brand", "influencer"} <= set(pairs.columns):
        dup = pairs.duplicated(subset=["brand", "influencer"], keep="first").to_numpy()
        for r in np.flatnonzero(dup):
            c.add("duplicate_pair", name, r, None,
                  f"pair ({pairs['brand'].iloc[r]}, {pairs['influencer'].iloc[r]}) appears more than once")
    if "score" in pairs.columns:
        raw = pairs["score"]
        numeric = pd.to_numeric(raw, errors="coerce")
        empty = raw.isna().to_numpy() | (_strings(raw).str.strip() == "").to_numpy()
        for r in np.flatnonzero(numeric.isna().to_numpy() & ~empty):
            c.add("bad_score", name, r, "score", f"score {raw.iloc[r]!r} is not a number")


def _check_splits(c: _Collector, root: Path, kind_of: dict[str, str] | None,
                  positives: dict[str, set[str]] | None) -> None:
    path = root / schema.SPLITS_FILE
    fname = schema.SPLITS_FILE
    if not path.is_file():
        c.add("missing_file", fname, None, None, "splits.json is missing")
        return
    try:
        splits = json.loads(path.read_text())
    except Exception as exc:  # noqa: BLE001
        c.add("unreadable", fname, None, None, f"cannot parse JSON: {exc}")
        return
    if not isinstance(splits, dict) or not splits:
        c.add("bad_split", fname, None, None, "splits.json must map split names to splits")
        return
    if "discover" not in splits:
        c.add("missing_default_split", fname, None, None, "no 'discover' split (the default protocol)")
    expected = {"train_brands": "brand", "test_brands": "brand", "test_candidates": "influencer"}
    for split, body in splits.items():
        if not isinstance(body, dict):
            c.add("bad_split", fname, None, split, f"split {split!r} is not a mapping")
            continue
        lists: dict[str, list[str]] = {}
        for key, kind in expected.items():
            values = body.get(key)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                c.add("bad_split", fname, None, f"{split}.{key}", f"{split}.{key} must be a list of account ids")
                continue
            lists[key] = values
            counts = Counter(values)
            for v, n in counts.items():
                if n > 1:
                    c.add("duplicate_in_split", fname, None, f"{split}.{key}", f"{v!r} is listed {n} times")
            if kind_of is None:
                continue
            for k, v in enumerate(values):
                actual = kind_of.get(v)
                if actual is None:
                    c.add("unknown_account", fname, k, f"{split}.{key}", f"{v!r} is not in the accounts table")
                elif actual != kind:
                    c.add("wrong_kind", fname, k, f"{split}.{key}", f"{v!r} is a {actual}, not a {kind}")
        train, test = set(lists.get("train_brands", [])), set(lists.get("test_brands", []))
        for v in sorted(train & test):
            c.add("split_overlap", fname, None, split, f"brand {v!r} is both a training and a test brand")
        if positives is None:
            continue
        for key in ("train_brands", "test_brands"):
            for k, v in enumerate(lists.get(key, [])):
                if (kind_of is None or kind_of.get(v) == "brand") and not positives.get(v):
                    c.add("split_brand_without_pairs", fname, k, f"{split}.{key}", f"brand {v!r} has no positive pairs")
        if "test_candidates" in lists:
            candidates = set(lists["test_candidates"])
            for v in lists.get("test_brands", []):
                missing = sorted(positives.get(v, set()) - candidates)
                for i in missing:
                    c.add("positive_not_candidate", fname, None, f"{split}.test_candidates",
                          f"positive {i!r} of test brand {v!r} is not a test candidate")


def _check_knowledge(c: _Collector, root: Path, max_rows: int) -> dict[str, Any]:
    kdir = root / schema.KNOWLEDGE_DIR
    stats: dict[str, Any] = {}
    cn = next((kdir / f for f in schema.CONCEPTNET_FILES if (kdir / f).is_file()), None)
    cn_name = f"{schema.KNOWLEDGE_DIR}/{schema.CONCEPTNET_FILES[0]}"
    if cn is None:
        c.add("missing_file", cn_name, None, None, "no ConceptNet edge file (conceptnet.csv or conceptnet.csv.gz)")
    else:
        cn_name = f"{schema.KNOWLEDGE_DIR}/{cn.name}"
        opener = gzip.open if cn.suffix == ".gz" else open
        n = 0
        try:
            with opener(cn, "rt", encoding="utf-8") as handle:
                for r, line in enumerate(handle):
                    if r >= max_rows:
                        stats["conceptnet_rows_checked"] = max_rows
                        break
                    n += 1
                    line = line.rstrip("\n")
                    if not line:
                        continue
                    cols = line.split("\t")
                    if len(cols) != 5:
                        c.add("bad_row", cn_name, r, None, f"{len(cols)} tab-separated columns, expected 5")
                        continue
                    uri, rel, start, end, info = cols
                    if not rel.startswith("/r/"):
                        c.add("bad_relation", cn_name, r, "relation", f"relation {rel!r} does not start with /r/")
                    if not start.startswith("/c/"):
                        c.add("bad_node", cn_name, r, "start", f"start {start!r} does not start with /c/")
                    if not end.startswith("/c/") and rel != "/r/ExternalURL":
                        c.add("bad_node", cn_name, r, "end", f"end {end!r} does not start with /c/")
                    try:
                        parsed = json.loads(info)
                        if not isinstance(parsed, dict) or not isinstance(parsed.get("weight", 1.0), (int, float)):
                            raise ValueError("weight is not a number")
                    except Exception as exc:  # noqa: BLE001
                        c.add("bad_info", cn_name, r, "info", f"info is not a JSON object with a numeric weight: {exc}")
        except (OSError, UnicodeDecodeError, EOFError) as exc:
            c.add("unreadable", cn_name, None, None, f"cannot read: {exc}")
        stats.setdefault("conceptnet_rows_checked", n)

    concepts: set[str] | None = None
    fname = f"{schema.KNOWLEDGE_DIR}/{schema.CONCEPTS_FILE}"
    frame = _read_knowledge_table(c, kdir / schema.CONCEPTS_FILE, fname, "the concept set")
    if frame is not None:
        if "concept" not in frame.columns:
            c.add("missing_column", fname, None, "concept", "required column 'concept' is missing")
        else:
            for r in np.flatnonzero(_missing(frame["concept"])):
                c.add("missing_value", fname, r, "concept", "empty concept")
            for r in np.flatnonzero(frame["concept"].duplicated(keep="first").to_numpy()):
                c.add("duplicate_concept", fname, r, "concept", f"concept {frame['concept'].iloc[r]!r} repeated")
            concepts = set(frame["concept"])
            stats["concepts"] = len(concepts)
    fname = f"{schema.KNOWLEDGE_DIR}/{schema.RELATED_HASHTAGS_FILE}"
    frame = _read_knowledge_table(c, kdir / schema.RELATED_HASHTAGS_FILE, fname, "the related-hashtags table")
    if frame is not None:
        for col in ("concept", "hashtag"):
            if col not in frame.columns:
                c.add("missing_column", fname, None, col, f"required column {col!r} is missing")
            else:
                for r in np.flatnonzero(_missing(frame[col])):
                    c.add("missing_value", fname, r, col, f"empty {col}")
        if "concept" in frame.columns and concepts is not None:
            for r in np.flatnonzero(~frame["concept"].isin(concepts).to_numpy() & ~_missing(frame["concept"])):
                c.add("unknown_concept", fname, r, "concept",
                      f"concept {frame['concept'].iloc[r]!r} is not in the concept set")
        if "weight" in frame.columns:
            numeric = pd.to_numeric(frame["weight"], errors="coerce")
            for r in np.flatnonzero(numeric.isna().to_numpy() & ~_missing(frame["weight"])):
                c.add("bad_score", fname, r, "weight", f"weight {frame['weight'].iloc[r]!r} is not a number")
    return stats


def _read_knowledge_table(c: _Collector, path: Path, fname: str, what: str) -> pd.DataFrame | None:
    """A knowledge CSV as strings, or None after recording why it is missing or unreadable."""
    if not path.is_file():
        c.add("missing_file", fname, None, None, f"{what} is missing")
        return None
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except Exception as exc:  # noqa: BLE001
        c.add("unreadable", fname, None, None, f"cannot read: {exc}")
        return None


def _check_affinity(c: _Collector, root: Path, n_brands: int, n_influencers: int) -> None:
    path = root / schema.AFFINITY_FILE
    if not path.exists():
        return
    try:
        from safetensors import safe_open

        with safe_open(str(path), framework="numpy") as handle:
            if "affinity" not in handle.keys():
                c.add("affinity_shape", schema.AFFINITY_FILE, None, "affinity", "no 'affinity' tensor")
                return
            shape = tuple(handle.get_slice("affinity").get_shape())
    except Exception as exc:  # noqa: BLE001
        c.add("unreadable", schema.AFFINITY_FILE, None, None, f"cannot read: {exc}")
        return
    if shape != (n_brands, n_influencers):
        c.add("affinity_shape", schema.AFFINITY_FILE, None, "affinity",
              f"shape {list(shape)} does not match [{n_brands} brands, {n_influencers} influencers]")


# ---------------------------------------------------------------------------------- entry points
def dataset_fingerprint(root: str | os.PathLike) -> str:
    """A hash of what :func:`validate_dataset` reads without ``check_images``: the path, size and
    modification time of every file of the dataset folder outside ``images/`` (image paths are
    checked from the posts table; the image files are not opened), and :data:`RULES_VERSION`.
    Equal fingerprints mean a report made then still holds."""
    entries: list[Any] = [RULES_VERSION]
    for folder, subfolders, names in os.walk(root):
        if Path(folder) == Path(root):
            subfolders[:] = [d for d in subfolders if d != schema.IMAGES_DIR]
        subfolders.sort()
        for name in sorted(names):
            st = os.stat(os.path.join(folder, name))
            entries.append((Path(folder, name).relative_to(root).as_posix(), st.st_size, st.st_mtime_ns))
    return hashlib.sha256(json.dumps(entries).encode()).hexdigest()


def validate_dataset(root: str | os.PathLike, check_images: bool = True, *, tolerate: Iterable[str] = (),
                     max_conceptnet_rows: int = 5_000_000, workers: int | None = None) -> Report:
    """Check the raw dataset in ``root``; never raises on bad data (it reports it).

    ``check_images`` decodes every image (and finds reposts by image content); without it,
    image paths are still checked for safety and existence. Codes in ``tolerate`` are
    reported as warnings instead of errors (e.g. ``{"image_unreadable", "image_missing"}``
    for a stage that skips bad images and counts them).
    """
    root = Path(root)
    c = _Collector(tolerate)
    report = Report(root)
    if not root.is_dir():
        c.add("missing_file", str(root), None, None, "dataset folder does not exist")
        report.issues = c.issues
        return report
    workers = workers or min(8, os.cpu_count() or 1)
    info = _check_info(c, root)
    cats = info.get("categories")
    categories = set(cats) if isinstance(cats, list) else set(schema.CATEGORIES)

    acc, acc_name = _read_table(c, root, schema.ACCOUNTS)
    kind_of: dict[str, str] | None = None
    stats: dict[str, Any] = {}
    if acc is not None:
        _check_accounts(c, acc, acc_name, categories)
        if {"account_id", "kind"} <= set(acc.columns):
            kind_of = dict(zip(_strings(acc["account_id"]), _strings(acc["kind"])))
        kinds = _strings(acc["kind"]) if "kind" in acc.columns else pd.Series([], dtype="string")
        stats.update(accounts=len(acc), brands=int((kinds == "brand").sum()),
                     influencers=int((kinds == "influencer").sum()))

    posts, posts_name = _read_table(c, root, schema.POSTS)
    if posts is not None:
        stats.update(posts=len(posts))
        stats.update(_check_posts(c, root, posts, posts_name, set(kind_of) if kind_of is not None else None,
                                  check_images, workers))
        if acc is not None and "account_id" in posts.columns and "account_id" in acc.columns:
            with_posts = set(_strings(posts["account_id"]))
            for r, a in enumerate(_strings(acc["account_id"]).tolist()):
                if a and a not in with_posts:
                    c.add("account_without_posts", acc_name, r, "account_id", f"account {a!r} has no posts")
    stats["images_checked"] = bool(check_images)

    pairs, pairs_name = _read_table(c, root, schema.PAIRS)
    positives: dict[str, set[str]] | None = None
    if pairs is not None:
        stats.update(pairs=len(pairs))
        _check_pairs(c, pairs, pairs_name, kind_of)
        if {"brand", "influencer"} <= set(pairs.columns):
            positives = {}
            for b, i in zip(_strings(pairs["brand"]), _strings(pairs["influencer"])):
                positives.setdefault(b, set()).add(i)
            if kind_of is not None and acc is not None:
                for r, (a, k) in enumerate(zip(_strings(acc["account_id"]), _strings(acc["kind"]))):
                    if k == "brand" and a not in positives:
                        c.add("brand_without_pairs", acc_name, r, "account_id", f"brand {a!r} has no positive pairs")

    _check_splits(c, root, kind_of, positives)
    stats.update(_check_knowledge(c, root, max_conceptnet_rows))
    if kind_of is not None:
        _check_affinity(c, root, stats.get("brands", 0), stats.get("influencers", 0))

    counts = info.get("counts")
    if isinstance(counts, dict):
        for key in schema.COUNT_KEYS:
            if key in counts and key in stats and counts[key] != stats[key]:
                c.add("count_mismatch", schema.DATASET_FILE, None, f"counts.{key}",
                      f"dataset.yaml says {counts[key]!r} {key}, the tables have {stats[key]}")
    report.issues = c.issues
    report.stats = stats
    return report


def require_valid(root: str | os.PathLike, check_images: bool = True, *, tolerate: Iterable[str] = (),
                  logger: logging.Logger | None = None, **kwargs: Any) -> Report:
    """Validate ``root``; raise :class:`ValidationError` on errors, log a summary of warnings."""
    report = validate_dataset(root, check_images, tolerate=tolerate, **kwargs)
    logger = logger or log
    if not report.ok:
        raise ValidationError(report)
    if report.warnings:
        summary = ", ".join(f"{code} x{n}" for code, n in sorted(report.codes(WARNING).items()))
        logger.warning("dataset %s: %d warnings (%s)", root, len(report.warnings), summary)
    return report


def main(argv: list[str] | None = None) -> int:
    """``bamir-validate PATH``: print the report; exit 1 on errors."""
    parser = argparse.ArgumentParser(prog="bamir-validate", description=__doc__.split("\n\n")[0])
    parser.add_argument("path", help="raw dataset folder")
    parser.add_argument("--no-images", action="store_true", help="do not decode image files (paths are still checked)")
    parser.add_argument("--tolerate", action="append", default=[], metavar="CODE",
                        help="report this error code as a warning (repeatable)")
    parser.add_argument("--max-per-code", type=int, default=10, help="issues listed per code (default 10)")
    parser.add_argument("--json", action="store_true", help="print the full report as JSON")
    args = parser.parse_args(argv)
    report = validate_dataset(args.path, check_images=not args.no_images, tolerate=args.tolerate)
    if args.json:
        print(json.dumps(report.to_dict(), indent=2, default=str))
    else:
        print(report.format(max_per_code=args.max_per_code))
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
