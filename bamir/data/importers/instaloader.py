"""Import an Instagram download made with ``instaloader`` into the raw dataset layout.

Expected input: one folder per profile, as ``instaloader`` writes with its default
``--dirname-pattern={target}``::

    <download>/<username>/
        <username>_<userid>.json[.xz]         profile metadata ({"node": {...}, "instaloader": {"node_type": "Profile"}})
        2019-05-30_18-22-10_UTC.json[.xz]     post metadata ({"node": {...}, "instaloader": {"node_type": "Post"}})
        2019-05-30_18-22-10_UTC.jpg           the image (or a video's thumbnail)
        2019-05-30_18-22-10_UTC_1.jpg, _2...  sidecar (carousel) images: the first one is kept
        2019-05-30_18-22-10_UTC.txt           the caption (used when the JSON has none)

From the profile: username, biography, follower count (``edge_followed_by``), business
category (``business_category_name``, else ``category_name``). From each post: shortcode
(post id), caption, likes (``edge_media_preview_like`` or ``edge_liked_by``), comments
(``edge_media_to_comment`` or ``edge_media_to_parent_comment``), ``taken_at_timestamp``
(else the file name's UTC stamp). The ``max_posts`` most recent posts are kept. Account ids
are the (lower-case) usernames. Which accounts are brands, and of which category, is given
by the caller (``brands``); everything else is an influencer. Posts without metadata JSON are
skipped and counted in ``dataset.yaml`` provenance.
"""

from __future__ import annotations

import json
import lzma
import os
import re
import shutil
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import yaml

from bamir.data import schema
from bamir.utils import atomic_write_text, publish_dir

_STAMP = re.compile(r"^(\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2})_UTC(?:_(\d+))?$")
_IMAGE_EXT = (".jpg", ".jpeg", ".png", ".webp")


def _load_json(path: Path) -> dict[str, Any] | None:
    try:
        if path.name.endswith(".xz"):
            with lzma.open(path, "rt", encoding="utf-8") as handle:
                return json.load(handle)
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, lzma.LZMAError):
        return None


def _stem(path: Path) -> str:
    name = path.name
    for suffix in (".json.xz", ".json", ".txt") + _IMAGE_EXT:
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def _count(node: dict, *keys: str) -> int:
    for key in keys:
        value = node.get(key)
        if isinstance(value, dict) and isinstance(value.get("count"), int):
            return max(int(value["count"]), 0)
        if isinstance(value, int):
            return max(value, 0)
    return 0


def _caption(node: dict) -> str | None:
    edges = (node.get("edge_media_to_caption") or {}).get("edges") or []
    if edges:
        return str(edges[0].get("node", {}).get("text", ""))
    if isinstance(node.get("caption"), str):
        return node["caption"]
    return None


def read_profile(folder: Path) -> dict[str, Any]:
    """The account and its posts (newest first) of one profile folder; ``skipped`` counts what was dropped."""
    profile: dict[str, Any] = {}
    posts: dict[str, dict[str, Any]] = {}
    images: dict[str, list[Path]] = {}
    texts: dict[str, Path] = {}
    skipped = {"post_without_metadata": 0, "unreadable_metadata": 0}
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        stem = _stem(path)
        match = _STAMP.match(stem)
        lower = path.name.lower()
        if lower.endswith((".json", ".json.xz")):
            data = _load_json(path)
            if data is None:
                skipped["unreadable_metadata"] += 1
                continue
            node_type = (data.get("instaloader") or {}).get("node_type")
            node = data.get("node") or {}
            if node_type == "Profile" or (not match and "username" in node and "edge_followed_by" in node):
                profile = node
            elif match and (node_type in (None, "Post")):
                posts[match.group(1)] = node
        elif match and lower.endswith(_IMAGE_EXT):
            images.setdefault(match.group(1), []).append(path)
        elif match and lower.endswith(".txt"):
            texts[match.group(1)] = path
    stamps = sorted(set(images) | set(texts) | set(posts), reverse=True)
    out_posts = []
    for stamp in stamps:
        node = posts.get(stamp)
        if node is None:
            skipped["post_without_metadata"] += 1
            continue
        caption = _caption(node)
        if caption is None and stamp in texts:
            caption = texts[stamp].read_text(encoding="utf-8").strip()
        taken = node.get("taken_at_timestamp", node.get("date"))
        if isinstance(taken, (int, float)):
            moment = datetime.fromtimestamp(float(taken), tz=timezone.utc)
        else:
            moment = datetime.strptime(stamp, "%Y-%m-%d_%H-%M-%S").replace(tzinfo=timezone.utc)
        files = sorted(images.get(stamp, []), key=lambda p: (_STAMP.match(_stem(p)).group(2) is not None,
                                                             int(_STAMP.match(_stem(p)).group(2) or 0)))
        out_posts.append({
            "shortcode": str(node.get("shortcode") or node.get("code") or ""),
            "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S+00:00"),
            "caption": caption or "",
            "likes": _count(node, "edge_media_preview_like", "edge_liked_by", "likes"),
            "comments": _count(node, "edge_media_to_comment", "edge_media_to_parent_comment", "comments"),
            "image": files[0] if files else None,
            "stamp": stamp,
        })
    out_posts.sort(key=lambda p: p["timestamp"], reverse=True)
    username = str(profile.get("username") or folder.name).lower()
    return {
        "username": username,
        "biography": str(profile.get("biography") or ""),
        "followers": _count(profile, "edge_followed_by", "followers"),
        "business_category": str(profile.get("business_category_name") or profile.get("category_name") or ""),
        "has_profile": bool(profile),
        "posts": out_posts,
        "skipped": skipped,
    }


def import_instaloader(download_dir: str | Path, out_dir: str | Path, brands: Mapping[str, str],
                       pairs: str | Path | pd.DataFrame | None = None, *, max_posts: int = 50,
                       name: str | None = None, knowledge: str | Path | None = "synthetic",
                       test_brands: int | float | None = None, seed: int = 0, table_format: str = "parquet",
                       overwrite: bool = False) -> Path:
    """Write the raw dataset of an instaloader download into ``out_dir`` and return it.

    ``brands`` maps brand usernames to their category (one of the dataset's categories);
    ``pairs`` (CSV/TSV/xlsx path or data frame of brand, influencer[, score, rank]) gives the
    positives and the discover split (:mod:`bamir.data.importers.pairs`). ``knowledge`` is a
    folder holding ``conceptnet.csv[.gz]``, ``concepts.csv`` and ``related_hashtags.csv``,
    ``"synthetic"`` for the generator's built-in files, or None to leave them out.
    """
    src, out = Path(download_dir), Path(out_dir)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise FileExistsError(f"{out} exists; pass overwrite=True to replace it")
    brand_category = {k.lower().lstrip("@"): v for k, v in brands.items()}
    folders = sorted(p for p in src.iterdir() if p.is_dir())
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / schema.IMAGES_DIR).mkdir(parents=True)
    try:
        accounts, post_rows, skipped = [], [], {"post_without_metadata": 0, "unreadable_metadata": 0,
                                               "profile_without_metadata": 0, "older_posts": 0}
        seen_ids: set[str] = set()
        for folder in folders:
            prof = read_profile(folder)
            if not prof["posts"] and not prof["has_profile"]:
                continue
            for k, v in prof["skipped"].items():
                skipped[k] += v
            skipped["profile_without_metadata"] += int(not prof["has_profile"])
            account = prof["username"]
            if account in seen_ids:
                continue
            seen_ids.add(account)
            category = brand_category.get(account)
            accounts.append({"account_id": account, "username": account,
                             "kind": "brand" if category is not None else "influencer",
                             "category": category or "", "biography": prof["biography"],
                             "business_category": prof["business_category"], "followers": prof["followers"]})
            kept = prof["posts"][:max_posts]
            skipped["older_posts"] += len(prof["posts"]) - len(kept)
            for post in kept:
                post_id = post["shortcode"] or f"{account}_{post['stamp']}"
                image = ""
                if post["image"] is not None:
                    rel = f"{schema.IMAGES_DIR}/{account}/{post_id}{post['image'].suffix.lower()}"
                    (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(post["image"], tmp / rel)
                    image = rel
                post_rows.append({"post_id": post_id, "account_id": account, "timestamp": post["timestamp"],
                                  "caption": post["caption"], "image": image, "likes": post["likes"],
                                  "comments": post["comments"]})
        missing_brands = sorted(set(brand_category) - seen_ids)
        acc = pd.DataFrame(accounts, columns=list(schema.COLUMNS[schema.ACCOUNTS]))
        posts = pd.DataFrame(post_rows, columns=list(schema.COLUMNS[schema.POSTS]))
        schema.write_table(acc, tmp, schema.ACCOUNTS, table_format)
        schema.write_table(posts, tmp, schema.POSTS, table_format)
        schema.write_table(pd.DataFrame({"brand": pd.Series(dtype=str), "influencer": pd.Series(dtype=str),
                                         "score": pd.Series(dtype=float)}), tmp, schema.PAIRS, table_format)
        categories = list(schema.CATEGORIES) + sorted(set(brand_category.values()) - set(schema.CATEGORIES))
        info = {
            "name": name or f"instaloader-{src.name}",
            "schema_version": schema.SCHEMA_VERSION,
            "description": f"Imported from the instaloader download {src}",
            "categories": categories,
            "counts": {"accounts": len(acc), "brands": int((acc["kind"] == "brand").sum()),
                       "influencers": int((acc["kind"] == "influencer").sum()), "posts": len(posts),
                       "images": int((posts["image"] != "").sum()), "pairs": 0},
            "provenance": {"importer": "bamir.data.importers.instaloader", "source": str(src),
                           "max_posts": int(max_posts), "skipped": skipped, "brands_not_found": missing_brands},
        }
        atomic_write_text(tmp / schema.DATASET_FILE, yaml.safe_dump(info, sort_keys=False, allow_unicode=True))
        _write_knowledge(tmp, knowledge, seed)
        if pairs is not None:
            from bamir.data.importers.pairs import import_pairs

            import_pairs(tmp, pairs, test_brands=test_brands, seed=seed)
        publish_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


def _write_knowledge(root: Path, knowledge: str | Path | None, seed: int) -> None:
    if knowledge is None:
        return
    kdir = root / schema.KNOWLEDGE_DIR
    kdir.mkdir(parents=True, exist_ok=True)
    if str(knowledge) == "synthetic":
        from bamir.data.synthetic.knowledge import write_files

        write_files(root, seed)
        return
    source = Path(knowledge)
    for name in (*schema.CONCEPTNET_FILES, schema.CONCEPTS_FILE, schema.RELATED_HASHTAGS_FILE):
        if (source / name).is_file():
            shutil.copyfile(source / name, kdir / name)
