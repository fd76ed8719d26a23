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

The events view finds an event's descriptor with one ASOF join on
``(pkey, fd, ts)``.
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
    "rip", "rport", "role", "connected", "ino",
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
               CAST(NULL AS BIGINT) AS src_fd, false AS changed, CAST(NULL AS INTEGER) AS ev_tid
        FROM raw_fds f JOIN fc_pinst i ON i.pid = f.pid AND i.kind = 'snap'
        UNION ALL
        -- open family
        -- (opens and closes, most of the rows, are read straight from the capture: no copy)
        SELECT p.pkey, x.res, x.ts, 'open',
               CASE WHEN ({_open_flags("x.")} & 65536) <> 0 THEN 'directory' ELSE 'file' END,
               CAST(x.path AS VARCHAR), CAST(coalesce(x.path_raw, x.path) AS VARCHAR),
               {_open_flags("x.")}, ({_open_flags("x.")} & {O_CLOEXEC}) <> 0,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, false, x.tid
        FROM fc_raw x POSITIONAL JOIN fc_pos p
        WHERE x.syscall IN {_OPENS} AND x.res >= 0 AND p.pkey IS NOT NULL
        UNION ALL
        -- socket
        SELECT pkey, res, ts, 'open', {_family_type("a0")}, '', '', a1, (a1 & {O_CLOEXEC}) <> 0,
               CASE WHEN a0 IN (2, 10) THEN {_l4("a1", "a2")} END,
               CASE WHEN a0 IN (2, 10) THEN 'ip' WHEN a0 = 1 THEN 'unix' END,
               NULL, NULL, NULL, NULL, NULL, false, NULL, NULL, false, tid
        FROM fc_fdev WHERE syscall = 'socket' AND res >= 0
        UNION ALL
        -- accept: the process is the server
        SELECT pkey, res, ts, 'open', {_family_type("sock_family")},
               CASE WHEN sock_family = 1 THEN unix_path
                    ELSE concat(raddr, ':', rport, '->', laddr, ':', lport) END,
               NULL, NULL, syscall = 'accept4' AND (a3 & {O_CLOEXEC}) <> 0,
               CASE WHEN sock_family IN (2, 10) THEN {_l4("coalesce(sock_type, 1)", "l4proto")} END,
               CASE WHEN sock_family IN (2, 10) THEN 'ip' WHEN sock_family = 1 THEN 'unix' END,
               laddr, lport, raddr, rport, 'server', true, NULL, NULL, true, tid
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
               laddr, lport, raddr, rport, 'client', syscall = 'connect', NULL, NULL, true, tid
        FROM fc_fdev
        WHERE fd IS NOT NULL AND (
              (syscall = 'connect' AND (res >= 0 OR res = -115))
           OR (syscall IN ('sendto', 'sendmsg') AND res >= 0 AND raddr IS NOT NULL))
        UNION ALL
        -- bind / listen
        SELECT pkey, fd, ts, 'update', NULL, NULL, NULL, NULL, NULL, NULL, NULL,
               CASE WHEN syscall = 'bind' THEN laddr END, CASE WHEN syscall = 'bind' THEN lport END,
               NULL, NULL, CASE WHEN syscall = 'listen' THEN 'server' END, NULL, NULL, NULL,
               false, tid
        FROM fc_fdev WHERE syscall IN ('bind', 'listen') AND res = 0 AND fd IS NOT NULL
        UNION ALL
        -- other descriptor-creating syscalls
        SELECT pkey, coalesce(CASE WHEN syscall IN ('pipe', 'pipe2') THEN fd ELSE res END, fd),
               ts, 'open', CASE syscall {creates} END,
               CASE WHEN syscall = 'memfd_create' THEN 'memfd:' || coalesce(path, '') ELSE '' END,
               NULL, NULL, false, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, NULL, NULL,
               false, tid
        FROM fc_fdev WHERE syscall IN ({", ".join(f"'{k}'" for k in _CREATES)}) AND res >= 0
              AND (syscall NOT IN ('pipe', 'pipe2') OR fd IS NOT NULL)
        UNION ALL
        -- dup family: state copied from the source fd (resolved per level)
        SELECT pkey, res, ts, 'dup', NULL, NULL, NULL, NULL,
               (syscall = 'dup3' AND (a2 & {O_CLOEXEC}) <> 0)
               OR (syscall = 'fcntl' AND a1 = 1030),
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, a0, false, tid
        FROM fc_fdev
        WHERE res >= 0 AND (syscall IN ('dup', 'dup2', 'dup3')
                            OR (syscall = 'fcntl' AND a1 IN (0, 1030)))
              AND NOT (syscall IN ('dup2', 'dup3') AND a0 = res)
        UNION ALL
        -- close: effective just after the event
        SELECT p.pkey, coalesce(x.fd, x.a0), x.ts + 1, 'close', NULL, NULL, NULL, NULL, NULL,
               NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, false, x.tid
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
        JOIN fc_fdrec r ON r.pkey = f.parent AND r.ts <= f.ts AND f.ts < r.te;
        -- a view, not a copy: the level's records are read a few times below
        CREATE OR REPLACE TEMP VIEW fc_lvl AS
        SELECT {_COLS} FROM fc_fdd SEMI JOIN fc_lvlp p ON p.pkey = fc_fdd.pkey
        UNION ALL SELECT {_COLS} FROM fc_inh;
        """
    )
    # Plain opens/closes are final. Updates (connect, bind ...) merge with the record they
    # update; dups copy their source. Both are resolved with ASOF joins on those rows only.
    con.execute(
        """
        CREATE OR REPLACE TEMP VIEW fc_lvls AS SELECT * FROM fc_lvl WHERE kind IN ('open', 'close');
        CREATE OR REPLACE TEMP TABLE fc_lvlu AS SELECT * FROM fc_lvl WHERE kind = 'update';
        CREATE OR REPLACE TEMP TABLE fc_lvld AS SELECT * FROM fc_lvl WHERE kind = 'dup';
        CREATE OR REPLACE TEMP TABLE fc_lvlr AS SELECT * FROM fc_lvl WHERE false;
        -- the plain records dups can copy (keeps the ASOF inputs small)
        CREATE OR REPLACE TEMP TABLE fc_lvlk AS
        SELECT s.* FROM fc_lvls s SEMI JOIN (SELECT DISTINCT pkey, src_fd FROM fc_lvld) k
          ON k.pkey = s.pkey AND k.src_fd = s.fd;
        -- the records socket updates can refer to: sockets and closes (an update of a
        -- descriptor that is not a socket fails, so it is never recorded as an update)
        CREATE OR REPLACE TEMP TABLE fc_lvlks AS
        SELECT s.* FROM fc_lvls s SEMI JOIN (SELECT DISTINCT pkey, fd FROM fc_lvlu) k
          ON k.pkey = s.pkey AND k.fd = s.fd
        WHERE s.kind = 'close' OR s.family IS NOT NULL
           OR s.fd_type IN ('ipv4', 'ipv6', 'unix', 'netlink');
        """
    )
    _merge_updates(con)
    for _ in range(8):
        n = con.execute(
            f"""
            INSERT INTO fc_lvlr
            SELECT d.pkey, d.fd, d.ts, 'open', {", ".join(
                "d.cloexec" if a == "cloexec" else f"s.{a}" for a in _ATTRS)},
                   NULL, false, d.ev_tid
            FROM fc_lvld d
            ASOF JOIN (SELECT {_COLS} FROM fc_lvlk UNION ALL SELECT {_COLS} FROM fc_lvlm
                       UNION ALL SELECT {_COLS} FROM fc_lvlr) s
              ON s.pkey = d.pkey AND s.fd = d.src_fd AND d.ts >= s.ts
            WHERE s.kind <> 'close'
              AND NOT EXISTS (SELECT 1 FROM fc_lvlr x WHERE x.pkey = d.pkey AND x.fd = d.fd
                              AND x.ts = d.ts)
            """
        ).fetchone()[0]
        if not n:
            break
        _merge_updates(con)
    # unresolved dups (source unknown) still replace what the number meant before
    con.execute(
        f"""
        CREATE OR REPLACE TEMP VIEW fc_lvlf AS
        SELECT {_COLS} FROM fc_lvls UNION ALL SELECT {_COLS} FROM fc_lvlm
        UNION ALL SELECT {_COLS} FROM fc_lvlr
        UNION ALL SELECT d.pkey, d.fd, d.ts, 'unknown', {", ".join("NULL" for _ in _ATTRS)},
                         NULL, false, d.ev_tid
        FROM fc_lvld d ANTI JOIN fc_lvlr x ON x.pkey = d.pkey AND x.fd = d.fd AND x.ts = d.ts;

        CREATE OR REPLACE TEMP TABLE fc_lvlo AS SELECT coalesce(max(rid), 0) AS o FROM fc_fdrec;
        INSERT INTO fc_fdrec
        SELECT (SELECT o FROM fc_lvlo) + row_number() OVER () AS rid, *
        FROM (SELECT {_COLS}, lead(ts, 1, {2**62}) OVER (PARTITION BY pkey, fd ORDER BY ts) AS te
              FROM fc_lvlf)
        WHERE kind <> 'close';

        -- close-on-exec: a successful exec ends every cloexec descriptor open across it
        UPDATE fc_fdrec SET te = c.ts
        FROM (SELECT r.rid, min(x.ts) AS ts FROM fc_fdrec r
              JOIN fc_execs x ON x.pkey = r.pkey AND r.ts < x.ts AND x.ts < r.te
              WHERE r.rid > (SELECT o FROM fc_lvlo) AND r.cloexec AND r.kind = 'open'
              GROUP BY r.rid) c
        WHERE fc_fdrec.rid = c.rid;
        """
    )


def _merge_updates(con: Any) -> None:
    """``fc_lvlm``: each update merged with the open/dup record it updates.

    Successive updates of the same descriptor (bind then listen) accumulate:
    within one base record, an attribute comes from the latest update that set
    it, else from the base.
    """
    merged = ", ".join(
        f"coalesce(last_value(u.{a} IGNORE NULLS) OVER w, first_value(b.{a}) OVER w) AS {a}"
        for a in _ATTRS
    )
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE fc_lvlm AS
        SELECT u.pkey, u.fd, u.ts,
               CASE WHEN b.kind IS NULL OR b.kind = 'close' THEN 'update' ELSE 'open' END AS kind,
               {merged}, NULL::BIGINT AS src_fd, u.changed, u.ev_tid
        FROM fc_lvlu u
        ASOF LEFT JOIN (SELECT {_COLS} FROM fc_lvlks UNION ALL SELECT {_COLS} FROM fc_lvlr) b
          ON b.pkey = u.pkey AND b.fd = u.fd AND u.ts >= b.ts
        WINDOW w AS (PARTITION BY u.pkey, u.fd, b.ts ORDER BY u.ts
                     ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
        """
    )


def build(con: Any) -> None:
    """Build ``fc_fdrec`` (requires the process tables of :mod:`.processes`)."""
    build_direct(con)
    build_levels(con)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE fc_fdrec AS SELECT 0::BIGINT AS rid, {_COLS}, 0::BIGINT AS te "
        "FROM fc_fdd WHERE false"
    )
    max_depth = con.execute("SELECT coalesce(max(depth), 0) FROM fc_pdepth").fetchone()[0]
    for level in range(max_depth + 1):
        _resolve_level(con, level)
    con.execute(
        "DROP VIEW IF EXISTS fc_lvlf; DROP VIEW IF EXISTS fc_lvls; DROP VIEW IF EXISTS fc_lvl;"
        "DROP TABLE IF EXISTS fc_lvlu; DROP TABLE IF EXISTS fc_inh; DROP TABLE IF EXISTS fc_lvlp;"
        "DROP TABLE IF EXISTS fc_lvld; DROP TABLE IF EXISTS fc_lvlr; DROP TABLE IF EXISTS fc_lvlm;"
        "DROP TABLE IF EXISTS fc_lvlo; DROP TABLE IF EXISTS fc_fdd;"
        "DROP TABLE IF EXISTS fc_lvlk; DROP TABLE IF EXISTS fc_lvlks;"
    )
