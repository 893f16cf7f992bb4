"""Load pickles that may come from anyone, admitting only plain data.

``pickle.load`` on a user-supplied file runs whatever the file asks for (a ``__reduce__``
to ``os.system`` is enough). :func:`load_plain_pickle` uses an unpickler whose
``find_class`` refuses *every* global, so the file can build only what the pickle opcodes
make without a global: lists, dicts, tuples, ints, floats, strings, bools and None (plus
sets and bytes, which are refused afterwards). Anything else -- a class instance, a
reduce to a function, a numpy array -- raises :class:`UnsafePickleError` before any of
its code can run.
"""

from __future__ import annotations

import io
import os
import pickle
from pathlib import Path
from typing import Any

#: The Python types a plain pickle may hold.
PLAIN_TYPES = (list, dict, tuple, int, float, str, bool, type(None))


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global (class or function) or held non-plain data.

    ``path`` is the file, ``refused`` the global (``module.name``) or type that was refused.
    """

    def __init__(self, path: str, refused: str, message: str):
        super().__init__(message)
        self.path = path
        self.refused = refused


class _PlainUnpickler(pickle.Unpickler):
    def __init__(self, file: io.BufferedIOBase, where: str):
        super().__init__(file)
        self._where = where

    def find_class(self, module: str, name: str) -> Any:  # noqa: D401 - pickle API
        refused = f"{module}.{name}"
        raise UnsafePickleError(
            self._where,
            refused,
            f"{self._where}: refused global {refused!r}: only plain lists, dicts, tuples, ints, "
            "floats, strings, bools and None may be loaded",
        )

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(
            self._where, "persistent_id", f"{self._where}: refused a persistent id: only plain data may be loaded"
        )


def _check_plain(obj: Any, where: str) -> None:
    """Walk ``obj`` (iteratively, cycles allowed) and refuse any non-plain type."""
    seen: set[int] = set()
    stack = [obj]
    while stack:
        item = stack.pop()
        kind = type(item)
        if kind not in PLAIN_TYPES:
            refused = f"{kind.__module__}.{kind.__qualname__}"
            raise UnsafePickleError(
                where,
                refused,
                f"{where}: refused type {refused!r}: only plain lists, dicts, tuples, ints, floats, "
                "strings, bools and None may be loaded",
            )
        if kind in (list, tuple, dict):
            if id(item) in seen:
                continue
            seen.add(id(item))
            if kind is dict:
                stack.extend(item.keys())
                stack.extend(item.values())
            else:
                stack.extend(item)


def loads_plain_pickle(data: bytes, where: str = "<bytes>") -> Any:
    """Unpickle ``data`` admitting only plain data; ``where`` names the source in errors."""
    obj = _PlainUnpickler(io.BytesIO(data), where).load()
    _check_plain(obj, where)
    return obj


def load_plain_pickle(path: str | os.PathLike) -> Any:
    """Load the pickle at ``path``, admitting only plain lists, dicts, tuples, ints, floats,
    strings, bools and None.

    Raises :class:`UnsafePickleError` (naming the file and the refused global or type) for
    anything else, and ``pickle.UnpicklingError`` / ``EOFError`` for a corrupt file.
    """
    path = Path(path)
    return loads_plain_pickle(path.read_bytes(), str(path))
