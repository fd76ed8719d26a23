"""``evt_num`` without a per-event table: the scan position plus a step function.

``evt_num`` is the rank of an event in ``(ts, cpu, tid, scan position)`` order.
A capture written in time order has ``evt_num = scan position + 1``; the few
rows flushed late, or tied with an earlier row's time, shift the rows around
them. :func:`evt_num_breaks` finds those rows and returns the corrections as
``(start, delta)`` rows; :func:`evt_num_sql` turns them into a SQL expression
of the scan position (``raw_events_rn._rn``, see :mod:`fcap.capture.reader`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pyarrow as pa


def column(t: pa.Table, name: str, dtype: Any, null: Any = 0) -> np.ndarray:
    """Column ``name`` of ``t`` as one numpy array of ``dtype`` (nulls as ``null``)."""
    c = t.column(name)
    if c.null_count:
        c = c.fill_null(null)
    return c.to_numpy().astype(dtype, copy=False)


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
    ts = column(con.sql("SELECT ts FROM raw_events").to_arrow_table(), "ts", np.int64)
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
    rows = column(t, "_rn", np.int64)
    if not np.array_equal(rows, need):  # pragma: no cover - raw_events_rn covers every row
        raise RuntimeError("raw_events_rn does not number every row")
    cpu, tid = column(t, "cpu", np.int64), column(t, "tid", np.int64)

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


