"""One journal segment on disk, and the side-table row merge.

:class:`JournalSegment` is one open journal directory (see
:mod:`fcap.capture.journal` for the layout): meta file, side tables as Arrow IPC
files (replaced atomically), and the events as one Arrow IPC stream appended a
batch at a time. :func:`merge_rows` merges side-table updates on the keys in
:data:`SIDE_KEYS`. :class:`fcap.capture.writer.CaptureWriter` drives these;
the writer module re-exports the public names.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import time
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.ipc as ipc
from fcap.capture import journal as jr

from fcap.schema import EVENTS

#: Keys identifying a row of each side table (update_side_table merges on them).
SIDE_KEYS: dict[str, tuple[str, ...]] = {
    "processes": ("pid", "start_ts"),
    "fds": ("pid", "fd"),
    "containers": ("id",),
    "users": ("uid", "container_id"),
    "groups": ("gid", "container_id"),
    "cgroups": ("id",),
}


def is_enospc(err: BaseException) -> bool:
    """True when ``err`` says the disk (or the quota) is full."""
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left" in text or "errno 28" in text.lower()


class JournalSegment:
    """One open journal directory (one segment)."""

    def __init__(self, output: Path, meta: dict[str, Any], tables: dict[str, pa.Table],
                 compression: str) -> None:
        self.output = output
        self.path = jr.journal_path(output)
        self.meta = meta
        self.bytes = 0
        self.rows = 0
        self.start_mono = time.monotonic()
        os.mkdir(self.path, 0o700)
        os.chmod(self.path, 0o700)
        jr.write_atomic(self.path / jr.META_FILE, json.dumps(meta, sort_keys=True).encode())
        os.mkdir(self.path / jr.TABLES_DIR, 0o700)
        for name, table in tables.items():
            self.write_table(name, table)
        events = self.path / jr.EVENTS_FILE
        os.close(os.open(events, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        self.sink = pa.OSFile(str(events), "wb")
        opts = ipc.IpcWriteOptions(compression=compression)
        self.stream = ipc.new_stream(self.sink, EVENTS, options=opts)

    def write_table(self, name: str, table: pa.Table) -> None:
        """Replace side table ``name`` in the journal (atomic rename)."""
        data = jr.table_to_ipc(jr.conform(table, name))
        jr.write_atomic(self.path / jr.TABLES_DIR / f"{name}.arrow", data)

    def append(self, batches: list[pa.RecordBatch]) -> None:
        """Append EVENTS batches to the stream; update the row and byte counts."""
        for b in batches:
            self.stream.write_batch(b)
            self.rows += b.num_rows
        self.bytes = self.sink.tell()

    def close_stream(self) -> None:
        """End the events stream and close its file (errors ignored)."""
        with contextlib.suppress(Exception):
            self.stream.close()
        with contextlib.suppress(Exception):
            self.sink.close()



def merge_rows(name: str, old: pa.Table, new: pa.Table) -> pa.Table:
    """``old`` plus ``new``; a row of ``new`` replaces the ``old`` row with the same key."""
    keys = SIDE_KEYS.get(name)
    if not keys or old.num_rows == 0:
        return new if old.num_rows == 0 else pa.concat_tables([old, new])
    new_keys = set(zip(*(new.column(k).to_pylist() for k in keys), strict=True))
    old_keys = list(zip(*(old.column(k).to_pylist() for k in keys), strict=True))
    keep = pa.array([k not in new_keys for k in old_keys], pa.bool_())
    return pa.concat_tables([old.filter(keep), new])
