"""Per raw row keys, in the capture's scan order: ``fc_pos`` and the numpy columns fds need.

One scan of ``fc_raw`` (``raw_events``) fetches the narrow integer columns
(time, cpu, tid, pid, fd, container code, descriptor-record class); numpy then
computes, without sorting when the capture is already in time order:

* ``evt_num`` / ``evt_deltatime``: position and time delta in the global order
  ``(ts, cpu, tid, scan position)``;
* the process-chain row (``fc_chain.cid``) and process instance (``pkey``) of
  each event: an ASOF on ``(pid, ts)``;
* ``ckey``: a small integer per container (0 = host) for the row's container
  id, or the one its cgroup maps to; ``fc_ckey(ckey, cfull)`` holds the ids,
  and ``fc_users`` / ``fc_groups`` / ``fc_cont`` get a ``ckey`` column so the
  events view joins them on integers.

``fc_pos(evt_num, evt_deltatime, ckey, cid)`` is aligned with ``fc_raw`` by
position (POSITIONAL JOIN); the alignment is verified, and ``fc_raw`` is
materialized once if the source's scan order were unstable.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import keys


@dataclass
class Events:
    """Numpy columns of the raw rows in scan order (what the descriptor stage reads)."""

    ts: np.ndarray  # int64
    fd: np.ndarray  # int64, keys.NONE for null
    pkey: np.ndarray  # int64 process instance, 0 = none
    g: np.ndarray  # int64 position in the global time order (evt_num - 1)
    ts_sorted: np.ndarray  # ts in global time order
    tid: np.ndarray  # int32
    rec: dict[str, np.ndarray]  # descriptor-record class columns (see fds.record_sql)


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _container_codes(con: Any) -> list[str]:
    rows = con.execute(
        "SELECT DISTINCT CAST(container_id AS VARCHAR) FROM fc_raw WHERE container_id IS NOT NULL "
        "UNION SELECT container_id FROM fc_cgroups WHERE container_id IS NOT NULL"
    ).fetchall()
    return sorted(r[0] for r in rows)


def _col(t: pa.Table, name: str, dtype: Any, null: Any = 0) -> np.ndarray:
    c = t.column(name)
    if c.null_count:
        c = c.fill_null(null)
    return c.to_numpy().astype(dtype, copy=False)


def _time_order(ts: np.ndarray, cpu: np.ndarray, tid: np.ndarray) -> np.ndarray | None:
    """Scan positions in (ts, cpu, tid, position) order, or None when already in that order.

    A capture in time order whose equal timestamps are not in (cpu, tid) order
    only has its runs of equal timestamps sorted.
    """
    if len(ts) < 2:
        return None
    d = np.diff(ts)
    if not (d >= 0).all():
        return np.lexsort((np.arange(len(ts)), tid, cpu, ts))
    tie = np.flatnonzero(d == 0)
    if len(tie) == 0:
        return None
    c0, c1 = cpu[tie], cpu[tie + 1]
    if ((c0 < c1) | ((c0 == c1) & (tid[tie] <= tid[tie + 1]))).all():
        return None
    rows = np.unique(np.concatenate([tie, tie + 1]))  # every row in a run of equal ts
    order = np.arange(len(ts))
    order[rows] = rows[np.lexsort((rows, tid[rows], cpu[rows], ts[rows]))]
    return order


def build(con: Any, record_sql: str) -> Events:
    """Create ``fc_pos`` / ``fc_ckey`` (and ckey columns); return the numpy columns."""
    con.execute("CREATE OR REPLACE TEMP VIEW fc_raw AS SELECT * FROM raw_events")
    ev = _scan(con, record_sql)
    if ev is None:  # pragma: no cover - only for sources whose scan order is unstable
        con.execute("DROP VIEW fc_raw; CREATE TEMP TABLE fc_raw AS SELECT * FROM raw_events")
        ev = _scan(con, record_sql)
        assert ev is not None
    return ev


def _scan(con: Any, record_sql: str) -> Events | None:
    cids = _container_codes(con)
    whens = " ".join(f"WHEN {_sql_str(c)} THEN {i + 1}" for i, c in enumerate(cids))
    cc = f"CASE CAST(container_id AS VARCHAR) {whens} END" if cids else "NULL"
    t = con.sql(
        f"SELECT ts, cpu, tid, pid, fd, CASE WHEN container_id IS NULL THEN cgroup_id END AS cg, "
        f"CAST({cc} AS INTEGER) AS cc, {record_sql} FROM fc_raw"
    ).to_arrow_table()
    n = t.num_rows
    ts = _col(t, "ts", np.int64)
    tid = _col(t, "tid", np.int32)
    pid = _col(t, "pid", np.int64)
    cpu = _col(t, "cpu", np.int32)
    fd = _col(t, "fd", np.int64, keys.NONE)
    # the alignment every POSITIONAL JOIN with fc_raw relies on
    con.register("fc_chk_arrow", pa.table({"ts": t.column("ts")}))
    bad = con.execute(
        "SELECT count(*) FROM (SELECT ts FROM fc_raw) x POSITIONAL JOIN fc_chk_arrow c "
        "WHERE x.ts IS DISTINCT FROM c.ts"
    ).fetchall()[0][0]
    con.unregister("fc_chk_arrow")
    if bad:  # pragma: no cover
        return None
    order = _time_order(ts, cpu, tid)
    if order is None:
        g = np.arange(n, dtype=np.int64)
        ts_sorted = ts
    else:
        g = np.empty(n, np.int64)
        g[order] = np.arange(n, dtype=np.int64)
        ts_sorted = ts[order]
    delta = np.empty(n, np.int64)
    if n:
        delta[0] = 0
        np.subtract(ts_sorted[1:], ts_sorted[:-1], out=delta[1:])
    dmask = np.zeros(n, bool)
    if n:
        dmask[0] = True
    if order is not None:
        delta, dmask = delta[g], dmask[g]
    ckey = _ckeys(con, t, cids)
    cid, pkey = _chains(con, pid, ts)
    pos = pa.table({
        "evt_num": pa.array(g + 1),
        "evt_deltatime": pa.array(delta, mask=dmask),
        "ckey": pa.array(ckey),
        "cid": pa.array(cid, mask=cid == 0),
    })
    con.register("fc_pos_arrow", pos)
    con.execute("CREATE OR REPLACE TEMP TABLE fc_pos AS SELECT * FROM fc_pos_arrow")
    con.unregister("fc_pos_arrow")
    rec = {"rk": _col(t, "rk", np.int16), "rfd": _col(t, "rfd", np.int64, keys.NONE),
           "sfd": _col(t, "sfd", np.int64, keys.NONE)}
    return Events(ts=ts, fd=fd, pkey=pkey, g=g, ts_sorted=ts_sorted, tid=tid, rec=rec)


def _ckeys(con: Any, t: pa.Table, cids: list[str]) -> np.ndarray:
    """Container key per row: the row's own id, else the one of its cgroup; fc_ckey."""
    cc = _col(t, "cc", np.int32).copy()
    cg_rows = con.execute(
        "SELECT id, container_id FROM fc_cgroups WHERE container_id IS NOT NULL ORDER BY id"
    ).fetchall()
    if cg_rows:
        code = {c: i + 1 for i, c in enumerate(cids)}
        cg_ids = np.array([r[0] for r in cg_rows], np.uint64)
        cg_code = np.array([code[r[1]] for r in cg_rows], np.int32)
        cg = t.column("cg")
        need = np.flatnonzero((cc == 0) & ~cg.is_null().to_numpy(zero_copy_only=False))
        if len(need):
            v = cg.take(pa.array(need)).to_numpy().astype(np.uint64)
            i = np.minimum(np.searchsorted(cg_ids, v), len(cg_ids) - 1)
            hit = cg_ids[i] == v
            cc[need[hit]] = cg_code[i[hit]]
    con.register(
        "fc_ckey_arrow",
        pa.table({"ckey": pa.array(np.arange(1, len(cids) + 1, dtype=np.int32)),
                  "cfull": pa.array(cids, pa.string())}),
    )
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_ckey AS SELECT * FROM fc_ckey_arrow;
        CREATE OR REPLACE TEMP TABLE fc_users AS
        SELECT u.*, CASE WHEN u.cid = '' THEN 0 ELSE k.ckey END AS ckey
        FROM fc_users u LEFT JOIN fc_ckey k ON k.cfull = u.cid;
        CREATE OR REPLACE TEMP TABLE fc_groups AS
        SELECT g.*, CASE WHEN g.cid = '' THEN 0 ELSE k.ckey END AS ckey
        FROM fc_groups g LEFT JOIN fc_ckey k ON k.cfull = g.cid;
        CREATE OR REPLACE TEMP TABLE fc_cont AS
        SELECT c.*, k.ckey FROM fc_cont c LEFT JOIN fc_ckey k ON k.cfull = c.full_id;
        """
    )
    con.unregister("fc_ckey_arrow")
    return cc


def _chains(con: Any, pid: np.ndarray, ts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(fc_chain.cid, pkey) per row: the chain interval of (pid, ts); 0 when none.

    DuckDB's ASOF join (parallel) over the registered numpy columns; the rows
    carry their position, so the result is scattered back into scan order.
    """
    n = len(pid)
    con.register("fc_q_arrow", pa.table({"pos": pa.array(np.arange(n, dtype=np.int64)),
                                         "pid": pa.array(pid.astype(np.int32, copy=False)),
                                         "ts": pa.array(ts)}))
    t = con.sql(
        "SELECT q.pos, c.cid, c.pkey FROM fc_q_arrow q "
        "ASOF JOIN fc_chain c ON c.pid = q.pid AND q.ts >= c.s"
    ).to_arrow_table()
    con.unregister("fc_q_arrow")
    pos = _col(t, "pos", np.int64)
    cid = np.zeros(n, np.int64)
    pkey = np.zeros(n, np.int64)
    cid[pos] = _col(t, "cid", np.int64)
    pkey[pos] = _col(t, "pkey", np.int64)
    return cid, pkey
