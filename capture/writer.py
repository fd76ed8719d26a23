"""The capture writer: journal while recording, Parquet when done.

:class:`CaptureWriter` is what the recorder feeds. ``write()`` buffers EVENTS
record batches; ``flush()`` (the recorder calls it at least once a second)
appends them to the journal's Arrow IPC stream with one ``write`` per batch and
replaces the stats file, so a ``kill -9`` loses at most what arrived since the
last flush. ``close()`` converts the journal to Parquet (see
:mod:`fcap.capture.journal`).

With ``rotate_bytes`` / ``rotate_seconds`` the output is a directory (0700) of
time-named segments ``fcap-<UTC start>-<NNNN>.parquet``; each is a complete
capture. A finished segment is converted on a background thread so the record
loop does not stall.

The journal segment on disk and the side-table merge live in
:mod:`fcap.capture.writer_journal`, the output checks and segment names in
:mod:`fcap.capture.writer_output`; their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa
from fcap.capture import journal as jr
from fcap.capture.writer_journal import SIDE_KEYS, JournalSegment, is_enospc, merge_rows
from fcap.capture.writer_output import check_output, segment_name

from fcap.errors import CaptureError
from fcap.schema import META_FIELDS, SIDE_TABLES

__all__ = [
    "EXTRA_STATS_KEYS",
    "FLUSH_ROWS",
    "RESERVED_META",
    "SIDE_KEYS",
    "CaptureWriter",
    "check_output",
    "merge_rows",
    "repair",
    "segment_name",
]

#: ``fcap.meta`` keys that ``set_stats(**extra)`` may set (recorder counters);
#: every other META_FIELDS key is owned by the writer.
EXTRA_STATS_KEYS: frozenset[str] = frozenset({"shell_lost"})
RESERVED_META: frozenset[str] = frozenset(META_FIELDS) - EXTRA_STATS_KEYS

#: Buffered rows that force a flush even before the recorder asks for one.
FLUSH_ROWS = 1_000_000

#: The journal segment class under its former name (tests patch it here).
_Journal = JournalSegment


class CaptureWriter:
    """Write a capture: journal while recording, Parquet on :meth:`close`.

    ``write``, ``flush``, ``update_side_table`` and ``set_stats`` may be called
    from different threads (e.g. a drain loop and a once-a-second timer).
    """

    def __init__(
        self,
        output: Path,
        *,
        meta: dict,
        side_tables: dict[str, pa.Table],
        rotate_bytes: int | None = None,
        rotate_seconds: float | None = None,
        compression: str = "lz4",
        flush_rows: int = FLUSH_ROWS,
    ) -> None:
        self.output = Path(output)
        self.rotating = bool(rotate_bytes or rotate_seconds)
        self.rotate_bytes = rotate_bytes
        self.rotate_seconds = rotate_seconds
        self.compression = compression
        self.flush_rows = flush_rows
        self.meta = dict(meta)
        self.meta.setdefault("start_ns", time.time_ns())
        self.tables = {n: jr.conform(side_tables.get(n, SIDE_TABLES[n].empty_table()), n)
                       for n in SIDE_TABLES}
        self.stats: dict[str, Any] = {"events_written": 0, "drops_per_cpu": [], "end_ns": None}
        self._drops_base: list[int] = []
        self._buffer: list[pa.RecordBatch] = []
        self._buffered = 0
        self._error: CaptureError | None = None
        self._closed = False
        self._lock = threading.RLock()
        self._files: list[Path] = []
        self._pending: list[Future[Path]] = []
        self._pool: ThreadPoolExecutor | None = None
        self.segment = 0
        try:
            if self.rotating:
                if not self.output.is_dir():
                    os.mkdir(self.output, 0o700)
                os.chmod(self.output, 0o700)
            self._journal = self._open_journal(self.meta["start_ns"])
        except OSError as err:
            raise jr.wrap_oserror(err, self.output) from None

    # --- segments -------------------------------------------------------------

    def _segment_output(self, start_ns: int) -> Path:
        if not self.rotating:
            return self.output
        return self.output / segment_name(start_ns, self.segment)

    def _open_journal(self, start_ns: int) -> JournalSegment:
        meta = dict(self.meta, start_ns=start_ns, complete=False)
        if self.rotating:
            meta["segment"] = self.segment
        return JournalSegment(self._segment_output(start_ns), meta, self.tables, self.compression)

    def _rotate_due(self) -> bool:
        if not self.rotating:
            return False
        j = self._journal
        if self.rotate_bytes and j.bytes >= self.rotate_bytes:
            return True
        return bool(self.rotate_seconds and time.monotonic() - j.start_mono >= self.rotate_seconds)

    def _rotate(self) -> None:
        old = self._journal
        old.close_stream()
        now = time.time_ns()
        self._write_stats(old, end_ns=now, closed=True)
        self._drops_base = list(self.stats.get("drops_per_cpu") or [])
        if self._pool is None:
            self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="fcap-finalize")
        self._pending.append(self._pool.submit(jr.finalize, old.path, complete=True))
        self.segment += 1
        self._journal = self._open_journal(now)
        self._check_pending(block=False)

    def _check_pending(self, *, block: bool) -> None:
        still = []
        for fut in self._pending:
            if block or fut.done():
                try:
                    self._files.append(fut.result())
                except CaptureError as err:
                    self._error = self._error or err
                except OSError as err:
                    self._error = self._error or jr.wrap_oserror(err, self.output)
            else:
                still.append(fut)
        self._pending = still

    # --- the recorder's API ----------------------------------------------------

    def _fail_if_broken(self) -> None:
        if self._error is not None:
            raise self._error
        if self._closed:
            raise CaptureError(f"capture {self.output} is already closed")

    def write(self, batch: pa.RecordBatch) -> None:
        """Buffer an EVENTS batch; flushed by :meth:`flush` (or when the buffer is large)."""
        self._fail_if_broken()
        if batch.num_rows == 0:
            return
        batch = jr.conform_batch(batch)
        with self._lock:
            self._buffer.append(batch)
            self._buffered += batch.num_rows
            full = self._buffered >= self.flush_rows
        if full:
            self.flush()

    def flush(self) -> None:
        """Append buffered events to the journal and update its stats file."""
        self._fail_if_broken()
        with self._lock:
            batches, self._buffer, self._buffered = self._buffer, [], 0
            try:
                if batches:
                    self._journal.append(batches)
                self._write_stats(self._journal)
            except (OSError, pa.ArrowException) as err:
                self._error = self._fatal(err)
                raise self._error from None
            if self._rotate_due():
                try:
                    self._rotate()
                except OSError as err:
                    self._error = self._fatal(err)
                    raise self._error from None

    def _fatal(self, err: BaseException) -> CaptureError:
        self._journal.close_stream()
        if is_enospc(err):
            return jr.disk_full(OSError(errno.ENOSPC, "No space left on device"), self._journal.path)
        return CaptureError(f"cannot write {self._journal.path}: {err}",
                            hint=f"run `fcap repair {self._journal.path}` to keep what was flushed")

    def _write_stats(self, j: JournalSegment, *, end_ns: int | None = None,
                     closed: bool = False) -> None:
        drops = list(self.stats.get("drops_per_cpu") or [])
        base = self._drops_base + [0] * (len(drops) - len(self._drops_base))
        seg_drops = [max(0, d - b) for d, b in zip(drops, base, strict=False)]
        stats = {
            "events_written": j.rows,
            "events_written_total": self.stats.get("events_written"),
            "drops_per_cpu": seg_drops,
            "end_ns": end_ns or self.stats.get("end_ns") or time.time_ns(),
            "flushed_ns": time.time_ns(),
            "journal_bytes": j.bytes,
            "closed": closed,  # the stream was ended cleanly (a rotated segment)
            "meta": self.stats.get("meta") or {},  # extra keys for fcap.meta (set_stats)
        }
        jr.write_atomic(j.path / jr.STATS_FILE, json.dumps(stats).encode())

    def update_side_table(self, name: str, table: pa.Table) -> None:
        """Merge rows into side table ``name`` (rows with the same key are replaced)."""
        self._fail_if_broken()
        if name not in SIDE_TABLES:
            raise ValueError(f"unknown side table {name!r}")
        if table.num_rows == 0:
            return
        with self._lock:
            merged = merge_rows(name, self.tables[name], jr.conform(table, name))
            self.tables[name] = merged
            try:
                self._journal.write_table(name, merged)
            except OSError as err:
                self._error = self._fatal(err)
                raise self._error from None

    def set_stats(self, *, events_written: int, drops_per_cpu: list[int], end_ns: int,
                  **extra: Any) -> None:
        """Record the recorder's counters (cumulative); written at the next flush.

        ``extra`` keys (e.g. ``shell_lost``) are JSON values stored as they are in
        the final ``fcap.meta``; core meta keys are refused (``ValueError``).
        """
        reserved = sorted(set(extra) & RESERVED_META)
        if reserved:
            raise ValueError(f"set_stats cannot set reserved meta keys: {', '.join(reserved)}")
        try:
            json.dumps(extra)
        except (TypeError, ValueError) as err:
            raise ValueError(f"set_stats extra values must be JSON values: {err}") from None
        self.stats = {"events_written": int(events_written),
                      "drops_per_cpu": [int(d) for d in drops_per_cpu], "end_ns": int(end_ns),
                      "meta": dict(extra)}

    @property
    def journal(self) -> Path:
        """The journal directory being written."""
        return self._journal.path

    def close(self) -> list[Path]:
        """Flush, finalize the journal(s) into Parquet, and return the capture files."""
        if self._closed:
            return list(self._files)
        if self._error is None:
            with contextlib.suppress(CaptureError):
                self.flush()
        self._closed = True
        self._journal.close_stream()
        if self._error is None:
            self._write_stats_quiet()
            try:
                out = jr.finalize(self._journal.path, complete=True)
                self._files.append(out)
            except CaptureError as err:
                self._error = err
        self._check_pending(block=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)
        if self._error is not None:
            raise self._error
        return sorted(self._files)

    def _write_stats_quiet(self) -> None:
        with contextlib.suppress(OSError):
            self._write_stats(self._journal)

    def __enter__(self) -> CaptureWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._closed:
            self.close()


def repair(path: Path) -> list[Path]:
    """Finalize a crashed journal (see :func:`fcap.capture.repair.repair`)."""
    from fcap.capture.repair import repair as _repair

    return _repair(path)
