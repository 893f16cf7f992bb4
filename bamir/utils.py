"""Small shared helpers: hashing, atomic writes, JSON, exclusive access to a folder."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

log = logging.getLogger(__name__)


def stable_hash(obj: Any) -> str:
    """SHA-256 of a JSON-serialisable object, independent of dict key order."""
    text = json.dumps(obj, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def file_hash(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file in the same folder and a rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def publish_dir(tmp: str | os.PathLike, dst: str | os.PathLike) -> None:
    """Move the finished folder ``tmp`` to ``dst``, replacing an old ``dst``.

    The old folder is renamed aside first and restored if the move fails, so ``dst`` always
    holds either the old or the new content, never a mix.
    """
    tmp, dst = Path(tmp), Path(dst)
    if not dst.exists():
        os.replace(tmp, dst)
        return
    backup = Path(tempfile.mkdtemp(dir=dst.parent, prefix=f".{dst.name}.old-"))
    backup.rmdir()
    os.replace(dst, backup)
    try:
        os.replace(tmp, dst)
    except BaseException:
        os.replace(backup, dst)
        raise
    shutil.rmtree(backup, ignore_errors=True)


@contextmanager
def exclusive(target: str | os.PathLike, what: str) -> Iterator[None]:
    """Hold the lock of ``target`` (the file ``.NAME.lock`` beside it) for the block.

    Processes that build the same dataset or store at once (the jobs of a parallel sweep,
    the SLURM tasks or torchrun ranks of one run) take turns: the first builds, the others
    wait here and then find the result fresh. A wait is logged with ``what`` (who waits).
    Where no lock file can be made (a read-only folder shared for reading), the block runs
    unlocked: a fresh dataset or store is only read.
    """
    from filelock import FileLock, Timeout

    target = Path(target)
    lock = FileLock(target.parent / f".{target.name}.lock")
    locked = True
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        lock.acquire(timeout=0)
    except Timeout:
        log.info("%s: waiting for another process writing %s", what, target)
        lock.acquire()
    except OSError as err:
        locked = False
        log.info("%s: cannot lock %s (%s); going on unlocked", what, target, err)
    try:
        yield
    finally:
        if locked:
            lock.release()
