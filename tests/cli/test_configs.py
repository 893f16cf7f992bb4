"""Every config composes and instantiates; model=bamir_paper carries the published settings."""


import pytest
import torch
from hydra.utils import instantiate

from bamir.models.base import RankingModule
from tests.helpers.compose import compose_config
from tests.helpers.paths import REPO

CONF = REPO / "conf"


def _options(group):
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


@pytest.mark.parametrize("config", ["train", "eval"])
def test_app_configs_compose(config, tmp_path):
    cfg = compose_config(config, tmp_path, ["ckpt_path=x"] if config == "eval" else [])
    assert cfg.data._target_ == "bamir.datamodule.RankingDataModule"


@pytest.mark.parametrize("sampler", _options("sampler"))
def test_every_sampler_instantiates(sampler, tmp_path):
    cfg = compose_config("train", tmp_path, [f"sampler={sampler}"])
    assert instantiate(cfg.sampler).__class__.__name__.endswith("Sampler")


@pytest.mark.parametrize("model", _options("model"))
def test_every_model_instantiates(model, tmp_path):
    cfg = compose_config("train", tmp_path, [f"model={model}"])
    dims = {"topic": 19, "object": 8, "scene": 4, "concept": 16, "interaction": 6, "hashtag": 8}
    built = instantiate(cfg.model, input_dims=dims)
    assert isinstance(built, RankingModule)
    assert set(built.requested_modalities) <= set(dims), built.requested_modalities


@pytest.mark.parametrize("group", ["trainer", "logger", "callbacks", "dataset"])
def test_every_option_of_the_plain_groups_composes(group, tmp_path):
    import lightning as L
    from lightning.pytorch.loggers import Logger

    for option in _options(group):
        cfg = compose_config("train", tmp_path, [f"{group}={option}"])
        if group == "trainer":
            if cfg.trainer.accelerator == "gpu" and not torch.cuda.is_available():
                continue  # composes; instantiating needs a GPU
            assert isinstance(instantiate(cfg.trainer), L.Trainer), option
        elif group in ("logger", "callbacks"):
            kind = Logger if group == "logger" else L.Callback
            for name, node in (cfg.get(group) or {}).items():
                assert isinstance(instantiate(node), kind), f"{option}: {name}"
        else:  # a named store under the data folder
            assert cfg.dataset.name and str(cfg.dataset.store).startswith(cfg.paths.data_dir), option


@pytest.mark.parametrize("experiment", _options("experiment"))
def test_every_experiment_composes_and_builds_its_model_on_the_release(experiment, tmp_path):
    cfg = compose_config("train", tmp_path, [f"experiment={experiment}"], fast=False)
    assert cfg.dataset.name == "release" and cfg.task_name == experiment
    assert list(cfg.data.modalities) == ["topic", "concept"]  # what the release has for every account
    assert cfg.data.standardize is False  # the release's vectors as published
    model = instantiate(cfg.model, input_dims={"topic": 19, "concept": 128})
    assert set(model.modalities or model.requested_modalities) <= {"topic", "concept", "object", "scene"}


def test_bamir_paper_is_the_published_setting(tmp_path):
    cfg = compose_config("train", tmp_path, ["model=bamir_paper"], fast=False)
    assert cfg.seed == 24 and cfg.trainer.max_epochs == 100 and cfg.data.batch_size == 32
    assert cfg.model.optimizer.lr == 0.002 and cfg.model.scheduler.gamma == 0.95
    assert cfg.model.l1 == 0.001 and cfg.model.dropout == 0.5 and cfg.model.loss == "triplet"
    assert cfg.model.branches.content.margin == 4.0 and cfg.model.branches.concept.margin == 2.0
    enc = cfg.model.branches.content.encoders
    assert list(enc.topic.hidden) == [128, 512] and list(enc.image.hidden) == [1024, 1024, 1024, 512]
    assert list(cfg.model.branches.concept.encoders.concept.hidden) == [1024, 512]
    assert cfg.sampler._target_.endswith("MixedSampler")
    assert (cfg.sampler.uniform, cfg.sampler.same_category, cfg.sampler.repeats) == (3, 1, 5)


@pytest.mark.parametrize("launcher", ["slurm", "local_parallel"])
def test_launchers_compose(launcher, tmp_path):
    """hydra/launcher=slurm (submitit: one task per device) and the joblib local launcher."""
    from omegaconf import OmegaConf

    cfg = compose_config("train", tmp_path, [f"hydra/launcher={launcher}", "trainer=ddp_cpu"])
    launcher_cfg = OmegaConf.to_container(cfg.hydra.launcher, resolve=False)
    if launcher == "slurm":
        assert launcher_cfg["_target_"].endswith("SlurmLauncher")
        assert cfg.hydra.launcher.tasks_per_node == cfg.trainer.devices == 2
    else:
        assert launcher_cfg["_target_"].endswith("JoblibLauncher") and cfg.hydra.launcher.n_jobs == 2


def test_slurm_launcher_needs_a_number_of_devices(tmp_path):
    """trainer=ddp leaves devices=auto, which SLURM cannot be asked for: the error names the key."""
    from omegaconf.errors import InterpolationResolutionError

    cfg = compose_config("train", tmp_path, ["hydra/launcher=slurm", "trainer=ddp"])
    with pytest.raises(InterpolationResolutionError, match=r"trainer.devices='auto'.*e.g. trainer.devices=4"):
        cfg.hydra.launcher.tasks_per_node


def test_prepare_launcher_follows_the_extraction_devices(tmp_path):
    """hydra/launcher=slurm_prepare: one SLURM task per extraction device, on every node."""
    cfg = compose_config("prepare", tmp_path, ["hydra/launcher=slurm_prepare", "features/extraction=ddp",
                                               "features.extraction.devices=8", "features.extraction.num_nodes=2"], fast=False)
    assert cfg.hydra.launcher._target_.endswith("SlurmLauncher")
    assert (cfg.hydra.launcher.nodes, cfg.hydra.launcher.tasks_per_node, cfg.hydra.launcher.gpus_per_node) == (2, 8, 8)
    assert cfg.features.extraction.strategy == "ddp"


def test_run_logs_one_file_per_task_without_gensim_chatter(tmp_path, monkeypatch):
    """The job logging Hydra applies: gensim at WARNING (LDA's per-pass INFO lines out), and a log
    file per task of a multi-node run (rank 0 keeps train.log)."""
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("SLURM_PROCID", raising=False)
    cfg = compose_config("train", tmp_path)
    logging_cfg = cfg.hydra.job_logging
    assert logging_cfg.loggers.gensim.level == "WARNING"
    job = cfg.hydra.job.name  # "train" in the app, the caller's module name when composed here
    assert logging_cfg.handlers.file.filename == str(tmp_path / "run" / f"{job}.log")
    monkeypatch.setenv("SLURM_PROCID", "1")
    assert logging_cfg.handlers.file.filename == str(tmp_path / "run" / f"{job}_rank1.log")
