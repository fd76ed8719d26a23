"""The recorder's side-table, container-id, drop-count and status helpers.

:class:`RecorderTables` is a mixin of :class:`fcap.capture.recorder.Recorder`
(which owns the attributes declared below): it resolves the container ids of a
batch in bulk and rescans the runtimes when an unknown cgroup id shows up,
hands new side-table rows (containers, users, groups, cgroups) to the writer,
writes the shell probe's lines through the record filters, sums the drops and
publishes the running counters, and draws the status line. No bcc here: the
probe and the shell probe are only used through the attributes the recorder set.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.capture.filters import cgroup_ids_for, filter_batch
from fcap.capture.record_types import RecordOptions


class RecorderTables:
    """Side tables, container ids, shell lines, drops and status of a recording session."""

    opts: RecordOptions
    probe: Any
    writer: Any
    shell: Any
    resolver: Any
    events: int
    shell_lost: int
    _t0: float
    _cg_filter: set[int]
    _unresolved: set[int]

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

    def _status(self) -> None:
        """Redraw the one-line status (elapsed, events, rate, drops, MB on disk) on stderr."""
        el = time.monotonic() - self._t0
        drops = sum(self._drops_per_cpu())
        mb = written_bytes(self.opts.output, self.writer.journal) / 1e6
        rate = self.events / el if el > 0 else 0.0
        line = (f"\rfcap: {el:7.1f}s  {self.events:>12,} events  {rate:>11,.0f}/s  "
                f"drops {drops:,}  {mb:8.1f} MB")  # fmt: skip
        sys.stderr.write(line)
        sys.stderr.flush()

    def _publish_stats(self, drops: list[int]) -> None:
        """Hand the running counters to the writer (stored in ``fcap.meta``)."""
        self.writer.set_stats(events_written=self.events, drops_per_cpu=drops,
                              end_ns=time.time_ns(), shell_lost=self.shell_lost)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse instead of returning it to the kernel.

    A batch's numpy temporaries (a few MB each) are freed and allocated again
    every batch; by default glibc trims the heap top and maps large blocks
    afresh, so each batch page-faults and clears them again (expensive on a
    VM). With a fixed 32 MiB mmap threshold and a 1 GiB trim threshold the
    same pages are reused. Process-wide; False where it is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        return bool(libc.mallopt(m_mmap_threshold, 32 << 20)) and bool(
            libc.mallopt(m_trim_threshold, 1 << 30))
    except (OSError, AttributeError):
        return False


def cpu_seconds() -> float:
    """CPU seconds (user + system) this process has used."""
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def written_bytes(output: Path, journal: Path) -> int:
    """Bytes on disk so far: the journal, plus finished segments when rotating."""
    total = 0
    for root in {Path(output), Path(journal)}:
        if root.is_dir():
            for dirpath, _dirs, files in os.walk(root):
                for f in files:
                    with contextlib.suppress(OSError):
                        total += os.stat(os.path.join(dirpath, f)).st_size
    return total
