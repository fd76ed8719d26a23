"""The descriptor state in parts, when the whole of it would not fit in memory.

The numpy columns of :mod:`~fcap.analyze.state.fds` are the size of the rows they
read (~260 bytes per event, :mod:`~fcap.analyze.state.memory`). The parts split
the rows by **descriptor number**, because the state of descriptor ``f`` of a
process depends on the records of descriptor ``f`` only (its own, and, through
fork inheritance, its ancestors' descriptor ``f``), with three exceptions that
every part reads whole or follows:

* execs (close-on-exec ends every descriptor) and fork callers (the time a child
  gets its parent's table): every part reads all of them;
* ``dup``/``dup2``/``dup3``/``fcntl(F_DUPFD)``: the new descriptor copies the
  source descriptor's state, so a part also reads the records of each source
  descriptor of its dups, for that pid (from the source's latest close or dup
  before the dup) and its ancestors (the same, before the fork on the path), and
  so on through dups of dups (:func:`_closure`);
* ``pipe``/``pipe2``/``socketpair`` rows make the records of two descriptors: the
  part of either reads the row.

A part's rows are then every row whose descriptor (``fd``) or record
descriptor (``fds.rfd_sql``) is one of the part's numbers, plus the rows above;
its ``fc_rid`` keeps the rows whose ``fd`` is one of its numbers (no ``fd``: the
record's). :func:`plan` spreads the descriptor numbers over the parts greedily by
row count; :func:`build` runs the one-piece stage
(:func:`fcap.analyze.state.fds.build`) per part and appends its ``fc_rid`` and
``fc_fdrec`` rows (records read by several parts, such as a dup source's, resolve
alike in each and are kept once). Peak memory follows the largest part (one
descriptor number is never split: a process's busiest descriptor, often 3, bounds
it) plus the appended DuckDB tables (``fc_rid``, ``fc_fdrec``: ~60 bytes per event);
each part scans the capture twice. The rows of
every part are counted first: when the largest would not fit either,
:func:`fcap.analyze.state.memory.check_part` stops with one line before any work.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import fdinputs, fds, hosts, keys, memory, positions
from fcap.analyze.state.fdstream import CLOSE, DUP, EXEC, FORK, OPEN

#: The record descriptor of a row (over ``fds.with_code``'s columns) and the second
#: descriptor of a pipe/socketpair row.
_RFD = fds.rfd_sql
_SFD2 = f"CASE WHEN fc_kind = {OPEN} THEN CAST(flags_aux & 4294967295 AS BIGINT) END"
_PAIRS = "syscall IN ('pipe', 'pipe2', 'socketpair')"
#: (pid, descriptor) packed in one BIGINT for the dup closure's semi-join.
_PACK = "((CAST(pid AS BIGINT) << 32) | (CAST({fd} AS BIGINT) & 4294967295))"


def _source(con: Any) -> str:
    """The raw rows as the positions scan reads them (several hosts: host pids)."""
    return hosts.rel(con, "raw_events_rn", positions.KEY_COLUMNS)


def _register(con: Any, name: str, table: pa.Table) -> None:
    con.register("fc_part_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM fc_part_arrow")
    finally:
        con.unregister("fc_part_arrow")


def plan(con: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Create ``fc_fdpart(fd, part)`` and ``fc_fdneed(part, rn)`` (the dup closure's
    record rows, :func:`_closure`) for ``n`` parts; return the descriptor numbers
    (sorted) and their parts.

    Descriptor numbers go to parts greedily, largest row count first, each to the
    part with the fewest rows so far.
    """
    src = _source(con)
    t = con.execute(
        f"SELECT f, count(*) AS n FROM (SELECT coalesce(fd, {_RFD}) AS f FROM "
        f"{fds.with_code(src)} WHERE fd IS NOT NULL OR fc_kind BETWEEN 1 AND 4) "
        "WHERE f IS NOT NULL GROUP BY f ORDER BY n DESC, f"
    ).fetchnumpy()
    fdn = t["f"].astype(np.int64)
    part = np.empty(len(fdn), np.int32)
    load = [(0, j) for j in range(n)]
    for i, c in enumerate(t["n"].tolist()):  # one step per descriptor number
        rows, j = heapq.heappop(load)
        part[i] = j
        heapq.heappush(load, (rows + c, j))
    order = np.argsort(fdn)
    fdn, part = fdn[order], part[order]
    _register(con, "fc_fdpart", pa.table({"fd": pa.array(fdn), "part": pa.array(part)}))
    _closure(con, src, n, fdn, part)
    return fdn, part


def part_of(fd: np.ndarray, fdn: np.ndarray, part: np.ndarray) -> np.ndarray:
    """The part of each descriptor number (-1: none, e.g. keys.NONE)."""
    out = np.full(len(fd), -1, np.int32)
    if len(fdn):
        i = np.minimum(np.searchsorted(fdn, fd), len(fdn) - 1)
        hit = fdn[i] == fd
        out[hit] = part[i[hit]]
    return out


def _ancestors(con: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Triples (pid, ancestor pid, fork time) over the fork tree of the process
    instances, sorted by pid: for every instance of the pid and every ancestor
    instance, the time the ancestor's child on the path was forked (its first row)."""
    parent, fork, ipid, pk = fdinputs.fork_tree(con)
    a, b, f = [], [], []
    child = pk
    for _ in range(10000):  # one step per generation
        up = parent[child]
        live = up > 0
        if not live.any():
            break
        pk, child, up = pk[live], child[live], up[live]
        a.append(ipid[pk])
        b.append(ipid[up])
        f.append(fork[child])
        child = up
    if not a:
        return (np.zeros(0, np.int64),) * 3
    pid, anc, ts = np.concatenate(a), np.concatenate(b), np.concatenate(f)
    order = np.argsort(pid, kind="stable")
    return pid[order], anc[order], ts[order]


def _expand(qpid: np.ndarray, qfd: np.ndarray, qts: np.ndarray,
            anc: tuple[np.ndarray, np.ndarray, np.ndarray]
            ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The lookups a dup source (pid, descriptor, time) may make: its own key at the
    time, and each ancestor's key at the fork on the path (forks after the time aside).
    Returns keys, window ends and window anchors (see :func:`_closure`)."""
    apid, aanc, ats = anc
    i = np.searchsorted(apid, qpid, side="left")
    cnt = np.searchsorted(apid, qpid, side="right") - i
    rep = np.repeat(np.arange(len(qpid)), cnt)
    idx = np.repeat(i - np.cumsum(cnt) + cnt, cnt) + np.arange(int(cnt.sum()))
    ok = ats[idx] <= qts[rep]
    rep, idx = rep[ok], idx[ok]
    key = np.concatenate([(qpid << 32) | (qfd & 0xFFFFFFFF),
                          (aanc[idx] << 32) | (qfd[rep] & 0xFFFFFFFF)])
    hi = np.concatenate([qts, ats[idx]])
    # the fork may be up to _FORK_WINDOW_NS before the child's first row
    anchor = np.concatenate([qts, ats[idx] - fdinputs.FORK_WINDOW_NS])
    return key, hi, anchor


def _closure(con: Any, src: str, n: int, fdn: np.ndarray, part: np.ndarray) -> None:
    """``fc_fdneed(part, rn)``: the record rows a part reads beyond its own descriptor
    numbers, for the sources of its dups.

    A dup at time t of descriptor s by pid P reads the state of (P, s) at t, or, when
    P's instance has none, its parent's at the fork, and so on up the fork tree. That
    state is the latest record of the key at the time, chained back through updates to
    the latest close or dup at most (a dup chains on to its own source). So for each
    such lookup (key, time) the part reads the key's records from the latest close or
    dup at or before the time's *anchor* (the time; for an ancestor, the earliest the
    fork can be) to the time, and repeats for the dups among them.
    """
    d = con.execute(
        f"SELECT pid, {_RFD} AS rfd, a0 AS sfd, ts FROM {fds.with_code(src)} "
        f"WHERE fc_kind = {DUP} AND pid IS NOT NULL").fetchnumpy()
    dpid, drfd, dsfd, dts = (d[c].astype(np.int64) for c in ("pid", "rfd", "sfd", "ts"))
    anc = _ancestors(con)
    # the record rows of every key some lookup may read (sorted by key, time, row)
    qk = _expand(dpid, dsfd, dts, anc)[0]
    _register(con, "fc_fdkeys", pa.table({"k": pa.array(keys.unique(qk))}))
    rel = fds.with_code(src)
    r = con.execute(
        f"SELECT _rn AS rn, ts, fc_kind AS kind, {_PACK.format(fd=_RFD)} AS key, "
        f"CASE WHEN fc_kind = {DUP} THEN a0 END AS sfd FROM {rel} "
        f"WHERE fc_kind BETWEEN 1 AND 4 AND pid IS NOT NULL AND ({_RFD}) IS NOT NULL "
        f"AND {_PACK.format(fd=_RFD)} IN (SELECT k FROM fc_fdkeys) "
        f"UNION ALL SELECT _rn, ts, fc_kind, {_PACK.format(fd=_SFD2)}, NULL FROM {rel} "
        f"WHERE fc_kind = {OPEN} AND {_PAIRS} AND fd IS NOT NULL AND pid IS NOT NULL "
        f"AND {_PACK.format(fd=_SFD2)} IN (SELECT k FROM fc_fdkeys)").fetchnumpy()
    con.execute("DROP TABLE fc_fdkeys")
    order = np.lexsort((r["rn"], r["ts"], r["key"]))
    rkey, rts, rkind, rrn = (np.asarray(r[c])[order].astype(np.int64)
                             for c in ("key", "ts", "kind", "rn"))
    rsfd = np.ma.filled(r["sfd"], -1)[order].astype(np.int64) if len(order) else rkey
    stop = np.flatnonzero((rkind == CLOSE) | (rkind == DUP))
    out_part, out_rn = [], []
    for j in range(n):
        mark = np.zeros(len(rkey) + 1, np.int64)
        own = part_of(drfd, fdn, part) == j  # the part's own dups
        qpid, qfd, qts = dpid[own], dsfd[own], dts[own]
        done = np.zeros(len(rkey), bool)
        while len(qpid) and len(rkey):
            key, hi, anchor = _expand(qpid, qfd, qts, anc)
            h = keys.asof(rkey, rts, key, hi)
            s0 = keys.asof(rkey[stop], rts[stop], key, anchor)
            lo = np.where(s0 >= 0, stop[np.maximum(s0, 0)], np.searchsorted(rkey, key))
            ok = (h >= 0) & (h >= lo)
            np.add.at(mark, lo[ok], 1)
            np.add.at(mark, h[ok] + 1, -1)
            sel = np.cumsum(mark[:-1]) > 0
            new = np.flatnonzero(sel & ~done & (rkind == DUP))  # dups of dups
            done |= sel
            qpid, qfd, qts = rkey[new] >> 32, rsfd[new], rts[new]
        rows = rrn[np.cumsum(mark[:-1]) > 0] if len(rkey) else np.zeros(0, np.int64)
        out_part.append(np.full(len(rows), j, np.int32))
        out_rn.append(rows)
    _register(con, "fc_fdneed", pa.table({"part": pa.array(np.concatenate(out_part)),
                                           "rn": pa.array(np.concatenate(out_rn))}))


def _wrap(j: int, want: str) -> Any:
    """The rows part ``j`` reads (``want``: SQL of the rows whose descriptor it needs)."""
    mine = f"IN (SELECT fd FROM fc_fdpart WHERE part = {j})"
    need = f"_rn IN (SELECT rn FROM fc_fdneed WHERE part = {j})"

    def wrap(rel: str) -> str:
        return (
            f"(SELECT * FROM {fds.with_code(rel)} WHERE fc_kind IN ({EXEC}, {FORK}) "
            f"OR (fd {mine} AND ({want})) "
            f"OR (fc_kind <> 0 AND ({_RFD}) {mine}) "
            f"OR (fc_kind = {OPEN} AND {_PAIRS} AND {_SFD2} {mine}) "
            f"OR (fc_kind <> 0 AND {need}))")
    return wrap


def build(con: Any, num_sql: str, n: int, rows: str | None = None,
          timings: dict[str, float] | None = None) -> None:
    """``fc_rid`` and ``fc_fdrec`` built in ``n`` parts (see the module docstring).

    ``rows`` (a table of scan positions ``rn``): the state is for those rows only, as
    :func:`fcap.analyze.state.fds.subset` makes it."""
    fdn, part = plan(con, n)
    src = _source(con)
    sizes = [con.execute(f"SELECT count(*) FROM {_wrap(j, 'true')(src)}").fetchone()[0]
             for j in range(n)]
    memory.check_part(max(sizes), n)
    want = (con.execute(f"SELECT rn FROM {rows}").fetchnumpy()["rn"].astype(np.int64)
            if rows else None)
    cond = f"_rn IN (SELECT rn FROM {rows})" if rows else "true"
    for j in range(n):
        ev = positions.scan_rn(con, fds.record_sql, num_sql, _wrap(j, cond), subset=True)
        # the rows this part answers: by their descriptor, else by their record's
        f = np.where(ev.fd == keys.NONE, ev.rec["rfd"], ev.fd)
        keep = part_of(f, fdn, part) == j
        if want is not None:
            keep &= np.isin(ev.rn, want)
        sub: dict[str, float] = {}
        fds.build(con, ev, sub, keep)
        del ev, keep, f
        if timings is not None:
            for k, v in sub.items():
                timings[k] = timings.get(k, 0.0) + v
        if j == 0:
            con.execute("ALTER TABLE fc_rid RENAME TO fc_rid_acc; "
                        "ALTER TABLE fc_fdrec RENAME TO fc_fdrec_acc")
        else:
            con.execute("INSERT INTO fc_rid_acc SELECT * FROM fc_rid; DROP TABLE fc_rid; "
                        "INSERT INTO fc_fdrec_acc BY NAME SELECT * FROM fc_fdrec r "
                        "ANTI JOIN fc_fdrec_acc a ON a.rid = r.rid; DROP TABLE fc_fdrec")
    con.execute("ALTER TABLE fc_rid_acc RENAME TO fc_rid; "
                "ALTER TABLE fc_fdrec_acc RENAME TO fc_fdrec; "
                "DROP TABLE fc_fdpart; DROP TABLE fc_fdneed")
