"""Command-line entry points, one small module per Hydra app.

``CONFIG_DIR`` is absolute: Hydra resolves a relative ``config_path`` against the package
when an app starts from a console script, and the configs live in the project's ``conf/``.
"""

from pathlib import Path

import bamir.config  # noqa: F401  (registers the configs' resolvers before Hydra composes them)

CONFIG_DIR = str(Path(__file__).resolve().parents[2] / "conf")
