"""A realistic synthetic Instagram dataset with a planted ground truth (the embedded default).

Public API::

    synthesize(out_dir, cfg=None, seed=0, overwrite=False, foreign=False) -> Path
    ensure_synthetic(out_dir, cfg=None, seed=0, foreign=False) -> Path   # generate only if absent or stale
    merge_config(cfg) -> dict                              # DEFAULTS updated with a (partial) preset
    config_hash(cfg, seed) -> str                          # stored in dataset.yaml provenance
    is_synthetic(root) -> provenance dict | None

Modules: :mod:`.vocabulary` (topics, categories, words), :mod:`.world` (latent accounts,
planted affinity, positives, split), :mod:`.profiles` (usernames, biographies, business
categories), :mod:`.posts` (captions, hashtags, mentions, timestamps, engagement),
:mod:`.images` (motif rendering), :mod:`.knowledge` (ConceptNet edges, concepts, related
hashtags), :mod:`.generator` (orchestration, defects, writing), :mod:`.calibration`
(oracle, popularity, random and unlearned cosine rankings on the discover split).
"""

from bamir.data.synthetic.config import DEFAULTS, GENERATOR_VERSION, config_hash, merge_config
from bamir.data.synthetic.generator import ensure_synthetic, is_synthetic, synthesize

__all__ = ["DEFAULTS", "GENERATOR_VERSION", "config_hash", "ensure_synthetic", "is_synthetic", "merge_config",
           "synthesize"]
