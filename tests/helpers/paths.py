"""Folders of the repository, for tests that read its configs, notebooks or package."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"
