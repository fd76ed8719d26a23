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

The records' types live in :mod:`fcap.capture.record_types` and the
side-table/container-id/drops/status helpers in :mod:`fcap.capture.recorder_tables`
(a mixin of :class:`Recorder`); their public names are re-exported here.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from pathlib import Path

import pyarrow as pa
from fcap.capture.decode import Workspace, decode
from fcap.capture.drainer import Drainer
from fcap.capture.filters import cgroup_ids_for, snapshot_descendants
from fcap.capture.probe import Probe, ProbeConfig, check_prerequisites
from fcap.capture.record_types import RecordOptions, RecordResult, merge_records
from fcap.capture.recorder_tables import RecorderTables, cpu_seconds, keep_freed_memory
from fcap.capture.ringbuf import Records, RingBuffer

from fcap.errors import CaptureError

#: GIL switch interval while recording (the default is 5 ms).
SWITCH_INTERVAL_S = 0.0005


class Recorder(RecorderTables):
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
        self._work = Workspace()  # decode's scratch arrays, reused batch after batch

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
        keep_freed_memory()
        self._t0 = time.monotonic()
        self._cpu0 = cpu_seconds()

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
        """Decode and write drained records (one batch per part); rows written."""
        written = 0
        for recs in parts:
            if len(recs.starts) == 0:
                continue
            batch = decode(recs, boot_offset_ns=self.boot_offset_ns,
                           containers=self._container_ids, work=self._work)  # fmt: skip
            if self.opts.max_events is not None:
                left = self.opts.max_events - self.events
                if batch.num_rows > left:
                    batch = batch.slice(0, max(left, 0))
            self.writer.write(batch)
            self.events += batch.num_rows
            written += batch.num_rows
        return written

    def run(self) -> RecordResult:
        """Record until stopped; always closes the writer (keeping what was flushed)."""
        o = self.opts
        status = not o.quiet and sys.stderr.isatty()
        drainer = Drainer(self.rings, o.poll_ms / 1000)
        # the drain thread gives the GIL up in every numpy call and then waits up to the
        # switch interval (5 ms) to get it back from the decoding thread, a dozen times a
        # drain: a shorter interval keeps the rings from filling meanwhile
        switch = sys.getswitchinterval()
        sys.setswitchinterval(min(switch, SWITCH_INTERVAL_S))
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
                    try:
                        self._decode_write(parts)
                    finally:
                        drainer.release(parts)
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
        sys.setswitchinterval(switch)
        result = self._finish(status)
        result.ring_peak_fill, result.drain_gap_s = drainer.peak_fill, drainer.max_gap_s
        if error is not None:
            raise error
        return result

    def _finish(self, status: bool) -> RecordResult:
        drops = self._drops_per_cpu()
        elapsed = time.monotonic() - self._t0
        cpu = cpu_seconds() - self._cpu0
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


__all__ = ["RecordOptions", "RecordResult", "Recorder", "merge_records", "pa", "record"]
