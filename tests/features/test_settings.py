"""The stage settings (bamir/features/settings.py): one dataclass per stage holds every default, the
YAML files of ``conf/features/`` only override it, and Hydra checks keys and types when composing."""

from __future__ import annotations

from dataclasses import asdict

import pytest
from hydra import compose, initialize_config_module
from hydra.errors import ConfigCompositionException
from hydra.utils import get_class
from omegaconf import OmegaConf

from bamir.config import CONFIG_MODULE
from bamir.features.concept.stage import ConceptStage
from bamir.features.pipeline import load_stages
from bamir.features.settings import STAGES, ConceptSettings, ObjectSettings, SceneSettings
from tests.helpers.paths import REPO


def _features(*overrides: str):
    with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
        return compose("prepare", overrides=list(overrides)).features


@pytest.mark.parametrize("preset", ["small", "paper"])
def test_composed_stages_are_the_dataclass_defaults_plus_the_preset(preset):
    features = _features(f"features={preset}")
    overrides = OmegaConf.to_container(OmegaConf.load(REPO / "conf" / "features" / f"{preset}.yaml"))
    stages = load_stages(features)
    assert sorted(stages) == sorted(STAGES)
    for name, (settings, target) in STAGES.items():
        changed = overrides.get(name, {})
        composed = OmegaConf.to_container(features[name])
        assert composed == {**asdict(settings()), **changed, "_target_": target, "enabled": True}, name
        # the stage Hydra builds is the one Python builds from the same overrides
        assert stages[name].config() == get_class(target)(**changed).config(), name


def test_a_misspelt_key_or_a_wrong_type_fails_at_composition_naming_it():
    with pytest.raises(ConfigCompositionException, match="features.topic.num_topic"):
        _features("features.topic.num_topic=5")
    with pytest.raises(ConfigCompositionException, match="features.object.image_size"):
        _features("features.object.image_size=large")
    assert _features("features.topic.num_topics=7").topic.num_topics == 7


def test_a_stage_is_left_out_by_null_or_enabled_false():
    assert "topic" not in load_stages(_features("features.topic=null"))
    assert "concept" not in load_stages(_features("features.concept.enabled=false"))


def test_settings_check_their_values_when_built_in_python():
    with pytest.raises(ValueError, match="pooling"):
        ObjectSettings(pooling="median")
    with pytest.raises(ValueError, match="area"):
        SceneSettings(area="both")
    with pytest.raises(ValueError, match="source_weights"):
        ConceptSettings(source_weights={"captions": 1.0})


def test_whole_numbers_for_float_settings_hash_as_hydra_writes_them():
    """Hydra turns ``hashtag_threshold: 8`` into 8.0; Python keyword arguments give the same config
    (and so the same store hash); lists whose order does not matter are sorted."""
    assert ConceptStage(hashtag_threshold=8, p=1).config() == ConceptStage().config()
    reordered = ConceptStage(mention_kinds=["influencer-influencer", "brand-brand"]).config()
    assert reordered["mention_kinds"] == ["brand-brand", "influencer-influencer"]
    assert "device" not in ConceptStage().config() and "cache_dir" not in ConceptStage().config()
