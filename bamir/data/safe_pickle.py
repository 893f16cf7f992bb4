"""Load pickles that may come from anyone, admitting only plain data.

``pickle.load`` on a user-supplied file runs whatever the file asks for (a ``__reduce__``
to ``os.system`` is enough). :func:`load_plain_pickle` uses an unpickler whose
``find_class`` refuses *every* global, so the file can build only what the pickle opcodes
make without a global: lists, dicts, tuples, ints, floats, strings, bools and None (plus
sets and bytes, which are refused afterwards). Anything else -- a class instance, a
reduce to a function, a numpy array -- raises :class:`UnsafePickleError` before any of
its code can run.

Pickles are also bounded: a file over ``max_bytes`` is refused before it is unpickled, and
the loaded value before anything walks it when it nests deeper than ``max_depth`` or
expands to more than ``max_items`` items (shared references counted once per use, as
``repr``, ``json`` or a recursive walk meet them: a 216-byte pickle of lists that
reference the previous list twice expands to 2^60 items). :func:`bounded_repr` prints a
loaded value in bounded space.
"""

from __future__ import annotations

import io
import os
import pickle
import reprlib
from pathlib import Path
from typing import Any

#: The Python types a plain pickle may hold.
PLAIN_TYPES = (list, dict, tuple, int, float, str, bool, type(None))
#: Limits of a plain pickle: file size, nesting depth, items once expanded.
MAX_BYTES = 1 << 30
MAX_DEPTH = 100
MAX_ITEMS = 50_000_000

_REPR = reprlib.Repr()
_REPR.maxstring = _REPR.maxother = 80


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


def _check_bounds(obj: Any, where: str, max_depth: int, max_items: int) -> None:
    """Refuse ``obj`` when it nests deeper than ``max_depth`` or expands past ``max_items``.

    One post-order walk with a memo per container: shared containers are visited once but
    counted once per reference; a container met again on its own path (a cycle) counts 1.
    """
    expanded: dict[int, tuple[int, int]] = {}  # id -> (items, depth)
    on_path: set[int] = set()
    stack: list[tuple[Any, bool]] = [(obj, False)]
    while stack:
        item, done = stack.pop()
        key = id(item)
        children = _children(item)
        if done:
            on_path.discard(key)
            sizes = [expanded.get(id(c), (1, 0)) for c in children]
            items = 1 + sum(n for n, _ in sizes)
            depth = 1 + max((d for _, d in sizes), default=0)
            if depth > max_depth:
                _refuse(where, "nesting depth", f"nests deeper than {max_depth} levels")
            if items > max_items:
                _refuse(where, "size", f"expands to more than {max_items} items (shared references counted per use)")
            expanded[key] = (items, depth)
        elif children is not None and key not in expanded and key not in on_path:
            on_path.add(key)
            stack.append((item, True))
            stack.extend((c, False) for c in children if isinstance(c, (list, tuple, dict)))


def _children(item: Any) -> list[Any] | None:
    if isinstance(item, dict):
        return [*item.keys(), *item.values()]
    return list(item) if isinstance(item, (list, tuple)) else None


def _refuse(where: str, limit: str, what: str) -> None:
    raise UnsafePickleError(where, limit, f"{where}: refused: the pickle {what} (the limit of a plain pickle)")


def bounded_repr(value: Any) -> str:
    """``repr(value)`` cut to a few items per container and 80 characters per string."""
    return _REPR.repr(value)


def loads_plain_pickle(data: bytes, where: str = "<bytes>", *, max_bytes: int = MAX_BYTES,
                       max_depth: int = MAX_DEPTH, max_items: int = MAX_ITEMS) -> Any:
    """Unpickle ``data`` admitting only plain data within the limits; ``where`` names the source in errors."""
    if len(data) > max_bytes:
        _refuse(where, "file size", f"has {len(data)} bytes, more than {max_bytes}")
    obj = _PlainUnpickler(io.BytesIO(data), where).load()
    _check_plain(obj, where)
    _check_bounds(obj, where, max_depth, max_items)
    return obj


def load_plain_pickle(path: str | os.PathLike) -> Any:
    """Load the pickle at ``path``, admitting only plain lists, dicts, tuples, ints, floats,
    strings, bools and None, within the limits of :func:`loads_plain_pickle`.

    Raises :class:`UnsafePickleError` (naming the file and the refused global, type or
    limit) for anything else, and ``pickle.UnpicklingError`` / ``EOFError`` for a corrupt file.
    """
    path = Path(path)
    if path.stat().st_size > MAX_BYTES:
        _refuse(str(path), "file size", f"has {path.stat().st_size} bytes, more than {MAX_BYTES}")
    return loads_plain_pickle(path.read_bytes(), str(path))
