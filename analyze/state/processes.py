"""Process state rebuilt relationally: instances, images, segments and ancestor chains.

Input: ``raw_events`` and ``raw_processes`` (the start snapshot). Output tables:

* ``fc_pinst`` — process instances (``pkey``): one per snapshot process, per
  fork/clone child that is a new thread group, and per pid first seen without
  either (its origin predates what the capture holds);
* ``fc_img`` — process images: one per snapshot process and per successful
  execve/execveat (name, exe = argv[0], exepath, argv, env ...);
* ``fc_seg`` — per instance, the moments its state changes: start, exec,
  chdir, and a new real parent seen in the ``ppid`` column (reparenting); a
  forked child starts with its parent's image and cwd at the fork;
* ``fc_chain`` — per pid, time intervals ``[s, e)`` with the full ancestor
  chain (self first) as LIST columns. A chain interval ends when the process
  or any of its ancestors changes image or parent, so ``proc.aname[n]`` is the
  ancestor's state at the event's time. A pid has few intervals: events find
  theirs with a hash join on ``pid`` and the time range;
* ``fc_pcwd`` — per pid, the cwd in time intervals ``[s, e)`` (``proc.cwd``).

Helper tables kept for the other state builders and for debugging:
``fc_pidppid`` (every (pid, ppid) pair and when first seen), ``fc_segf``
(``fc_seg`` with the state in force at each row), ``fc_lin`` (lineage
intervals: image and parent per instance) and ``fc_cwd`` (cwd intervals).

How: ``raw_events`` is read twice, once for ``fc_pidppid`` and once for the
~1% of rows that change process state (``fc_plife``: fork/clone, exec,
chdir). Everything after works on ~100k-row tables with one DuckDB thread:
the segments, their forward fill and the lineage intervals are numpy
(:mod:`~fcap.analyze.state.proc_segments`), the ancestor paths a recursive
CTE over lineage ids, and ``fc_chain``'s LIST columns are gathered with
pyarrow ``take``.

Reparenting: the kernel reparents orphans when their parent exits; the new
parent shows in the child's recorded ``ppid`` from its next event on, and that
is when fcap switches the chain (between the parent's exit and that event, the
dead parent stays in the chain). Subreapers are handled by the same rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fcap.analyze.state import hosts, proc_segments

#: "Since before the capture": start time of snapshot instances and records.
TS_MIN = -(2**62)
TS_MAX = 2**62

_FORKS = "('clone', 'clone3', 'fork', 'vfork')"
_EXECS = "('execve', 'execveat')"
#: Every syscall whose rows change process state (read once into ``fc_plife``).
_LIFE = "('clone', 'clone3', 'fork', 'vfork', 'execve', 'execveat', 'chdir', 'fchdir')"
_THREAD = (
    "((syscall = 'clone' AND (a0 & 65536) <> 0) OR "
    "(syscall = 'clone3' AND (coalesce(flags_aux, 0) & 65536) <> 0))"
)
_MAX_DEPTH = 64


def read_events(con: Any) -> None:
    """The two passes over ``raw_events``: ``fc_pidppid`` and ``fc_plife``.

    ``fc_pidppid(pid, ppid, first_ts, comm)``: every (pid, ppid) pair seen and
    when first; ``fc_plife``: the rows of the syscalls that change process
    state (fork/clone, exec, chdir), the only raw rows the later steps read.
    Several hosts: pids unique per host (:func:`fcap.analyze.state.hosts.rel`).
    """
    raw = hosts.rel(con, "raw_events")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_pidppid AS
        SELECT pid, ppid, min(ts) AS first_ts, arg_min(CAST(comm AS VARCHAR), ts) AS comm
        FROM {raw} GROUP BY pid, ppid;

        CREATE OR REPLACE TEMP TABLE fc_plife AS
        SELECT CAST(syscall AS VARCHAR) AS syscall, pid, tid, vpid, ppid, ts, res, a0, flags_aux,
               CAST(comm AS VARCHAR) AS comm, CAST(exe AS VARCHAR) AS exe, argv,
               CAST(cwd AS VARCHAR) AS cwd, CAST(path AS VARCHAR) AS path,
               exe_ino, exe_ino_ctime, exe_ino_mtime
        FROM {raw} WHERE syscall IN {_LIFE};
        """
    )


def build_instances(con: Any) -> None:
    """``fc_pinst(pkey, pid, ts, start_ts, kind, ppid, comm)`` from ``fc_plife``/``fc_pidppid``."""
    snap = hosts.rel(con, "raw_processes")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_pinst AS
        WITH known AS (
          -- snapshot processes and the child side of fork/clone (new thread groups)
          SELECT pid, {TS_MIN}::BIGINT AS ts, start_ts, 'snap' AS kind, ppid, comm
          FROM {snap}
          UNION ALL
          SELECT pid, ts, ts, 'fork', ppid, comm
          FROM fc_plife WHERE syscall IN {_FORKS} AND res = 0 AND pid = tid
        ), parent_side AS (
          -- a parent's fork/clone whose child row is missing (within 5 s)
          SELECT CAST(p.res AS INTEGER) AS pid, p.ts, p.ts AS start_ts, 'fork' AS kind,
                 p.pid AS ppid, p.comm
          FROM fc_plife p
          WHERE p.syscall IN {_FORKS} AND p.res > 0 AND p.pid = p.vpid AND NOT {_THREAD}
            AND NOT EXISTS (SELECT 1 FROM known c WHERE c.pid = CAST(p.res AS INTEGER)
                            AND c.kind = 'fork' AND abs(c.ts - p.ts) < 5000000000)
        ), started AS (
          SELECT * FROM known UNION ALL SELECT * FROM parent_side
        ), unknown AS (
          -- pids first seen without a start: their origin predates the capture
          SELECT f.pid, f.first_ts AS ts, CAST(NULL AS BIGINT) AS start_ts, 'unk' AS kind,
                 f.ppid, f.comm
          FROM (SELECT pid, arg_min(ppid, first_ts) AS ppid, min(first_ts) AS first_ts,
                       arg_min(comm, first_ts) AS comm
                FROM fc_pidppid GROUP BY pid) f
          WHERE NOT EXISTS (SELECT 1 FROM started s WHERE s.pid = f.pid AND s.ts <= f.first_ts)
        )
        SELECT row_number() OVER (ORDER BY ts, pid) AS pkey, *
        FROM (SELECT DISTINCT ON (pid, ts) *
              FROM (SELECT * FROM started UNION ALL SELECT * FROM unknown)
              ORDER BY pid, ts, kind DESC)
        """
    )


def build_images(con: Any) -> None:
    """``fc_img``: snapshot images and exec images.

    Exec images carry the executable's inode number, ctime and mtime from the
    exec row (schema 3) and ``exe_ino_ctime_dur``: the start (clone) time of
    the process that exec'd minus that ctime, as libsinsp computes
    ``m_exe_ino_ctime_duration_clone_ts`` at the exec exit (0 -> null).
    """
    snap = hosts.rel(con, "raw_processes")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_img AS
        SELECT row_number() OVER (ORDER BY ts, pid) AS img, * FROM (
          SELECT pid, {TS_MIN + 1}::BIGINT AS ts, comm AS name,
                 coalesce(exe, argv[1]) AS exe, exepath, argv, env, exe_ino, exe_writable,
                 exe_upper_layer, exe_from_memfd, cwd, CAST(NULL AS BIGINT) AS exe_ino_ctime,
                 CAST(NULL AS BIGINT) AS exe_ino_mtime, CAST(NULL AS BIGINT) AS exe_ino_ctime_dur
          FROM {snap}
          UNION ALL
          SELECT x.pid, x.ts, x.comm, coalesce(x.argv[1], x.exe), x.exe, x.argv,
                 CAST(NULL AS VARCHAR[]), x.exe_ino, CAST(NULL AS BOOLEAN),
                 CAST(NULL AS BOOLEAN),
                 CASE WHEN x.exe LIKE '/memfd:%' THEN true END, x.cwd,
                 x.exe_ino_ctime, x.exe_ino_mtime,
                 nullif(i.start_ts - x.exe_ino_ctime, 0)
          FROM (SELECT * FROM fc_plife WHERE syscall IN {_EXECS} AND res = 0) x
          ASOF LEFT JOIN fc_pinst i ON i.pid = x.pid AND x.ts >= i.ts
        )
        """
    )


def build_segments(con: Any) -> None:
    """``fc_seg``/``fc_segf``/``fc_lin``/``fc_cwd``: state changes per instance, image and
    cwd resolved through forks (:func:`fcap.analyze.state.proc_segments.build`)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_seg0 AS
        SELECT pid, ts, 0 AS ord, 'start' AS kind, ppid, comm,
               CAST(NULL AS BIGINT) AS img, CAST(NULL AS VARCHAR) AS cwd
        FROM fc_pinst
        UNION ALL
        SELECT pid, ts, 1, 'exec', NULL, name, img, cwd FROM fc_img
        UNION ALL
        SELECT pid, ts, 2, 'cwd', NULL, NULL, NULL, coalesce(cwd, path)
        FROM fc_plife WHERE syscall IN ('chdir', 'fchdir') AND res = 0
              AND coalesce(cwd, path) IS NOT NULL
        UNION ALL
        SELECT pid, first_ts, 3, 'ppid', ppid, NULL, NULL, NULL FROM fc_pidppid
        WHERE ppid IS NOT NULL
        """
    )
    proc_segments.build(con, _MAX_DEPTH, TS_MAX)
    con.execute("DROP TABLE fc_seg0")


def build_chains(con: Any) -> None:
    """``fc_chain`` (with ancestor lists) and ``fc_pcwd`` from ``fc_lin`` and ``fc_cwd``.

    Lineage intervals change on exec and on a new parent only; an ancestor's
    chdir does not split its descendants' intervals (only ``proc.cwd`` of the
    process itself depends on it), which keeps ``fc_chain`` small.
    """
    # the ancestor paths: lids, self first (narrow rows: the lists are gathered below)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_chain0 AS
        WITH RECURSIVE ch AS (
          SELECT lid, pkey, pid, s, e, 0 AS depth, [lid] AS path
          FROM fc_lin WHERE ppkey IS NULL
          UNION ALL
          SELECT c.lid, c.pkey, c.pid, greatest(c.s, p.s), least(c.e, p.e), p.depth + 1,
                 list_prepend(c.lid, p.path)
          FROM fc_lin c JOIN ch p ON c.ppkey = p.pkey AND c.s < p.e AND p.s < c.e
          WHERE p.depth < {_MAX_DEPTH}
        )
        SELECT * FROM ch
        """
    )
    _build_chain_table(con)
    con.execute("DROP TABLE fc_chain0")


#: fc_chain's columns and types, in order.
_CHAIN_COLS = (
    ("cid", "BIGINT"), ("pid", "INTEGER"), ("s", "BIGINT"), ("e", "BIGINT"), ("pkey", "BIGINT"),
    ("names", "VARCHAR[]"), ("exes", "VARCHAR[]"), ("exepaths", "VARCHAR[]"),
    ("cmdlines", "VARCHAR[]"), ("pids", "INTEGER[]"), ("argss", "VARCHAR[]"),
    ("envs", "VARCHAR[][]"), ("starts", "BIGINT[]"), ("argv", "VARCHAR[]"),
    ("env", "VARCHAR[]"), ("exe_ino", "UBIGINT"), ("exe_writable", "BOOLEAN"),
    ("exe_upper_layer", "BOOLEAN"), ("exe_from_memfd", "BOOLEAN"), ("start_ts", "BIGINT"),
    ("exe_ino_ctime", "BIGINT"), ("exe_ino_mtime", "BIGINT"), ("exe_ino_ctime_dur", "BIGINT"),
)
#: ``e`` of a pid's last chain interval (open-ended).
E_MAX = 2**63 - 1


def _build_chain_table(con: Any) -> None:
    """``fc_chain`` (lineage intervals, ordered by ``(pid, s)``) and ``fc_pcwd`` (cwd).

    ``fc_chain``'s intervals only change on exec and a new parent (of the
    process or an ancestor), so a pid has few of them and events find theirs
    with a hash join on ``pid`` and ``s <= ts < e`` (``e``: the next interval's
    start of the same pid, so the result equals an ASOF join on ``(pid, ts)``).
    ``fc_pcwd(wid, pid, s, e, cwd)``: the cwd per pid in ``[s, e)`` (exec, chdir,
    fork inheritance), joined the same way for ``proc.cwd`` only.

    Only the keys and the lineage path (lids) go through DuckDB joins and sorts;
    the LIST columns are gathered with pyarrow ``take`` over the per-lineage
    attributes (sorting wide LIST rows in DuckDB cost several times more).
    """
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_pcwd AS
        SELECT row_number() OVER (ORDER BY pid, s) AS wid, pid, s,
               coalesce(lead(s) OVER (PARTITION BY pid ORDER BY s), {E_MAX}) AS e, cwd
        FROM (SELECT ch.pid, greatest(ch.s, w.s) AS s, w.cwd
              FROM fc_chain0 ch JOIN fc_cwd w ON w.pkey = ch.pkey AND w.s < ch.e AND ch.s < w.e)
        ORDER BY pid, s
        """
    )
    keys = con.sql("SELECT pid, s, pkey, path FROM fc_chain0").to_arrow_table()
    pid, start = _np(keys, "pid"), _np(keys, "s")
    order = np.lexsort((start, pid))
    keys = keys.take(pa.array(order))
    pid, start = pid[order], start[order]
    end = np.full(len(pid), E_MAX, np.int64)
    same = pid[1:] == pid[:-1]
    end[:-1][same] = start[1:][same]
    attrs = con.sql(
        f"""
        SELECT l.lid, l.name, l.exe, l.exepath, {_cmdline('l')} AS cmdline,
               {hosts.real_sql(con, 'l.pid')} AS pid,
               array_to_string(l.argv_tail, ' ') AS args, l.env, l.start_ts,
               i.argv AS iargv, i.env AS ienv, i.exe_ino, i.exe_writable, i.exe_upper_layer,
               i.exe_from_memfd, i.exe_ino_ctime, i.exe_ino_mtime, i.exe_ino_ctime_dur
        FROM fc_lin l LEFT JOIN fc_img i ON i.img = l.img
        """
    ).to_arrow_table()
    lid = _np(attrs, "lid")
    row_of = np.zeros(int(lid.max()) + 1 if len(lid) else 1, np.int64)
    row_of[lid] = np.arange(len(lid))
    path = keys.column("path").combine_chunks()
    flat = pa.array(row_of[pc.list_flatten(path).to_numpy()])
    lens = pc.list_value_length(path).to_numpy()
    offsets = pa.array(np.concatenate(([0], np.cumsum(lens))).astype(np.int32))
    own = pa.array(row_of[pc.list_element(path, 0).to_numpy()]) if len(keys) else flat

    def lists(col: str) -> pa.Array:
        return pa.ListArray.from_arrays(offsets, attrs.column(col).combine_chunks().take(flat))

    def mine(col: str) -> pa.Array:
        return attrs.column(col).combine_chunks().take(own)

    proc_segments.create_table(con, "fc_chain", _CHAIN_COLS, {
        "cid": pa.array(np.arange(1, len(keys) + 1, dtype=np.int64)),
        "pid": pa.array(pid), "s": pa.array(start), "e": pa.array(end),
        "pkey": keys.column("pkey"),
        "names": lists("name"), "exes": lists("exe"), "exepaths": lists("exepath"),
        "cmdlines": lists("cmdline"), "pids": lists("pid"), "argss": lists("args"),
        "envs": lists("env"), "starts": lists("start_ts"),
        "argv": mine("iargv"), "env": mine("ienv"), "exe_ino": mine("exe_ino"),
        "exe_writable": mine("exe_writable"), "exe_upper_layer": mine("exe_upper_layer"),
        "exe_from_memfd": mine("exe_from_memfd"), "start_ts": mine("start_ts"),
        "exe_ino_ctime": mine("exe_ino_ctime"), "exe_ino_mtime": mine("exe_ino_mtime"),
        "exe_ino_ctime_dur": mine("exe_ino_ctime_dur"),
    })


def _np(t: pa.Table, col: str) -> np.ndarray:
    return t.column(col).to_numpy()


def _cmdline(alias: str) -> str:
    """libsinsp's populate_cmdline: comm followed by the arguments."""
    return (
        f"CASE WHEN len({alias}.argv_tail) = 0 THEN {alias}.name "
        f"ELSE {alias}.name || ' ' || array_to_string({alias}.argv_tail, ' ') END"
    )


def build(con: Any) -> None:
    """Build every process state table from ``raw_events`` and ``raw_processes``.

    After the two passes over ``raw_events`` every step works on tables of
    ~100k rows, where one DuckDB thread is faster than several (no row group
    merging, no per-query thread start-up), so the rest runs with one.
    """
    read_events(con)
    threads = int(con.execute("SELECT current_setting('threads')").fetchall()[0][0])
    con.execute("SET threads = 1")
    try:
        build_instances(con)
        build_images(con)
        build_segments(con)
        con.execute("DROP TABLE fc_plife")
        build_chains(con)
    finally:
        con.execute(f"SET threads = {threads}")
