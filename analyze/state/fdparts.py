"""The descriptor state in parts, when the whole of it would not fit in memory.

The numpy columns of :mod:`~fcap.analyze.state.fds` are the size of the rows they
read (~260 bytes per event, :mod:`~fcap.analyze.state.memory`). A process's
descriptors depend only on its own rows and on those of the instances it was
forked from (fork inheritance, dups and updates of inherited descriptors,
close-on-exec at an exec of an instance it inherited through). So the state is
exact for a *part* of the processes when it is built from:

* every row of the part's pids (rows without a descriptor and without a record
  of their own aside: they get nothing);
* the record rows (``fds.with_code``'s ``fc_kind``: opens, closes, dups, updates,
  execs, fork callers) of the pids of the part's ancestor instances.

:func:`plan` spreads the pids over ``n`` parts, balanced by their row counts
(``fc_fdpart(pid, part)``), and lists each part's ancestor pids
(``fc_fdanc(part, pid)``); :func:`build` runs the one-piece stage
(:func:`fcap.analyze.state.fds.build`) per part, keeping the part's rows only,
and appends its ``fc_rid`` and ``fc_fdrec`` rows (records an ancestor shares
with several parts are resolved alike in each and kept once). Peak memory
follows the largest part instead of the capture; each part scans the capture
twice (its rows, then its records' attributes).
"""

from __future__ import annotations

import heapq
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import fds, hosts, positions

#: Raw rows a part reads: its pids' rows with a descriptor or a record of their own,
#: and its ancestors' record rows (``{rows}``: the rows a partial state is for).
_PART = ("(SELECT * FROM {src} WHERE (pid IN (SELECT pid FROM fc_fdpart WHERE part = {j}) "
         "AND (fc_kind <> 0 OR {want})) "
         "OR (fc_kind <> 0 AND pid IN (SELECT pid FROM fc_fdanc WHERE part = {j})))")


def plan(con: Any, n: int) -> np.ndarray:
    """Create ``fc_fdpart`` and ``fc_fdanc`` for ``n`` parts; return each process
    instance's part (indexed by ``pkey``, -1 = none).

    Pids go to parts greedily, largest row count first, each to the part with the
    fewest rows so far (one pid is never split: its instances share its rows).
    """
    src = hosts.rel(con, "raw_events", ("pid",), res=False)
    counts = con.execute(
        f"SELECT pid, count(*) AS n FROM {src} WHERE pid IS NOT NULL GROUP BY pid "
        "ORDER BY n DESC, pid").fetchnumpy()
    pids = counts["pid"].astype(np.int64)
    load = [(0, j) for j in range(n)]
    part = np.empty(len(pids), np.int32)
    for i, c in enumerate(counts["n"].tolist()):  # one step per pid, not per event
        rows, j = heapq.heappop(load)
        part[i] = j
        heapq.heappush(load, (rows + c, j))
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
    ipart = np.full(size, -1, np.int32)
    if len(pids):
        order = np.argsort(pids)
        spids, spart = pids[order], part[order]
        at = np.minimum(np.searchsorted(spids, ipid), len(spids) - 1)
        hit = (ipid >= 0) & (spids[at] == ipid)
        ipart[hit] = spart[at[hit]]
    anc_part, anc_pid = [], []
    for j in range(n):
        cur = np.flatnonzero(ipart == j)
        seen = np.zeros(size, bool)
        while len(cur):  # one step per generation of the fork tree
            up = parent[cur]
            up = up[(up > 0) & ~seen[up]]
            seen[up] = True
            cur = up
        a = np.unique(ipid[np.flatnonzero(seen & (ipart != j))])
        a = a[a >= 0]
        anc_part.append(np.full(len(a), j, np.int32))
        anc_pid.append(a)
    for name, table in (("fc_fdpart", pa.table({"pid": pa.array(pids), "part": pa.array(part)})),
                        ("fc_fdanc", pa.table({"part": pa.array(np.concatenate(anc_part)),
                                               "pid": pa.array(np.concatenate(anc_pid))}))):
        con.register("fc_part_arrow", table)
        try:
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM fc_part_arrow")
        finally:
            con.unregister("fc_part_arrow")
    return ipart


def build(con: Any, num_sql: str, n: int, rows: str | None = None,
          timings: dict[str, float] | None = None) -> None:
    """``fc_rid`` and ``fc_fdrec`` built in ``n`` parts (see the module docstring).

    ``rows`` (a table of scan positions ``rn``): the state is for those rows only, as
    :func:`fcap.analyze.state.fds.subset` makes it."""
    ipart = plan(con, n)
    want = (con.execute(f"SELECT rn FROM {rows}").fetchnumpy()["rn"].astype(np.int64)
            if rows else None)
    cond = f"_rn IN (SELECT rn FROM {rows})" if rows else "fd IS NOT NULL"
    for j in range(n):
        def wrap(rel: str, j: int = j) -> str:
            return _PART.format(src=fds.with_code(rel), j=j, want=cond)

        ev = positions.scan_rn(con, fds.record_sql, num_sql, wrap, subset=True)
        keep = (ev.pkey > 0) & (ipart[np.minimum(ev.pkey, len(ipart) - 1)] == j)
        if want is not None:
            keep &= np.isin(ev.rn, want)
        sub: dict[str, float] = {}
        fds.build(con, ev, sub, keep)
        del ev, keep
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
                "DROP TABLE fc_fdpart; DROP TABLE fc_fdanc")
