"""A tiny raw dataset for the feature-preparation tests (no dependency on the generator).

4 brands, 12 influencers, 4-6 posts each with captions drawn from three themes, hashtags
(some of them like/follow spam), @mentions and 40 px JPEG images; among the images one
missing file, one corrupt file (random bytes), one truncated JPEG and one PNG.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from PIL import Image

THEMES = {
    "fashion": ("dress style outfit fabric designer runway model wear shoe heel", ("fashion", "ootd", "style"), (200, 40, 120)),
    "food": ("recipe kitchen delicious bake bread cheese dinner chef taste sauce", ("foodie", "yummy", "recipe"), (230, 160, 30)),
    "travel": ("beach mountain flight island hotel sunset journey explore hike ocean", ("travel", "wanderlust", "beach"), (30, 120, 220)),
}
BRANDS = [("b0", "fashion", "clothing"), ("b1", "food", "food"), ("b2", "travel", "airline"), ("b3", "fashion", "shoes")]
INFLUENCERS = [f"i{k}" for k in range(12)]
INF_THEME = ["fashion", "fashion", "fashion", "food", "food", "food", "travel", "travel", "travel", "fashion", "fashion", "food"]
PAIRS = [("b0", "i0"), ("b0", "i1"), ("b0", "i2"), ("b1", "i3"), ("b1", "i4"), ("b2", "i6"), ("b2", "i7"),
         ("b3", "i9"), ("b3", "i10"), ("b2", "i4")]
SPLIT = {"train_brands": ["b0", "b1"], "test_brands": ["b2", "b3"],
         "test_candidates": ["i4", "i6", "i7", "i8", "i9", "i10", "i11"]}
# special image cases: post id -> what
MISSING_POST = "i5_p1"
CORRUPT_POST = "i8_p0"
TRUNCATED_POST = "i8_p2"
PNG_POST = "b1_p0"
NO_IMAGE_POSTS = {"i2_p3", "b3_p1"}


def _jpeg(color, rng, size=40) -> bytes:
    base = np.array(color, dtype=np.float64)[None, None, :]
    noise = rng.normal(0, 25, size=(size, size, 3))
    grad = np.linspace(-30, 30, size)[None, :, None]
    pixels = np.clip(base + noise + grad, 0, 255).astype(np.uint8)
    buf = io.BytesIO()
    Image.fromarray(pixels).save(buf, format="JPEG", quality=85)
    return buf.getvalue()


def make_raw(root: Path, seed: int = 0) -> Path:
    """Write the tiny raw dataset into ``root`` and return it."""
    rng = np.random.default_rng(seed)
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    accounts, posts = [], []
    everyone = [(b, theme, "brand", cat) for b, theme, cat in BRANDS] + [
        (i, t, "influencer", "") for i, t in zip(INFLUENCERS, INF_THEME)
    ]
    for n, (account, theme, kind, category) in enumerate(everyone):
        accounts.append({"account_id": account, "username": f"user_{account}", "kind": kind, "category": category,
                         "biography": f"I love {theme}", "business_category": theme if kind == "brand" else "",
                         "followers": int(1000 * (n + 1) * (5 if kind == "brand" else 1))})
        words, tags, color = THEMES[theme]
        words = words.split()
        n_posts = 4 + n % 3
        for p in range(n_posts):
            post_id = f"{account}_p{p}"
            text = " ".join(rng.choice(words, size=12))
            caption = f"{text} #{tags[p % 3]} #{tags[(p + 1) % 3]} #like4like"
            if kind == "influencer" and p == 0:
                brand = next((b for b, i in PAIRS if i == account), "b0")
                caption += f" thanks @user_{brand} and @user_i{(n + 1) % 12}"
            image = f"images/{post_id}.jpg"
            if post_id in NO_IMAGE_POSTS:
                image = ""
            elif post_id == MISSING_POST:
                pass  # listed, never written
            elif post_id == CORRUPT_POST:
                (root / image).write_bytes(rng.integers(0, 256, size=500, dtype=np.uint8).tobytes())
            elif post_id == TRUNCATED_POST:
                (root / image).write_bytes(_jpeg(color, rng)[:120])
            elif post_id == PNG_POST:
                image = f"images/{post_id}.png"
                Image.new("RGB", (48, 36), color).save(root / image)
            else:
                (root / image).write_bytes(_jpeg(color, rng))
            posts.append({"post_id": post_id, "account_id": account,
                          "timestamp": f"2019-0{1 + p % 9}-{10 + n % 15:02d}T1{p % 10}:00:00Z",
                          "caption": caption, "image": image,
                          "likes": int(rng.integers(50, 500)), "comments": int(rng.integers(0, 40))})
    pd.DataFrame(accounts).to_csv(root / "accounts.csv", index=False)
    pd.DataFrame(posts).to_csv(root / "posts.csv", index=False)
    pd.DataFrame(PAIRS, columns=["brand", "influencer"]).to_csv(root / "pairs.csv", index=False)
    (root / "splits.json").write_text(json.dumps({"discover": SPLIT}))
    (root / "dataset.yaml").write_text(yaml.safe_dump({"name": "prep-fixture", "schema_version": 1}))
    return root


#: tiny, fast stage configs for the tests (CPU, no workers, random weights)
def tiny_stages(**overrides) -> dict:
    stages = {
        "topic": {"_target_": "bamir.features.topic.TopicStage", "num_topics": 3, "passes": 2, "iterations": 50,
                  "no_below": 1, "workers": 1},
        "object": {"_target_": "bamir.features.image.ObjectStage", "model": "test_resnet", "image_size": 32,
                   "batch_size": 8, "num_workers": 0, "shard_size": 5},
        "scene": {"_target_": "bamir.features.image.SceneStage", "backbone": "resnet18", "image_size": 32,
                  "backbone_overrides": {"depths": [1, 1, 1, 1], "hidden_sizes": [8, 16, 24, 32], "embedding_size": 8},
                  "decoder_hidden_size": 16, "num_labels": 12, "batch_size": 8, "num_workers": 0,
                  "shard_size": 5},
        "interaction": {"_target_": "bamir.features.interaction.InteractionStage"},
        "hashtag": {"_target_": "bamir.features.hashtag.HashtagStage", "dim": 4, "min_df": 1},
    }
    for key, value in overrides.items():
        if value is None:
            stages.pop(key, None)
        else:
            stages[key] = {**stages.get(key, {}), **value}
    return stages
