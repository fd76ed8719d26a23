"""The enriched events relation: raw capture rows + Falco fields, built in bulk.

:func:`build` takes a DuckDB connection holding the ``raw_*`` relations of a
capture (:meth:`fcap.capture.reader.Capture.attach`) and creates:

* the state tables of :mod:`fcap.analyze.state` (process instances, images and
  ancestor chains, users, containers);
* ``fc_pos`` (:mod:`~fcap.analyze.state.positions`): per raw row (scan order)
  ``evt_num``, ``evt_deltatime``, its container key and process-chain row;
* ``fc_rid`` / ``fc_fdrec`` (:mod:`~fcap.analyze.state.fds`): per raw row the
  descriptor record valid at the event, and the records;
* the view ``events``: ``raw_events`` positionally joined to those and
  joined to the small state tables, with
  one snake_case column per Falco field (see docs/fields.md and
  :mod:`fcap.analyze.fields.columns`) plus the raw columns (the raw
  ``container_id`` is renamed ``raw_container_id``).

No per-event Python: every step is a DuckDB statement or a numpy operation
over whole columns.
"""

from __future__ import annotations

import time
from typing import Any

from fcap.analyze.fields.columns import columns
from fcap.analyze.state import containers, fds, positions, processes, users

from fcap.schema import EVENTS

#: Raw columns passed through under their own name (container_id is renamed).
_RAW = [*(f.name for f in EVENTS if f.name not in ("container_id", "syscall")), "host"]


def build(con: Any, *, timings: dict[str, float] | None = None) -> None:
    """Create the ``events`` view (and its ``fc_*`` tables) in ``con``.

    ``timings``, when given, receives the seconds spent per stage.
    """
    state: dict[str, Any] = {}
    sub: dict[str, float] = {}

    def _positions(c: Any) -> None:
        state["ev"] = positions.build(c, fds.record_sql)

    def _fds(c: Any) -> None:
        fds.build(c, state["ev"], sub)

    def _view(c: Any) -> None:
        ts = state["ev"].ts
        _build_view(c, int(ts.min()) if len(ts) else 0)

    stages = (
        ("processes", processes.build),
        ("users", users.build),
        ("containers", containers.build),
        ("positions", _positions),
        ("fds", _fds),
        ("view", _view),
    )
    for name, fn in stages:
        t0 = time.perf_counter()
        fn(con)
        if timings is not None:
            timings[name] = time.perf_counter() - t0
    if timings is not None:
        timings.update(sub)
    state.clear()


def _hostname(con: Any) -> str | None:
    try:
        rows = con.execute("SELECT hostname FROM raw_meta LIMIT 1").fetchall()
        row = rows[0] if rows else None
    except Exception:  # raw_meta absent or without hostname: tests with bare tables
        row = None
    return row[0] if row else None


def _build_view(con: Any, first_ts: int) -> None:
    cols = columns(first_ts, _hostname(con))
    raw = ", ".join(f'e."{c}"' for c in _RAW)
    raw_x = ", ".join(f'x."{c}"' for c in _RAW)
    sel = ",\n  ".join(f"{sql} AS {name}" for name, sql in cols.items())
    con.execute(
        f"""
        CREATE OR REPLACE VIEW events AS
        SELECT e.evt_num, e.evt_type, {raw}, e.raw_container_id, e.cfull,
          {sel}
        FROM (SELECT k.evt_num, k.evt_deltatime, ck.cfull, k.ckey, k.cid, f.rid,
                     CAST(x.syscall AS VARCHAR) AS evt_type,
                     x.container_id AS raw_container_id, {raw_x}
              FROM fc_raw x POSITIONAL JOIN fc_pos k POSITIONAL JOIN fc_rid f
              LEFT JOIN fc_ckey ck ON ck.ckey = k.ckey) e
        LEFT JOIN fc_chain c ON c.cid = e.cid
        LEFT JOIN fc_fdrec r ON r.rid = e.rid
        LEFT JOIN fc_users u ON u.uid = coalesce(e.euid, e.uid) AND u.ckey = e.ckey
        LEFT JOIN fc_users lu ON lu.uid = e.loginuid AND lu.ckey = e.ckey
        LEFT JOIN fc_groups g ON g.gid = coalesce(e.egid, e.gid) AND g.ckey = e.ckey
        LEFT JOIN fc_cont k ON k.ckey = e.ckey
        LEFT JOIN fc_cgroups cg ON cg.id = e.cgroup_id
        """
    )


def view_columns() -> list[str]:
    """Names of the ``events`` view's columns (raw and Falco field columns)."""
    return ["evt_num", "evt_type", *_RAW, "raw_container_id", "cfull", *columns(0, None)]
