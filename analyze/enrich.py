"""The enriched events relation: raw capture rows + Falco fields, built in bulk.

:func:`build` takes a DuckDB connection holding the ``raw_*`` relations of a
capture (:meth:`fcap.capture.reader.Capture.attach`) and creates:

* the state tables of :mod:`fcap.analyze.state` (process instances, images and
  ancestor chains, descriptor records, users, containers);
* ``fc_pos`` / ``fc_rid``: per raw row (scan order), ``evt_num``, its
  process-chain interval and its descriptor record (two ASOF joins);
* the view ``events``: ``raw_events`` positionally joined to those and
  joined to the small state tables, with
  one snake_case column per Falco field (see docs/fields.md and
  :mod:`fcap.analyze.fields.columns`) plus the raw columns (the raw
  ``container_id`` is renamed ``raw_container_id``).

No per-event Python: every step is a DuckDB statement over whole tables.
"""

from __future__ import annotations

import time
from typing import Any

from fcap.analyze.fields.columns import columns
from fcap.analyze.state import containers, fds, processes, users

from fcap.schema import EVENTS

#: Raw columns passed through under their own name (container_id is renamed).
_RAW = [*(f.name for f in EVENTS if f.name not in ("container_id", "syscall")), "host"]


def build(con: Any, *, timings: dict[str, float] | None = None) -> None:
    """Create the ``events`` view (and its ``fc_*`` tables) in ``con``.

    ``timings``, when given, receives the seconds spent per stage.
    """
    stages = (
        ("processes", processes.build),
        ("users", users.build),
        ("containers", containers.build),
        ("positions", _build_positions),
        ("fds", fds.build),
        ("fd_keys", _build_fd_keys),
        ("view", _build_view),
    )
    for name, fn in stages:
        t0 = time.perf_counter()
        fn(con)
        if timings is not None:
            timings[name] = time.perf_counter() - t0


def _build_positions(con: Any) -> None:
    """``fc_pos``: per raw row (in scan order) its evt_num, process instance and chain row.

    The raw rows are not copied: the view reads ``raw_events`` and attaches
    ``fc_pos`` / ``fc_rid`` with POSITIONAL JOINs. :func:`_check_positional`
    verifies the scan order is stable (same ts and tid per position); if it is
    not, the raw rows are materialized once in ``fc_raw`` in that order.
    """
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_pos AS
        WITH x AS (
          SELECT row_number() OVER () AS pos, ts, cpu, tid, pid, fd, cgroup_id,
                 CAST(container_id AS VARCHAR) AS container_id
          FROM raw_events
        )
        SELECT x.pos, x.ts AS k_ts, x.tid AS k_tid, x.fd AS k_fd,
               row_number() OVER (ORDER BY x.ts, x.cpu, x.tid, x.pos) AS evt_num,
               x.ts - lag(x.ts) OVER (ORDER BY x.ts, x.cpu, x.tid, x.pos) AS evt_deltatime,
               coalesce(x.container_id, cg.container_id) AS cfull, c.cid, c.pkey
        FROM x
        LEFT JOIN fc_cgroups cg ON cg.id = x.cgroup_id AND x.container_id IS NULL
        ASOF LEFT JOIN fc_chain c ON c.pid = x.pid AND x.ts >= c.s
        ORDER BY x.pos
        """
    )
    if _check_positional(con):
        con.execute("CREATE OR REPLACE TEMP VIEW fc_raw AS SELECT * FROM raw_events")
        return
    con.execute(  # pragma: no cover - only for sources whose scan order is unstable
        """
        CREATE OR REPLACE TEMP TABLE fc_raw AS
        SELECT x.* EXCLUDE (pos) FROM (SELECT row_number() OVER () AS pos, * FROM raw_events) x
        JOIN fc_pos k ON k.k_ts = x.ts AND k.k_tid = x.tid ORDER BY k.pos
        """
    )


def _build_fd_keys(con: Any) -> None:
    """``fc_rid``: per raw row (scan order) the descriptor record valid at the event."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_rid AS
        SELECT p.pos, CASE WHEN p.k_ts < r.te THEN r.rid END AS rid
        FROM fc_pos p
        ASOF LEFT JOIN fc_fdr r ON r.pkey = p.pkey AND r.fd = p.k_fd AND p.k_ts >= r.ts
        ORDER BY p.pos
        """
    )


def _check_positional(con: Any) -> bool:
    bad = con.execute(
        "SELECT count(*) FROM (SELECT ts, tid FROM raw_events) x POSITIONAL JOIN fc_pos k "
        "WHERE x.ts IS DISTINCT FROM k.k_ts OR x.tid IS DISTINCT FROM k.k_tid"
    ).fetchone()[0]
    return bad == 0


def _meta(con: Any) -> tuple[int, str | None]:
    first = con.execute("SELECT min(k_ts) FROM fc_pos").fetchone()[0] or 0
    try:
        row = con.execute("SELECT hostname FROM raw_meta LIMIT 1").fetchone()
    except Exception:  # raw_meta absent or without hostname: tests with bare tables
        row = None
    return int(first), (row[0] if row else None)


def _build_view(con: Any) -> None:
    first_ts, hostname = _meta(con)
    cols = columns(first_ts, hostname)
    raw = ", ".join(f'e."{c}"' for c in _RAW)
    raw_x = ", ".join(f'x."{c}"' for c in _RAW)
    sel = ",\n  ".join(f"{sql} AS {name}" for name, sql in cols.items())
    con.execute(
        f"""
        CREATE OR REPLACE VIEW events AS
        SELECT e.evt_num, e.evt_type, {raw}, e.raw_container_id, e.cfull,
          {sel}
        FROM (SELECT k.evt_num, k.evt_deltatime, k.cfull, k.cid, f.rid,
                     CAST(x.syscall AS VARCHAR) AS evt_type,
                     x.container_id AS raw_container_id, {raw_x}
              FROM fc_raw x POSITIONAL JOIN fc_pos k POSITIONAL JOIN fc_rid f) e
        LEFT JOIN fc_chain c ON c.cid = e.cid
        LEFT JOIN fc_fdrec r ON r.rid = e.rid
        LEFT JOIN fc_users u ON u.uid = coalesce(e.euid, e.uid) AND u.cid = coalesce(e.cfull, '')
        LEFT JOIN fc_users lu ON lu.uid = e.loginuid AND lu.cid = coalesce(e.cfull, '')
        LEFT JOIN fc_groups g ON g.gid = coalesce(e.egid, e.gid) AND g.cid = coalesce(e.cfull, '')
        LEFT JOIN fc_cont k ON k.full_id = e.cfull
        LEFT JOIN fc_cgroups cg ON cg.id = e.cgroup_id
        """
    )


def view_columns() -> list[str]:
    """Names of the ``events`` view's columns (raw and Falco field columns)."""
    return ["evt_num", "evt_type", *_RAW, "raw_container_id", "cfull", *columns(0, None)]
