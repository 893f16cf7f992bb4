"""The console of a run: third-party noise filtered here, and only here.

Each entry names what it silences and why it is harmless; anything not listed still shows.
"""

from __future__ import annotations

import logging
import warnings

#: (message regex, why it is harmless) of third-party warnings every run used to print
KNOWN_WARNINGS = (
    (r".*isinstance\(treespec, LeafSpec\)", "Lightning 2.6 calling a torch pytree API that torch deprecated"),
    (r"The number of training batches .* is smaller than the logging interval",
     "small datasets have fewer batches per epoch than log_every_n_steps; epoch-level values are logged anyway"),
    (r"`torch.jit.script` is deprecated",
     "torch_geometric scripts a few of its classes when imported; bamir scripts nothing"),
    (r".*does not have many workers which may be a bottleneck",
     "our loaders serve index batches from tensors in memory: workers would only add start-up time"),
)
#: start of Lightning's log lines that advertise other products
ADVERTISEMENTS = ("💡 Tip",)


class _DropAdvertisements(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.getMessage()).startswith(ADVERTISEMENTS)


def quiet_third_party() -> None:
    """Filter :data:`KNOWN_WARNINGS` and Lightning's tips; print Lightning's log lines once.

    Lightning adds a console handler of its own to the ``lightning`` logger and lets records
    propagate to the root logger too, so every line showed twice under Hydra's logging: the
    handler is removed when the root logger has handlers (Hydra's console and log file).
    """
    import lightning  # noqa: F401  (its import installs the handler removed here)

    for pattern, _why in KNOWN_WARNINGS:
        warnings.filterwarnings("ignore", message=pattern)
    root = logging.getLogger()
    for name in ("lightning", "lightning.pytorch", "lightning.fabric"):
        logger = logging.getLogger(name)
        if root.handlers:
            for handler in [h for h in logger.handlers if type(h) is logging.StreamHandler]:
                logger.removeHandler(handler)
            logger.propagate = True
        if not any(isinstance(f, _DropAdvertisements) for f in logger.filters):
            logger.addFilter(_DropAdvertisements())
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(_DropAdvertisements())
