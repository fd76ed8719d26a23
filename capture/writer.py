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
import pyarrow.ipc as ipc
from fcap.capture import journal as jr

from fcap.errors import CaptureError
from fcap.schema import EVENTS, META_FIELDS, SIDE_TABLES

#: Keys identifying a row of each side table (update_side_table merges on them).
SIDE_KEYS: dict[str, tuple[str, ...]] = {
    "processes": ("pid", "start_ts"),
    "fds": ("pid", "fd"),
    "containers": ("id",),
    "users": ("uid", "container_id"),
    "groups": ("gid", "container_id"),
    "cgroups": ("id",),
}

#: Buffered rows that force a flush even before the recorder asks for one.
#: ``fcap.meta`` keys that ``set_stats(**extra)`` may set (recorder counters);
#: every other META_FIELDS key is owned by the writer.
EXTRA_STATS_KEYS: frozenset[str] = frozenset({"shell_lost"})
RESERVED_META: frozenset[str] = frozenset(META_FIELDS) - EXTRA_STATS_KEYS

FLUSH_ROWS = 1_000_000


def segment_name(start_ns: int, index: int) -> str:
    """File name of rotated segment ``index`` (0-based) starting at ``start_ns``."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(start_ns / 1e9))
    return f"fcap-{stamp}-{index + 1:04d}.parquet"


def _probe_writable(directory: Path) -> None:
    probe = directory / f".fcap-probe-{os.getpid()}"
    try:
        fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.close(fd)
        probe.unlink()
    except OSError as err:
        raise CaptureError(
            f"output directory {directory} is not writable: {err.strerror}",
            hint="choose another -o path",
        ) from None


def check_output(path: Path, *, rotate: bool = False, overwrite: bool = False) -> None:
    """Fail early (before probes load) when ``path`` cannot receive a capture."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise CaptureError(f"cannot write {path}: directory {parent} does not exist")
    journal = jr.journal_path(path)
    if journal.exists():
        raise CaptureError(
            f"{journal} exists: an earlier recording to {path} did not finish",
            hint=f"run `fcap repair {journal}` to keep it, or remove it",
        )
    if rotate:
        if path.exists() and not path.is_dir():
            raise CaptureError(f"cannot write rotated segments to {path}: it is a file")
        if path.is_dir():
            crashed = sorted(path.glob("*" + jr.JOURNAL_SUFFIX))
            if crashed:
                raise CaptureError(
                    f"{crashed[0]} exists: an earlier recording to {path} did not finish",
                    hint=f"run `fcap repair {path}` to keep it, or remove it",
                )
            if any(path.glob("*.parquet")) and not overwrite:
                raise CaptureError(
                    f"{path} already holds capture segments", hint="choose another -o directory"
                )
            _probe_writable(path)
            return
    else:
        if path.is_dir():
            raise CaptureError(f"cannot write {path}: it is a directory", hint="give a file name")
        if path.exists() and not overwrite:
            raise CaptureError(f"{path} already exists", hint="remove it or choose another -o path")
    _probe_writable(parent)


def _is_enospc(err: BaseException) -> bool:
    if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    text = str(err)
    return "No space left" in text or "errno 28" in text.lower()


class _Journal:
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
        data = jr.table_to_ipc(jr.conform(table, name))
        jr.write_atomic(self.path / jr.TABLES_DIR / f"{name}.arrow", data)

    def append(self, batches: list[pa.RecordBatch]) -> None:
        for b in batches:
            self.stream.write_batch(b)
            self.rows += b.num_rows
        self.bytes = self.sink.tell()

    def close_stream(self) -> None:
        with contextlib.suppress(Exception):
            self.stream.close()
        with contextlib.suppress(Exception):
            self.sink.close()


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

    def _open_journal(self, start_ns: int) -> _Journal:
        meta = dict(self.meta, start_ns=start_ns, complete=False)
        if self.rotating:
            meta["segment"] = self.segment
        return _Journal(self._segment_output(start_ns), meta, self.tables, self.compression)

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
        if _is_enospc(err):
            return jr.disk_full(OSError(errno.ENOSPC, "No space left on device"), self._journal.path)
        return CaptureError(f"cannot write {self._journal.path}: {err}",
                            hint=f"run `fcap repair {self._journal.path}` to keep what was flushed")

    def _write_stats(self, j: _Journal, *, end_ns: int | None = None,
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


def merge_rows(name: str, old: pa.Table, new: pa.Table) -> pa.Table:
    """``old`` plus ``new``; a row of ``new`` replaces the ``old`` row with the same key."""
    keys = SIDE_KEYS.get(name)
    if not keys or old.num_rows == 0:
        return new if old.num_rows == 0 else pa.concat_tables([old, new])
    new_keys = set(zip(*(new.column(k).to_pylist() for k in keys), strict=True))
    old_keys = list(zip(*(old.column(k).to_pylist() for k in keys), strict=True))
    keep = pa.array([k not in new_keys for k in old_keys], pa.bool_())
    return pa.concat_tables([old.filter(keep), new])


def repair(path: Path) -> list[Path]:
    """Finalize a crashed journal (see :func:`fcap.capture.repair.repair`)."""
    from fcap.capture.repair import repair as _repair

    return _repair(path)
