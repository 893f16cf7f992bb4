"""Importers: an instaloader download and pair lists round-trip into a valid raw dataset."""

from __future__ import annotations

import io
import json
import lzma
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from bamir.data import schema
from bamir.data.importers import discover_split, import_instaloader, import_pairs, read_pairs
from bamir.data.validate import validate_dataset


def _jpeg(seed: int) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(seed).integers(0, 255, (12, 12, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _dump(path: Path, obj: dict, xz: bool) -> None:
    text = json.dumps(obj)
    if xz:
        with lzma.open(str(path) + ".json.xz", "wt", encoding="utf-8") as handle:
            handle.write(text)
    else:
        Path(str(path) + ".json").write_text(text)


PROFILES = {
    # username: (kind/category, followers, biography, business field, business value, xz)
    "veloair": ("airline", 250_000, "Fly with us ✈️", "business_category_name", "Airline Company", True),
    "crunchyfoods": ("food", 80_000, "Snacks for everyone", "category_name", "Food Brand", False),
    "mossmotors": ("auto", 120_000, "Drive the future", "business_category_name", "Automotive", True),
    "anna.runs": (None, 24_000, "Runner | coffee lover 📍Lisbon", "business_category_name", "Athlete", True),
    "mike_eats": (None, 9_500, "", "category_name", "Chef", False),
    "zoe.vale": (None, 61_000, "Designer", "business_category_name", "", True),
    "leo.drives": (None, 15_000, "Cars and coffee", "business_category_name", "Blogger", True),
}


def make_download(root: Path) -> dict[str, list[dict]]:
    """An instaloader-style download; returns the posts each profile should import (newest first)."""
    expected: dict[str, list[dict]] = {}
    for n, (user, (cat, followers, bio, field, value, xz)) in enumerate(PROFILES.items()):
        folder = root / user
        folder.mkdir(parents=True)
        (folder / "id").write_text(str(1000 + n))
        profile = {"username": user, "id": str(1000 + n), "biography": bio, "edge_followed_by": {"count": followers},
                   "full_name": user.title(), "is_business_account": cat is not None}
        if value:
            profile[field] = value
        _dump(folder / f"{user}_{1000 + n}", {"node": profile, "instaloader": {"version": "4.10", "node_type": "Profile"}}, xz)
        posts = []
        for k in range(5):
            moment = datetime(2019, 5, 20 - 2 * k, 10 + n, 30, 0, tzinfo=timezone.utc)
            stamp = moment.strftime("%Y-%m-%d_%H-%M-%S") + "_UTC"
            code = f"C{n}{k}x"
            caption = f"Post {k} of {user} #topic{k % 2} @friend{k}"
            node = {"__typename": "GraphImage", "id": str(n * 100 + k), "shortcode": code,
                    "taken_at_timestamp": int(moment.timestamp()), "is_video": False,
                    "edge_media_to_caption": {"edges": [{"node": {"text": caption}}]},
                    "edge_media_preview_like": {"count": 100 * (k + 1) + n}, "edge_media_to_comment": {"count": k + n},
                    "owner": {"id": str(1000 + n), "username": user}}
            image: bytes | None = _jpeg(n * 10 + k)
            if user == "anna.runs" and k == 1:  # a carousel: the first image is kept
                node["__typename"] = "GraphSidecar"
                (folder / f"{stamp}_1.jpg").write_bytes(image)
                (folder / f"{stamp}_2.jpg").write_bytes(_jpeg(999))
            elif user == "anna.runs" and k == 2:  # a video: its thumbnail is the image
                node["__typename"], node["is_video"] = "GraphVideo", True
                (folder / f"{stamp}.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42")
                (folder / f"{stamp}.jpg").write_bytes(image)
            elif user == "anna.runs" and k == 3:  # caption only in the .txt file, likes under edge_liked_by
                node.pop("edge_media_to_caption")
                node.pop("edge_media_preview_like")
                node["edge_liked_by"] = {"count": 77}
                caption = "Caption from the txt file #running"
                (folder / f"{stamp}.txt").write_text(caption)
                (folder / f"{stamp}.jpg").write_bytes(image)
            elif user == "mike_eats" and k == 4:  # no image downloaded
                image = None
            else:
                (folder / f"{stamp}.jpg").write_bytes(image)
            _dump(folder / stamp, {"node": node, "instaloader": {"version": "4.10", "node_type": "Post"}}, xz)
            posts.append({"post_id": code, "timestamp": moment.strftime("%Y-%m-%dT%H:%M:%S+00:00"), "caption": caption,
                          "likes": node.get("edge_media_preview_like", node.get("edge_liked_by"))["count"],
                          "comments": k + n, "image_bytes": image})
        # a post without metadata JSON (e.g. downloaded with --no-metadata-json): skipped
        (folder / "2019-01-01_00-00-00_UTC.jpg").write_bytes(_jpeg(5))
        (folder / "2019-01-01_00-00-00_UTC.txt").write_text("orphan")
        expected[user] = posts
    return expected


BRANDS = {"veloair": "airline", "crunchyfoods": "food", "mossmotors": "auto"}
PAIRS_CSV = ("Brand,Influencer,Competence Score,Rank\n"
             "veloair,@anna.runs,0.9,1\nveloair,zoe.vale,0.4,2\ncrunchyfoods,mike_eats,0.8,1\n"
             "crunchyfoods,anna.runs,0.3,2\nmossmotors,leo.drives,0.7,1\n")


@pytest.fixture
def download(tmp_path):
    root = tmp_path / "download"
    return root, make_download(root)


def test_instaloader_round_trip(download, tmp_path):
    src, expected = download
    (tmp_path / "pairs.csv").write_text(PAIRS_CSV)
    out = import_instaloader(src, tmp_path / "ds", BRANDS, tmp_path / "pairs.csv", max_posts=4, test_brands=1, seed=0)
    report = validate_dataset(out)
    assert report.ok, report.format()
    assert set(report.codes()) <= {"no_image", "empty_biography", "empty_business_category"}, report.format()

    acc = schema.read_table(out, "accounts").set_index("account_id")
    for user, (cat, followers, bio, _, value, _) in PROFILES.items():
        row = acc.loc[user]
        assert row["kind"] == ("brand" if cat else "influencer") and row["category"] == (cat or "")
        assert (row["followers"], row["biography"], row["business_category"]) == (followers, bio, value)

    posts = schema.read_table(out, "posts")
    for user, exp in expected.items():
        got = posts[posts["account_id"] == user].reset_index(drop=True)
        assert len(got) == 4  # max_posts: the 4 most recent
        for k, want in enumerate(exp[:4]):
            row = got.iloc[k]
            assert (row["post_id"], row["timestamp"], row["caption"], row["likes"], row["comments"]) == \
                   (want["post_id"], want["timestamp"], want["caption"], want["likes"], want["comments"])
            if want["image_bytes"] is None:
                assert row["image"] == ""
            else:
                assert (out / row["image"]).read_bytes() == want["image_bytes"]
    info = __import__("yaml").safe_load((out / "dataset.yaml").read_text())
    skipped = info["provenance"]["skipped"]
    assert skipped["post_without_metadata"] == len(PROFILES) and skipped["older_posts"] == len(PROFILES)

    pairs = schema.read_table(out, "pairs")
    assert list(zip(pairs["brand"], pairs["influencer"])) == [
        ("crunchyfoods", "mike_eats"), ("crunchyfoods", "anna.runs"), ("mossmotors", "leo.drives"),
        ("veloair", "anna.runs"), ("veloair", "zoe.vale")]
    assert pairs["score"].tolist() == [0.8, 0.3, 0.7, 0.9, 0.4]
    split = json.loads((out / "splits.json").read_text())["discover"]
    assert len(split["test_brands"]) == 1 and not set(split["test_brands"]) & set(split["train_brands"])
    assert set(split["test_candidates"]) == set(pairs.loc[pairs["brand"].isin(split["test_brands"]), "influencer"])
    assert (out / "knowledge/conceptnet.csv").is_file()


def test_instaloader_refuses_existing_output(download, tmp_path):
    src, _ = download
    (tmp_path / "ds").mkdir()
    (tmp_path / "ds" / "keep.txt").write_text("x")
    with pytest.raises(FileExistsError):
        import_instaloader(src, tmp_path / "ds", BRANDS)
    out = import_instaloader(src, tmp_path / "ds2", BRANDS, knowledge=None, table_format="csv")
    assert (out / "accounts.csv").is_file() and not (out / "knowledge").exists()
    assert len(schema.read_table(out, "pairs")) == 0


def test_read_pairs_aliases_and_tsv(tmp_path):
    path = tmp_path / "gan.tsv"
    path.write_text("brand_username\tmicro-influencer\tcompetence score\trank\n"
                    "@velo\tanna\t0.5\t1\nvelo\tbob\tn/a\t2\n\t\t\t\n")
    pairs = read_pairs(path)
    assert pairs[["brand", "influencer"]].values.tolist() == [["velo", "anna"], ["velo", "bob"]]
    assert pairs["score"].iloc[0] == 0.5 and np.isnan(pairs["score"].iloc[1]) and pairs["rank"].tolist() == [1, 2]
    with pytest.raises(ValueError, match="influencer"):
        read_pairs(pd.DataFrame({"brand": ["a"], "who": ["b"]}))


def test_read_pairs_from_a_spreadsheet_sheet(tmp_path):
    """The published pair lists are spreadsheets: a named sheet of an .xlsx reads like its CSV."""
    rows = pd.DataFrame({"Brand": ["@velo", "velo", "glow"], "Influencer": ["anna", "bob", "cara"],
                         "Score": ["0.5", "", "0.25"], "Rank": ["1", "2", "1"]})
    path = tmp_path / "pairs.xlsx"
    with pd.ExcelWriter(path) as writer:
        pd.DataFrame({"note": ["cover sheet"]}).to_excel(writer, sheet_name="about", index=False)
        rows.to_excel(writer, sheet_name="pairs", index=False)
    pairs = read_pairs(path, sheet="pairs")
    assert pairs[["brand", "influencer"]].values.tolist() == [["velo", "anna"], ["velo", "bob"], ["glow", "cara"]]
    assert pairs["score"].iloc[0] == 0.5 and np.isnan(pairs["score"].iloc[1]) and pairs["rank"].tolist() == [1, 2, 1]
    with pytest.raises(ValueError, match="brand"):
        read_pairs(path)  # the first sheet has no pair columns


def test_import_pairs_unknown_names(download, tmp_path):
    src, _ = download
    out = import_instaloader(src, tmp_path / "ds", BRANDS)
    bad = pd.DataFrame({"brand": ["veloair", "veloair", "ghostbrand", "anna.runs"],
                        "influencer": ["anna.runs", "nobody", "zoe.vale", "mike_eats"]})
    with pytest.raises(ValueError, match="3 pairs"):
        import_pairs(out, bad, split=False)
    good = import_pairs(out, pd.concat([bad, pd.DataFrame({"brand": ["crunchyfoods"], "influencer": ["ZOE.VALE"]})]),
                        strict=False)
    assert list(zip(good["brand"], good["influencer"])) == [("veloair", "anna.runs"), ("crunchyfoods", "zoe.vale")]
    info = __import__("yaml").safe_load((out / "dataset.yaml").read_text())
    assert info["counts"]["pairs"] == 2 and info["provenance"]["pairs"]["dropped_unknown"] == 3


def test_discover_split_properties():
    rng = np.random.default_rng(0)
    brands = [f"b{k}" for k in range(36)]
    category = {b: f"c{k % 12}" for k, b in enumerate(brands)}
    pairs = pd.DataFrame([(b, f"i{int(rng.integers(200))}") for b in brands for _ in range(5)],
                         columns=["brand", "influencer"]).drop_duplicates()
    split = discover_split(pairs, category, seed=1)
    test, train = set(split["test_brands"]), set(split["train_brands"])
    assert len(test) == round(36 * 74 / 360) and not test & train and test | train == set(brands)
    assert all(any(category[b] == c for b in train) for c in set(category.values()))
    assert set(split["test_candidates"]) == set(pairs.loc[pairs["brand"].isin(test), "influencer"])
    assert discover_split(pairs, category, seed=1) == split
    assert len(discover_split(pairs, category, test_brands=0.5)["test_brands"]) == 18
