"""Record-time filters: what the kernel side is told to keep.

The kernel applies every filter (bpf/recorder.c ``pass_filters``): tgids in a
map that grows at fork (``--pid`` with descendants), comm allow/deny maps, and
a set of cgroup ids (``--container``). This module turns the command-line
values into those sets: pid descendants that already exist at start, from
the process snapshot; container id prefixes, through the cgroup index.
:func:`filter_batch` applies the same rules in userspace, in bulk, to the
batches of the shell probe (its BPF program does not know the filters).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from fcap.errors import UsageError


@dataclass(frozen=True)
class Filters:
    """Record-time filters as given on the command line."""

    pids: tuple[int, ...] = ()
    comms: tuple[str, ...] = ()
    exclude_comms: tuple[str, ...] = ()
    containers: tuple[str, ...] = ()  # container id prefixes

    def as_meta(self) -> dict:
        """The ``filters`` entry of the capture metadata."""
        return {
            "pid": list(self.pids),
            "comm": list(self.comms),
            "exclude_comm": list(self.exclude_comms),
            "container": list(self.containers),
        }

    def check(self) -> None:
        """Reject impossible values before anything loads."""
        for p in self.pids:
            if p <= 0:
                raise UsageError(f"--pid {p}: not a process id")
        for c in (*self.comms, *self.exclude_comms):
            if not c or len(c.encode()) > 15:
                raise UsageError(
                    f"comm {c!r}: a comm is 1 to 15 bytes (the kernel truncates longer names)"
                )
        for c in self.containers:
            if len(c) < 3 or any(ch not in "0123456789abcdef" for ch in c.lower()):
                raise UsageError(f"--container {c!r}: give at least 3 hex digits of a container id")


def filter_batch(batch: pa.RecordBatch, filters: Filters, *,
                 tracked: Callable[[Iterable[int]], set[int]] | None = None,
                 cgroup_ids: Iterable[int] = ()) -> pa.RecordBatch:
    """Rows of an EVENTS batch that pass the record-time filters (bulk, pyarrow compute).

    For batches that did not go through the kernel filter (the shell probe's):
    the same rules as ``pass_filters`` in bpf/recorder.c. ``tracked`` says which
    tgids the ``--pid`` filter follows (the kernel map, grown at fork);
    ``cgroup_ids`` is the ``--container`` cgroup id set.
    """
    if batch.num_rows == 0:
        return batch
    masks = []
    if filters.pids:
        pid = batch.column("pid")
        uniq = pc.unique(pid).drop_null().to_pylist()
        keep = sorted(tracked(uniq)) if tracked is not None else sorted(set(filters.pids))
        masks.append(pc.is_in(pid, value_set=pa.array(keep, pid.type)))
    if filters.comms or filters.exclude_comms:
        comm = batch.column("comm").cast(pa.string())
        if filters.comms:
            masks.append(pc.is_in(comm, value_set=pa.array(_comms(filters.comms))))
        if filters.exclude_comms:
            masks.append(pc.invert(pc.is_in(comm, value_set=pa.array(
                _comms(filters.exclude_comms)))))
    if filters.containers:
        cg = batch.column("cgroup_id")
        masks.append(pc.is_in(cg, value_set=pa.array(sorted(cgroup_ids), cg.type)))
    if not masks:
        return batch
    mask = masks[0]
    for m in masks[1:]:
        mask = pc.and_kleene(mask, m)
    return batch.filter(pc.fill_null(mask, False))


def _comms(names: Iterable[str]) -> list[str]:
    """Comm names as the kernel compares them: at most 15 bytes."""
    return [n.encode()[:15].decode("utf-8", "ignore") for n in names]


def descendants(roots: Iterable[int], pid: np.ndarray, ppid: np.ndarray) -> set[int]:
    """``roots`` plus every process below them in the (pid, ppid) forest."""
    out = {int(r) for r in roots}
    children: dict[int, list[int]] = {}
    for c, p in zip(pid.tolist(), ppid.tolist(), strict=False):
        children.setdefault(int(p), []).append(int(c))
    stack = list(out)
    while stack:
        for c in children.get(stack.pop(), ()):
            if c not in out:
                out.add(c)
                stack.append(c)
    return out


def snapshot_descendants(roots: Iterable[int], processes: pa.Table) -> set[int]:
    """Descendants of ``roots`` alive in a PROCESSES snapshot table."""
    pid = processes.column("pid").to_numpy(zero_copy_only=False)
    ppid = processes.column("ppid").fill_null(0).to_numpy(zero_copy_only=False)
    return descendants(roots, pid, ppid)


def cgroup_ids_for(prefixes: Iterable[str], paths: dict[int, str],
                   containers: dict[int, str | None]) -> set[int]:
    """cgroup ids whose container id starts with one of ``prefixes`` (and their sub-cgroups)."""
    pre = tuple(p.lower() for p in prefixes)
    hits = {cg for cg, cid in containers.items() if cid and cid.startswith(pre)}
    dirs = [paths[cg].rstrip("/") + "/" for cg in hits]
    for cg, path in paths.items():
        if any(path.startswith(d) for d in dirs):
            hits.add(cg)
    return hits
