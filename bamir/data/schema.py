"""The raw dataset layout: what the synthetic generator and every importer write.

A raw dataset is one folder::

    dataset.yaml            name, schema_version, counts, categories, provenance
    accounts.{parquet,csv}  account_id, username, kind (brand | influencer), category (brands; "" otherwise),
                            biography, business_category, followers
    posts.{parquet,csv}     post_id, account_id, timestamp (ISO 8601), caption, image (path relative to
                            the folder, "" when the post has none), likes, comments
    images/                 one file per post that has an image
    pairs.{parquet,csv}     brand, influencer (account ids of the known positives), score (optional float)
    splits.json             {split name: {train_brands, test_brands, test_candidates}}; "discover" is the default
    knowledge/conceptnet.csv[.gz]   ConceptNet assertions layout: 5 tab-separated columns, no header:
                                    edge URI, relation (/r/IsA), start (/c/en/word), end (/c/en/concept), JSON info
    knowledge/concepts.csv          concept: the concept set, one per row
    knowledge/related_hashtags.csv  concept, hashtag[, weight]   (hashtag lower case, without "#")
    planted_affinity.safetensors    synthetic data only: "affinity" float32 [brands, influencers], rows and
                                    columns in the order brands and influencers appear in the accounts table
                                    (the generator adds its z-scored terms as "term_<name>", same shape)
    planted_defects.json            synthetic data only: {defect kind: [post or account ids]} it planted
    .bamir-owned                    synthetic data only: the marker that bamir wrote the folder (bamir.ownership)

``dataset.yaml`` counts: accounts, brands, influencers, posts, images (posts whose image field is not
empty), pairs. Validate a folder with :func:`bamir.data.validate.validate_dataset` (``bamir-validate``).

Tables are Parquet or CSV: readers take whichever exists (Parquet first).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

if TYPE_CHECKING:
    import numpy as np

SCHEMA_VERSION = 1

ACCOUNTS = "accounts"
POSTS = "posts"
PAIRS = "pairs"
SPLITS_FILE = "splits.json"
DATASET_FILE = "dataset.yaml"
IMAGES_DIR = "images"
KNOWLEDGE_DIR = "knowledge"
CONCEPTNET_FILES = ("conceptnet.csv", "conceptnet.csv.gz")
CONCEPTS_FILE = "concepts.csv"
RELATED_HASHTAGS_FILE = "related_hashtags.csv"
AFFINITY_FILE = "planted_affinity.safetensors"
DEFECTS_FILE = "planted_defects.json"
ACCOUNT_KINDS = ("brand", "influencer")
COUNT_KEYS = ("accounts", "brands", "influencers", "posts", "images", "pairs")

#: Column name -> pandas dtype, per table. Optional columns are listed in OPTIONAL_COLUMNS.
COLUMNS: dict[str, dict[str, str]] = {
    ACCOUNTS: {
        "account_id": "string",
        "username": "string",
        "kind": "string",
        "category": "string",
        "biography": "string",
        "business_category": "string",
        "followers": "int64",
    },
    POSTS: {
        "post_id": "string",
        "account_id": "string",
        "timestamp": "string",
        "caption": "string",
        "image": "string",
        "likes": "int64",
        "comments": "int64",
    },
    PAIRS: {"brand": "string", "influencer": "string", "score": "float64"},
}
OPTIONAL_COLUMNS: dict[str, set[str]] = {ACCOUNTS: set(), POSTS: set(), PAIRS: {"score"}}

#: The 12 brand categories of Gan et al. (2019).
CATEGORIES = (
    "airline", "auto", "clothing", "drink", "electronics", "entertainment",
    "food", "jewelry", "makeup", "nonprofit", "services", "shoes",
)


def table_path(root: str | Path, table: str) -> Path:
    """The existing file of ``table`` in ``root`` (Parquet preferred), or raise FileNotFoundError."""
    root = Path(root)
    for suffix in (".parquet", ".csv"):
        path = root / f"{table}{suffix}"
        if path.is_file():
            return path
    raise FileNotFoundError(f"{root}: no {table}.parquet or {table}.csv")


class TableError(ValueError):
    """A raw table that cannot be read (not UTF-8, empty, malformed); the message names the file."""


def read_table(root: str | Path, table: str) -> pd.DataFrame:
    """Read one raw table as strings/ints without coercing empty strings to NaN."""
    path = table_path(root, table)
    try:
        if path.suffix == ".parquet":
            return pd.read_parquet(path)
        return pd.read_csv(path, dtype=str, keep_default_na=False)
    except ValueError as err:  # UnicodeDecodeError, pandas' EmptyDataError and ParserError, ArrowInvalid
        raise TableError(f"{path}: cannot read ({type(err).__name__}: {err})") from err


def write_table(frame: pd.DataFrame, root: str | Path, table: str, fmt: str = "parquet") -> Path:
    """Write a raw table atomically in ``fmt`` ("parquet" or "csv")."""
    from bamir.utils import atomic_write_bytes
    import io

    path = Path(root) / f"{table}.{fmt}"
    buffer = io.BytesIO()
    if fmt == "parquet":
        frame.to_parquet(buffer, index=False)
    elif fmt == "csv":
        buffer.write(frame.to_csv(index=False).encode())
    else:
        raise ValueError(f"unknown table format {fmt!r}: use 'parquet' or 'csv'")
    atomic_write_bytes(path, buffer.getvalue())
    return path


@dataclass
class RawDataset:
    """A raw dataset folder, loaded into data frames (images stay on disk)."""

    root: Path
    info: dict[str, Any]
    accounts: pd.DataFrame
    posts: pd.DataFrame
    pairs: pd.DataFrame
    splits: dict[str, dict[str, list[str]]]
    extras: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def load(cls, root: str | Path) -> "RawDataset":
        import json

        import yaml

        root = Path(root)
        info = yaml.safe_load((root / DATASET_FILE).read_text()) or {}
        return cls(
            root=root,
            info=info,
            accounts=read_table(root, ACCOUNTS),
            posts=read_table(root, POSTS),
            pairs=read_table(root, PAIRS),
            splits=json.loads((root / SPLITS_FILE).read_text()),
        )


def read_planted_affinity(root: str | Path) -> "np.ndarray | None":
    """The planted affinity [brands, influencers] of a synthetic dataset, or None where absent."""
    path = Path(root) / AFFINITY_FILE
    if not path.is_file():
        return None
    from safetensors.numpy import load_file

    return load_file(str(path))["affinity"]
