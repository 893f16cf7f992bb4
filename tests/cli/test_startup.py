"""No app imports torch or lightning before Hydra has parsed its command line: ``--help``, ``--cfg``
and shell completion answer in about the time Hydra itself takes (benchmarks/startup.py times them)."""

import os
import subprocess
import sys

SCRIPT = """
import contextlib, importlib, io, pkgutil, sys
import bamir.cli
for module in pkgutil.iter_modules(bamir.cli.__path__):
    importlib.import_module(f"bamir.cli.{module.name}")
from hydra import compose, initialize_config_module
from bamir.config import CONFIG_MODULE
with initialize_config_module(version_base="1.3", config_module=CONFIG_MODULE):
    compose("train", overrides=["debug=fdr", "hparams_search=optuna"], return_hydra_config=True)
for argv in (["--help"], ["--cfg", "job"], ["-sc", "query=bash"]):  # completion reads COMP_LINE
    sys.argv = ["bamir-train", *argv]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):
        bamir.cli.train.main()
print(sorted({name.split(".")[0] for name in sys.modules} & {"torch", "lightning", "pytorch_lightning"}))
"""


def test_the_apps_start_without_torch_or_lightning():
    env = {**os.environ, "COMP_LINE": "bamir-train model=ba"}
    done = subprocess.run([sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout[-2000:]


def test_group_listings_made_from_one_repository_copy_equal_hydras_own():
    """bamir.cli lists config groups from one copy of Hydra's repository per process (the speed-up of
    --help): every group's options, configs and sub-groups alike, are what Hydra itself lists."""
    from hydra._internal.config_loader_impl import ConfigLoaderImpl
    from hydra._internal.utils import create_config_search_path
    from hydra.core.object_type import ObjectType

    import bamir.cli

    original = ConfigLoaderImpl.get_group_options.__wrapped__
    loader = ConfigLoaderImpl(config_search_path=create_config_search_path(bamir.cli.CONFIG_DIR))
    groups, todo = [], [""]
    while todo:
        parent = todo.pop()
        for child in original(loader, parent, ObjectType.GROUP):
            todo.append(f"{parent}/{child}" if parent else child)
            groups.append(todo[-1])
    assert {"model", "hydra/launcher", "features/extraction", "debug"} <= set(groups)
    for group in groups:
        for kind in (ObjectType.CONFIG, ObjectType.GROUP):
            assert loader.get_group_options(group, kind) == original(loader, group, kind), (group, kind)


def test_the_compose_api_needs_no_setup_of_its_own():
    """A script or notebook that composes ``pkg://bamir.conf`` without importing bamir first gets the
    feature stages' schemas and the resolvers: Hydra imports the config package, which registers them."""
    script = ("from hydra import compose, initialize_config_module\n"
              "with initialize_config_module(version_base='1.3', config_module='bamir.conf'):\n"
              "    cfg = compose('train', overrides=['features.topic.num_topics=7'])\n"
              "from omegaconf import OmegaConf\n"
              "print(cfg.features.topic.num_topics, cfg.features.topic._target_, OmegaConf.has_resolver('task_suffix'))\n")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.split() == ["7", "bamir.features.topic.TopicStage", "True"], done.stdout


def test_help_lists_the_groups_a_user_picks_from_not_the_stage_schemas():
    done = subprocess.run([sys.executable, "-m", "bamir.cli.train", "--help"], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    groups = done.stdout.split("== Configuration groups ==")[1].split("== Config ==")[0]
    assert "\nmodel: " in groups and "\nfeatures/topic: " in groups
    assert "schema" not in groups, groups
