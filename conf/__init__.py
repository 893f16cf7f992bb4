"""The Hydra configs: the wheel ships this folder inside the package as ``bamir.conf`` (setup.py).

Hydra imports this package to read the configs; importing :mod:`bamir.config` registers what they
rely on (resolvers, the feature stages' schemas), for the apps and the Compose API alike."""

import bamir.config  # noqa: F401
