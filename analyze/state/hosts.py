"""Several hosts in one session: pids made unique per host for the state stages.

A pid only names a process within one host. When the capture holds the
events of several hosts (the ``host`` column of ``raw_events``: the ``host=``
folder, else the recorded hostname), the state stages
(:mod:`~fcap.analyze.state.processes`, :mod:`~fcap.analyze.state.positions`,
:mod:`~fcap.analyze.state.fds` ...) read the raw relations through
:func:`rel`, in which every pid-valued column used as a key -- ``pid``,
``tid``, ``ppid``, ``vpid``, ``vtid``, ``sid``, ``pgid`` and the child pid of
a fork/clone caller's row (its ``res``) -- is ``pid + hk * PID_SPAN``, ``hk``
the host's index (its first file's order). ``PID_SPAN`` is Linux's
``PID_MAX_LIMIT`` (2^22), so the values of different hosts never meet and stay
in INTEGER range for fewer than :data:`MAX_HOSTS` hosts. The state tables
then hold these host pids as keys; what users see (``raw_events``, the events
view's ``proc.pid``, ``proc.apid`` ... lists) stays in real pids
(:func:`real_sql`). Host-side users, groups and cgroups are the host's own:
their container key (``ckey``) is ``-hk`` for a host process (0 for the first
host, as for a single host), and cgroup ids are looked up with the host index.

A single-host capture (or one with :data:`MAX_HOSTS` hosts or more, where the
remap would overflow) gets no remap at all: :func:`index` is None, and every
caller then keeps its single-host SQL.
"""

from __future__ import annotations

from typing import Any

#: Linux's PID_MAX_LIMIT: every pid (and tid, sid, pgid) of a host is below it.
PID_SPAN = 4194304
#: Hosts whose pids fit INTEGER once remapped (511 * 2^22 + 2^22 - 1 < 2^31).
MAX_HOSTS = 512
#: Every pid-valued raw column remapped by :func:`rel` (when present).
PID_COLUMNS = ("pid", "tid", "ppid", "vpid", "vtid", "sid", "pgid")
_FORKS = "('clone', 'clone3', 'fork', 'vfork')"


def _sql_str(s: str) -> str:
    return "'" + s.replace("'", "''") + "'"


def build(con: Any) -> None:
    """``fc_hosts(host, hk)`` when the capture holds 2 to :data:`MAX_HOSTS` - 1 hosts
    (``host`` = coalesce(host, ''), hosts in the order of their first file); else none."""
    con.execute("DROP TABLE IF EXISTS fc_hosts")
    if not _exists(con, "raw_meta"):  # bare tables (tests): one host
        return
    rows = con.execute(
        "SELECT coalesce(host, '') AS h FROM raw_meta GROUP BY h ORDER BY min(rowid)"
    ).fetchall()
    if not 1 < len(rows) < MAX_HOSTS:
        return
    values = ", ".join(f"({_sql_str(h)}, {i})" for i, (h,) in enumerate(rows))
    con.execute(f"CREATE TEMP TABLE fc_hosts AS SELECT * FROM (VALUES {values}) t(host, hk)")


def names(con: Any) -> list[str] | None:
    """The hosts in index order when the state is per host (:func:`build`), else None."""
    if not _exists(con, "fc_hosts"):
        return None
    return [r[0] for r in con.execute("SELECT host FROM fc_hosts ORDER BY hk").fetchall()]


def _exists(con: Any, name: str) -> bool:
    return bool(con.execute("SELECT 1 FROM duckdb_tables() WHERE table_name = ?",
                            [name]).fetchall())


def index(con: Any, col: str = "host") -> str | None:
    """SQL of the host index of column ``col`` (a host name), or None for one host."""
    hs = names(con)
    if hs is None:
        return None
    whens = " ".join(f"WHEN {_sql_str(h)} THEN {i}" for i, h in enumerate(hs))
    return f"CAST(CASE coalesce(CAST({col} AS VARCHAR), '') {whens} END AS INTEGER)"


def rel(con: Any, name: str, cols: tuple[str, ...] = PID_COLUMNS, res: bool = True) -> str:
    """Relation ``name`` (with a ``host`` column) with the pid columns ``cols`` it has
    made unique per host (``pid + hk * PID_SPAN``), and with ``res``: a fork/clone
    caller's ``res`` (the child's pid) too; ``name`` itself for one host.

    Adds ``fc_hk``, the host index."""
    hk = index(con)
    if hk is None:
        return name
    have = {r[0] for r in con.execute(f"DESCRIBE SELECT * FROM {name}").fetchall()}
    reps = [f"{c} + fc_hk * {PID_SPAN} AS {c}" for c in cols if c in have]
    if res and "res" in have:
        reps.append(f"CASE WHEN syscall IN {_FORKS} AND res > 0 THEN res + fc_hk * {PID_SPAN} "
                    "ELSE res END AS res")
    return f"(SELECT * REPLACE ({', '.join(reps)}) FROM (SELECT *, {hk} AS fc_hk FROM {name}))"


def real_sql(con: Any, col: str) -> str:
    """SQL of the real pid of a host pid column ``col`` (``col`` for one host)."""
    return col if names(con) is None else f"({col} % {PID_SPAN})"
