"""The per-row stages of the events views, built on first use: the descriptor state
(``fc_rid``, ``fc_fdrec``: in one piece, or in parts when it would not fit in memory)
and ``fc_pos`` (numpy keys for ``evt_deltatime`` and captures without a scan position).
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from fcap.analyze.state import fdparts, fds, keys, memory, positions


def exists(con: Any, name: str) -> bool:
    return bool(con.execute(
        "SELECT 1 FROM duckdb_tables() WHERE table_name = ? UNION ALL "
        "SELECT 1 FROM duckdb_views() WHERE view_name = ?", [name, name]).fetchall())


def ensure(con: Any, stages: set[str], timings: dict[str, float] | None = None,
            rows: str | None = None) -> bool:
    """Build the per-row stages that do not exist yet.

    ``fd``: the descriptor state (``fc_rid``, ``fc_fdrec``); ``pos``: ``fc_pos``
    (numpy: evt_num, evt_deltatime, chain row, container key), for
    ``evt_deltatime`` and for captures without a scan position; it then also
    carries each row's ``rid``.

    ``rows`` (a table of scan positions ``rn``, capture with a scan position):
    when the descriptor state does not exist yet, build it for those rows only
    (from the rows that make or end a record and those rows, see
    :func:`fcap.analyze.state.fds.subset`) and return True: views are then exact
    for those rows only (and ``fc_pos`` does not carry it), and the caller drops
    it with :func:`drop_partial` before any other use of the connection.
    """
    num_sql = con.execute("SELECT evt_num_sql FROM fc_viewmeta").fetchone()[0]
    partial = False
    if "fd" in stages and not exists(con, "fc_rid"):
        sub: dict[str, float] = {}
        partial = bool(rows) and num_sql is not None
        nrows = int(con.execute("SELECT count(*) FROM raw_events").fetchone()[0])
        if num_sql is None:  # captures without a scan position: one piece
            memory.check(nrows)
            n_parts = 1
        else:
            n_parts = memory.parts(nrows)
        with keys.small_pages():
            if n_parts > 1:
                fdparts.build(con, num_sql, n_parts, rows if partial else None, sub)
            else:
                _fd_state(con, num_sql, rows if partial else None, sub)
        if partial:
            con.execute("CREATE OR REPLACE TEMP TABLE fc_fdpartial AS SELECT 1 AS partial")
        if timings is not None:
            timings.update({f"fds.{k}" if not k.startswith("fds.") else k: v
                            for k, v in sub.items()})
    pos_cols = positions.table_columns(con, "fc_pos")
    if "pos" in stages and "evt_deltatime" not in pos_cols:
        positions.build(con, None)
        pos_cols = positions.table_columns(con, "fc_pos")
    if pos_cols and exists(con, "fc_rid") and "rid" not in pos_cols and not exists(
            con, "fc_fdpartial"):
        # fc_pos carries each row's record: the views join it once (on _rn, or by position)
        con.execute("CREATE OR REPLACE TEMP TABLE fc_pos AS SELECT k.*, f.rid FROM fc_pos k "
                    "LEFT JOIN fc_rid f ON f.rn = k.rn ORDER BY k.rn")
    return partial


def _fd_state(con: Any, num_sql: str | None, rows: str | None,
              sub: dict[str, float]) -> None:
    """The descriptor state in one piece (``rows``: for those rows only)."""
    t0 = time.perf_counter()
    if rows:
        ev = positions.scan_rn(con, fds.record_sql, num_sql, fds.subset(rows), subset=True)
    elif num_sql is not None:
        ev = positions.scan_rn(con, fds.record_sql, num_sql, fds.with_code)
    else:
        ev = positions.build(con, fds.record_sql, fds.with_code)
    sub["positions"] = time.perf_counter() - t0
    keep = None
    if rows:  # only the rows of ``rows`` read the state
        want = con.execute(f"SELECT rn FROM {rows}").fetchnumpy()["rn"]
        keep = np.isin(ev.rn, want.astype(np.int64))
    fds.build(con, ev, sub, keep)


def drop_partial(con: Any) -> None:
    """Drop a descriptor state built for some rows only (``ensure(rows=...)``)."""
    if exists(con, "fc_fdpartial"):
        con.execute("DROP TABLE IF EXISTS fc_rid; DROP TABLE IF EXISTS fc_fdrec; "
                    "DROP TABLE fc_fdpartial")
