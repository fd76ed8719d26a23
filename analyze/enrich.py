"""The enriched events relation: raw capture rows + Falco fields, built in bulk and lazily.

:func:`prepare` takes a DuckDB connection holding the ``raw_*`` relations of a
capture (:meth:`fcap.capture.reader.Capture.attach`) and creates the small
state tables of :mod:`fcap.analyze.state`: process instances, images and
ancestor chains (``fc_chain``), users, groups, containers and their integer
keys. Their size follows the capture's processes and containers, not its
events.

:func:`build_view` then creates a view with the Falco field columns a query
needs (see docs/fields.md and :mod:`fcap.analyze.fields.columns`), and only
the joins and per-row stages those columns read:

* per-row keys, computed in the view (:mod:`~fcap.analyze.state.positions`):
  ``evt_num`` from the row's scan position (``raw_events_rn``) corrected for
  the few late rows, the process-chain row by a hash join on ``pid`` and the
  chain interval, the container key by hash joins; nothing is stored per
  event, and filters on raw columns reach the scan before the joins. The
  numpy table ``fc_pos`` replaces them for ``evt_deltatime`` and for captures
  without a usable scan position;
* ``fc_rid`` / ``fc_fdrec`` (:mod:`~fcap.analyze.state.fds`): the descriptor
  record valid at each event -- only for ``fd.*`` columns.

The per-row stages are built the first time a view needs them and kept for
the connection. :func:`build` prepares everything and creates the full
``events`` view (every column; the raw ``container_id`` is renamed
``raw_container_id``).

No per-event Python: every step is a DuckDB statement or a numpy operation
over whole columns.
"""

from __future__ import annotations

import functools
import re
import time
from collections.abc import Iterable
from typing import Any

from fcap.analyze.fields.columns import columns
from fcap.analyze.state import containers, fdattr, fds, hosts, positions, processes, users
from fcap.analyze.state.stages import ensure as _ensure
from fcap.analyze.state.stages import exists as _exists

from fcap.schema import EVENTS

#: Raw columns passed through under their own name (container_id is renamed).
_RAW = [*(f.name for f in EVENTS if f.name not in ("container_id", "syscall")), "host"]


def prepare(con: Any, *, timings: dict[str, float] | None = None) -> None:
    """Create the small state tables the events views join (once per connection)."""
    if prepared(con):
        return

    def _meta(c: Any) -> None:
        first = c.execute("SELECT min(ts) FROM raw_events").fetchone()[0] or 0
        breaks = positions.evt_num_breaks(c) if _exists(c, "raw_events_rn") else None
        num = "NULL" if breaks is None else "'" + positions.evt_num_sql(breaks, "x._rn") + "'"
        c.execute(f"CREATE OR REPLACE TEMP TABLE fc_viewmeta AS SELECT {int(first)}::BIGINT "
                  f"AS first_ts, {num}::VARCHAR AS evt_num_sql")
        hk = hosts.index(c)
        if hk is not None:  # several hosts: evt.reltime counts from the host's first event
            c.execute(f"CREATE OR REPLACE TEMP TABLE fc_hostfirst AS SELECT {hk} AS hk, "
                      "min(ts) AS first_ts FROM raw_events GROUP BY ALL ORDER BY hk")

    _stages(con, timings, (
        ("hosts", hosts.build),
        ("processes", processes.build),
        ("users", users.build),
        ("containers", containers.build),
        ("container_keys", containers.keys),
        ("meta", _meta),
    ))


def build(con: Any, *, timings: dict[str, float] | None = None) -> None:
    """Prepare, build every per-row stage and create the full ``events`` view.

    ``timings``, when given, receives the seconds spent per stage.
    """
    prepare(con, timings=timings)
    _stages(con, timings, (
        ("fds", lambda c: _ensure(c, {"fd"}, timings)),
        ("view", lambda c: build_view(c)),
    ))


def scan_position(con: Any) -> bool:
    """True when the prepared capture's rows have a scan position (``raw_events_rn``)
    from which ``evt_num`` is computed (see :func:`build_view`'s ``rows``)."""
    return con.execute("SELECT evt_num_sql IS NOT NULL FROM fc_viewmeta").fetchall()[0][0]


def prepared(con: Any) -> bool:
    """True when :func:`prepare` ran on ``con``."""
    return _exists(con, "fc_viewmeta")


@functools.cache
def _field_names() -> tuple[str, ...]:
    """The field column names, in view order (the same whatever the capture)."""
    return tuple(columns(0, None))


def field_columns() -> set[str]:
    """Names of the Falco field columns :func:`build_view` accepts."""
    return set(_field_names())


def _stages(con: Any, timings: dict[str, float] | None, stages: Iterable[tuple]) -> None:
    for name, fn in stages:
        t0 = time.perf_counter()
        fn(con)
        if timings is not None:
            timings[name] = time.perf_counter() - t0


def _first_ts(con: Any, first_ts: int) -> int | str:
    """The capture's first time (``evt.reltime``'s origin); several hosts: SQL of the
    first time of the row's host (``e.host``)."""
    hk = hosts.index(con, "e.host")
    if hk is None:
        return int(first_ts)
    whens = " ".join(f"WHEN {int(h)} THEN {int(t)}" for h, t in con.execute(
        "SELECT hk, first_ts FROM fc_hostfirst").fetchall())
    return f"(CASE {hk} {whens} END)"


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
    "w": "LEFT JOIN fc_pcwd w ON w.wid = e.wid",
    "r": "LEFT JOIN fc_fdrec r ON r.rid = e.rid",
    "u": "LEFT JOIN fc_users u ON u.uid = coalesce(e.euid, e.uid) AND u.ckey = e.ckey",
    "lu": "LEFT JOIN fc_users lu ON lu.uid = e.loginuid AND lu.ckey = e.ckey",
    "g": "LEFT JOIN fc_groups g ON g.gid = coalesce(e.egid, e.gid) AND g.ckey = e.ckey",
    "k": "LEFT JOIN fc_cont k ON k.ckey = e.ckey",
    "cg": "LEFT JOIN fc_cgroups cg ON cg.id = e.cgroup_id",
}
_ALIAS = re.compile(r"\b(c|w|r|u|lu|g|k|cg)\.")
_FDREC = re.compile(r"\br\.([A-Za-z_][A-Za-z0-9_]*)")
#: Views over fc_pos (see _ensure) with fd.* columns or at least this many field columns
#: join it by hash join on the scan position, smaller ones read it by position.
_HASH_MIN_FIELDS = 3


def build_view(con: Any, name: str = "events", fields: Iterable[str] | None = None, *,
               rows: str | None = None, with_rn: bool = False) -> None:
    """(Re)create an events view; build what it needs first (:func:`prepare`, stages).

    ``fields=None`` gives the full ``events`` view. Otherwise only those Falco
    field columns (names as in :func:`view_columns`) are defined, next to
    ``evt_num``, ``evt_type`` and the raw columns (plus ``cfull`` when a
    container column is asked for), and the view only has the joins and per-row
    stages they read: DuckDB does not prune unused joins, so a query of a few
    columns over the full view would pay for every join.

    For captures with a scan position (:func:`scan_position`) only: ``with_rn``
    adds the row's scan position ``_rn``; ``rows`` names a table whose ``rn``
    column restricts the view to those rows, before any join (the replay reads
    its output columns for the matching rows only).
    """
    prepare(con)
    first_ts, num_sql = con.execute("SELECT first_ts, evt_num_sql FROM fc_viewmeta").fetchone()
    rn = num_sql is not None
    if (rows or with_rn) and not rn:
        raise ValueError("rows= and with_rn= need a capture with a scan position")
    cols = columns(_first_ts(con, first_ts), _hostname(con))
    full = fields is None
    if not full:
        wanted = list(dict.fromkeys(f for f in fields if f != "cfull"))
        unknown = [f for f in wanted if f not in cols]
        if unknown:
            raise ValueError(f"not an events field column: {', '.join(unknown)}")
        cols = {f: cols[f] for f in wanted}
    text = " ".join(cols.values())
    used = set(_ALIAS.findall(text))
    fd = "r" in used or "e.rid" in text
    ckey = full or "cfull" in (fields or ()) or bool(used & {"u", "lu", "g", "k"}) \
        or "e.cfull" in text
    delta = "e.evt_deltatime" in text
    # per-row keys: evt_num from the scan position, the chain row, the container key and
    # the descriptor record by hash joins, all in the view (filters on raw columns reach
    # the scan first); a table of keys per row (fc_pos, numpy) for evt_deltatime, or
    # when the capture has no usable scan position
    pos = delta or not rn
    _ensure(con, {s for s, on in (("fd", fd), ("pos", pos)) if on})
    if pos:
        positions.raw_relation(con)
    inner = ["k.evt_num" if pos else f"{num_sql} AS evt_num"]
    src = "raw_events_rn"
    if rows:
        src = f"(SELECT * FROM raw_events_rn WHERE _rn IN (SELECT rn FROM {rows}))"
    # several hosts: the state is keyed by host pids (fc_hpid) and host index (fc_hk)
    hk = hosts.index(con)
    host = (lambda rel: rel) if hk is None else (
        lambda rel: f"(SELECT *, pid + fc_hk * {hosts.PID_SPAN} AS fc_hpid "
                    f"FROM (SELECT *, {hk} AS fc_hk FROM {rel}))")
    hpid = "x.pid" if hk is None else "x.fc_hpid"
    src = host(src)
    if fd and not pos:
        src = f"(SELECT *, {fds.own_sql} AS fc_own FROM {fds.with_code(src)})"
    if pos and rn and (fd or len(cols) >= _HASH_MIN_FIELDS or rows or with_rn):
        # a hash join on the scan position keeps the scan and every join and expression
        # after it parallel, for ~0.1 us of CPU per event; reading fc_pos by position
        # costs nearly nothing but runs everything after it on one thread, which only
        # pays for views of a few cheap columns (see docs/architecture.md)
        from_ = [f"{src} x", "JOIN fc_pos k ON k.rn = x._rn"]
    elif pos:
        from_ = [f"{host('fc_raw')} x", "POSITIONAL JOIN fc_pos k"]
    else:
        from_ = [f"{src} x"]
    if pos:
        inner += ["k.cid", "k.ckey"]
    if delta:
        inner.append("k.evt_deltatime")
    if fd and pos:
        inner.append("k.rid")
    elif fd:
        # rows whose record is their own (opens, sockets ...) need no lookup
        inner.append("CASE WHEN f.rn IS NOT NULL THEN f.rid WHEN x.fc_own THEN x._rn END AS rid")
        from_.append("LEFT JOIN (SELECT rn, rid FROM fc_rid WHERE NOT own) f ON f.rn = x._rn")
    if ckey and pos:
        inner.append("ck.cfull")
        from_.append("LEFT JOIN fc_ckey ck ON ck.ckey = k.ckey")
    elif ckey:
        inner += [f"coalesce(ck.ckey, cg0.ckey, {'0' if hk is None else '-x.fc_hk'}) AS ckey",
                  "coalesce(CAST(x.container_id AS VARCHAR), cg0.cfull) AS cfull"]
        from_ += ["LEFT JOIN fc_ckey ck ON ck.cfull = CAST(x.container_id AS VARCHAR)",
                  "LEFT JOIN fc_cgck cg0 ON cg0.id = x.cgroup_id"
                  + ("" if hk is None else " AND cg0.hk = x.fc_hk")]
    if with_rn:
        inner.append("x._rn")
    if "c" in used and not pos:
        cid_sql, chain_from = positions.chain_join(con, hpid)
        inner.append(f"{cid_sql} AS cid")
        from_ += chain_from
    joins = [j for a, j in _JOINS.items() if a in used]
    if "cg" in used and hk is not None:  # cgroup ids are per host
        inner.append("x.fc_hk")
        joins = [j + " AND cg.hk = e.fc_hk" if j == _JOINS["cg"] else j for j in joins]
    if "w" in used:
        wid_sql, cwd_from = positions.interval_join(con, "fc_pcwd", "wid", "wh", hpid)
        inner.append(f"{wid_sql} AS wid")
        from_ += cwd_from
    raw = ", ".join(f'e."{c}"' for c in _RAW)
    raw_x = ", ".join(f'x."{c}"' for c in _RAW)
    sel = "".join(f",\n  {sql} AS {col}" for col, sql in cols.items())
    cfull = (", e.cfull" if ckey else "") + (", e._rn" if with_rn else "")
    con.execute(
        f"""
        CREATE OR REPLACE VIEW {name} AS
        SELECT e.evt_num, e.evt_type, {raw}, e.raw_container_id{cfull}{sel}
        FROM (SELECT {', '.join(inner)}, CAST(x.syscall AS VARCHAR) AS evt_type,
                     x.container_id AS raw_container_id, {raw_x}
              FROM {' '.join(from_)}) e
        {chr(10).join(joins)}
        """
    )


def row_relation(con: Any, fields: Iterable[str]) -> str:
    """SQL of ``raw_events_rn`` plus ``evt_num``, ``evt_type``, ``fc_fdk`` and the field
    columns ``fields``, computed from each raw row alone (no join).

    ``fields`` may not need a join (:func:`fcap.analyze.fields.columns.needs`).
    ``fd`` columns are computed from the row for the rows whose descriptor
    record is their own (:func:`fdattr.own_relation`; NULL for the others), and
    ``fc_fdk`` marks the rows where they equal the events view's (those rows
    and the ones without a descriptor). Needs a capture with a scan position.
    """
    from fcap.analyze.fields.columns import needs

    first_ts, num_sql = con.execute("SELECT first_ts, evt_num_sql FROM fc_viewmeta").fetchall()[0]
    if num_sql is None:
        raise ValueError("row_relation() needs a capture with a scan position")
    cols = columns(_first_ts(con, first_ts), _hostname(con))
    used = sorted(dict.fromkeys(fields))
    joined = [c for c in used if "join" in needs()[c]]
    if joined:
        raise ValueError(f"not computed from the raw row alone: {', '.join(joined)}")
    attrs = sorted({a for c in used for a in _FDREC.findall(cols[c])})
    src = fdattr.own_relation(fds.with_code("raw_events_rn"), attrs, fds.own_sql, fds.rfd_sql)
    own = r"e.fc_r_\1"  # the record's attribute, from the row (own_relation)
    sel = "".join(f", {_FDREC.sub(own, cols[c])} AS {c}" for c in used)
    return (f"(SELECT e.*{sel} FROM (SELECT x.*, {num_sql} AS evt_num, "
            f"CAST(x.syscall AS VARCHAR) AS evt_type FROM {src} x) e)")


def candidates(con: Any, table: str, where: str, *, limit: int | None = None) -> int:
    """Create ``table``: the scan positions ``rn`` of the rows where ``where`` holds.

    ``where`` is SQL over alias ``e`` of :func:`row_relation` (raw columns,
    ``evt_num``, ``evt_type``, ``fc_fdk`` and the field columns it names that
    need no join), so it is evaluated while scanning, with no join. ``limit``:
    keep at most that many rows. Returns the number of rows kept.
    """
    cols = field_columns()
    used = [w for w in re.findall(r"\be\.([A-Za-z_][A-Za-z0-9_]*)", where) if w in cols]
    lim = f" LIMIT {int(limit)}" if limit is not None else ""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS SELECT e._rn AS rn "
                f"FROM {row_relation(con, used)} e WHERE {where}{lim}")
    return int(con.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])


def view_columns() -> list[str]:
    """Names of the ``events`` view's columns (raw and Falco field columns)."""
    return ["evt_num", "evt_type", *_RAW, "raw_container_id", "cfull", *_field_names()]


_STAR = re.compile(r"\*")
_COUNT_STAR = re.compile(r"count\s*\(\s*\*\s*\)", re.IGNORECASE)
_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def query_fields(sql: str) -> list[str] | None:
    """The events field columns ``sql`` may read: every word naming one; None for all.

    A ``*`` other than ``count(*)`` may select every column, so it gives None.
    Words are not parsed: a field name in a string literal or naming another
    relation's column adds that column too (harmless, only slower).
    """
    if _STAR.search(_COUNT_STAR.sub("", sql)):
        return None
    names = {*_field_names(), "cfull"}
    return sorted({w.lower() for w in _WORD.findall(sql)} & names)
