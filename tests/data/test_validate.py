"""The raw-dataset validator: a valid hand-made fixture, then one bad fixture per rule."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

from bamir.data import schema
from bamir.data.validate import (ERROR, WARNING, ImagePaths, ValidationError, caption_language, dataset_fingerprint,
                                 main, require_valid, validate_dataset)

BRANDS = [("b0", "clothing"), ("b1", "food"), ("b2", "clothing"), ("b3", "food")]
INFLUENCERS = ["i0", "i1", "i2", "i3", "i4", "i5"]
PAIRS = [("b0", "i0"), ("b0", "i1"), ("b1", "i2"), ("b2", "i3"), ("b2", "i1"), ("b3", "i4"), ("b3", "i5")]
SPLIT = {"train_brands": ["b0", "b1"], "test_brands": ["b2", "b3"], "test_candidates": ["i1", "i3", "i4", "i5"]}


def _jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(buf, format="JPEG")
    return buf.getvalue()


def make_valid(root: Path, fmt: str = "parquet") -> Path:
    """A small dataset that passes with no errors and no warnings."""
    root.mkdir(parents=True, exist_ok=True)
    accounts = [{"account_id": b, "username": f"brand{b}", "kind": "brand", "category": c,
                 "biography": f"Official {c} brand", "business_category": "Clothing (Brand)", "followers": 50000}
                for b, c in BRANDS]
    accounts += [{"account_id": i, "username": f"user{i}", "kind": "influencer", "category": "",
                  "biography": "Runner and coffee lover", "business_category": "Athlete", "followers": 12000}
                 for i in INFLUENCERS]
    posts = []
    for a in [b for b, _ in BRANDS] + INFLUENCERS:
        for k in range(2):
            pid = f"{a}_p{k}"
            (root / "images" / a).mkdir(parents=True, exist_ok=True)
            (root / "images" / a / f"{pid}.jpg").write_bytes(_jpeg(len(posts)))
            posts.append({"post_id": pid, "account_id": a, "timestamp": f"2019-05-0{k + 1}T10:00:00+00:00",
                          "caption": f"Morning run with the crew number {len(posts)} #running #like4like",
                          "image": f"images/{a}/{pid}.jpg", "likes": 100 + k, "comments": 3})
    pairs = [{"brand": b, "influencer": i, "score": 0.5} for b, i in PAIRS]
    schema.write_table(pd.DataFrame(accounts), root, schema.ACCOUNTS, fmt)
    schema.write_table(pd.DataFrame(posts), root, schema.POSTS, fmt)
    schema.write_table(pd.DataFrame(pairs), root, schema.PAIRS, fmt)
    (root / schema.SPLITS_FILE).write_text(json.dumps({"discover": SPLIT}))
    k = root / "knowledge"
    k.mkdir(exist_ok=True)
    (k / "conceptnet.csv").write_text(
        "/a/[/r/IsA/,/c/en/runner/,/c/en/running/]\t/r/IsA\t/c/en/runner\t/c/en/running\t{\"weight\": 1.0}\n"
        "/a/[/r/RelatedTo/,/c/fr/voyage/,/c/fr/vacances/]\t/r/RelatedTo\t/c/fr/voyage\t/c/fr/vacances\t{\"weight\": 1.0}\n")
    (k / "concepts.csv").write_text("concept\nrunning\ncoffee\n")
    (k / "related_hashtags.csv").write_text("concept,hashtag,weight\nrunning,running,1.0\ncoffee,coffeetime,0.5\n")
    info = {"name": "fixture", "schema_version": schema.SCHEMA_VERSION, "categories": list(schema.CATEGORIES),
            "counts": {"accounts": len(accounts), "brands": len(BRANDS), "influencers": len(INFLUENCERS),
                       "posts": len(posts), "images": len(posts), "pairs": len(pairs)},
            "provenance": {"source": "test fixture"}}
    (root / schema.DATASET_FILE).write_text(yaml.safe_dump(info))
    return root


def _edit(root: Path, table: str, fn, csv: bool = False) -> None:
    frame = schema.read_table(root, table)
    frame = fn(frame)
    path = schema.table_path(root, table)
    if csv:  # values parquet cannot hold in the column's type
        path.unlink()
        schema.write_table(frame, root, table, "csv")
    else:
        schema.write_table(frame, root, table, path.suffix[1:])


def _set(table: str, row: int, col: str, value, csv: bool = False):
    def fn(frame):
        frame[col] = frame[col].astype(object)
        frame.at[row, col] = value
        return frame
    return lambda root: _edit(root, table, fn, csv)


def _info(fn):
    def edit(root):
        info = yaml.safe_load((root / schema.DATASET_FILE).read_text())
        fn(info)
        (root / schema.DATASET_FILE).write_text(yaml.safe_dump(info))
    return edit


def _split(fn):
    def edit(root):
        splits = json.loads((root / schema.SPLITS_FILE).read_text())
        fn(splits["discover"])
        (root / schema.SPLITS_FILE).write_text(json.dumps(splits))
    return edit


def _write(rel: str, data: bytes | str):
    def edit(root):
        path = root / rel
        path.write_bytes(data if isinstance(data, bytes) else data.encode())
    return edit


def _symlink_out(root: Path) -> None:
    outside = root.parent / f"{root.name}-outside.jpg"
    outside.write_bytes(_jpeg(99))
    target = root / "images" / "i0" / "i0_p0.jpg"
    target.unlink()
    os.symlink(outside, target)


def _folder_symlink_out(root: Path) -> None:
    """An account's image folder replaced by a link to a folder outside the dataset (same files)."""
    outside = root.parent / f"{root.name}-outside"
    shutil.move(root / "images" / "i0", outside)
    os.symlink(outside, root / "images" / "i0")


def _pairs_score_text(root):
    frame = schema.read_table(root, schema.PAIRS)
    frame["score"] = frame["score"].astype(object)
    frame.at[2, "score"] = "high"
    schema.write_table(frame.astype({"score": str}), root, schema.PAIRS, "csv")
    (root / "pairs.parquet").unlink()


# (name, edit, code, file, row, field)
ERROR_CASES = [
    ("no dataset.yaml", lambda r: (r / "dataset.yaml").unlink(), "missing_file", "dataset.yaml", None, None),
    ("yaml unparsable", _write("dataset.yaml", "name: [unclosed"), "unreadable", "dataset.yaml", None, None),
    ("no name", _info(lambda i: i.pop("name")), "missing_key", "dataset.yaml", None, "name"),
    ("schema version", _info(lambda i: i.update(schema_version=99)), "schema_version", "dataset.yaml", None,
     "schema_version"),
    ("counts disagree", _info(lambda i: i["counts"].update(posts=3)), "count_mismatch", "dataset.yaml", None,
     "counts.posts"),
    ("image count disagrees", _info(lambda i: i["counts"].update(images=1)), "count_mismatch", "dataset.yaml", None,
     "counts.images"),
    ("no accounts table", lambda r: (r / "accounts.parquet").unlink(), "missing_file", "accounts.parquet", None, None),
    ("missing column", lambda r: _edit(r, "posts", lambda f: f.drop(columns=["likes"])), "missing_column",
     "posts.parquet", None, "likes"),
    ("empty account id", _set("accounts", 5, "account_id", ""), "missing_value", "accounts.parquet", 5, "account_id"),
    ("duplicate account id", _set("accounts", 5, "account_id", "i0"), "duplicate_id", "accounts.parquet", 5,
     "account_id"),
    ("bad kind", _set("accounts", 4, "kind", "celebrity"), "bad_kind", "accounts.parquet", 4, "kind"),
    ("unknown category", _set("accounts", 1, "category", "weapons"), "unknown_category", "accounts.parquet", 1,
     "category"),
    ("brand without category", _set("accounts", 1, "category", ""), "missing_value", "accounts.parquet", 1,
     "category"),
    ("negative followers", _set("accounts", 6, "followers", -5), "negative_count", "accounts.parquet", 6,
     "followers"),
    ("non-integer followers", _set("accounts", 6, "followers", "lots", csv=True), "not_integer", "accounts.csv", 6,
     "followers"),
    ("duplicate post id", _set("posts", 3, "post_id", "b0_p0"), "duplicate_id", "posts.parquet", 3, "post_id"),
    ("post of unknown account", _set("posts", 2, "account_id", "nobody"), "unknown_account", "posts.parquet", 2,
     "account_id"),
    ("bad timestamp", _set("posts", 7, "timestamp", "yesterday at noon"), "bad_timestamp", "posts.parquet", 7,
     "timestamp"),
    ("negative likes", _set("posts", 8, "likes", -1), "negative_count", "posts.parquet", 8, "likes"),
    ("fractional comments", _set("posts", 8, "comments", 2.5, csv=True), "not_integer", "posts.csv", 8, "comments"),
    ("absolute image path", _set("posts", 9, "image", "/etc/passwd"), "image_path_absolute", "posts.parquet", 9,
     "image"),
    ("image path with ..", _set("posts", 9, "image", "images/../../outside.jpg"), "image_path_escapes",
     "posts.parquet", 9, "image"),
    ("symlink out of the folder", _symlink_out, "image_path_escapes", "posts.parquet", 8, "image"),
    ("image folder linked out of the folder", _folder_symlink_out, "image_path_escapes", "posts.parquet", 8, "image"),
    ("image file missing", lambda r: (r / "images/b1/b1_p1.jpg").unlink(), "image_missing", "posts.parquet", 3,
     "image"),
    ("image not an image", _write("images/b1/b1_p1.jpg", b"this is not a jpeg"), "image_unreadable",
     "posts.parquet", 3, "image"),
    ("truncated jpeg", _write("images/b1/b1_p1.jpg", _jpeg(3)[:200]), "image_unreadable", "posts.parquet", 3,
     "image"),
    ("pair names unknown influencer", _set("pairs", 1, "influencer", "ghost"), "unknown_account", "pairs.parquet",
     1, "influencer"),
    ("pair names unknown brand", _set("pairs", 0, "brand", "ghost"), "unknown_account", "pairs.parquet", 0, "brand"),
    ("pair brand is an influencer", _set("pairs", 1, "brand", "i5"), "wrong_kind", "pairs.parquet", 1, "brand"),
    ("pair influencer is a brand", _set("pairs", 1, "influencer", "b3"), "wrong_kind", "pairs.parquet", 1,
     "influencer"),
    ("score not a number", _pairs_score_text, "bad_score", "pairs.csv", 2, "score"),
    ("no splits.json", lambda r: (r / "splits.json").unlink(), "missing_file", "splits.json", None, None),
    ("split list not a list", _split(lambda s: s.update(test_brands="b2")), "bad_split", "splits.json", None,
     "discover.test_brands"),
    ("split names unknown account", _split(lambda s: s["test_candidates"].append("ghost")), "unknown_account",
     "splits.json", 4, "discover.test_candidates"),
    ("split brand is an influencer", _split(lambda s: s["train_brands"].append("i0")), "wrong_kind", "splits.json", 2,
     "discover.train_brands"),
    ("brand in train and test", _split(lambda s: s["train_brands"].append("b2")), "split_overlap", "splits.json",
     None, "discover"),
    ("split brand without pairs",
     lambda r: (_edit(r, "pairs", lambda f: f[f["brand"] != "b1"].reset_index(drop=True)),
                _info(lambda i: i["counts"].update(pairs=6))(r)),
     "split_brand_without_pairs", "splits.json", 1, "discover.train_brands"),
    ("test positive not a candidate", _split(lambda s: s["test_candidates"].remove("i4")), "positive_not_candidate",
     "splits.json", None, "discover.test_candidates"),
    ("no conceptnet file", lambda r: (r / "knowledge/conceptnet.csv").unlink(), "missing_file",
     "knowledge/conceptnet.csv", None, None),
    ("no concept set", lambda r: (r / "knowledge/concepts.csv").unlink(), "missing_file", "knowledge/concepts.csv",
     None, None),
    ("no related hashtags", lambda r: (r / "knowledge/related_hashtags.csv").unlink(), "missing_file",
     "knowledge/related_hashtags.csv", None, None),
    ("conceptnet row of 4 columns", _write("knowledge/conceptnet.csv", "/a/x\t/r/IsA\t/c/en/a\t/c/en/b\n"), "bad_row",
     "knowledge/conceptnet.csv", 0, None),
    ("conceptnet bad relation", _write("knowledge/conceptnet.csv", "/a/x\tIsA\t/c/en/a\t/c/en/b\t{}\n"),
     "bad_relation", "knowledge/conceptnet.csv", 0, "relation"),
    ("conceptnet bad node", _write("knowledge/conceptnet.csv", "/a/x\t/r/IsA\ten/a\t/c/en/b\t{}\n"), "bad_node",
     "knowledge/conceptnet.csv", 0, "start"),
    ("conceptnet bad info", _write("knowledge/conceptnet.csv", "/a/x\t/r/IsA\t/c/en/a\t/c/en/b\tweight=1\n"),
     "bad_info", "knowledge/conceptnet.csv", 0, "info"),
    ("affinity shape", lambda r: _write_affinity(r, (3, 6)), "affinity_shape", "planted_affinity.safetensors", None,
     "affinity"),
]


def _write_affinity(root: Path, shape) -> None:
    from safetensors.numpy import save_file

    save_file({"affinity": np.zeros(shape, np.float32)}, str(root / schema.AFFINITY_FILE))


WARNING_CASES = [
    ("empty biography", _set("accounts", 6, "biography", ""), "empty_biography", "accounts.parquet", 6, "biography"),
    ("post without image",
     lambda r: (_set("posts", 5, "image", "")(r), _info(lambda i: i["counts"].update(images=19))(r)),
     "no_image", "posts.parquet", 5, "image"),
    ("non-English caption", _set("posts", 4, "caption", "Une belle journée avec mes amis, c'est la vie #paris"),
     "caption_non_english", "posts.parquet", 4, "caption"),
    ("emoji caption", _set("posts", 4, "caption", "😍🔥✨"), "caption_no_text", "posts.parquet", 4, "caption"),
    ("repost", lambda r: (_set("posts", 13, "caption", schema.read_table(r, "posts").at[12, "caption"])(r),
                          (r / "images/i2/i2_p1.jpg").write_bytes((r / "images/i2/i2_p0.jpg").read_bytes())),
     "duplicate_post", "posts.parquet", 13, "caption"),
    ("influencer with category", _set("accounts", 7, "category", "food"), "influencer_category", "accounts.parquet",
     7, "category"),
    ("duplicate pair", lambda r: (_edit(r, "pairs", lambda f: pd.concat([f, f.iloc[[0]]], ignore_index=True)),
                                  _info(lambda i: i["counts"].update(pairs=8))(r)),
     "duplicate_pair", "pairs.parquet", 7, None),
    ("no provenance", _info(lambda i: i.pop("provenance")), "missing_provenance", "dataset.yaml", None, "provenance"),
]


@pytest.fixture
def valid(tmp_path) -> Path:
    return make_valid(tmp_path / "ds")


@pytest.mark.parametrize("fmt", ["parquet", "csv"])
def test_valid_fixture_is_clean(tmp_path, fmt):
    root = make_valid(tmp_path / "ds", fmt)
    report = validate_dataset(root)
    assert report.issues == [], report.format()
    assert report.ok and report.stats["posts"] == 20 and report.stats["images_decoded"] == 20


@pytest.mark.parametrize("name,edit,code,file,row,fld", ERROR_CASES, ids=[c[0] for c in ERROR_CASES])
def test_error_rule(valid, name, edit, code, file, row, fld):
    edit(valid)
    report = validate_dataset(valid)
    assert not report.ok
    hits = [i for i in report.errors if i.code == code]
    assert hits, f"{code} not reported:\n{report.format()}"
    assert any(i.file == file and i.row == row and i.field == fld for i in hits), [str(i) for i in hits]


@pytest.mark.parametrize("name,edit,code,file,row,fld", WARNING_CASES, ids=[c[0] for c in WARNING_CASES])
def test_warning_rule(valid, name, edit, code, file, row, fld):
    edit(valid)
    report = validate_dataset(valid)
    assert report.ok, report.format()
    assert [(i.code, i.file, i.row, i.field) for i in report.issues] == [(code, file, row, fld)], report.format()
    assert report.issues[0].severity == WARNING


def test_conceptnet_gz_and_external_url(valid):
    text = (valid / "knowledge/conceptnet.csv").read_text()
    text += "/a/[/r/ExternalURL/,/c/en/coffee/,http://dbpedia.org/resource/Coffee/]\t/r/ExternalURL\t/c/en/coffee\t" \
            "http://dbpedia.org/resource/Coffee\t{\"weight\": 0.5}\n"
    (valid / "knowledge/conceptnet.csv").unlink()
    with gzip.open(valid / "knowledge/conceptnet.csv.gz", "wt") as handle:
        handle.write(text)
    report = validate_dataset(valid)
    assert report.issues == [] and report.stats["conceptnet_rows_checked"] == 3


def test_without_image_decoding_paths_are_still_checked(valid):
    (valid / "images/b1/b1_p1.jpg").write_bytes(b"garbage")
    (valid / "images/b2/b2_p0.jpg").unlink()
    report = validate_dataset(valid, check_images=False)
    assert report.codes() == {"image_missing": 1}
    assert report.stats["images_checked"] is False


def test_image_paths_resolve_links_as_realpath_does(valid):
    """ImagePaths resolves each folder once and a file only when it is a link; it must accept and
    refuse exactly the paths that os.path.realpath puts inside and outside the dataset folder."""
    _symlink_out(valid)  # images/i0/i0_p0.jpg -> a file outside
    os.symlink(valid / "images" / "b1" / "b1_p1.jpg", valid / "images" / "b0" / "inside.jpg")  # a link inside
    os.symlink(valid / "images" / "b1", valid / "images" / "b1-alias")  # a folder linked inside
    _folder_symlink_out(valid)  # images/i0 itself -> a folder outside
    os.symlink(valid.parent, valid / "images" / "up")  # a folder linked above the dataset
    values = ["images/b0/inside.jpg", "images/b1-alias/b1_p1.jpg", "images/i0/i0_p0.jpg", "images/i0/i0_p1.jpg",
              f"images/up/{valid.name}/images/b1/b1_p1.jpg", "images/up/elsewhere.jpg", "images/b2/missing.jpg",
              "images/b2/", "images/./b1/b1_p1.jpg"]
    root_real = os.path.realpath(valid)
    paths = ImagePaths(valid)
    for value in values:
        inside = os.path.realpath(valid / value).startswith(root_real + os.sep)
        assert (paths.check(value)[0] is None) == inside, value
    assert paths.file("images/b1-alias/b1_p1.jpg") == valid / "images/b1-alias/b1_p1.jpg"  # the path, not its target
    assert paths.check("../x.jpg")[0] == "image_path_escapes" and paths.check("/x.jpg")[0] == "image_path_absolute"
    assert paths.check("C:/x.jpg")[0] == "image_path_absolute"


def test_dataset_fingerprint_follows_the_tables_not_the_images(valid):
    before = dataset_fingerprint(valid)
    (valid / "images/b1/b1_p1.jpg").write_bytes(b"garbage")  # images are not what the fingerprint covers
    assert dataset_fingerprint(valid) == before
    stat = (valid / "splits.json").stat()
    (valid / "splits.json").write_text((valid / "splits.json").read_text())  # same bytes, new time: changed
    os.utime(valid / "splits.json", ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))
    assert dataset_fingerprint(valid) != before
    os.utime(valid / "splits.json", ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert dataset_fingerprint(valid) == before
    (valid / "knowledge/concepts.csv").write_text("concept\ncoffee\n")
    assert dataset_fingerprint(valid) != before


def test_tolerate_downgrades_to_warnings(valid):
    (valid / "images/b1/b1_p1.jpg").write_bytes(b"garbage")
    assert not validate_dataset(valid).ok
    report = require_valid(valid, tolerate={"image_unreadable"})
    assert report.ok and report.codes(WARNING) == {"image_unreadable": 1}


def test_require_valid_raises_with_the_report(valid):
    _set("posts", 2, "account_id", "nobody")(valid)
    with pytest.raises(ValidationError) as info:
        require_valid(valid)
    assert info.value.report.codes(ERROR)["unknown_account"] == 1
    assert "posts.parquet row 2 [account_id]" in str(info.value)


def test_missing_folder(tmp_path):
    report = validate_dataset(tmp_path / "nope")
    assert report.codes() == {"missing_file": 1}


def test_cli_exit_codes_and_report(valid, capsys):
    assert main([str(valid)]) == 0
    assert "0 errors, 0 warnings" in capsys.readouterr().out
    _set("posts", 7, "timestamp", "not a time")(valid)
    (valid / "images/i0/i0_p0.jpg").write_bytes(b"x")
    assert main([str(valid), "--max-per-code", "1"]) == 1
    out = capsys.readouterr().out
    assert "bad_timestamp (1)" in out and "posts.parquet row 7 [timestamp]" in out and "INVALID" in out
    assert main([str(valid), "--no-images"]) == 1  # the timestamp is still wrong
    capsys.readouterr()
    assert main([str(valid), "--json"]) == 1
    payload = json.loads(capsys.readouterr().out)
    assert {i["code"] for i in payload["issues"]} == {"bad_timestamp", "image_unreadable"}


@pytest.mark.parametrize("caption,expected", [
    ("Morning run with the crew #running", None),
    ("Sunday means latte, croissant and sunrise in LA 😍 #coffee", None),
    ("#travel #wanderlust", None),
    ("😍🔥", "caption_no_text"),
    ("Hoy es un gran día para salir con los amigos", "caption_non_english"),
    ("Heute ist ein schöner Tag #berlin", "caption_non_english"),
    ("今日はとても楽しい一日でした #tokyo", "caption_non_english"),
    ("", None),
])
def test_caption_language(caption, expected):
    assert caption_language(caption) == expected
