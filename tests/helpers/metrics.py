"""Comparing two runs' metric dictionaries, undefined (None) values included."""

from __future__ import annotations

from typing import Iterable, Mapping

import pytest


def assert_same_metrics(got: Mapping, expected: Mapping, keys: Iterable[str] | None = None, *,
                        prefix: str = "", tol: float = 1e-5, what: str = "") -> None:
    """Every key of ``expected`` starting with ``prefix`` (or every key of ``keys``) is undefined in both
    (None, e.g. cAUC without category peers) or equal within ``tol``; at least one is defined. ``what``
    names the compared run in the messages."""
    label = f"{what}: " if what else ""
    keys = [k for k in expected if k.startswith(prefix)] if keys is None else list(keys)
    defined = 0
    for key in keys:
        want, have = expected.get(key), got.get(key)
        if want is None:
            assert have is None, f"{label}{key} = {have} where the reference run has it undefined"
            continue
        assert have == pytest.approx(want, abs=tol), f"{label}{key}"
        defined += 1
    assert defined, f"{label}no metric defined among {keys}"
