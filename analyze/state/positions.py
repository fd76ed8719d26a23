"""Per raw row keys in the capture's scan order: the chain row, ``evt_num``, ``fc_pos``.

The events views (:mod:`fcap.analyze.enrich`) compute their keys per row in the
view when the capture has a scan position (``raw_events_rn``: the Parquet row
number plus the rows of the earlier files):

* ``evt_num`` from the scan position and a step function over the few late or
  tied rows (:mod:`~fcap.analyze.state.evtnum`);
* the process-chain row (``fc_chain.cid``) by a hash join on ``pid`` and the
  chain interval ``[s, e)``, on ``pid`` and a time bucket for the rare pids
  with many intervals (:func:`chain_join`, :func:`interval_join`).

:func:`scan_rn` gives the descriptor stage (:mod:`~fcap.analyze.state.fds`)
those columns plus the record class of every row, in scan order, from one
parallel scan. :func:`build` is the numpy version, for ``evt_deltatime`` and
for captures without a usable scan position (journals, too many late rows):
one scan of ``fc_raw`` (``raw_events``) fetches the narrow integer columns
(time, cpu, tid, pid, fd, container code and, for the descriptor stage, the
record class); numpy then computes, without sorting when the capture is
already in time order, ``evt_num`` / ``evt_deltatime`` (position and time
delta in the global order ``(ts, cpu, tid, scan position)``) and the chain row
and instance (``pkey``, :func:`chain_join` again), and writes
``fc_pos(rn, evt_num, evt_deltatime, cid, ckey)`` (``ckey``: the container key
of :func:`fcap.analyze.state.containers.keys`, 0 = host), aligned with
``fc_raw`` by position (POSITIONAL JOIN); the alignment is verified, and
``fc_raw`` is materialized once if the source's scan order were unstable.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import hosts, keys
from fcap.analyze.state.evtnum import MAX_BREAKS, breaks_of, evt_num_breaks, evt_num_sql
from fcap.analyze.state.evtnum import column as _col

__all__ = [
    "CHAIN_HASH_MAX",
    "MAX_BREAKS",
    "Events",
    "breaks_of",
    "build",
    "chain_join",
    "evt_num_breaks",
    "evt_num_sql",
    "interval_join",
    "raw_relation",
    "scan_rn",
    "table_columns",
]


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
    #: scan position of each row when the columns hold a subset of the rows (the
    #: arrays are then indexed by rank in it, ``g`` is the rank in time order); None: all
    rn: np.ndarray | None = None


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


def table_columns(con: Any, table: str) -> set[str]:
    """Column names of ``table`` in ``con`` (empty when there is none)."""
    return {r[0] for r in con.execute(
        "SELECT column_name FROM duckdb_columns() WHERE table_name = ?", [table]).fetchall()}


def raw_relation(con: Any) -> None:
    """Create ``fc_raw``, the relation ``fc_pos`` is aligned with, unless it exists."""
    if not table_columns(con, "fc_raw"):
        con.execute("CREATE TEMP VIEW fc_raw AS SELECT * FROM raw_events")


def build(con: Any, record_sql: str | None, wrap: Callable[[str], str] = str) -> Events:
    """Create ``fc_pos``; return the numpy columns (``rec`` only with a ``record_sql``).

    ``wrap(relation)``: the relation ``record_sql`` reads (it may add columns).
    """
    raw_relation(con)
    ev = _scan(con, record_sql, wrap)
    if ev is None:  # pragma: no cover - only for sources whose scan order is unstable
        con.execute("DROP VIEW fc_raw; CREATE TEMP TABLE fc_raw AS SELECT * FROM raw_events")
        ev = _scan(con, record_sql, wrap)
        assert ev is not None
    return ev


def _scan(con: Any, record_sql: str | None, wrap: Callable[[str], str]) -> Events | None:
    rec_cols = f", {record_sql}" if record_sql else ""
    hk = ", fc_hk" if hosts.names(con) is not None else ""
    ck = con.execute("SELECT ckey, cfull FROM fc_ckey ORDER BY ckey").fetchall()
    whens = " ".join(f"WHEN {_sql_str(c)} THEN {k}" for k, c in ck)
    cc = f"CASE CAST(container_id AS VARCHAR) {whens} END" if ck else "NULL"
    t = con.sql(
        f"SELECT ts, cpu, tid, pid, fd, CASE WHEN container_id IS NULL THEN cgroup_id END AS cg, "
        f"CAST({cc} AS INTEGER) AS cc{hk}{rec_cols} FROM {wrap(hosts.rel(con, 'fc_raw', _KEYS))}"
    ).to_arrow_table()
    n = t.num_rows
    ts = _col(t, "ts", np.int64)
    tid = _col(t, "tid", np.int32)
    pid = _col(t, "pid", np.int64)
    cpu = _col(t, "cpu", np.int32)
    fd = _col(t, "fd", np.int64, keys.NONE)
    if not _aligned(con, t):  # pragma: no cover
        return None
    order = _time_order(ts, cpu, tid)
    if order is None:
        g = np.arange(n, dtype=np.int64)
        ts_sorted = ts
    else:
        g = np.empty(n, np.int64)
        g[order] = np.arange(n, dtype=np.int64)
        ts_sorted = ts[order]
    if "fc_hk" in t.column_names:  # several hosts: the previous event of the same host
        delta, dmask = _host_deltas(ts, g, _col(t, "fc_hk", np.int64))
    else:
        delta = np.empty(n, np.int64)
        if n:
            delta[0] = 0
            np.subtract(ts_sorted[1:], ts_sorted[:-1], out=delta[1:])
        dmask = np.zeros(n, bool)
        if n:
            dmask[0] = True
        if order is not None:
            delta, dmask = delta[g], dmask[g]
    cid = _chains(con, pid, ts)
    pkey = _pkey_of(con, cid)
    pos = pa.table({"rn": pa.array(np.arange(n, dtype=np.int64)), "evt_num": pa.array(g + 1),
                    "evt_deltatime": pa.array(delta, mask=dmask),
                    "cid": pa.array(cid, mask=cid == 0), "ckey": pa.array(_ckeys(con, t))})
    del cid
    con.register("fc_pos_arrow", pos)
    con.execute("CREATE OR REPLACE TEMP TABLE fc_pos AS SELECT * FROM fc_pos_arrow")
    con.unregister("fc_pos_arrow")
    del pos, delta, dmask
    return Events(ts=ts, fd=fd, pkey=pkey, g=g, ts_sorted=ts_sorted, tid=tid,
                  rec=_rec(t) if record_sql else {})


def _host_deltas(ts: np.ndarray, g: np.ndarray, hk: np.ndarray
                 ) -> tuple[np.ndarray, np.ndarray]:
    """``evt_deltatime`` (and its null mask) per row when the rows are of several hosts:
    the time since the previous event of the row's host, in event order (``g``)."""
    n = len(ts)
    idx = np.lexsort((g, hk))  # by host, then event order
    d = np.zeros(n, np.int64)
    first = np.ones(n, bool)
    if n > 1:
        ts_h, hk_h = ts[idx], hk[idx]
        np.subtract(ts_h[1:], ts_h[:-1], out=d[1:])
        first[1:] = hk_h[1:] != hk_h[:-1]
    delta = np.empty(n, np.int64)
    dmask = np.empty(n, bool)
    delta[idx] = np.where(first, 0, d)
    dmask[idx] = first
    return delta, dmask


def _rec(t: pa.Table, rn: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The record class columns of ``t`` (``fds.record_sql``), in scan order."""
    return {"rk": _scan_order(t, rn, "rk", np.int32),
            "rfd": _scan_order(t, rn, "rfd", np.int64, keys.NONE),
            "sfd": _scan_order(t, rn, "sfd", np.int64, keys.NONE)}


def _aligned(con: Any, t: pa.Table) -> bool:
    """The alignment every POSITIONAL JOIN with ``fc_raw`` relies on (fetched ts = a rescan)."""
    con.register("fc_chk_arrow", pa.table({"ts": t.column("ts")}))
    bad = con.execute(
        "SELECT count(*) FROM (SELECT ts FROM fc_raw) x POSITIONAL JOIN fc_chk_arrow c "
        "WHERE x.ts IS DISTINCT FROM c.ts"
    ).fetchall()[0][0]
    con.unregister("fc_chk_arrow")
    return not bad


def _pkey_of(con: Any, cid: np.ndarray) -> np.ndarray:
    """Process instance per row from its chain row (0 = none; chain rows count from 1)."""
    rows = con.execute("SELECT cid, pkey FROM fc_chain").fetchnumpy()
    lut = np.zeros(int(max(rows["cid"].max(initial=0), cid.max(initial=0))) + 1, np.int64)
    lut[rows["cid"].astype(np.int64)] = rows["pkey"].astype(np.int64)
    return lut[cid]


def scan_rn(con: Any, record_sql: str, num_sql: str, wrap: Callable[[str], str] = str,
            subset: bool = False) -> Events:
    """The descriptor stage's numpy columns for a capture with ``raw_events_rn``.

    One parallel scan: ``evt_num`` from the scan position (``num_sql``, see
    :func:`evt_num_sql`), the chain row (:func:`chain_join`), the record class
    (``record_sql`` over ``wrap(relation)``); the rows come back in any order and are put in scan order
    by their ``_rn``. No per-row table is written: views compute the keys
    themselves and join the descriptor records on ``_rn``.

    ``subset``: ``wrap`` keeps some of the rows only; the columns are then
    indexed by rank among them (``Events.rn`` gives their scan positions).
    """
    raw_relation(con)
    cid_sql, chain = chain_join(con)
    t = con.sql(
        f"SELECT x._rn AS rn, {num_sql} AS evt_num, {cid_sql} AS cid, x.ts, x.tid, x.fd, "
        f"{record_sql} FROM {wrap(hosts.rel(con, 'raw_events_rn', _KEYS))} x {' '.join(chain)}"
    ).to_arrow_table()
    rn = _col(t, "rn", np.int64)
    sub = None
    if subset:  # rank of each row among the subset's scan positions (the scan returns
        # runs in order: a stable sort merges them)
        order = np.argsort(rn, kind="stable")
        sub = rn[order]
        rn = np.empty(len(order), np.int64)
        rn[order] = np.arange(len(order), dtype=np.int64)
    ts = _scan_order(t, rn, "ts", np.int64)
    g = _scan_order(t, rn, "evt_num", np.int64) - 1
    cid = _scan_order(t, rn, "cid", np.int64)
    rec = _rec(t, rn)
    fd = _scan_order(t, rn, "fd", np.int64, keys.NONE)
    tid = _scan_order(t, rn, "tid", np.int32)
    del t, rn
    if sub is not None:  # rank in the subset's time order
        rank = np.empty(len(g), np.int64)
        rank[np.argsort(g, kind="stable")] = np.arange(len(g), dtype=np.int64)
        g = rank
    elif not _aligned(con, pa.table({"ts": ts})):  # pragma: no cover - raw_events_rn is by position
        raise RuntimeError("raw_events_rn is not in raw_events' scan order")
    ts_sorted = np.empty_like(ts)
    ts_sorted[g] = ts
    return Events(ts=ts, fd=fd, pkey=_pkey_of(con, cid), g=g, ts_sorted=ts_sorted, tid=tid,
                  rec=rec, rn=sub)


def _scan_order(t: pa.Table, rn: np.ndarray | None, name: str, dtype: Any, null: Any = 0
                ) -> np.ndarray:
    """Column ``name`` of ``t`` put in scan order (row i of ``t`` has scan position rn[i];
    None: ``t`` is in scan order)."""
    if rn is None:
        return _col(t, name, dtype, null)
    out = np.empty(len(rn), dtype)
    out[rn] = _col(t, name, dtype, null)
    return out


#: The raw columns the positions scans read as keys (several hosts: made unique per host,
#: :func:`fcap.analyze.state.hosts.rel`; with a fork caller's ``res``, ``fds.record_sql``'s
#: child pid); ``tid`` stays real: it orders events.
_KEYS = ("pid",)
KEY_COLUMNS = _KEYS

#: Pids with more intervals than this are joined on (pid, time bucket) instead of pid alone
#: (a hash join on pid checks every interval of the pid).
CHAIN_HASH_MAX = 16


def chain_join(con: Any, pid: str = "x.pid") -> tuple[str, list[str]]:
    """The chain row of each raw row ``x`` (``fc_chain.cid``, NULL: none): its SQL and joins.

    ``pid``: SQL of the row's pid as the state keys it (several hosts: the host pid)."""
    return interval_join(con, "fc_chain", "cid", "h", pid)


def interval_join(con: Any, table: str, key: str, alias: str, pid: str = "x.pid"
                  ) -> tuple[str, list[str]]:
    """The row of ``table`` (per-pid intervals ``[s, e)``) holding each raw row ``x``.

    Returns the SQL of its ``key`` column (NULL: none) and the joins to add after
    the raw rows ``x``. Hash joins only (an ASOF join sorts every event):

    * a pid with at most :data:`CHAIN_HASH_MAX` intervals (nearly all: one per
      exec or new parent): on ``pid`` with ``s <= ts < e`` (``{table}_few``);
    * a pid with more (e.g. a shell's cwd changes): on ``pid`` and a time bucket
      ``ts >> shift`` with the interval test (``{table}_mb``). The pid's bucket
      width (``{table}_sh``, a power of two) is about its lifetime over its
      interval count, and an interval has a row per bucket it overlaps, so a
      bucket holds about one interval and the table about three rows per
      interval (events fall between the capture's first and last times, where
      the intervals are clipped).
    """
    if not table_columns(con, f"{table}_few"):
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE {table}_many AS
            SELECT pid FROM {table} GROUP BY pid HAVING count(*) > {CHAIN_HASH_MAX};
            CREATE OR REPLACE TEMP TABLE {table}_few AS
            SELECT t.{key}, t.pid, t.s, t.e FROM {table} t
            WHERE t.pid NOT IN (SELECT pid FROM {table}_many);
            CREATE OR REPLACE TEMP TABLE {table}_clip AS
            SELECT t.{key}, t.pid, t.s, t.e, greatest(t.s, r.lo) AS cs, least(t.e, r.hi) AS ce
            FROM {table} t, (SELECT min(ts) AS lo, max(ts) + 1 AS hi FROM raw_events) r
            WHERE t.pid IN (SELECT pid FROM {table}_many);
            CREATE OR REPLACE TEMP TABLE {table}_sh AS
            SELECT pid, CAST(floor(log2(greatest(1, (max(ce) - min(cs)) // count(*)))) AS INTEGER)
                   AS shift
            FROM {table}_clip WHERE cs < ce GROUP BY pid;
            CREATE OR REPLACE TEMP TABLE {table}_mb AS
            SELECT c.pid, unnest(range(c.cs >> h.shift, ((c.ce - 1) >> h.shift) + 1)) AS b,
                   c.{key}, c.s, c.e
            FROM {table}_clip c JOIN {table}_sh h USING (pid) WHERE c.cs < c.ce;
            DROP TABLE {table}_clip
            """)
    many = con.execute(f"SELECT count(*) FROM {table}_sh").fetchall()[0][0]
    a = alias
    hashed = [f"LEFT JOIN {table}_few {a} ON {a}.pid = {pid} AND x.ts >= {a}.s AND x.ts < {a}.e"]
    if not many:
        return f"{a}.{key}", hashed
    return f"coalesce({a}.{key}, {a}b.{key})", [
        *hashed,
        f"LEFT JOIN {table}_sh {a}s ON {a}s.pid = {pid}",
        f"LEFT JOIN {table}_mb {a}b ON {a}b.pid = {pid} AND {a}b.b = (x.ts >> {a}s.shift) "
        f"AND x.ts >= {a}b.s AND x.ts < {a}b.e"]


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ckeys(con: Any, t: pa.Table) -> np.ndarray:
    """Container key per row (``fc_ckey``, 0 = host): the row's own id, else its cgroup's.

    Several hosts (``t`` has ``fc_hk``): cgroups are looked up among the row's host's,
    and a host process's key is ``-hk`` (:mod:`fcap.analyze.state.hosts`)."""
    cc = _col(t, "cc", np.int32).copy()
    multi = "fc_hk" in t.column_names
    hk = _col(t, "fc_hk", np.int32) if multi else np.zeros(len(cc), np.int32)
    cg_rows = con.execute(
        f"SELECT id, ckey, {'hk' if multi else '0'} AS hk FROM fc_cgck ORDER BY id"
    ).fetchall()
    if cg_rows:
        cg_hk = np.array([r[2] for r in cg_rows], np.int32)
        cg = t.column("cg")
        none = (cc == 0) & ~cg.is_null().to_numpy(zero_copy_only=False)
        for h in np.unique(cg_hk):  # one lookup per host
            mine = cg_hk == h
            cg_ids = np.array([r[0] for r, m in zip(cg_rows, mine, strict=True) if m], np.uint64)
            cg_key = np.array([r[1] for r, m in zip(cg_rows, mine, strict=True) if m], np.int32)
            need = np.flatnonzero(none & (hk == h))
            if len(need):
                v = cg.take(pa.array(need)).to_numpy().astype(np.uint64)
                i = np.minimum(np.searchsorted(cg_ids, v), len(cg_ids) - 1)
                hit = cg_ids[i] == v
                cc[need[hit]] = cg_key[i[hit]]
    if multi:
        host = cc == 0
        cc[host] = -hk[host]
    return cc


def _chains(con: Any, pid: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """fc_chain.cid per row: the chain interval of (pid, ts); 0 when none.

    The views' lookup (:func:`chain_join`) over the registered numpy columns; the
    rows carry their position, so the result is scattered back into scan order.
    """
    n = len(pid)
    cid_sql, chain = chain_join(con)
    con.register("fc_q_arrow", pa.table({"pos": pa.array(np.arange(n, dtype=np.int64)),
                                         "pid": pa.array(pid.astype(np.int32, copy=False)),
                                         "ts": pa.array(ts)}))
    try:
        t = con.sql(f"SELECT x.pos, {cid_sql} AS cid FROM fc_q_arrow x {' '.join(chain)}"
                    ).to_arrow_table()
    finally:
        con.unregister("fc_q_arrow")
    cid = np.zeros(n, np.int64)
    cid[_col(t, "pos", np.int64)] = _col(t, "cid", np.int64)
    return cid
