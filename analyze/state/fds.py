"""File-descriptor state rebuilt in bulk: ``fc_fdrec`` records and ``fc_rid`` per event.

A descriptor record is the state of one descriptor of one process instance
(``pkey``) from its time on, until the next record of the same ``(pkey, fd)``.
Records come from:

* the start snapshot (``raw_fds``), valid from the beginning (``rid`` < 0);
* syscalls that create descriptors (open family, socket, accept, memfd_create,
  eventfd ...): final records (``rid`` = the raw row's scan position);
* ``dup``/``dup2``/``dup3``/``fcntl(F_DUPFD*)``, which copy the state of the
  source descriptor at that moment (a close or nothing there: ``unknown``);
* updates of sockets (connect, bind, listen, sendto/sendmsg with an address),
  merged with the latest earlier record of the fd that can be a socket;
* ``close``, effective just after the close event (the close event itself
  still sees the descriptor, as in libsinsp); a close is a record meaning "no
  descriptor";
* fork: the child sees every descriptor its parent had open at the fork, and
  execve ends the close-on-exec ones.

Fork inheritance is lazy: nothing is copied. A lookup that finds no record of
its own instance falls back to the parent instance at the fork time (and so
on up the fork tree); a close-on-exec record is dead once an exec of the
instance (or of an instance it was inherited through) happened after it.
The lookups themselves are numpy over whole columns
(:mod:`fcap.analyze.state.fdstream`); this module holds the SQL: the record
class of every raw row (:data:`record_sql`, read in the positions scan), the
record attributes (``fc_fdatt``) and the final tables.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pyarrow as pa
from fcap.analyze.state import fdresolve, fdstream
from fcap.analyze.state.positions import Events
from fcap.analyze.state.processes import TS_MIN

O_CLOEXEC = 0o2000000
_CREATES = {
    "eventfd": "event", "eventfd2": "event", "signalfd": "signalfd", "signalfd4": "signalfd",
    "epoll_create": "eventpoll", "epoll_create1": "eventpoll", "inotify_init": "inotify",
    "inotify_init1": "inotify", "timerfd_create": "timerfd", "bpf": "bpf",
    "userfaultfd": "userfaultfd", "io_uring_setup": "io_uring", "pidfd_open": "pidfd",
    "memfd_create": "memfd", "pipe": "pipe", "pipe2": "pipe",
}
_CREATES_IN = "(" + ", ".join(f"'{k}'" for k in _CREATES) + ")"
_OPENS = "('open', 'openat', 'openat2', 'creat', 'open_by_handle_at')"
#: Record attributes, in fdstream.ATTRS order.
ATTRS = fdstream.ATTRS

def _in(values: str, x: str = "syscall") -> str:
    """``x IN values`` as a CASE: an IN list becomes a join that does not keep the scan order."""
    names = [v.strip() for v in values.strip("()").split(",")]
    return f"(CASE {x} " + " ".join(f"WHEN {n} THEN true" for n in names) + " ELSE false END)"


# record kinds (fdstream.OPEN ...) per raw row; NULL = the row makes no record
_KIND = f"""CASE
  WHEN {_in(_OPENS)} OR {_in("('socket', 'accept', 'accept4')")}
    THEN CASE WHEN res >= 0 THEN 1 END
  WHEN {_in(_CREATES_IN)}
    THEN CASE WHEN res >= 0 AND (NOT {_in("('pipe', 'pipe2')")} OR fd IS NOT NULL) THEN 1 END
  WHEN syscall = 'close' THEN CASE WHEN res = 0 THEN 2 END
  WHEN {_in("('dup', 'dup2', 'dup3', 'fcntl')")}
    THEN CASE WHEN res >= 0 AND (syscall <> 'fcntl' OR a1 = 0 OR a1 = 1030)
              AND NOT ({_in("('dup2', 'dup3')")} AND a0 = res) THEN 3 END
  WHEN syscall = 'connect' THEN CASE WHEN fd IS NOT NULL AND (res >= 0 OR res = -115) THEN 4 END
  WHEN {_in("('sendto', 'sendmsg')")}
    THEN CASE WHEN fd IS NOT NULL AND res >= 0 AND raddr IS NOT NULL THEN 4 END
  WHEN {_in("('bind', 'listen')")} THEN CASE WHEN fd IS NOT NULL AND res = 0 THEN 4 END
  WHEN {_in("('execve', 'execveat')")} THEN CASE WHEN res = 0 THEN 5 END
END"""


def _open_flags(x: str = "") -> str:
    return (
        f"CASE {x}syscall WHEN 'open' THEN {x}a1 WHEN 'openat' THEN {x}a2 "
        f"WHEN 'openat2' THEN {x}flags_aux WHEN 'creat' THEN 577 ELSE {x}a2 END"
    )


def _tri(cond: str) -> str:
    """0 false, 1 true, 2 null."""
    return f"coalesce(CAST(({cond}) AS INTEGER), 2)"


# close-on-exec of the record (tri-state) and "can be a socket" bits (family / type)
_CL = f"""CASE
  WHEN {_in(_OPENS)} THEN {_tri(f"({_open_flags()} & {O_CLOEXEC}) <> 0")}
  WHEN syscall = 'socket' THEN {_tri(f"(a1 & {O_CLOEXEC}) <> 0")}
  WHEN {_in("('accept', 'accept4')")} THEN {_tri(f"syscall = 'accept4' AND (a3 & {O_CLOEXEC}) <> 0")}
  WHEN {_in("('dup', 'dup2', 'dup3', 'fcntl')")}
    THEN {_tri(f"(syscall = 'dup3' AND (a2 & {O_CLOEXEC}) <> 0) OR (syscall = 'fcntl' AND a1 = 1030)")}
  WHEN {_in(_CREATES_IN)} THEN 0
  ELSE 2 END"""
_FAM = f"""CASE
  WHEN syscall = 'socket' THEN {_in("(1, 2, 10)", "a0")}
  WHEN {_in("('accept', 'accept4', 'connect', 'sendto', 'sendmsg')")}
    THEN {_in("(1, 2, 10)", "sock_family")}
  END"""
_FTS = f"""CASE
  WHEN syscall = 'socket' THEN {_in("(1, 2, 10, 16)", "a0")}
  WHEN {_in("('accept', 'accept4')")} THEN {_in("(1, 2, 10, 16)", "sock_family")}
  END"""

_ARG_FD = "('pipe', 'pipe2', 'connect', 'sendto', 'sendmsg', 'bind', 'listen')"
_DUPS = "('dup', 'dup2', 'dup3', 'fcntl')"
#: Per raw row: rk = kind | cloexec << 3 | family-not-null << 5 | socket-type << 6,
#: rfd = the record's descriptor, sfd = a dup's source descriptor.
record_sql = (
    f"CAST(coalesce({_KIND}, 0) + {_CL} * 8 + coalesce(CAST({_FAM} AS INTEGER), 0) * 32 "
    f"+ coalesce(CAST({_FTS} AS INTEGER), 0) * 64 AS SMALLINT) AS rk, "
    "CASE WHEN syscall = 'close' THEN coalesce(fd, a0) "
    f"WHEN {_in(_ARG_FD)} THEN fd ELSE res END AS rfd, "
    f"CASE WHEN {_in(_DUPS)} THEN a0 END AS sfd"
)


def _family_type(fam: str) -> str:
    return (
        f"CASE {fam} WHEN 2 THEN 'ipv4' WHEN 10 THEN 'ipv6' WHEN 1 THEN 'unix' "
        f"WHEN 16 THEN 'netlink' ELSE NULL END"
    )


def _l4(sock_type: str, l4: str) -> str:
    return (
        f"CASE WHEN {l4} = 6 THEN 'tcp' WHEN {l4} = 17 THEN 'udp' WHEN {l4} IN (1, 58) THEN 'icmp' "
        f"WHEN ({sock_type} & 15) = 1 THEN 'tcp' WHEN ({sock_type} & 15) = 2 THEN 'udp' "
        f"WHEN ({sock_type} & 15) = 3 THEN 'raw' END"
    )


def _build_attributes(con: Any, ev: Events) -> None:
    """``fc_fdatt``: attributes of every record row (k: 1 final, 3 dup, 4 update) by rid.

    The rows are picked by the record classes numpy already holds (a registered
    column positionally joined), not by re-evaluating them in SQL.
    """
    creates = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _CREATES.items())
    con.register("fc_kind_arrow", pa.table({"k": pa.array((ev.rec["rk"] & 7).astype(np.int8))}))
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_fdev AS
        SELECT p.rowid AS rid, x.ts, x.tid, CAST(x.syscall AS VARCHAR) AS syscall, x.res,
               x.a0, x.a1, x.a2, x.a3, x.flags_aux, x.fd, CAST(x.path AS VARCHAR) AS path,
               CAST(x.path_raw AS VARCHAR) AS path_raw,
               x.sock_family, x.sock_type, x.l4proto, CAST(x.laddr AS VARCHAR) AS laddr,
               x.lport, CAST(x.raddr AS VARCHAR) AS raddr, x.rport,
               CAST(x.unix_path AS VARCHAR) AS unix_path
        FROM fc_raw x POSITIONAL JOIN fc_pos p POSITIONAL JOIN fc_kind_arrow m
        WHERE m.k = 1 OR m.k = 3 OR m.k = 4
        """
    )
    con.unregister("fc_kind_arrow")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_snapfd AS
        SELECT -row_number() OVER (ORDER BY i.pkey, f.fd, f.name) AS rid, i.pkey, f.*
        FROM raw_fds f JOIN fc_pinst i ON i.pid = f.pid AND i.kind = 'snap';

        CREATE OR REPLACE TEMP TABLE fc_fdatt AS
        -- snapshot
        SELECT f.rid, 1::TINYINT AS k,
               {TS_MIN}::BIGINT AS ts, CAST(NULL AS INTEGER) AS ev_tid, false AS changed,
               f.type AS fd_type, f.name, f.name AS name_raw, f.flags,
               coalesce((f.flags & {O_CLOEXEC}) <> 0, false) AS cloexec,
               CASE f.l4proto WHEN 6 THEN 'tcp' WHEN 17 THEN 'udp' WHEN 1 THEN 'icmp'
                    WHEN 255 THEN 'raw' END AS l4proto,
               CASE WHEN f.type IN ('ipv4', 'ipv6') THEN 'ip' WHEN f.type = 'unix' THEN 'unix'
               END AS family,
               f.laddr AS lip, f.lport, f.raddr AS rip, f.rport,
               CASE WHEN f.listening THEN 'server'
                    WHEN f.raddr IS NOT NULL AND f.type IN ('ipv4', 'ipv6') THEN 'client'
               END AS role,
               f.raddr IS NOT NULL AS connected, f.ino
        FROM fc_snapfd f
        UNION ALL
        -- open family (most rows: read straight from the capture)
        SELECT rid, 1, ts, tid, false,
               CASE WHEN ({_open_flags()} & 65536) <> 0 THEN 'directory' ELSE 'file' END,
               path, coalesce(path_raw, path),
               {_open_flags()}, ({_open_flags()} & {O_CLOEXEC}) <> 0,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL
        FROM fc_fdev WHERE syscall IN {_OPENS} AND res >= 0
        UNION ALL
        -- socket
        SELECT rid, 1, ts, tid, false, {_family_type("a0")}, '', '', a1,
               (a1 & {O_CLOEXEC}) <> 0,
               CASE WHEN a0 IN (2, 10) THEN {_l4("a1", "a2")} END,
               CASE WHEN a0 IN (2, 10) THEN 'ip' WHEN a0 = 1 THEN 'unix' END,
               NULL, NULL, NULL, NULL, NULL, false, NULL
        FROM fc_fdev WHERE syscall = 'socket' AND res >= 0
        UNION ALL
        -- accept: the process is the server
        SELECT rid, 1, ts, tid, true, {_family_type("sock_family")},
               CASE WHEN sock_family = 1 THEN unix_path
                    ELSE concat(raddr, ':', rport, '->', laddr, ':', lport) END,
               NULL, NULL, syscall = 'accept4' AND (a3 & {O_CLOEXEC}) <> 0,
               CASE WHEN sock_family IN (2, 10) THEN {_l4("coalesce(sock_type, 1)", "l4proto")} END,
               CASE WHEN sock_family IN (2, 10) THEN 'ip' WHEN sock_family = 1 THEN 'unix' END,
               laddr, lport, raddr, rport, 'server', true, NULL
        FROM fc_fdev WHERE syscall IN ('accept', 'accept4') AND res >= 0
        UNION ALL
        -- connect / sendto / sendmsg with a destination: the process is the client
        SELECT rid, 4, ts, tid, true, NULL,
               CASE WHEN sock_family = 1 THEN unix_path
                    ELSE concat(laddr, ':', lport, '->', raddr, ':', rport) END,
               NULL, NULL, NULL,
               CASE WHEN l4proto IS NOT NULL OR sock_type IS NOT NULL
                    THEN {_l4("coalesce(sock_type, 0)", "l4proto")} END,
               CASE WHEN sock_family IN (2, 10) THEN 'ip' WHEN sock_family = 1 THEN 'unix' END,
               laddr, lport, raddr, rport, 'client', syscall = 'connect', NULL
        FROM fc_fdev
        WHERE fd IS NOT NULL AND (
              (syscall = 'connect' AND (res >= 0 OR res = -115))
           OR (syscall IN ('sendto', 'sendmsg') AND res >= 0 AND raddr IS NOT NULL))
        UNION ALL
        -- bind / listen
        SELECT rid, 4, ts, tid, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               CASE WHEN syscall = 'bind' THEN laddr END, CASE WHEN syscall = 'bind' THEN lport END,
               NULL, NULL, CASE WHEN syscall = 'listen' THEN 'server' END, NULL, NULL
        FROM fc_fdev WHERE syscall IN ('bind', 'listen') AND res = 0 AND fd IS NOT NULL
        UNION ALL
        -- other descriptor-creating syscalls
        SELECT rid, 1, ts, tid, false, CASE syscall {creates} END,
               CASE WHEN syscall = 'memfd_create' THEN 'memfd:' || coalesce(path, '') ELSE '' END,
               NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL
        FROM fc_fdev WHERE syscall IN {_CREATES_IN} AND res >= 0
              AND (syscall NOT IN ('pipe', 'pipe2') OR fd IS NOT NULL)
        UNION ALL
        -- dup family: own close-on-exec only, the rest comes from the source
        SELECT rid, 3, ts, tid, false, NULL, NULL, NULL, NULL,
               (syscall = 'dup3' AND (a2 & {O_CLOEXEC}) <> 0)
               OR (syscall = 'fcntl' AND a1 = 1030),
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL
        FROM fc_fdev
        WHERE res >= 0 AND (syscall IN ('dup', 'dup2', 'dup3')
                            OR (syscall = 'fcntl' AND a1 IN (0, 1030)))
              AND NOT (syscall IN ('dup2', 'dup3') AND a0 = res);
        DROP TABLE fc_fdev;
        """
    )


def _snapshot(con: Any) -> fdstream.Snapshot:
    t = con.sql(
        f"""
        SELECT rid, pkey, fd,
               CAST(coalesce((flags & {O_CLOEXEC}) <> 0, false) AS INTEGER) AS cl,
               type IN ('ipv4', 'ipv6', 'unix') AS fam,
               type IN ('ipv4', 'ipv6', 'unix', 'netlink') AS fts
        FROM fc_snapfd ORDER BY rid DESC
        """
    ).to_arrow_table()
    return fdstream.Snapshot(
        rid=t.column("rid").to_numpy().astype(np.int64),
        pkey=t.column("pkey").to_numpy().astype(np.int64),
        fd=t.column("fd").to_numpy().astype(np.int64),
        cl=t.column("cl").to_numpy().astype(np.int8),
        fam=t.column("fam").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
        fts=t.column("fts").fill_null(False).to_numpy(zero_copy_only=False).astype(bool),
    )


def _instances(con: Any) -> fdstream.Instances:
    t = con.sql(
        """
        SELECT i.pkey, coalesce(f.src_pkey, 0) AS parent, coalesce(f.ts, 0) AS fork_ts
        FROM fc_pinst i
        LEFT JOIN (SELECT pkey, any_value(src_pkey) AS src_pkey, any_value(ts) AS ts FROM fc_seg
                   WHERE src_pkey IS NOT NULL AND kind = 'start' GROUP BY pkey) f
          ON f.pkey = i.pkey
        ORDER BY i.pkey
        """
    ).to_arrow_table()
    pk = t.column("pkey").to_numpy().astype(np.int64)
    size = int(pk.max()) + 1 if len(pk) else 1
    parent = np.zeros(size, np.int64)
    fork_ts = np.zeros(size, np.int64)
    parent[pk] = t.column("parent").to_numpy().astype(np.int64)
    fork_ts[pk] = t.column("fork_ts").to_numpy().astype(np.int64)
    return fdstream.Instances(parent=parent, fork_ts=fork_ts)


def build(con: Any, ev: Events, timings: dict[str, float] | None = None) -> None:
    """Build ``fc_fdrec`` and ``fc_rid`` (needs fc_pos / the process tables).

    ``timings``, when given, receives the seconds of each sub-step (``fds.*``).
    """
    t = _Timer(timings)
    _build_attributes(con, ev)
    t("fds.attributes")
    chained = con.sql(
        "SELECT rid, " + ", ".join(f"{a} IS NOT NULL AS {a}" for a in ATTRS)
        + " FROM fc_fdatt WHERE k IN (3, 4) ORDER BY rid"
    ).to_arrow_table()
    own = np.stack(
        [chained.column(a).to_numpy(zero_copy_only=False).astype(bool) for a in ATTRS], axis=1
    ) if chained.num_rows else np.zeros((0, len(ATTRS)), bool)
    snap, inst = _snapshot(con), _instances(con)
    t("fds.inputs")
    rec, st = fdresolve.prepare(ev, snap)
    t("fds.stream")
    res = fdresolve.resolve(
        ev, rec, st, inst, chained_rid=chained.column("rid").to_numpy().astype(np.int64),
        chained_own=own, timer=t,
    )
    _write(con, res)
    t("fds.write")


class _Timer:
    """Adds the seconds since the previous call under a name (no-op without a dict)."""

    def __init__(self, timings: dict[str, float] | None) -> None:
        self.timings = timings
        self.t = time.perf_counter()

    def __call__(self, name: str) -> None:
        now = time.perf_counter()
        if self.timings is not None:
            self.timings[name] = self.timings.get(name, 0.0) + now - self.t
        self.t = now


def _write(con: Any, res: fdresolve.Result) -> None:
    """``fc_rid`` (scan order) and ``fc_fdrec`` (final rows + resolved chained rows)."""
    rid = res.event_rid
    con.register("fc_rid_arrow", pa.table({"rid": pa.array(rid, mask=rid == fdstream.NO_RID)}))
    con.execute("CREATE OR REPLACE TEMP TABLE fc_rid AS SELECT * FROM fc_rid_arrow")
    con.unregister("fc_rid_arrow")
    cols = "rid, ts, ev_tid, changed, " + ", ".join(ATTRS)
    # the final rows stay where they are: the chained rows' own attributes move out
    con.execute(
        "CREATE OR REPLACE TEMP TABLE fc_fdown AS SELECT * FROM fc_fdatt WHERE k <> 1;"
        "DELETE FROM fc_fdatt WHERE k <> 1;"
        "DROP TABLE IF EXISTS fc_fdrec; ALTER TABLE fc_fdatt RENAME TO fc_fdrec"
    )
    if len(res.chained_rid):
        # attribute a of resolved row x is the attribute a of row src[x, a] (own, or a source's)
        need = np.unique(res.src[res.src != fdstream.NO_RID])
        con.register("fc_need_arrow", pa.table({"rid": pa.array(need)}))
        att = con.sql(
            f"SELECT a.rid, {', '.join('a.' + c for c in ATTRS)} FROM "
            "(SELECT * FROM fc_fdrec UNION ALL SELECT * FROM fc_fdown) a "
            "SEMI JOIN fc_need_arrow n ON n.rid = a.rid ORDER BY a.rid"
        ).to_arrow_table()
        con.unregister("fc_need_arrow")
        arid = att.column("rid").to_numpy()
        keep = ~res.unknown
        crid = res.chained_rid[keep]  # ascending
        con.register("fc_need_arrow", pa.table({"rid": pa.array(crid)}))
        own = con.sql(
            "SELECT a.rid, a.ts, a.ev_tid, a.changed FROM fc_fdown a "
            "SEMI JOIN fc_need_arrow n ON n.rid = a.rid ORDER BY a.rid"
        ).to_arrow_table()
        con.unregister("fc_need_arrow")
        out = {"rid": own.column("rid"), "ts": own.column("ts"),
               "ev_tid": own.column("ev_tid"), "changed": own.column("changed")}
        for j, a in enumerate(ATTRS):
            s = res.src[keep, j]
            if len(arid) == 0:
                out[a] = pa.nulls(len(s), att.schema.field(a).type)
                continue
            idx = np.minimum(np.searchsorted(arid, s), len(arid) - 1)
            out[a] = att.column(a).take(pa.array(idx, mask=s == fdstream.NO_RID))
        con.register("fc_chained_arrow", pa.table(out))
        con.execute(f"INSERT INTO fc_fdrec BY NAME SELECT {cols}, 1::TINYINT AS k FROM fc_chained_arrow")
        con.unregister("fc_chained_arrow")
    con.execute("DROP TABLE fc_fdown; DROP TABLE fc_snapfd")
