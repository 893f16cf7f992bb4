"""Read an offline W&B run file (``offline-run-*/run-*.wandb``) back, for tests.

The file is a LevelDB-style log (as written by W&B's service): a 7-byte header
(``":W&B"``, magic ``0xBEE1``, a version byte), then 32 KiB blocks of chunks, each with a
7-byte header (CRC-32, length, type: full / first / middle / last) around the bytes of
``wandb_internal_pb2.Record`` protobuf messages.
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

BLOCK = 32 * 1024
FULL, FIRST, MIDDLE, LAST = 1, 2, 3, 4


def records(path: str | Path):
    """The file's ``Record`` messages, in order."""
    from wandb.proto import wandb_internal_pb2 as pb

    data = Path(path).read_bytes()
    ident, magic, version = struct.unpack("<4sHB", data[:7])
    assert ident == b":W&B" and magic == 0xBEE1 and version in (0, 1), f"{path}: not a W&B run file"
    pos, pending = 7, b""
    while pos + 7 <= len(data):
        left = BLOCK - pos % BLOCK
        if left < 7:  # the block's tail is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos:pos + 7])
        chunk = data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind == 0 and length == 0:  # zero padding at the end
            continue
        pending = chunk if kind in (FULL, FIRST) else pending + chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(pending)
            yield record


def run_summary(path: str | Path) -> dict:
    """The run's identity, config, history, metric definitions and summary records:
    ``{name, group, job_type, tags, config, history: [{key: value}], metrics: {name: summary}, summary, exit_code}``."""
    out: dict = {"config": {}, "summary": {}, "history": [], "metrics": {}, "exit_code": None}
    for record in records(path):
        kind = record.WhichOneof("record_type")
        if kind == "run":
            run = record.run
            out.update(name=run.display_name, group=run.run_group, job_type=run.job_type, tags=list(run.tags))
            out["config"].update({i.key: json.loads(i.value_json) for i in run.config.update})
        elif kind == "config":
            out["config"].update({i.key: json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "metric":
            summary = record.metric.summary
            out["metrics"][record.metric.name] = [f.name for f, v in summary.ListFields() if v]
        elif kind == "exit":
            out["exit_code"] = record.exit.exit_code
    return out


def finished_run(path: str | Path, timeout: float = 20.0) -> dict:
    """:func:`run_summary` once the file holds the run's exit record: W&B's service may write the
    end of the file a moment after ``wandb.finish()`` has returned."""
    deadline = time.monotonic() + timeout
    while True:
        summary = run_summary(path)
        if summary["exit_code"] is not None or time.monotonic() > deadline:
            return summary
        time.sleep(0.2)


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)
