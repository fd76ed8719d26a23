"""The live recording loop: probes -> ring buffer -> numpy -> CaptureWriter.

Order of a recording (:meth:`Recorder.start`): check the output path, check
the prerequisites and load the BPF program (events start queueing in the
ring), take the /proc snapshot, read users/groups/containers and the host
metadata, open the :class:`~fcap.capture.writer.CaptureWriter`, start the
shell probe. Then :meth:`Recorder.run` drains the ring every ``poll_ms``
(records are submitted without wakeup), decodes what accumulated in bulk
(:mod:`fcap.capture.decode`) every ``batch_ms`` or when a batch is large,
writes it, flushes the writer at least once a second, and shows a status
line. Stop: Ctrl-C, SIGTERM, ``duration``, ``max_events``, or an error such as
a full disk (what was flushed is kept; the error propagates).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import signal
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
from fcap.capture.decode import decode
from fcap.capture.drainer import Drainer
from fcap.capture.filters import Filters, cgroup_ids_for, filter_batch, snapshot_descendants
from fcap.capture.probe import Probe, ProbeConfig, check_prerequisites
from fcap.capture.ringbuf import Records, RingBuffer

from fcap.errors import CaptureError


@dataclass(frozen=True)
class RecordOptions:
    """Everything ``fcap record`` can set."""

    output: Path
    syscalls: tuple[str, ...]
    filters: Filters = field(default_factory=Filters)
    snaplen: int = 0
    duration: float | None = None
    max_events: int | None = None
    rotate_bytes: int | None = None
    rotate_seconds: float | None = None
    quiet: bool = True
    shell: bool = True
    ring_mb: int = 64
    poll_ms: int = 10
    batch_ms: int = 250
    batch_rows: int = 131_072
    with_env: bool = False
    command: tuple[str, ...] = ()


@dataclass
class RecordResult:
    """What a finished recording produced."""

    files: list[Path]
    events: int
    drops_per_cpu: list[int]
    elapsed_s: float
    cpu_s: float
    shell_lost: int = 0  # shell-probe records lost (included in drops_per_cpu[0])

    @property
    def drops_total(self) -> int:
        return sum(self.drops_per_cpu)


def merge_records(parts: list[Records]) -> Records:
    """One Records over several drained spans (buffers concatenated, offsets shifted)."""
    parts = [p for p in parts if len(p.starts)]
    if not parts:
        return Records(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [len(p.buf) for p in parts[:-1]])
    buf = np.concatenate([p.buf for p in parts])
    starts = np.concatenate([p.starts + s for p, s in zip(parts, shifts, strict=True)])
    lengths = np.concatenate([p.lengths for p in parts])
    return Records(buf, starts, lengths, sum(p.consumed for p in parts))


class Recorder:
    """One recording session (use :meth:`start`, :meth:`run`, or :func:`record`)."""

    def __init__(self, opts: RecordOptions) -> None:
        self.opts = opts
        self.probe: Probe | None = None
        self.rings: list[RingBuffer] = []
        self.writer = None
        self.shell = None
        self.resolver = None
        self.events = 0
        self.stop_event = threading.Event()
        self.boot_offset_ns = time.clock_gettime_ns(time.CLOCK_REALTIME) - time.clock_gettime_ns(
            time.CLOCK_BOOTTIME
        )
        self._t0 = 0.0
        self._cpu0 = 0.0
        self._cg_filter: set[int] = set()
        self.shell_lost = 0
        self._unresolved: set[int] = set()

    # --- start ----------------------------------------------------------------

    def start(self) -> None:
        """Check, load the probes, snapshot, open the writer."""
        from fcap.capture import writer as capwriter

        o = self.opts
        o.filters.check()
        rotating = bool(o.rotate_bytes or o.rotate_seconds)
        capwriter.check_output(o.output, rotate=rotating)
        check_prerequisites()
        from fcap.capture.accounts import read_accounts
        from fcap.capture.containers import ContainerResolver
        from fcap.capture.hostinfo import host_meta
        from fcap.capture.snapshot import take_snapshot

        # rescan soon after an unknown cgroup id shows up: short-lived containers vanish fast
        self.resolver = ContainerResolver(min_rescan_interval=0.25)
        cg_ids = None
        if o.filters.containers:
            idx = self.resolver.index
            self._cg_filter = cgroup_ids_for(o.filters.containers, idx.paths, idx.containers)
            cg_ids = tuple(sorted(self._cg_filter))
        self.probe = Probe(
            ProbeConfig(
                syscalls=o.syscalls, snaplen=o.snaplen, pids=o.filters.pids,
                comms=o.filters.comms, exclude_comms=o.filters.exclude_comms,
                cgroup_ids=cg_ids, ring_mb=o.ring_mb,
            )
        )  # fmt: skip
        try:
            self.rings = [RingBuffer(fd, self.probe.ring_bytes) for fd in self.probe.ring_fds]
            start_ns = time.time_ns()
            snap = take_snapshot(with_env=o.with_env, exclude_pids={os.getpid()})
            if o.filters.pids:
                self.probe.add_pids(snapshot_descendants(o.filters.pids, snap.processes))
            users, groups = read_accounts(containers=self.resolver.rootfs())
            meta = host_meta(
                syscalls=list(o.syscalls), filters=o.filters.as_meta(), snaplen=o.snaplen,
                command=list(o.command) or list(sys.argv), start_ns=start_ns,
            )  # fmt: skip
            tables = {
                "processes": snap.processes, "fds": snap.fds, "users": users, "groups": groups,
                "containers": self.resolver.table(), "cgroups": self.resolver.index.table(),
            }  # fmt: skip
            self.writer = capwriter.CaptureWriter(
                o.output, meta=meta, side_tables=tables,
                rotate_bytes=o.rotate_bytes, rotate_seconds=o.rotate_seconds,
            )  # fmt: skip
            self.resolver.new_cgroups()
        except BaseException:
            self._teardown()
            raise
        if o.shell:
            self._start_shell()
        self._t0 = time.monotonic()
        self._cpu0 = _cpu_seconds()

    def _start_shell(self) -> None:
        try:
            from fcap.capture.shellprobe import ShellProbe

            self.shell = ShellProbe()
            self.shell.start()
        except Exception as err:  # the syscall recording goes on without it
            self.shell = None
            print(f"fcap: shell capture disabled: {err}", file=sys.stderr)

    # --- loop -----------------------------------------------------------------

    def _decode_write(self, parts: list[Records]) -> int:
        recs = merge_records(parts)
        n = len(recs.starts)
        if n == 0:
            return 0
        batch = decode(recs, boot_offset_ns=self.boot_offset_ns, containers=self._container_ids)
        if self.opts.max_events is not None:
            left = self.opts.max_events - self.events
            if batch.num_rows > left:
                batch = batch.slice(0, max(left, 0))
        self.writer.write(batch)
        self.events += batch.num_rows
        return batch.num_rows

    def _drain_shell(self) -> None:
        """Write the shell probe's new lines: container ids filled, record filters applied.

        The shell probe's BPF program does not know the record-time filters, so
        they are applied here, in bulk, with the kernel's rules (``--pid`` asks
        the kernel's map of followed tgids).
        """
        sb = self.shell.drain()
        if sb is None or sb.num_rows == 0:
            return
        cg = sb.column("cgroup_id").fill_null(0).to_numpy(zero_copy_only=False)
        i = sb.schema.get_field_index("container_id")
        field = sb.schema.field(i)
        sb = sb.set_column(i, field, self._container_ids(cg).cast(field.type))
        f = self.opts.filters
        sb = filter_batch(sb, f, tracked=self.probe.tracked if f.pids else None,
                          cgroup_ids=self._cg_filter)
        if sb.num_rows:
            self.writer.write(sb)

    def _drops_per_cpu(self) -> list[int]:
        """Kernel drops per CPU, the shell probe's ring losses included.

        The shell probe counts its losses in one counter (no CPU): they are added
        to CPU 0's entry, so ``drops_total`` and the warnings include them;
        :attr:`shell_lost` keeps them apart.
        """
        drops = list(self.probe.drops_per_cpu()) if self.probe is not None else []
        if self.shell is not None:
            self.shell_lost = int(self.shell.lost)
        if self.shell_lost:
            drops = drops or [0]
            drops[0] += self.shell_lost
        return drops

    def _container_ids(self, cgroup_ids: np.ndarray) -> pa.Array:
        """container_id of a batch (bulk); an unknown cgroup id first triggers a rescan.

        A container that appeared since the last scan shows up here as a cgroup id
        the index does not know: poll the runtimes and the cgroup tree right away
        (rate-limited by the resolver) so the container's row, its users/groups
        and this batch's container ids are there even if it lives well under a
        second.
        """
        idx = self.resolver.index
        d = pa.array(cgroup_ids, pa.uint64()).dictionary_encode()  # hash-based, one pass
        uniq = d.dictionary.to_pylist()
        missing = {u for u in uniq if u not in idx.paths} - self._unresolved
        if missing:
            rescans = idx.due()  # else poll() is rate-limited and scans nothing now
            self._side_tables()
            if rescans:  # still unknown after a real rescan (a cgroup already removed): stop asking
                self._unresolved |= {u for u in missing if u not in idx.paths}
        cids = [idx.containers.get(u) for u in uniq]
        known = sorted({c for c in cids if c is not None})
        remap = np.array([known.index(c) if c is not None else -1 for c in cids] or [0], np.int32)
        codes = remap[d.indices.to_numpy()]
        return pa.DictionaryArray.from_arrays(pa.array(codes, mask=codes < 0),
                                              pa.array(known, pa.string()))

    def _side_tables(self, *, force: bool = False) -> None:
        """Hand the side-table rows that appeared since the last call to the writer.

        ``ContainerResolver.poll`` rescans the runtimes' state and the cgroup tree
        (rate-limited; ``force`` ignores the limit, for the final scan at stop) and
        returns new containers, their users and groups, and new cgroups.
        """
        r = self.resolver
        limits = (r.min_rescan_interval, r.index.min_rescan_interval)
        if force:
            r.min_rescan_interval = r.index.min_rescan_interval = 0.0
        try:
            tables = r.poll()
        finally:
            r.min_rescan_interval, r.index.min_rescan_interval = limits
        for name, table in tables.items():
            self.writer.update_side_table(name, table)
        if "cgroups" in tables and self.opts.filters.containers:
            idx = r.index
            ids = cgroup_ids_for(self.opts.filters.containers, idx.paths, idx.containers)
            for i in ids - self._cg_filter:
                self.probe.bpf[b"cgroups"][ctypes.c_uint64(i)] = ctypes.c_uint8(1)
            self._cg_filter |= ids

    def run(self) -> RecordResult:
        """Record until stopped; always closes the writer (keeping what was flushed)."""
        o = self.opts
        status = not o.quiet and sys.stderr.isatty()
        drainer = Drainer(self.rings, o.poll_ms / 1000)
        drainer.start()
        parts: list[Records] = []
        last_decode = last_flush = last_status = time.monotonic()
        error: BaseException | None = None
        try:
            while True:
                now = time.monotonic()
                stopping = self.stop_event.is_set() or (
                    o.duration is not None and now - self._t0 >= o.duration
                )
                if stopping:
                    drainer.stop()
                if drainer.error is not None:
                    raise drainer.error
                if stopping or drainer.pending_rows >= o.batch_rows or (
                    now - last_decode >= o.batch_ms / 1000
                ):
                    parts = drainer.take()
                    self._decode_write(parts)
                    parts, last_decode = [], now
                if self.shell is not None:
                    self._drain_shell()
                if o.max_events is not None and self.events >= o.max_events:
                    stopping = True
                if stopping or now - last_flush >= 0.5:
                    self._publish_stats(self._drops_per_cpu())
                    self.writer.flush()
                    self._side_tables(force=stopping)
                    last_flush = now
                if status and now - last_status >= 1.0:
                    self._status()
                    last_status = now
                if stopping:
                    break
                time.sleep(o.poll_ms / 1000)
        except BaseException as err:  # disk full, Ctrl-C twice...: keep what was flushed
            error = err
        drainer.stop()
        result = self._finish(status)
        if error is not None:
            raise error
        return result

    def _status(self) -> None:
        el = time.monotonic() - self._t0
        drops = sum(self._drops_per_cpu())
        mb = _written_bytes(self.opts.output, self.writer.journal) / 1e6
        rate = self.events / el if el > 0 else 0.0
        line = (f"\rfcap: {el:7.1f}s  {self.events:>12,} events  {rate:>11,.0f}/s  "
                f"drops {drops:,}  {mb:8.1f} MB")  # fmt: skip
        sys.stderr.write(line)
        sys.stderr.flush()

    def _publish_stats(self, drops: list[int]) -> None:
        """Hand the running counters to the writer (stored in ``fcap.meta``)."""
        self.writer.set_stats(events_written=self.events, drops_per_cpu=drops,
                              end_ns=time.time_ns(), shell_lost=self.shell_lost)

    def _finish(self, status: bool) -> RecordResult:
        drops = self._drops_per_cpu()
        elapsed = time.monotonic() - self._t0
        cpu = _cpu_seconds() - self._cpu0
        files: list[Path] = []
        try:
            if self.writer is not None:
                self._publish_stats(drops)
        finally:
            self._teardown(keep_writer=True)
        if status:
            sys.stderr.write("\n")
        if self.writer is not None:
            files = self.writer.close()
        return RecordResult(files, self.events, drops, elapsed, cpu, self.shell_lost)

    def _teardown(self, keep_writer: bool = False) -> None:
        if self.shell is not None:
            with contextlib.suppress(Exception):
                self.shell.stop()
            self.shell = None
        for ring in self.rings:
            ring.close()
        self.rings = []
        if self.probe is not None:
            self.probe.close()
        if not keep_writer and self.writer is not None:
            with contextlib.suppress(CaptureError):
                self.writer.close()


def _cpu_seconds() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _written_bytes(output: Path, journal: Path) -> int:
    """Bytes on disk so far: the journal, plus finished segments when rotating."""
    total = 0
    for root in {Path(output), Path(journal)}:
        if root.is_dir():
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(dirpath, f)).st_size
    return total


def record(opts: RecordOptions, *, handle_signals: bool = True,
           ready: threading.Event | None = None,
           stop: threading.Event | None = None) -> RecordResult:
    """Record with ``opts`` until a stop condition; returns the files written.

    With ``handle_signals`` SIGINT and SIGTERM stop the recording cleanly (main
    thread only). ``ready`` is set once the probes are attached and the
    snapshot taken; setting ``stop`` ends the recording.
    """
    rec = Recorder(opts)
    if stop is not None:
        rec.stop_event = stop
    rec.start()
    old: dict[int, object] = {}
    if handle_signals and threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            old[sig] = signal.signal(sig, lambda *_: rec.stop_event.set())
    try:
        if ready is not None:
            ready.set()
        return rec.run()
    finally:
        for sig, h in old.items():
            signal.signal(sig, h)


__all__ = ["RecordOptions", "RecordResult", "Recorder", "pa", "record"]
