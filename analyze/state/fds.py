"""File-descriptor state rebuilt relationally: ``fc_fdrec`` records per (instance, fd).

Each record is the state of one descriptor of one process instance from its
``ts`` on, until the next record of the same ``(pkey, fd)``. Records come from:

* the start snapshot (``raw_fds``), valid from the beginning;
* syscalls that create descriptors (open family, socket, accept, memfd_create,
  eventfd ...), and ``dup``/``dup2``/``dup3``/``fcntl(F_DUPFD*)`` which copy
  the source descriptor's state at that moment to the new number;
* updates of sockets (connect, bind, listen, sendto/sendmsg with an address);
* ``close``, 1 ns after the close event (so the close event itself still sees
  the descriptor, as in libsinsp); a close only ends the previous record
  (``te``, the end of its validity) and is not kept as a row;
* fork: the child gets a copy of every descriptor its parent has open at the
  fork (processed level by level down the fork tree);
* execve: descriptors opened with close-on-exec are closed.

Dups and updates are resolved through parent pointers (the nearest earlier
record of the source fd, of any kind, an unresolved dup included) and pointer
jumping, so ``dup2(3,1); close(3); dup2(1,2)`` copies the first dup's socket.
Open-family paths travel as integer codes (``fc_strs``) in ``fc_fdr``; the view
``fc_fdrec`` joins the strings back. The events view finds an event's
descriptor with one ASOF join on ``(pkey, fd, ts)``.
"""

from __future__ import annotations

from typing import Any

from fcap.analyze.state.processes import TS_MIN

O_CLOEXEC = 0o2000000
_CREATES = {
    "eventfd": "event", "eventfd2": "event", "signalfd": "signalfd", "signalfd4": "signalfd",
    "epoll_create": "eventpoll", "epoll_create1": "eventpoll", "inotify_init": "inotify",
    "inotify_init1": "inotify", "timerfd_create": "timerfd", "bpf": "bpf",
    "userfaultfd": "userfaultfd", "io_uring_setup": "io_uring", "pidfd_open": "pidfd",
    "memfd_create": "memfd", "pipe": "pipe", "pipe2": "pipe",
}
_OPENS = "('open', 'openat', 'openat2', 'creat', 'open_by_handle_at')"
_ATTRS = (
    "fd_type", "name", "name_raw", "flags", "cloexec", "l4proto", "family", "lip", "lport",
    "rip", "rport", "role", "connected", "ino", "name_id", "raw_id",
)
#: Records an update (connect, bind ...) can apply to (``{}`` = table alias and dot).
_SOCKISH = (
    "({0}kind = 'close' OR {0}family IS NOT NULL "
    "OR {0}fd_type IN ('ipv4', 'ipv6', 'unix', 'netlink'))"
)
#: Columns of a record row: key, time, kind, attributes, dup source, event identity.
_COLS = "pkey, fd, ts, kind, " + ", ".join(_ATTRS) + ", src_fd, changed, ev_tid"


def _open_flags(x: str = "") -> str:
    return (
        f"CASE {x}syscall WHEN 'open' THEN {x}a1 WHEN 'openat' THEN {x}a2 "
        f"WHEN 'openat2' THEN {x}flags_aux WHEN 'creat' THEN 577 ELSE {x}a2 END"
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


def build_direct(con: Any) -> None:
    """``fc_fdd``: records from the snapshot and from events, before fork inheritance.

    Needs ``fc_pos`` (each raw row's process instance, from :func:`fcap.analyze.enrich`).
    """
    creates = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in _CREATES.items())
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_fdev AS
        SELECT * FROM (
          SELECT p.pkey, x.ts, x.pid, x.tid, CAST(x.syscall AS VARCHAR) AS syscall, x.res,
                 x.a0, x.a1, x.a2, x.a3, x.flags_aux, x.fd, CAST(x.path AS VARCHAR) AS path,
                 CAST(coalesce(x.path_raw, x.path) AS VARCHAR) AS path_raw,
                 x.sock_family, x.sock_type, x.l4proto, CAST(x.laddr AS VARCHAR) AS laddr,
                 x.lport, CAST(x.raddr AS VARCHAR) AS raddr, x.rport,
                 CAST(x.unix_path AS VARCHAR) AS unix_path
          FROM fc_raw x POSITIONAL JOIN fc_pos p
          WHERE x.syscall IN ('socket', 'accept', 'accept4', 'connect',
                'bind', 'listen', 'dup', 'dup2', 'dup3', 'fcntl', 'sendto', 'sendmsg',
                'execve', 'execveat')
             OR x.syscall IN ({", ".join(f"'{k}'" for k in _CREATES)})
        ) WHERE pkey IS NOT NULL;

        -- path strings of the open family as integer codes: the records carry the codes
        -- through the level sorts and windows; fc_fdrec joins the strings back
        CREATE OR REPLACE TEMP TABLE fc_strs AS
        SELECT CAST(row_number() OVER () AS INTEGER) AS sid, s FROM (
          SELECT DISTINCT s FROM (
            SELECT unnest([CAST(path AS VARCHAR), CAST(path_raw AS VARCHAR)]) AS s
            FROM fc_raw WHERE syscall IN {_OPENS} AND res >= 0)
          WHERE s IS NOT NULL);

        CREATE OR REPLACE TEMP TABLE fc_fdd AS
        -- snapshot
        SELECT i.pkey, f.fd, {TS_MIN}::BIGINT AS ts, 'open' AS kind,
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
               f.raddr IS NOT NULL AS connected, f.ino,
               NULL::INTEGER AS name_id, NULL::INTEGER AS raw_id,
               CAST(NULL AS BIGINT) AS src_fd, false AS changed, CAST(NULL AS INTEGER) AS ev_tid
        FROM raw_fds f JOIN fc_pinst i ON i.pid = f.pid AND i.kind = 'snap'
        UNION ALL
        -- open family
        -- (opens and closes, most of the rows, are read straight from the capture: no copy)
        SELECT p.pkey, x.res, x.ts, 'open',
               CASE WHEN ({_open_flags("x.")} & 65536) <> 0 THEN 'directory' ELSE 'file' END,
               NULL, NULL, {_open_flags("x.")}, ({_open_flags("x.")} & {O_CLOEXEC}) <> 0,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, d1.sid,
               coalesce(d2.sid, d1.sid), NULL, false, x.tid
        FROM fc_raw x POSITIONAL JOIN fc_pos p
        LEFT JOIN fc_strs d1 ON d1.s = CAST(x.path AS VARCHAR)
        LEFT JOIN fc_strs d2 ON d2.s = CAST(x.path_raw AS VARCHAR)
        WHERE x.syscall IN {_OPENS} AND x.res >= 0 AND p.pkey IS NOT NULL
        UNION ALL
        -- socket
        SELECT pkey, res, ts, 'open', {_family_type("a0")}, '', '', a1, (a1 & {O_CLOEXEC}) <> 0,
               CASE WHEN a0 IN (2, 10) THEN {_l4("a1", "a2")} END,
               CASE WHEN a0 IN (2, 10) THEN 'ip' WHEN a0 = 1 THEN 'unix' END,
               NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, NULL, NULL, false, tid
        FROM fc_fdev WHERE syscall = 'socket' AND res >= 0
        UNION ALL
        -- accept: the process is the server
        SELECT pkey, res, ts, 'open', {_family_type("sock_family")},
               CASE WHEN sock_family = 1 THEN unix_path
                    ELSE concat(raddr, ':', rport, '->', laddr, ':', lport) END,
               NULL, NULL, syscall = 'accept4' AND (a3 & {O_CLOEXEC}) <> 0,
               CASE WHEN sock_family IN (2, 10) THEN {_l4("coalesce(sock_type, 1)", "l4proto")} END,
               CASE WHEN sock_family IN (2, 10) THEN 'ip' WHEN sock_family = 1 THEN 'unix' END,
               laddr, lport, raddr, rport, 'server', true, NULL, NULL, NULL, NULL, true, tid
        FROM fc_fdev WHERE syscall IN ('accept', 'accept4') AND res >= 0
        UNION ALL
        -- connect / sendto / sendmsg with a destination: the process is the client
        SELECT pkey, fd, ts, 'update', NULL,
               CASE WHEN sock_family = 1 THEN unix_path
                    ELSE concat(laddr, ':', lport, '->', raddr, ':', rport) END,
               NULL, NULL, NULL,
               CASE WHEN l4proto IS NOT NULL OR sock_type IS NOT NULL
                    THEN {_l4("coalesce(sock_type, 0)", "l4proto")} END,
               CASE WHEN sock_family IN (2, 10) THEN 'ip' WHEN sock_family = 1 THEN 'unix' END,
               laddr, lport, raddr, rport, 'client', syscall = 'connect', NULL, NULL, NULL, NULL,
               true, tid
        FROM fc_fdev
        WHERE fd IS NOT NULL AND (
              (syscall = 'connect' AND (res >= 0 OR res = -115))
           OR (syscall IN ('sendto', 'sendmsg') AND res >= 0 AND raddr IS NOT NULL))
        UNION ALL
        -- bind / listen
        SELECT pkey, fd, ts, 'update', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               CASE WHEN syscall = 'bind' THEN laddr END, CASE WHEN syscall = 'bind' THEN lport END,
               NULL, NULL, CASE WHEN syscall = 'listen' THEN 'server' END, NULL, NULL, NULL, NULL,
               NULL, false, tid
        FROM fc_fdev WHERE syscall IN ('bind', 'listen') AND res = 0 AND fd IS NOT NULL
        UNION ALL
        -- other descriptor-creating syscalls
        SELECT pkey, coalesce(CASE WHEN syscall IN ('pipe', 'pipe2') THEN fd ELSE res END, fd),
               ts, 'open', CASE syscall {creates} END,
               CASE WHEN syscall = 'memfd_create' THEN 'memfd:' || coalesce(path, '') ELSE '' END,
               NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL,
               NULL, NULL, false, tid
        FROM fc_fdev WHERE syscall IN ({", ".join(f"'{k}'" for k in _CREATES)}) AND res >= 0
              AND (syscall NOT IN ('pipe', 'pipe2') OR fd IS NOT NULL)
        UNION ALL
        -- dup family: state copied from the source fd (resolved per level)
        SELECT pkey, res, ts, 'dup', NULL, NULL, NULL, NULL,
               (syscall = 'dup3' AND (a2 & {O_CLOEXEC}) <> 0)
               OR (syscall = 'fcntl' AND a1 = 1030),
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, a0, false, tid
        FROM fc_fdev
        WHERE res >= 0 AND (syscall IN ('dup', 'dup2', 'dup3')
                            OR (syscall = 'fcntl' AND a1 IN (0, 1030)))
              AND NOT (syscall IN ('dup2', 'dup3') AND a0 = res)
        UNION ALL
        -- close: effective just after the event
        SELECT p.pkey, coalesce(x.fd, x.a0), x.ts + 1, 'close', NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, x.tid
        FROM fc_raw x POSITIONAL JOIN fc_pos p
        WHERE x.syscall = 'close' AND x.res = 0 AND p.pkey IS NOT NULL;

        CREATE OR REPLACE TEMP TABLE fc_execs AS
        SELECT pkey, ts FROM fc_fdev WHERE syscall IN ('execve', 'execveat') AND res = 0;
        DROP TABLE fc_fdev;
        """
    )


def build_levels(con: Any) -> None:
    """``fc_pdepth``: depth of every instance in the fork tree (0 = snapshot / unknown)."""
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE fc_forks AS
        SELECT s.pkey AS child, s.src_pkey AS parent, s.ts
        FROM fc_seg s WHERE s.src_pkey IS NOT NULL AND s.kind = 'start';

        CREATE OR REPLACE TEMP TABLE fc_pdepth AS
        WITH RECURSIVE d(pkey, depth) AS (
          SELECT pkey, 0 FROM fc_pinst WHERE pkey NOT IN (SELECT child FROM fc_forks)
          UNION ALL
          SELECT f.child, d.depth + 1 FROM fc_forks f JOIN d ON f.parent = d.pkey
          WHERE d.depth < 10000
        )
        SELECT pkey, max(depth) AS depth FROM d GROUP BY pkey;
        """
    )


def _resolve_level(con: Any, level: int) -> None:
    """Records of the instances at ``level``: inherit, resolve dups, fill updates, cloexec."""
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_lvlp AS SELECT pkey FROM fc_pdepth WHERE depth = {level};
        CREATE OR REPLACE TEMP TABLE fc_inh AS
        SELECT f.child AS pkey, r.fd, f.ts, 'open' AS kind, {", ".join("r." + a for a in _ATTRS)},
               NULL::BIGINT AS src_fd, false AS changed, NULL::INTEGER AS ev_tid
        FROM fc_forks f
        JOIN fc_lvlp d ON d.pkey = f.child
        JOIN fc_fdr r ON r.pkey = f.parent AND r.ts <= f.ts AND f.ts < r.te;
        -- a view, not a copy: the level's records are read a few times below
        CREATE OR REPLACE TEMP VIEW fc_lvl AS
        SELECT {_COLS} FROM fc_fdd SEMI JOIN fc_lvlp p ON p.pkey = fc_fdd.pkey
        UNION ALL SELECT {_COLS} FROM fc_inh;
        CREATE OR REPLACE TEMP VIEW fc_lvls AS SELECT * FROM fc_lvl WHERE kind IN ('open', 'close');
        """
    )
    # Plain opens/closes are final. Dups copy their source's state, updates (connect,
    # bind ...) merge with the record they update. Each such "chained" row points at its
    # parent: the nearest earlier record of the source fd (dup) or of its own fd (update),
    # whatever its kind (an earlier dup or update included), found by one ASOF join over
    # the records of those (pkey, fd) keys only. The state then flows down the pointers by
    # pointer jumping (log2 of the longest chain passes): a row's attributes are its own,
    # else its parent's (a dup's own attributes are only cloexec).
    _resolve_chains(con)
    # a dup whose source is unknown (closed, never seen) still replaces what the number meant
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW fc_lvlf AS
        SELECT {_COLS} FROM fc_lvls UNION ALL SELECT {_COLS} FROM fc_lvlw;

        CREATE OR REPLACE TEMP TABLE fc_lvlo AS SELECT coalesce(max(rid), 0) AS o FROM fc_fdr;
        -- validity ends in one window; ids from the row ids (no ordered row_number())
        CREATE OR REPLACE TEMP TABLE fc_lvlt AS
        SELECT {_COLS}, lead(ts, 1, {2**62}) OVER (PARTITION BY pkey, fd ORDER BY ts) AS te
        FROM fc_lvlf;
        INSERT INTO fc_fdr
        SELECT (SELECT o FROM fc_lvlo) + rowid + 1 AS rid, * FROM fc_lvlt WHERE kind <> 'close';
        DROP TABLE fc_lvlt;

        -- close-on-exec: a successful exec ends every cloexec descriptor open across it
        UPDATE fc_fdr SET te = c.ts
        FROM (SELECT r.rid, min(x.ts) AS ts FROM fc_fdr r
              JOIN fc_execs x ON x.pkey = r.pkey AND r.ts < x.ts AND x.ts < r.te
              WHERE r.rid > (SELECT o FROM fc_lvlo) AND r.cloexec AND r.kind = 'open'
              GROUP BY r.rid) c
        WHERE fc_fdr.rid = c.rid;
        """
    )


def _resolve_chains(con: Any) -> None:
    """``fc_lvlw``: the level's dup and update rows with their resolved state.

    A dup whose nearest source record is a close (or none) is ``unknown`` (no
    attributes); an update without a live base keeps its own attributes
    (``update``). Chains of any length, in any order of dups and updates
    (``dup2(3,1); close(3); dup2(1,2)``: the second dup copies the first), are
    resolved in ``ceil(log2(longest chain)) + 1`` passes.
    """
    own = ", ".join(f"c.{a}" for a in _ATTRS)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_lvlx AS
        SELECT row_number() OVER () AS nid, {_COLS} FROM fc_lvl WHERE kind IN ('dup', 'update');
        -- the (pkey, fd) keys whose records chained rows can point at
        CREATE OR REPLACE TEMP TABLE fc_lvlkk AS
        SELECT DISTINCT pkey, CASE kind WHEN 'dup' THEN src_fd ELSE -fd - 1 END AS fd
        FROM fc_lvlx;
        -- the records of those keys, narrow (id, key, time, kind): the ASOF input. Plain
        -- records are final; their ids are negative: -(rowid + 1) in fc_fdd, below -2**40
        -- in fc_inh (the fork copies). Dups look at every record of their source fd (key
        -- fd); updates only at the records that can be sockets (key -fd - 1): an update of a
        -- descriptor that is not a socket fails, so a plain non-socket record is stale
        CREATE OR REPLACE TEMP VIEW fc_lvlc AS
        WITH c AS (
          SELECT -(f.rowid + 1) AS nid, f.pkey, f.fd, f.ts, f.kind, {_SOCKISH.format("f.")} AS sk
          FROM fc_fdd f SEMI JOIN fc_lvlp p ON p.pkey = f.pkey WHERE f.kind IN ('open', 'close')
          UNION ALL
          SELECT -(i.rowid + 1 + {2**40}), i.pkey, i.fd, i.ts, i.kind, {_SOCKISH.format("i.")}
          FROM fc_inh i
          UNION ALL SELECT x.nid, x.pkey, x.fd, x.ts, x.kind, true FROM fc_lvlx x
        )
        SELECT * FROM (SELECT nid, pkey, fd, ts, kind FROM c
                       UNION ALL SELECT nid, pkey, -fd - 1, ts, kind FROM c WHERE sk) c
        SEMI JOIN fc_lvlkk k ON k.pkey = c.pkey AND k.fd = c.fd;
        -- parent pointers, one ASOF for both kinds: a dup's parent is the record of its source
        -- fd at its time (never itself: src_fd <> fd), an update's is the record of its own fd
        -- strictly before it (ts - 1: times are integer ns)
        CREATE OR REPLACE TEMP TABLE fc_lvlq AS
        SELECT c.nid, s.nid AS pnid, s.kind AS pkind
        FROM (SELECT nid, pkey, CASE kind WHEN 'dup' THEN src_fd ELSE -fd - 1 END AS kfd,
                     CASE kind WHEN 'dup' THEN ts ELSE ts - 1 END AS kts FROM fc_lvlx) c
        ASOF LEFT JOIN fc_lvlc s ON s.pkey = c.pkey AND s.fd = c.kfd AND c.kts >= s.ts;
        -- the attributes of the plain records chained rows point at
        CREATE OR REPLACE TEMP TABLE fc_lvlk AS
        SELECT -(f.rowid + 1) AS nid, {", ".join("f." + a for a in _ATTRS)} FROM fc_fdd f
        SEMI JOIN fc_lvlq q ON q.pnid = -(f.rowid + 1)
        UNION ALL
        SELECT -(i.rowid + 1 + {2**40}), {", ".join("i." + a for a in _ATTRS)} FROM fc_inh i
        SEMI JOIN fc_lvlq q ON q.pnid = -(i.rowid + 1 + {2**40});
        CREATE OR REPLACE TEMP TABLE fc_lvlw AS
        SELECT c.nid, CASE WHEN q.pkind IS NOT NULL AND q.pkind <> 'close' THEN q.pnid END AS ptr,
               c.pkey, c.fd, c.ts,
               CASE WHEN q.pkind IS NOT NULL AND q.pkind <> 'close' THEN 'open'
                    WHEN c.kind = 'dup' THEN 'unknown' ELSE 'update' END AS kind,
               {own}, NULL::BIGINT AS src_fd, coalesce(c.changed, false) AS changed, c.ev_tid
        FROM fc_lvlx c JOIN fc_lvlq q ON q.nid = c.nid;
        -- a dup whose source is unknown copies nothing, not even what an earlier open had
        UPDATE fc_lvlw SET {", ".join(f"{a} = NULL" for a in _ATTRS)} WHERE kind = 'unknown';
        """
    )
    merged = ", ".join(
        f"CASE WHEN w.ptr < 0 THEN coalesce(w.{a}, k.{a}) ELSE coalesce(w.{a}, p.{a}) END AS {a}"
        for a in _ATTRS
    )
    for _ in range(64):  # 2**64 rows never exist: the loop always ends by the break
        if not con.execute("SELECT count(*) FROM fc_lvlw WHERE ptr IS NOT NULL").fetchone()[0]:
            break
        con.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE fc_lvlw AS
            SELECT w.nid, CASE WHEN w.ptr > 0 THEN p.ptr END AS ptr, w.pkey, w.fd, w.ts, w.kind,
                   {merged}, w.src_fd, w.changed, w.ev_tid
            FROM fc_lvlw w
            LEFT JOIN fc_lvlw p ON w.ptr > 0 AND p.nid = w.ptr
            LEFT JOIN fc_lvlk k ON w.ptr < 0 AND k.nid = w.ptr
            """
        )


def build(con: Any) -> None:
    """Build ``fc_fdrec`` (requires the process tables of :mod:`.processes`)."""
    build_direct(con)
    build_levels(con)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fc_fdr AS SELECT 0::BIGINT AS rid, {_COLS}, 0::BIGINT AS te "
        "FROM fc_fdd WHERE false"
    )
    max_depth = con.execute("SELECT coalesce(max(depth), 0) FROM fc_pdepth").fetchone()[0]
    for level in range(max_depth + 1):
        _resolve_level(con, level)
    con.execute(
        "DROP VIEW IF EXISTS fc_lvlf; DROP VIEW IF EXISTS fc_lvls; DROP VIEW IF EXISTS fc_lvl;"
        "DROP TABLE IF EXISTS fc_inh; DROP TABLE IF EXISTS fc_lvlp;"
        "DROP VIEW IF EXISTS fc_lvlc; DROP TABLE IF EXISTS fc_lvlx; DROP TABLE IF EXISTS fc_lvlkk;"
        "DROP TABLE IF EXISTS fc_lvlq; DROP TABLE IF EXISTS fc_lvlw;"
        "DROP TABLE IF EXISTS fc_lvlo; DROP TABLE IF EXISTS fc_fdd;"
        "DROP TABLE IF EXISTS fc_lvlk;"
    )
    # the records with their strings: what the events view joins (``fc_fdr`` keeps codes)
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW fc_fdrec AS
        SELECT r.* EXCLUDE (name_id, raw_id)
                   REPLACE (coalesce(r.name, a.s) AS name, coalesce(r.name_raw, b.s) AS name_raw)
        FROM fc_fdr r LEFT JOIN fc_strs a ON a.sid = r.name_id
        LEFT JOIN fc_strs b ON b.sid = r.raw_id
        """
    )
