"""A wheel (not an editable install) carries the configs: its apps run from any folder."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
from tests.helpers.paths import REPO

REPO = REPO


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> str:
    done = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.mark.slow
def test_wheel_installed_apps_run_outside_the_repository(tmp_path, shared_data, planted_store):
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "WANDB_MODE": "disabled"}
    _run([*pip, "wheel", "--no-deps", "--no-build-isolation", str(REPO), "-w", str(tmp_path / "wheel")], tmp_path, env)
    (wheel,) = (tmp_path / "wheel").glob("bamir-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    assert "bamir/conf/train.yaml" in names and "bamir/conf/debug/fdr.yaml" in names
    assert not any(n.startswith("bamir/conf/local/") for n in names)
    _run([*pip, "install", "--no-deps", "--target", str(tmp_path / "site"), str(wheel)], tmp_path, env)

    work = tmp_path / "elsewhere"
    work.mkdir()
    where = _run([sys.executable, "-c", "import bamir; print(bamir.__file__)"], work, env)
    assert Path(where.strip()).is_relative_to(tmp_path / "site"), where  # the wheel's code, not the repository's
    train = str(tmp_path / "site" / "bin" / "bamir-train")
    assert "task_name: train" in _run([train, "--cfg", "job"], work, env)

    root = tmp_path / "root"
    _run([train, "debug=fdr", "dataset=planted_tiny", "model=bamir_small", "logger=csv", "trainer=cpu",
          f"paths.root_dir={root}", f"paths.data_dir={shared_data}"], work, env)
    (metrics,) = (root / "outputs" / "debug" / "runs").glob("*/metrics.json")
    assert "test/auc_global" in metrics.read_text()
