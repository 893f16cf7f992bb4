"""The Hydra configs: the wheel ships this folder inside the package as ``bamir.conf`` (setup.py).

Hydra imports this package to read the configs, so what they rely on is registered here, for the
apps and the Compose API alike: the resolvers (:mod:`bamir.config`) and the feature stages'
settings schemas that ``features/<stage>/*.yaml`` extend (:func:`bamir.features.settings.register`).
Neither imports torch."""

import bamir.config  # noqa: F401  (the resolvers)
from bamir.features.settings import register

register()
