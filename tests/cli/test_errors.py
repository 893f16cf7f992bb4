"""Hostile and broken input: linear-time text parsing, bounded pickles, validation at the door,
config refusals and readable errors (file, row, field or config key; exit code 2)."""

from __future__ import annotations

import os
import pickle
import re
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from PIL import Image

from bamir.data.release import BRAND_LIST, ReleaseError, import_release
from bamir.data.release.reader import _check_names
from bamir.data.safe_pickle import UnsafePickleError, bounded_repr, load_plain_pickle
from bamir.data.schema import RawDataset, TableError, read_table
from bamir.data.validate import ValidationError, caption_language
from bamir.features import pipeline
from bamir.features.hashtags import extract_hashtags, extract_mentions
from bamir.features.image.stage import _image_index
from bamir.features.text import preprocess, tokenize
from bamir.report_html import Thumbnails
from tests.helpers.prep import make_raw, tiny_stages
from tests.helpers.release import write_release_fixture

# ------------------------------------------------------------------ hostile texts (linear time)
MILLION = 1_000_000
HOSTILE_TEXTS = {
    "one long word": "a" * MILLION,
    "at signs": "a@" * (MILLION // 2),
    "only at signs": "@" * MILLION,
    "one at sign in the middle": "x" * (MILLION // 2) + "@" + "y" * (MILLION // 2),
    "dots and at signs": "a.b@" * (MILLION // 4),
    "apostrophes": "'a" * (MILLION // 2),
    "long url": "http://" + "a" * MILLION,
    "hashtags": "#a" * (MILLION // 2),
    "mentions": "@a." * (MILLION // 3),
}


@pytest.mark.parametrize("name", sorted(HOSTILE_TEXTS))
def test_text_patterns_are_linear_on_a_million_character_token(name):
    parsers = (preprocess, extract_hashtags, extract_mentions, caption_language)
    for parse in parsers:
        parse("warm up the caches #tag @user")
    start = time.perf_counter()
    for parse in parsers:
        parse(HOSTILE_TEXTS[name])
    assert time.perf_counter() - start < 5  # the e-mail pattern took minutes here


def test_links_emails_and_mentions_are_still_removed():
    assert tokenize("Mail me at jo.doe@mail.com, see www.x.io or https://y.z/a and ping @nat_geo now") == \
        ["mail", "me", "at", "see", "or", "and", "ping", "now"]


# ------------------------------------------------------------------ hostile pickles (bounded)
def _doubling(levels: int) -> list:
    """Each list holds the previous one twice: tiny on disk, 2**levels items once expanded."""
    value: list = []
    for _ in range(levels):
        value = [value, value]
    return value


def _nested_pickle(levels: int) -> bytes:
    """[[[...]]] ``levels`` deep, written opcode by opcode (pickle.dumps would recurse): EMPTY_LIST, APPEND."""
    return b"\x80\x02" + b"]" * levels + b"a" * (levels - 1) + b"."


@pytest.mark.parametrize("data, limit", [(pickle.dumps(_doubling(60), protocol=4), "expands to more than"),
                                         (_nested_pickle(100_000), "nests deeper than")], ids=["shared", "deep"])
def test_hostile_pickle_is_refused_quickly_naming_file_and_limit(tmp_path, data, limit):
    path = tmp_path / "sorted_360_brand_list.pkl"
    path.write_bytes(data)
    start = time.perf_counter()
    with pytest.raises(UnsafePickleError, match=limit) as info:
        load_plain_pickle(path)
    assert time.perf_counter() - start < 5
    assert str(path) in str(info.value)


def test_bounded_repr_of_a_huge_shared_structure():
    assert len(bounded_repr(_doubling(60))) < 2000
    assert len(bounded_repr("x" * MILLION)) < 100


def test_release_name_check_prints_a_bounded_repr(tmp_path):
    huge = _doubling(20)  # within the limits, a million items once printed in full
    with pytest.raises(ReleaseError, match="item 1 is") as info:
        _check_names(["ok", huge], tmp_path / "sorted_360_brand_list.pkl", "brand")
    assert len(str(info.value)) < 2000


# ------------------------------------------------------------------ validation at the door (prepare)
INTERACTION_ONLY = {"interaction": {"_target_": "bamir.features.interaction.InteractionStage"}}
_OPENED: list[str] | None = None  # paths opened while a test watches


def _audit(event: str, args: tuple) -> None:
    if _OPENED is not None and event == "open" and isinstance(args[0], (str, bytes, os.PathLike)):
        _OPENED.append(os.fsdecode(args[0]))


sys.addaudithook(_audit)


def _edit_posts(raw: Path, **cells) -> Path:
    """Set ``column=(row, value)`` cells of posts.csv (all strings)."""
    posts = pd.read_csv(raw / "posts.csv", dtype=str, keep_default_na=False)
    for column, (row, value) in cells.items():
        posts.loc[row, column] = value
    posts.to_csv(raw / "posts.csv", index=False)
    return raw


@pytest.fixture
def outside(tmp_path) -> Path:
    """A readable image file next to (outside) the dataset folder."""
    target = tmp_path / "other" / "secret.jpg"
    target.parent.mkdir()
    target.write_bytes(b"\xff\xd8 not for the pipeline")
    return target


@pytest.mark.parametrize("column, value, message", [
    ("likes", "-3", "posts.csv row 1 [likes]: post_id=b0_p1: -3 is negative"),
    ("likes", "12k", "posts.csv row 1 [likes]: post_id=b0_p1: '12k' is not an integer"),
    ("comments", "nan", "posts.csv row 1 [comments]: post_id=b0_p1: 'nan' is not an integer"),
    ("likes", "1e400", "posts.csv row 1 [likes]: post_id=b0_p1: '1e400' is not an integer"),
    ("timestamp", "yesterday", "posts.csv row 1 [timestamp]: post_id=b0_p1: 'yesterday' is not an ISO 8601"),
])
def test_prepare_refuses_bad_values_with_file_row_field(tmp_path, column, value, message):
    raw = _edit_posts(make_raw(tmp_path / "raw"), **{column: (1, value)})
    with pytest.raises(ValidationError) as info:
        pipeline.prepare(raw, tmp_path / "store", INTERACTION_ONLY, progress=False)
    assert message in str(info.value)
    assert not (tmp_path / "store" / "manifest.json").exists()


def test_training_app_store_build_validates_too(tmp_path):
    raw = _edit_posts(make_raw(tmp_path / "raw"), likes=(1, "-3"))
    with pytest.raises(ValidationError, match=re.escape("posts.csv row 1 [likes]")):
        pipeline.ensure_features(raw, tmp_path / "store", INTERACTION_ONLY)


def test_prepare_refuses_image_paths_outside_the_dataset_and_opens_none(tmp_path, outside):
    global _OPENED
    raw = _edit_posts(make_raw(tmp_path / "raw"), image=(1, "../other/secret.jpg"))
    _edit_posts(raw, image=(2, str(outside)))
    _OPENED = []
    try:
        with pytest.raises(ValidationError) as info:
            pipeline.prepare(raw, tmp_path / "store", tiny_stages(topic=None, scene=None), progress=False)
        opened = list(_OPENED)
    finally:
        _OPENED = None
    assert "posts.csv row 1 [image]: post_id=b0_p1: image path '../other/secret.jpg' leaves the dataset" in str(info.value)
    assert f"posts.csv row 2 [image]: post_id=b0_p2: image path '{outside}' is absolute" in str(info.value)
    assert not [p for p in opened if "secret" in p]


def test_image_stages_never_open_paths_outside_the_dataset(tmp_path, outside):
    raw = _edit_posts(make_raw(tmp_path / "raw"), image=(1, "../other/secret.jpg"))
    _edit_posts(raw, image=(2, str(outside)))
    dataset = RawDataset.load(raw)
    _, paths, without_image = _image_index(dataset, dataset.accounts["account_id"].tolist())
    root = os.path.realpath(raw)
    assert all(os.path.realpath(p).startswith(root + os.sep) for p in paths)
    assert without_image == 2 + 2  # the fixture's two posts without image, and the two refused paths


def test_prepare_tolerates_missing_and_corrupt_images_and_counts_them(tmp_path):
    stages = {"object": tiny_stages()["object"]}
    store = pipeline.prepare(make_raw(tmp_path / "raw"), tmp_path / "store", stages, progress=False)
    assert store.record("object")["skipped"] == {"missing_file": 1, "corrupt_image": 2}


@pytest.mark.parametrize("breakage, message", [
    ("drop likes", "posts.csv [likes]: required column 'likes' is missing"),
    ("latin-1", "posts.csv: cannot read table"),
    ("empty", "posts.csv: cannot read table"),
])
def test_prepare_names_the_file_of_a_broken_table(tmp_path, breakage, message):
    raw = make_raw(tmp_path / "raw")
    posts = raw / "posts.csv"
    if breakage == "drop likes":
        pd.read_csv(posts, dtype=str).drop(columns="likes").to_csv(posts, index=False)
    elif breakage == "latin-1":
        posts.write_bytes(posts.read_bytes().replace(b"#like4like", b"caf\xe9 #like4like", 1))
    else:
        posts.write_bytes(b"")
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        pipeline.prepare(raw, tmp_path / "store", INTERACTION_ONLY, progress=False)


# ------------------------------------------------------------------ apps: one message, exit code 2
def _main(app: str, *overrides: str, root: Path, capsys) -> str:
    """Run an app's Hydra main in this process; return what it printed, after its exit code 2."""
    import importlib

    main = importlib.import_module(f"bamir.cli.{app}").main
    argv = sys.argv
    sys.argv = [f"bamir-{app}", *overrides, f"paths.root_dir={root}", *(["logger=csv"] if app == "train" else [])]
    try:
        with pytest.raises(SystemExit) as info:
            main()
    finally:
        sys.argv = argv
    text = "".join(capsys.readouterr())
    assert info.value.code == 2, text[-3000:]
    return text


@pytest.mark.parametrize("app, override, message", [
    ("train", "trainer.max_epochs=abc", "config key trainer.max_epochs='abc': must be an integer >= -1"),
    ("train", "data.batch_size=0", "config key data.batch_size=0: must be an integer >= 1"),
    ("train", "data.batch_size=-5", "config key data.batch_size=-5: must be an integer >= 1"),
    ("train", "sampler.uniform=-2", "config key sampler.uniform=-2: must be an integer >= 0"),
    ("rank", "top_k=-3", "config key top_k=-3: must be an integer >= 1"),
    ("rank", "top_k=0", "config key top_k=0: must be an integer >= 1"),
])
def test_config_values_are_refused_when_the_job_starts(tmp_path, capsys, app, override, message):
    assert message in _main(app, override, root=tmp_path, capsys=capsys)
    assert not list(tmp_path.rglob("*.ckpt")) and not list(tmp_path.rglob("ranking.csv"))


def test_more_negatives_than_the_pool_is_refused(tmp_path, capsys, shared_data):
    text = _main("train", "dataset=planted_tiny", "model=bamir_small", "trainer=cpu", "sampler.uniform=1500",
                 f"paths.data_dir={shared_data}", root=tmp_path, capsys=capsys)
    assert "1501 negatives per positive (config keys sampler.uniform, sampler.same_category) exceed the pool of" in text


def test_prepare_app_names_a_missing_column(tmp_path, capsys):
    raw = make_raw(tmp_path / "raw")
    pd.read_csv(raw / "posts.csv", dtype=str).drop(columns="likes").to_csv(raw / "posts.csv", index=False)
    text = _main("prepare", f"raw_root={raw}", f"store_root={tmp_path / 'store'}", root=tmp_path, capsys=capsys)
    assert "posts.csv [likes]: required column 'likes' is missing" in text


def _prepare_process(raw: Path, root: Path, **env: str) -> subprocess.CompletedProcess:
    env = {**{k: v for k, v in os.environ.items() if k != "HYDRA_FULL_ERROR"}, "WANDB_MODE": "disabled", **env}
    return subprocess.run([sys.executable, "-m", "bamir.cli.prepare", f"raw_root={raw}", f"store_root={root / 'store'}",
                           f"paths.root_dir={root}"], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_prepare_app_reports_a_bad_dataset_without_traceback(tmp_path):
    raw = _edit_posts(make_raw(tmp_path / "raw"), image=(1, "../other/secret.jpg"), likes=(3, "12k"))
    proc = _prepare_process(raw, tmp_path)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 2 and "Traceback" not in text, text[-3000:]
    assert "posts.csv row 1 [image]" in text and "leaves the dataset folder" in text and "posts.csv row 3 [likes]" in text
    full = _prepare_process(raw, tmp_path, HYDRA_FULL_ERROR="1")
    assert full.returncode != 0 and "Traceback" in full.stderr and "ValidationError" in full.stderr


def test_prepare_counts_empty_captions_in_skipped(tmp_path):
    raw = _edit_posts(make_raw(tmp_path / "raw"), caption=(1, ""))
    _edit_posts(raw, caption=(2, "   "))
    store = pipeline.prepare(raw, tmp_path / "store", {"topic": tiny_stages()["topic"]}, progress=False)
    assert store.record("topic")["skipped"] == {"empty_captions": 2}


def test_report_thumbnails_never_open_paths_outside_the_dataset(tmp_path, outside):
    Image.new("RGB", (8, 8), "red").save(outside, format="JPEG")
    raw = _edit_posts(make_raw(tmp_path / "raw"), image=(0, "../other/secret.jpg"))
    _edit_posts(raw, image=(1, str(outside)))
    thumbs = Thumbnails(16)
    assert thumbs.recent(raw, "b0", 10)  # b0's posts inside the dataset still give thumbnails
    assert not [p for p in thumbs._cache if "secret" in str(p)]


@pytest.mark.parametrize("content, reason", [(b"", "EmptyDataError"), (b"post_id,caption\np1,caf\xe9\n", "UnicodeDecodeError"),
                                             (b"PAR1 not parquet", "ArrowInvalid")])
def test_unreadable_tables_name_their_file(tmp_path, content, reason):
    name = "posts.parquet" if reason == "ArrowInvalid" else "posts.csv"
    (tmp_path / name).write_bytes(content)
    with pytest.raises(TableError, match=re.escape(f"{tmp_path / name}: cannot read ({reason}")):
        read_table(tmp_path, "posts")


def test_import_release_refuses_a_tiny_exploding_pickle_at_once(tmp_path):
    release = write_release_fixture(tmp_path / "release" / "train_test_split")
    (release.path / BRAND_LIST).write_bytes(pickle.dumps(_doubling(60), protocol=4))
    start = time.perf_counter()
    with pytest.raises(ReleaseError) as info:
        import_release(release.path, tmp_path / "store")
    assert time.perf_counter() - start < 5
    assert str(info.value) == (f"{release.path / BRAND_LIST}: refused: the pickle expands to more than 50000000 items "
                               "(shared references counted per use) (the limit of a plain pickle)")
    assert not (tmp_path / "store").exists()
