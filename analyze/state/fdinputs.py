"""The descriptor stage's small inputs: the start snapshot's descriptors and the fork
tree of the process instances, with the time each child got its parent's descriptors."""

from __future__ import annotations

from typing import Any

import numpy as np
from fcap.analyze.state import keys
from fcap.analyze.state.fdattr import O_CLOEXEC
from fcap.analyze.state.fdstream import FORK, Instances, Snapshot
from fcap.analyze.state.positions import Events


def snapshot(con: Any) -> Snapshot:
    t = con.sql(
        f"""
        SELECT rid, pkey, fd,
               CAST(coalesce((flags & {O_CLOEXEC}) <> 0, false) AS INTEGER) AS cl,
               type IN ('ipv4', 'ipv6', 'unix') AS fam,
               type IN ('ipv4', 'ipv6', 'unix', 'netlink') AS fts
        FROM fc_snapfd ORDER BY rid DESC
        """
    ).to_arrow_table()
    return Snapshot(
        rid=t.column("rid").to_numpy().astype(np.int64),
        pkey=t.column("pkey").to_numpy().astype(np.int64),
        fd=t.column("fd").to_numpy().astype(np.int64),
        cl=t.column("cl").to_numpy().astype(np.int8),
        fam=t.column("fam").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
        fts=t.column("fts").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
    )


def fork_tree(con: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The process instances' fork tree, indexed by ``pkey``: parent instance (0 = none),
    the child's fork time (its first row), pid (-1 = no instance); and the pkeys."""
    t = con.sql(
        """
        SELECT i.pkey, i.pid, coalesce(f.src_pkey, 0) AS parent, coalesce(f.ts, 0) AS fork_ts
        FROM fc_pinst i
        LEFT JOIN (SELECT pkey, any_value(src_pkey) AS src_pkey, any_value(ts) AS ts FROM fc_seg
                   WHERE src_pkey IS NOT NULL AND kind = 'start' GROUP BY pkey) f
          ON f.pkey = i.pkey
        ORDER BY i.pkey
        """
    ).to_arrow_table()
    pk = t.column("pkey").to_numpy().astype(np.int64)
    size = int(pk.max()) + 1 if len(pk) else 1
    parent = np.zeros(size, np.int64)
    fork_ts = np.zeros(size, np.int64)
    pid = np.full(size, -1, np.int64)
    parent[pk] = t.column("parent").to_numpy().astype(np.int64)
    fork_ts[pk] = t.column("fork_ts").to_numpy().astype(np.int64)
    pid[pk] = t.column("pid").to_numpy().astype(np.int64)
    return parent, fork_ts, pid, pk


def instances(con: Any, ev: Events) -> Instances:
    """The fork tree, with the time each child got its parent's descriptors (see
    :func:`_caller_forks`)."""
    parent, fork_ts, pid, _ = fork_tree(con)
    _caller_forks(ev, parent, fork_ts, pid)
    return Instances(parent=parent, fork_ts=fork_ts)


#: How long before a child's first row its caller's fork exit may be (as fc_pinst's
#: parent-side starts).
FORK_WINDOW_NS = 5_000_000_000


def _caller_forks(ev: Events, parent: np.ndarray, fork_ts: np.ndarray, pid: np.ndarray) -> None:
    """Move each child's fork time (its first row) back to its caller's fork exit when that
    came first: libsinsp copies the descriptor table at the first of the two clone exits
    (the caller's only in the cases of :data:`_CLONE_FLAGS`: the rows of kind FORK), so
    a pipe end the parent closes right after forking is still the child's."""
    rows = np.flatnonzero((ev.rec["rk"] & 7) == FORK)
    rows = rows[ev.pkey[rows] > 0]
    child = np.flatnonzero(parent > 0)
    if not len(rows) or not len(child):
        return
    rkey = (ev.pkey[rows] << 32) | (ev.rec["sfd"][rows] & 0xFFFFFFFF)
    rts = ev.ts[rows]
    order = np.lexsort((rts, rkey))
    rkey, rts = rkey[order], rts[order]
    qts = fork_ts[child]
    i = keys.asof(rkey, rts, (parent[child] << 32) | pid[child], qts)
    ok = i >= 0
    ok[ok] = qts[ok] - rts[i[ok]] < FORK_WINDOW_NS
    fork_ts[child[ok]] = rts[i[ok]]
