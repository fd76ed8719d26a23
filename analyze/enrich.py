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

import re
import time
from collections.abc import Iterable
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


#: The events view's joins, by the alias its column expressions use.
_JOINS = {
    "c": "LEFT JOIN fc_chain c ON c.cid = e.cid",
    "r": "LEFT JOIN fc_fdrec r ON r.rid = e.rid",
    "u": "LEFT JOIN fc_users u ON u.uid = coalesce(e.euid, e.uid) AND u.ckey = e.ckey",
    "lu": "LEFT JOIN fc_users lu ON lu.uid = e.loginuid AND lu.ckey = e.ckey",
    "g": "LEFT JOIN fc_groups g ON g.gid = coalesce(e.egid, e.gid) AND g.ckey = e.ckey",
    "k": "LEFT JOIN fc_cont k ON k.ckey = e.ckey",
    "cg": "LEFT JOIN fc_cgroups cg ON cg.id = e.cgroup_id",
}


def _build_view(con: Any, first_ts: int) -> None:
    con.execute(f"CREATE OR REPLACE TEMP TABLE fc_viewmeta AS SELECT {int(first_ts)}::BIGINT AS first_ts")
    build_view(con)


def build_view(con: Any, name: str = "events", fields: Iterable[str] | None = None) -> None:
    """(Re)create an events view over the state tables :func:`build` made.

    ``fields=None`` gives the full ``events`` view. Otherwise only those Falco
    field columns (names as in :func:`view_columns`) are defined, next to
    ``evt_num``, ``evt_type``, the raw columns and ``cfull``, and the view
    only has the joins they read: DuckDB does not prune unused LEFT JOINs, so
    a query of a few columns over the full view still builds every join's hash
    table (the descriptor records' is the large one).
    """
    rows = con.execute("SELECT first_ts FROM fc_viewmeta").fetchall()
    cols = columns(int(rows[0][0]) if rows else 0, _hostname(con))
    if fields is not None:
        wanted = list(dict.fromkeys(fields))
        unknown = [f for f in wanted if f not in cols]
        if unknown:
            raise ValueError(f"not an events field column: {', '.join(unknown)}")
        cols = {f: cols[f] for f in wanted}
    used = {a for sql in cols.values() for a in re.findall(r"\b(c|r|u|lu|g|k|cg)\.", sql)}
    joins = "\n        ".join(j for a, j in _JOINS.items() if a in used)
    raw = ", ".join(f'e."{c}"' for c in _RAW)
    raw_x = ", ".join(f'x."{c}"' for c in _RAW)
    sel = "".join(f",\n  {sql} AS {col}" for col, sql in cols.items())
    con.execute(
        f"""
        CREATE OR REPLACE VIEW {name} AS
        SELECT e.evt_num, e.evt_type, {raw}, e.raw_container_id, e.cfull{sel}
        FROM (SELECT k.evt_num, k.evt_deltatime, ck.cfull, k.ckey, k.cid, f.rid,
                     CAST(x.syscall AS VARCHAR) AS evt_type,
                     x.container_id AS raw_container_id, {raw_x}
              FROM fc_raw x POSITIONAL JOIN fc_pos k POSITIONAL JOIN fc_rid f
              LEFT JOIN fc_ckey ck ON ck.ckey = k.ckey) e
        {joins}
        """
    )


def view_columns() -> list[str]:
    """Names of the ``events`` view's columns (raw and Falco field columns)."""
    return ["evt_num", "evt_type", *_RAW, "raw_container_id", "cfull", *columns(0, None)]
