"""Command-line entry points, one small module per Hydra app.

``CONFIG_DIR`` is Hydra's search path of the configs: the package :data:`bamir.config.CONFIG_MODULE`.
Nothing here imports torch or lightning: ``--help``, ``--cfg`` and shell completion stay fast.
"""

import functools

from hydra._internal.config_loader_impl import ConfigLoaderImpl
from hydra._internal.hydra import Hydra
from hydra.core.object_type import ObjectType

# Hydra imports the config package (conf/__init__.py), which registers the resolvers and schemas
from bamir.config import CONFIG_MODULE
from bamir.features.settings import SCHEMA_GROUP

CONFIG_DIR = f"pkg://{CONFIG_MODULE}"


def _one_repository_per_listing(get_group_options):
    """Hydra 1.3 deep-copies its whole config repository for every group it lists: ``--help`` lists
    about 170 and spent 1.6 of its 2.2 s copying. The copy for a (config, overrides) pair is made
    once per process here; listings only read it."""

    @functools.wraps(get_group_options)
    def wrapper(self, group_name, results_filter=ObjectType.CONFIG, config_name=None, overrides=None):
        key = (config_name, tuple(overrides or ()))
        repositories = self.__dict__.setdefault("_bamir_listing_repositories", {})
        if key not in repositories:
            repositories[key] = self._parse_overrides_and_create_caching_repo(config_name, list(key[1]))[1]
        return repositories[key].get_group_options(group_name, results_filter)

    return wrapper


def _without_schemas(list_all_config_groups):
    """``--help`` lists the groups a user picks options from; the stage schemas that ``conf/features``
    extends (the ConfigStore group ``schema/``, :data:`bamir.features.settings.SCHEMA_GROUP`) are not."""

    @functools.wraps(list_all_config_groups)
    def wrapper(self, parent=""):
        return [g for g in list_all_config_groups(self, parent) if g.split("/")[0] != SCHEMA_GROUP.split("/")[0]]

    return wrapper


ConfigLoaderImpl.get_group_options = _one_repository_per_listing(ConfigLoaderImpl.get_group_options)
Hydra.list_all_config_groups = _without_schemas(Hydra.list_all_config_groups)
