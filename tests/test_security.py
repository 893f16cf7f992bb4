"""Security: no bare loads of user files, configs cannot name arbitrary code, image paths stay inside."""

import ast

import pytest
from omegaconf import OmegaConf

from bamir.config import ALLOWED_TARGETS, AllowedTargets, allow_targets, allowed_targets, check_targets, instantiate
from tests.helpers.paths import REPO

PACKAGE = REPO / "bamir"


def _calls(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name):
            yield node, node.func.value.id, node.func.attr


def test_no_bare_pickle_or_torch_load_in_the_package():
    """Scan the code: torch.load only with weights_only=True; never pickle.load(s), yaml.load, np.load(allow_pickle), eval, exec."""
    offenders = []
    for path in PACKAGE.rglob("*.py"):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node, owner, attr in _calls(tree):
            where = f"{path.relative_to(PACKAGE.parent)}:{node.lineno}"
            if owner == "torch" and attr == "load":
                safe = any(k.arg == "weights_only" and isinstance(k.value, ast.Constant) and k.value.value is True
                           for k in node.keywords)
                if not safe:
                    offenders.append(f"{where}: torch.load without weights_only=True")
            if owner in ("pickle", "cPickle", "dill", "joblib") and attr in ("load", "loads"):
                offenders.append(f"{where}: {owner}.{attr}")
            if owner == "yaml" and attr in ("load", "unsafe_load", "full_load"):
                offenders.append(f"{where}: yaml.{attr} (use yaml.safe_load)")
            if owner in ("np", "numpy") and attr == "load":  # numpy refuses pickles unless told otherwise
                if any(k.arg == "allow_pickle" and not (isinstance(k.value, ast.Constant) and k.value.value is False)
                       for k in node.keywords):
                    offenders.append(f"{where}: np.load with allow_pickle")
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in ("eval", "exec"):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno}: {node.func.id}()")
    assert not offenders, "\n".join(offenders)


def test_configs_cannot_name_arbitrary_code():
    bad = OmegaConf.create({"model": {"_target_": "bamir.models.cosine.CosineBaseline",
                                      "hook": {"_target_": "os.system", "command": "echo pwned"}}})
    with pytest.raises(ValueError, match=r"model\.hook\._target_: target 'os.system' is not allowed"):
        instantiate(bad)
    with pytest.raises(ValueError, match="builtins.eval"):
        check_targets({"list": [{"_target_": "builtins.eval"}]})
    check_targets(OmegaConf.create({"a": {"_target_": "torch.optim.Adam", "_partial_": True}}))


def test_every_shipped_config_names_allowed_targets_only():
    conf = REPO / "conf"
    for path in conf.rglob("*.yaml"):
        check_targets(OmegaConf.load(path), where=str(path.relative_to(conf)))


@pytest.fixture
def job_targets():
    """Leave the next test with bamir's own targets only."""
    yield
    allow_targets(None)


def test_allowed_targets_lets_a_job_name_its_own_modules(job_targets):
    mine = {"callbacks": {"mark": {"_target_": "my_callbacks.Mark"}}}
    with pytest.raises(ValueError, match=r"callbacks\.mark\._target_: target 'my_callbacks\.Mark' is not allowed;"
                                         r".* config key allowed_targets, e.g. 'allowed_targets=\[my_callbacks\]'"):
        check_targets(mine)
    allow_targets(["my_callbacks", "wandb."])
    assert allowed_targets() == (*ALLOWED_TARGETS, "my_callbacks.", "wandb.")
    check_targets(mine)
    check_targets({"_target_": "wandb.sdk.Settings"})
    with pytest.raises(ValueError, match="my_callbacks_too.Mark"):  # a module, not any name that starts alike
        check_targets({"_target_": "my_callbacks_too.Mark"})
    allow_targets("my_callbacks")  # one module, not a list
    with pytest.raises(ValueError, match="wandb"):
        check_targets({"_target_": "wandb.sdk.Settings"})
    allow_targets(None)
    with pytest.raises(ValueError, match="allowed_targets"):
        check_targets(mine)


@pytest.mark.parametrize("app", ["train", "eval", "rank", "prepare", "benchmark"])
def test_every_app_applies_its_allowed_targets_at_job_start(app, tmp_path, job_targets):
    """Each app's config has the key and the Hydra callback that applies it when a job starts,
    replacing the previous job's (the jobs of a sweep may share a process)."""
    from tests.helpers.compose import compose_config

    assert compose_config(app, tmp_path, fast=False).allowed_targets == []
    cfg = compose_config(app, tmp_path, ["allowed_targets=[my_callbacks]"], fast=False)
    callback = instantiate(cfg.hydra.callbacks.allowed_targets)
    assert isinstance(callback, AllowedTargets)
    callback.on_job_start(config=cfg)
    check_targets({"_target_": "my_callbacks.Mark"})
    callback.on_job_start(config=compose_config(app, tmp_path, fast=False))
    with pytest.raises(ValueError, match="allowed_targets"):
        check_targets({"_target_": "my_callbacks.Mark"})
