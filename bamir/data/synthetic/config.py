"""The generator's configuration: defaults (the ``small`` preset), merging and hashing.

``conf/synthetic/{tiny,small,paper}.yaml`` hold the presets for Hydra; :data:`DEFAULTS`
repeats ``small.yaml`` so that the generator also runs from plain Python with a partial
config (a test keeps the two equal). Keys that do not change the output (``workers``,
``progress``) are left out of the config hash.
"""

from __future__ import annotations

import copy
from typing import Any, Mapping

from bamir.utils import stable_hash

#: Bumped whenever the same config and seed would produce different files.
GENERATOR_VERSION = 1

DEFAULTS: dict[str, Any] = {
    "name": "small",
    # sizes
    "brands_per_category": 12,       # 2 test, 2 validation and 8 fitting brands per category
    "influencers": 600,
    "posts_per_account": 12,
    "positives_per_brand": 11.7,     # mean; 3..31 per brand as in the real data
    "min_positives": 3,
    "max_positives": 31,
    "test_brands": 24,
    # files
    "image_size": 64,
    "image_quality": 85,
    "table_format": "parquet",
    "crawl_date": "2019-05-31",
    # how much of an account's interests each modality shows (0: none, 1: all)
    "signal": {
        "caption": 0.5,        # share of caption content words drawn from the post's topic
        "hashtag": 0.55,       # share of hashtags drawn from the post's topic
        "image": 0.7,          # share of images drawing the post's topic motif
        "biography": 0.7,      # share of biography interests drawn from the account's own topics
        "business": 0.5,       # share of influencers whose profile category follows their main topic
        "style": 1.0,          # strength of the account's visual style (filter) in its images
    },
    # the planted brand-influencer affinity: weights of its z-scored terms
    "affinity": {
        "topic": 0.35,         # cosine of brand and influencer topic mixtures
        "complement": 0.5,     # hidden lifestyle complementarity between different topics
        "category": 0.15,      # fit of the influencer's topics to the brand's category
        "style": 0.7,          # match of styles (image filter, emoji use)
        "region": 0.5,         # the influencer's audience region is one the brand addresses
        "reach": 0.6,          # brand-specific preference for bigger or smaller audiences
        "engagement": 0.2,     # engagement rate
        "noise": 1.0,          # pair noise (x std of the affinity) added before positives are drawn; not in the oracle
        "influencer_concentration": 0.5,   # Dirichlet concentration of influencer topic weights
        "brand_concentration": 1.5,        # how closely brands follow their category profile
        "brand_idiosyncrasy": 0.5,         # share of a brand's topic mixture outside its category profile
    },
    "mentions": {
        "brand_positive": 0.05,    # chance that a brand's posts mention a given positive influencer
        "brand_other": 0.05,       # the same, for influencers of the dataset that are not its positives
        "brand_external": 0.15,    # share of brand posts mentioning an account outside the dataset
        "influencer_friend": 0.08, # share of influencer posts mentioning a similar influencer
        "influencer_external": 0.1,
        "influencer_brand": 0.0,   # chance an influencer's posts tag a brand it works with (a leak: keep 0)
    },
    "defects": {
        "corrupt_images": 0.0,     # image file present but unreadable           (validator: error)
        "missing_images": 0.0,     # image path names a file that is not there   (validator: error)
        "no_image": 0.0,           # post without image                          (validator: warning)
        "empty_biography": 0.0,    # influencer with an empty biography          (validator: warning)
        "non_english_captions": 0.0,  # caption in another language or script    (validator: warning)
        "emoji_captions": 0.0,     # caption of emoji only                       (validator: warning)
        "duplicate_posts": 0.0,    # repost of the account's previous post       (validator: warning)
    },
    "workers": 1,
    "progress": True,
}

NON_OUTPUT_KEYS = ("workers", "progress")


def _to_plain(cfg: Any) -> Any:
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf

        if isinstance(cfg, (DictConfig, ListConfig)):
            return OmegaConf.to_container(cfg, resolve=True)
    except ImportError:  # pragma: no cover
        pass
    return cfg


def merge_config(cfg: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """:data:`DEFAULTS` updated with ``cfg`` (a dict or DictConfig); unknown keys raise KeyError."""
    merged = copy.deepcopy(DEFAULTS)
    plain = _to_plain(cfg) or {}

    def update(into: dict, new: Mapping, path: str) -> None:
        for key, value in new.items():
            if key not in into:
                raise KeyError(f"unknown synthetic config key {path}{key!r}")
            if isinstance(into[key], dict):
                if not isinstance(value, Mapping):
                    raise TypeError(f"synthetic config {path}{key} must be a mapping")
                update(into[key], value, f"{path}{key}.")
            else:
                into[key] = value

    update(merged, plain, "")
    return merged


def output_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """The part of a merged config that determines the output."""
    return {key: value for key, value in cfg.items() if key not in NON_OUTPUT_KEYS}


def config_hash(cfg: Mapping[str, Any] | None, seed: int) -> str:
    """Hash of what determines a generated dataset: output config, seed, generator version."""
    merged = merge_config(cfg)
    return stable_hash({"config": output_config(merged), "seed": int(seed), "generator_version": GENERATOR_VERSION})
