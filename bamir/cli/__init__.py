"""Command-line entry points, one small module per Hydra app.

``CONFIG_DIR`` is Hydra's search path of the configs: the package :data:`bamir.config.CONFIG_MODULE`.
Nothing here imports torch or lightning: ``--help``, ``--cfg`` and shell completion stay fast.
"""

from bamir.config import CONFIG_MODULE  # also registers the configs' resolvers before Hydra composes them

CONFIG_DIR = f"pkg://{CONFIG_MODULE}"
