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
  descriptor of its dups, for that pid and its ancestors' pids, and so on
  through dups of dups (:func:`_closure`);
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
it) plus the appended DuckDB tables; each part scans the capture twice. The rows of
every part are counted first: when the largest would not fit either,
:func:`fcap.analyze.state.memory.check_part` stops with one line before any work.
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import fds, hosts, keys, memory, positions
from fcap.analyze.state.fdstream import DUP, EXEC, FORK, OPEN

#: The record descriptor of a row (over ``fds.with_code``'s columns) and the second
#: descriptor of a pipe/socketpair row.
_RFD = fds.rfd_sql
_SFD2 = f"CASE WHEN fc_kind = {OPEN} THEN CAST(flags_aux & 4294967295 AS BIGINT) END"
_PAIRS = "syscall IN ('pipe', 'pipe2', 'socketpair')"
#: (pid, descriptor) packed in one BIGINT for the dup closure's semi-join.
_PACK = "((CAST(pid AS BIGINT) << 32) | (CAST({fd} AS BIGINT) & 4294967295))"


def _register(con: Any, name: str, table: pa.Table) -> None:
    con.register("fc_part_arrow", table)
    try:
        con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM fc_part_arrow")
    finally:
        con.unregister("fc_part_arrow")


def plan(con: Any, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Create ``fc_fdpart(fd, part)`` and ``fc_fdclos(part, k)`` (the dup closure, pid
    and descriptor packed) for ``n`` parts; return the descriptor numbers (sorted) and
    their parts.

    Descriptor numbers go to parts greedily, largest row count first, each to the
    part with the fewest rows so far.
    """
    src = hosts.rel(con, "raw_events_rn", ("pid",), res=False)
    t = con.execute(
        f"SELECT f, count(*) AS n FROM (SELECT coalesce(fd, {_RFD}) AS f FROM "
        f"{fds.with_code(src)}) WHERE f IS NOT NULL GROUP BY f ORDER BY n DESC, f"
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


def _ancestor_pids(con: Any) -> tuple[np.ndarray, np.ndarray]:
    """Pairs (pid, ancestor pid) over the fork tree of the process instances (each pid
    with itself too)."""
    inst = con.execute(
        """
        SELECT i.pkey, i.pid, coalesce(f.src_pkey, 0) AS parent
        FROM fc_pinst i
        LEFT JOIN (SELECT pkey, any_value(src_pkey) AS src_pkey FROM fc_seg
                   WHERE src_pkey IS NOT NULL AND kind = 'start' GROUP BY pkey) f
          ON f.pkey = i.pkey
        """).fetchnumpy()
    pk = inst["pkey"].astype(np.int64)
    size = int(pk.max()) + 1 if len(pk) else 1
    parent = np.zeros(size, np.int64)
    parent[pk] = inst["parent"].astype(np.int64)
    ipid = np.full(size, -1, np.int64)
    ipid[pk] = inst["pid"].astype(np.int64)
    a, b = [ipid[pk]], [ipid[pk]]
    cur = pk
    for _ in range(10000):  # one step per generation
        cur = parent[cur]
        live = cur > 0
        if not live.any():
            break
        pk, cur = pk[live], cur[live]
        a.append(ipid[pk])
        b.append(ipid[cur])
    pairs = np.unique((np.concatenate(a) << 32) | (np.concatenate(b) & 0xFFFFFFFF))
    return pairs >> 32, pairs & 0xFFFFFFFF


def _closure(con: Any, src: str, n: int, fdn: np.ndarray, part: np.ndarray) -> None:
    """``fc_fdclos(part, k)``: the (pid, descriptor) pairs whose records a part reads
    beyond its own descriptor numbers: the sources of its dups, for the dup's pid and
    its ancestors, then the sources of the dups among those, until nothing is added."""
    d = con.execute(
        f"SELECT pid, {_RFD} AS rfd, a0 AS sfd FROM {fds.with_code(src)} "
        f"WHERE fc_kind = {DUP} AND pid IS NOT NULL").fetchnumpy()
    dpid, drfd, dsfd = (d[c].astype(np.int64) for c in ("pid", "rfd", "sfd"))
    dkey = (dpid << 32) | (drfd & 0xFFFFFFFF)
    apid, aanc = _ancestor_pids(con)
    out_part, out_k = [], []
    for j in range(n):
        need = np.zeros(0, np.int64)
        todo = np.flatnonzero(part_of(drfd, fdn, part) == j)  # the part's own dups
        done = np.zeros(len(dpid), bool)
        while len(todo):
            done[todo] = True
            pid, sfd = dpid[todo], dsfd[todo]
            # the source for the dup's pid and the ancestors of its instances
            i = np.searchsorted(apid, pid, side="left")
            e = np.searchsorted(apid, pid, side="right")
            cnt = e - i
            rep = np.repeat(np.arange(len(pid)), cnt)
            idx = np.repeat(i - np.cumsum(cnt) + cnt, cnt) + np.arange(cnt.sum())
            k = np.concatenate([(pid << 32) | (sfd & 0xFFFFFFFF),
                                (aanc[idx] << 32) | (sfd[rep] & 0xFFFFFFFF)])
            k = keys.unique(k)
            k = k[~np.isin(k, need)]
            need = keys.unique(np.concatenate([need, k]))
            todo = np.flatnonzero(np.isin(dkey, k) & ~done)  # dups among those records
        out_part.append(np.full(len(need), j, np.int32))
        out_k.append(need)
    _register(con, "fc_fdclos", pa.table({"part": pa.array(np.concatenate(out_part)),
                                           "k": pa.array(np.concatenate(out_k))}))


def _wrap(j: int, want: str) -> Any:
    """The rows part ``j`` reads (``want``: SQL of the rows whose descriptor it needs)."""
    mine = f"IN (SELECT fd FROM fc_fdpart WHERE part = {j})"
    clos = f"(SELECT k FROM fc_fdclos WHERE part = {j})"

    def wrap(rel: str) -> str:
        return (
            f"(SELECT * FROM {fds.with_code(rel)} WHERE fc_kind IN ({EXEC}, {FORK}) "
            f"OR (fd {mine} AND ({want})) "
            f"OR (fc_kind <> 0 AND ({_RFD}) {mine}) "
            f"OR (fc_kind = {OPEN} AND {_PAIRS} AND {_SFD2} {mine}) "
            f"OR (fc_kind <> 0 AND {_PACK.format(fd=_RFD)} IN {clos}) "
            f"OR (fc_kind = {OPEN} AND {_PAIRS} AND {_PACK.format(fd=_SFD2)} IN {clos}))")
    return wrap


def build(con: Any, num_sql: str, n: int, rows: str | None = None,
          timings: dict[str, float] | None = None) -> None:
    """``fc_rid`` and ``fc_fdrec`` built in ``n`` parts (see the module docstring).

    ``rows`` (a table of scan positions ``rn``): the state is for those rows only, as
    :func:`fcap.analyze.state.fds.subset` makes it."""
    fdn, part = plan(con, n)
    src = hosts.rel(con, "raw_events_rn", positions.KEY_COLUMNS)
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
                "DROP TABLE fc_fdpart; DROP TABLE fc_fdclos")
