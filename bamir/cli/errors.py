"""Errors users can read: every app runs its job inside :func:`app_errors`.

The project's own errors (all ``ValueError``: validation, store, release, checkpoint, cold
start, unknown names), known input errors (a missing file, a table pandas cannot read, a
non-UTF-8 file, a refused pickle) and config values out of range print one message naming
the file, row and field or the config key, and the app exits with code 2, without a stack
trace. ``HYDRA_FULL_ERROR=1`` shows the trace as Hydra would.
"""

from __future__ import annotations

import contextlib
import os
import pickle
import sys
from typing import Iterator

from omegaconf import DictConfig, OmegaConf

#: Errors an app reports as one message (ValueError covers UnicodeDecodeError and pandas' EmptyDataError).
USER_ERRORS = (ValueError, FileNotFoundError, FileExistsError, pickle.UnpicklingError)

#: Integer config keys checked when a job starts, each with its smallest allowed value.
CONFIG_RANGES: dict[str, int] = {
    "trainer.max_epochs": -1,
    "data.batch_size": 1,
    "data.eval_batch_size": 1,
    "sampler.negatives": 1,
    "sampler.uniform": 0,
    "sampler.same_category": 0,
    "sampler.repeats": 1,
    "sampler.k": 2,
    "top_k": 1,
}


class ConfigValueError(ValueError):
    """A config value outside its allowed range; the message names the key and the range."""


def check_config(cfg: DictConfig) -> None:
    """Refuse the first key of :data:`CONFIG_RANGES` whose value in ``cfg`` is out of range."""
    for key, low in CONFIG_RANGES.items():
        value = OmegaConf.select(cfg, key, default=None, throw_on_resolution_failure=False)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
            raise ConfigValueError(f"config key {key}={value!r}: must be an integer >= {low}")


@contextlib.contextmanager
def app_errors(cfg: DictConfig | None = None) -> Iterator[None]:
    """Check ``cfg``'s ranges, run the job; a user error logs one line and exits with code 2."""
    try:
        if cfg is not None:
            check_config(cfg)
        yield
    except USER_ERRORS as err:
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        print(f"error: {err}", file=sys.stderr)  # not a log record: apps that log nothing print it too
        raise SystemExit(2) from None
