"""Per raw row keys in the capture's scan order: the chain row, ``evt_num``, ``fc_pos``.

The events views (:mod:`fcap.analyze.enrich`) compute their keys per row in the
view when the capture has a scan position (``raw_events_rn``: the Parquet row
number plus the rows of the earlier files):

* ``evt_num`` from the scan position and a step function over the few late or
  tied rows (:func:`evt_num_breaks`, :func:`evt_num_sql`);
* the process-chain row (``fc_chain.cid``) by a hash join on ``pid`` and the
  chain interval ``[s, e)``, an ASOF join only for the rare pids with many
  intervals (:func:`chain_join`, :func:`interval_join`).

:func:`scan_rn` gives the descriptor stage (:mod:`~fcap.analyze.state.fds`)
those columns plus the record class of every row, in scan order, from one
parallel scan. :func:`build` is the numpy version, for ``evt_deltatime`` and
for captures without a usable scan position (journals, too many late rows):
one scan of ``fc_raw`` (``raw_events``) fetches the narrow integer columns
(time, cpu, tid, pid, fd, container code and, for the descriptor stage, the
record class); numpy then computes, without sorting when the capture is
already in time order, ``evt_num`` / ``evt_deltatime`` (position and time
delta in the global order ``(ts, cpu, tid, scan position)``) and the chain row
and instance (``pkey``, an ASOF on ``(pid, ts)``), and writes
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


#: Most breakpoints :func:`evt_num_breaks` returns (beyond: None, fc_pos is built instead).
MAX_BREAKS = 2048


def evt_num_breaks(con: Any) -> np.ndarray | None:
    """``evt_num - 1 - scan position`` as a step function of the scan position.

    Rows ``(start, delta)`` sorted by ``start``: from scan position ``start`` on
    (until the next row), ``evt_num = position + 1 + delta``. A capture in time
    order has the single row ``(0, 0)``; a capture with a few late rows (e.g.
    a record flushed after later ones) has a few rows per late row. None when
    there would be more than :data:`MAX_BREAKS` rows.

    The rows whose time exceeds every earlier row's (``N``) are in global order
    already; the others (``E``, late or tied rows) are few and sorted on their
    own, then each side is placed among the other with binary searches. Only the
    times of every row are read (``cpu`` and ``tid`` of the few rows the
    placement compares); needs ``raw_events_rn``.
    """
    ts = _col(con.sql("SELECT ts FROM raw_events").to_arrow_table(), "ts", np.int64)
    late = _late(ts)
    if not isinstance(late, tuple):
        return late
    e, first_at, last_in = late
    # cpu and tid of the few rows _place compares, fetched by scan position
    need = np.unique(np.concatenate([e, first_at[first_at < len(ts)], [last_in]]))
    con.register("fc_need_arrow", pa.table({"rn": pa.array(need)}))
    try:
        t = con.sql("SELECT x._rn, x.cpu, x.tid FROM raw_events_rn x "
                    "SEMI JOIN fc_need_arrow q ON q.rn = x._rn ORDER BY x._rn").to_arrow_table()
    finally:
        con.unregister("fc_need_arrow")
    rows = _col(t, "_rn", np.int64)
    if not np.array_equal(rows, need):  # pragma: no cover - raw_events_rn covers every row
        raise RuntimeError("raw_events_rn does not number every row")
    cpu, tid = _col(t, "cpu", np.int64), _col(t, "tid", np.int64)

    def get(r: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i = np.searchsorted(need, r)
        return ts[r], cpu[i], tid[i]

    return _place(len(ts), e, first_at, last_in, get)


def breaks_of(ts: np.ndarray, cpu: np.ndarray, tid: np.ndarray) -> np.ndarray | None:
    """:func:`evt_num_breaks` of the columns in scan order."""
    late = _late(ts)
    if not isinstance(late, tuple):
        return late
    e, first_at, last_in = late
    return _place(len(ts), e, first_at, last_in, lambda r: (ts[r], cpu[r], tid[r]))


def _late(ts: np.ndarray) -> np.ndarray | tuple[np.ndarray, np.ndarray, int] | None:
    """The late or tied rows ``E`` (time not above every earlier row's), in scan order, with
    for each the first in-order row at or after its time (``len(ts)``: none) and the last
    in-order row; or the breaks themselves (none late: ``[[0, 0]]``; too many: None)."""
    n = len(ts)
    run = np.maximum.accumulate(ts) if n else ts
    late = np.zeros(n, bool)
    if n > 1:
        np.less_equal(ts[1:], run[:-1], out=late[1:])
    e = np.flatnonzero(late)
    if len(e) == 0:
        return np.zeros((1, 2), np.int64)
    if 3 * len(e) + 1 > MAX_BREAKS:
        return None
    # the running maximum first reaches a time at an in-order row
    first_at = np.searchsorted(run, ts[e], "left")
    last_in = n - 1 - int(np.argmax(~late[::-1]))  # row 0 is in order: never none
    return e, first_at, last_in


def _place(n: int, e: np.ndarray, first_at: np.ndarray, last_in: int,
           get: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray, np.ndarray]]
           ) -> np.ndarray:
    """The breaks from the late rows ``e`` (see :func:`_late`); ``get(rows)``: their
    (ts, cpu, tid). Works on arrays the size of ``e``: the in-order rows ``N`` are
    counted, not listed (N-rank of a position p: p minus the late rows before it)."""
    es = e  # late rows by position
    ts_e, cpu_e, tid_e = get(e)
    o = np.lexsort((e, tid_e, cpu_e, ts_e))  # E in global order
    e, first_at, ts_e, cpu_e, tid_e = e[o], first_at[o], ts_e[o], cpu_e[o], tid_e[o]
    n_n = n - len(es)
    # N rows below each E row: those with an earlier time, plus a tie that sorts first
    below = first_at - np.searchsorted(es, first_at)
    r = np.where(first_at < n, first_at, last_in)
    ts_r, cpu_r, tid_r = get(r)
    first = (cpu_r < cpu_e) | ((cpu_r == cpu_e) & ((tid_r < tid_e)
                                                   | ((tid_r == tid_e) & (r < e))))
    below = below + ((below < n_n) & (ts_r == ts_e) & first)
    g_e = below + np.arange(len(e))
    # for N rows: +1 from the first N row above each E row, -1 after each E row's position
    k = below[below < n_n]
    up = k + np.searchsorted(es - np.arange(len(es)), k, "right")  # position of N-rank k
    pts = np.concatenate([up, e + 1, [0]])
    chg = np.concatenate([np.ones(len(up), np.int64), -np.ones(len(e), np.int64), [0]])
    o = np.argsort(pts, kind="stable")
    pts, cum = pts[o], np.cumsum(chg[o])
    starts = np.unique(np.concatenate([pts, e]))
    starts = starts[starts < n]
    vals = cum[np.searchsorted(pts, starts, "right") - 1]
    ge = np.empty(len(es), np.int64)  # g - position of each late row, by position
    ge[np.searchsorted(es, e)] = g_e - e
    i = np.minimum(np.searchsorted(es, starts), len(es) - 1)
    vals = np.where(es[i] == starts, ge[i], vals)
    keep = np.ones(len(starts), bool)
    keep[1:] = vals[1:] != vals[:-1]
    return np.stack([starts[keep], vals[keep]], axis=1)


def evt_num_sql(breaks: np.ndarray, x: str) -> str:
    """SQL of ``evt_num`` from the scan position ``x`` (a balanced CASE over the breaks)."""

    def tree(lo: int, hi: int) -> str:
        if hi - lo == 1:
            return str(int(breaks[lo, 1]))
        mid = (lo + hi) // 2
        return f"CASE WHEN {x} < {int(breaks[mid, 0])} THEN {tree(lo, mid)} ELSE {tree(mid, hi)} END"

    return f"({x} + 1 + {tree(0, len(breaks))})"


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
    ck = con.execute("SELECT ckey, cfull FROM fc_ckey ORDER BY ckey").fetchall()
    whens = " ".join(f"WHEN {_sql_str(c)} THEN {k}" for k, c in ck)
    cc = f"CASE CAST(container_id AS VARCHAR) {whens} END" if ck else "NULL"
    t = con.sql(
        f"SELECT ts, cpu, tid, pid, fd, CASE WHEN container_id IS NULL THEN cgroup_id END AS cg, "
        f"CAST({cc} AS INTEGER) AS cc{rec_cols} FROM {wrap('fc_raw') if record_sql else 'fc_raw'}"
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


def _rec(t: pa.Table) -> dict[str, np.ndarray]:
    return {"rk": _col(t, "rk", np.int16), "rfd": _col(t, "rfd", np.int64, keys.NONE),
            "sfd": _col(t, "sfd", np.int64, keys.NONE)}


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


def scan_rn(con: Any, record_sql: str, num_sql: str, wrap: Callable[[str], str] = str) -> Events:
    """The descriptor stage's numpy columns for a capture with ``raw_events_rn``.

    One parallel scan: ``evt_num`` from the scan position (``num_sql``, see
    :func:`evt_num_sql`), the chain row (:func:`chain_join`), the record class
    (``record_sql`` over ``wrap(relation)``); the rows come back in any order and are put in scan order
    by their ``_rn``. No per-row table is written: views compute the keys
    themselves and join the descriptor records on ``_rn``.
    """
    raw_relation(con)
    cid_sql, chain = chain_join(con)
    t = con.sql(
        f"SELECT x._rn AS rn, {num_sql} AS evt_num, {cid_sql} AS cid, x.ts, x.tid, x.fd, "
        f"{record_sql} FROM {wrap('raw_events_rn')} x {' '.join(chain)}"
    ).to_arrow_table()
    rn = _col(t, "rn", np.int64)
    ts = _scan_order(t, rn, "ts", np.int64)
    g = _scan_order(t, rn, "evt_num", np.int64) - 1
    cid = _scan_order(t, rn, "cid", np.int64)
    rec = {"rk": _scan_order(t, rn, "rk", np.int16),
           "rfd": _scan_order(t, rn, "rfd", np.int64, keys.NONE),
           "sfd": _scan_order(t, rn, "sfd", np.int64, keys.NONE)}
    fd = _scan_order(t, rn, "fd", np.int64, keys.NONE)
    tid = _scan_order(t, rn, "tid", np.int32)
    del t, rn
    if not _aligned(con, pa.table({"ts": ts})):  # pragma: no cover - raw_events_rn is by position
        raise RuntimeError("raw_events_rn is not in raw_events' scan order")
    ts_sorted = np.empty_like(ts)
    ts_sorted[g] = ts
    return Events(ts=ts, fd=fd, pkey=_pkey_of(con, cid), g=g, ts_sorted=ts_sorted, tid=tid,
                  rec=rec)


def _scan_order(t: pa.Table, rn: np.ndarray, name: str, dtype: Any, null: Any = 0) -> np.ndarray:
    """Column ``name`` of ``t`` put in scan order (row i of ``t`` has scan position rn[i])."""
    out = np.empty(len(rn), dtype)
    out[rn] = _col(t, name, dtype, null)
    return out


#: Pids with more intervals than this are looked up by an ASOF join (a hash join on pid
#: checks every interval of the pid).
CHAIN_HASH_MAX = 16


def chain_join(con: Any) -> tuple[str, list[str]]:
    """The chain row of each raw row ``x`` (``fc_chain.cid``, NULL: none): its SQL and joins."""
    return interval_join(con, "fc_chain", "cid", "h")


def interval_join(con: Any, table: str, key: str, alias: str) -> tuple[str, list[str]]:
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
    hashed = [f"LEFT JOIN {table}_few {a} ON {a}.pid = x.pid AND x.ts >= {a}.s AND x.ts < {a}.e"]
    if not many:
        return f"{a}.{key}", hashed
    return f"coalesce({a}.{key}, {a}b.{key})", [
        *hashed,
        f"LEFT JOIN {table}_sh {a}s ON {a}s.pid = x.pid",
        f"LEFT JOIN {table}_mb {a}b ON {a}b.pid = x.pid AND {a}b.b = (x.ts >> {a}s.shift) "
        f"AND x.ts >= {a}b.s AND x.ts < {a}b.e"]


def no_loop_asof(con: Any) -> None:
    # DuckDB plans an ASOF join whose left side it estimates small as a nested loop over
    # every chain row of the pid, far slower on millions of events
    con.execute("SET asof_loop_join_threshold = 0")


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def _ckeys(con: Any, t: pa.Table) -> np.ndarray:
    """Container key per row (``fc_ckey``, 0 = host): the row's own id, else its cgroup's."""
    cc = _col(t, "cc", np.int32).copy()
    cg_rows = con.execute(
        "SELECT id, ckey FROM fc_cgck ORDER BY id"
    ).fetchall()
    if cg_rows:
        cg_ids = np.array([r[0] for r in cg_rows], np.uint64)
        cg_key = np.array([r[1] for r in cg_rows], np.int32)
        cg = t.column("cg")
        need = np.flatnonzero((cc == 0) & ~cg.is_null().to_numpy(zero_copy_only=False))
        if len(need):
            v = cg.take(pa.array(need)).to_numpy().astype(np.uint64)
            i = np.minimum(np.searchsorted(cg_ids, v), len(cg_ids) - 1)
            hit = cg_ids[i] == v
            cc[need[hit]] = cg_key[i[hit]]
    return cc


def _chains(con: Any, pid: np.ndarray, ts: np.ndarray) -> np.ndarray:
    """fc_chain.cid per row: the chain interval of (pid, ts); 0 when none.

    DuckDB's ASOF join (parallel) over the registered numpy columns; the rows
    carry their position, so the result is scattered back into scan order.
    """
    n = len(pid)
    no_loop_asof(con)
    con.register("fc_q_arrow", pa.table({"pos": pa.array(np.arange(n, dtype=np.int64)),
                                         "pid": pa.array(pid.astype(np.int32, copy=False)),
                                         "ts": pa.array(ts)}))
    t = con.sql(
        "SELECT q.pos, c.cid FROM fc_q_arrow q "
        "ASOF JOIN fc_chain c ON c.pid = q.pid AND q.ts >= c.s"
    ).to_arrow_table()
    con.unregister("fc_q_arrow")
    cid = np.zeros(n, np.int64)
    cid[_col(t, "pos", np.int64)] = _col(t, "cid", np.int64)
    return cid
