"""Record-time filters: what the kernel side is told to keep.

The kernel applies every filter (bpf/recorder.c ``pass_filters``): tgids in a
map that grows at fork (``--pid`` with descendants), comm allow/deny maps, and
a set of cgroup ids (``--container``). This module turns the command-line
values into those sets: pid descendants that already exist at start, from
the process snapshot; container id prefixes, through the cgroup index.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

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
