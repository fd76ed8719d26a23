"""Create the hunting views of :mod:`fcap.analyze.hunt.contract` in a DuckDB connection.

Input: a connection holding a capture's ``raw_*`` relations (created by
:meth:`fcap.capture.reader.Capture.attach`) and, normally, the enriched
``events`` view (created by :func:`fcap.analyze.enrich.build`).

The derived views read ``raw_events`` directly (the capture-format contract of
:mod:`fcap.schema`), so a hunt over ``file_events`` scans only the columns and
row groups it needs instead of the whole enriched relation. The only things
materialized are small: the lifecycle rows (exec, fork/clone, exit), from
which ``process_events`` reads and the table of process images (one row per
snapshot process, exec and fork) is built, and that table, which the other
views join (hash join on host and pid, then the image's time range) to give
each event its process's executable and command line. The other events stay
in the Parquet files.
"""

from __future__ import annotations

import re
import warnings

import duckdb
from fcap.analyze.hunt.contract import VIEWS_VERSION

#: Internal tables (not part of the contract; names may change).
IMAGES = "_fcap_images"
UNAMES = "_fcap_usernames"
LIFECYCLE = "_fcap_lifecycle"

_CLONES = "('clone', 'clone3', 'fork', 'vfork')"
_EXECS = "('execve', 'execveat')"

_SHORT_CID = "coalesce(left({0}, 12), 'host')"

#: User names, one lookup per event: the host's passwd (cid ''), each container's own passwd,
#: and for a container whose passwd the capture lacks, the host's entries.
_USER_JOIN = f"""
LEFT JOIN {UNAMES} un ON un.host = {{a}}.host AND un.uid = {{a}}.uid
    AND un.cid = coalesce({{a}}.container_id, '')"""

_UNAMES_SQL = f"""
CREATE OR REPLACE TEMP TABLE {UNAMES} AS
WITH u AS (SELECT host, uid, coalesce(container_id, '') AS cid, min(name) AS name
           FROM raw_users GROUP BY ALL),
bare AS (SELECT DISTINCT c.host, c.id AS cid FROM raw_containers c
         WHERE NOT EXISTS (SELECT 1 FROM u WHERE u.host = c.host AND u.cid = c.id))
SELECT * FROM u
UNION ALL
SELECT b.host, u.uid, b.cid, u.name FROM bare b JOIN u ON u.host = b.host AND u.cid = ''
"""

#: Lifecycle rows (exec, fork, exit) read once at open: the process images are built from them.
_LIFECYCLE_SQL = f"""
CREATE OR REPLACE TEMP TABLE {LIFECYCLE} AS
SELECT host, ts, pid, tid, ppid, vpid, sid, comm, exe, argv, cwd, uid, loginuid, tty,
       container_id, syscall, res
FROM raw_events
WHERE syscall IN ('execve', 'execveat', 'procexit', 'clone', 'clone3', 'fork', 'vfork')
"""

_IMAGES_SQL = f"""
CREATE OR REPLACE TEMP TABLE {IMAGES} AS
WITH base AS (
    SELECT host, pid, ppid, vpid, sid, comm AS name, coalesce(exepath, exe) AS exepath, argv,
           cwd, uid, loginuid, tty, container_id, start_ts, 'snapshot' AS source, 0 AS src_order
    FROM raw_processes
    UNION ALL
    SELECT host, pid, ppid, vpid, sid, comm, exe, argv, cwd, uid, loginuid, tty,
           container_id, ts, 'exec', 2
    FROM {LIFECYCLE} WHERE syscall IN {_EXECS} AND res = 0
    UNION ALL
    SELECT host, pid, ppid, vpid, sid, comm, exe, argv, cwd, uid, loginuid, tty,
           container_id, ts, 'fork', 1
    FROM {LIFECYCLE} WHERE syscall IN {_CLONES} AND res = 0 AND pid = tid
),
forks_filled AS (
    -- a forked child runs its parent's image until it execs: take exe/argv/cwd from it
    SELECT b.host, b.pid, b.ppid, b.vpid, b.sid, b.name,
           coalesce(b.exepath, p.exepath) AS exepath, coalesce(b.argv, p.argv) AS argv,
           coalesce(b.cwd, p.cwd) AS cwd, b.uid, b.loginuid, b.tty, b.container_id,
           b.start_ts, b.source, b.src_order
    FROM (SELECT * FROM base WHERE source = 'fork') b
    ASOF LEFT JOIN (SELECT * FROM base WHERE source <> 'fork') p
        ON b.host = p.host AND b.ppid = p.pid AND b.start_ts >= p.start_ts
),
imgs AS (
    SELECT * FROM base WHERE source <> 'fork'
    UNION ALL
    SELECT * FROM forks_filled
),
numbered AS (
    SELECT *,
           row_number() OVER (ORDER BY host, start_ts NULLS FIRST, src_order, pid) AS image_id,
           lead(start_ts) OVER (PARTITION BY host, pid ORDER BY start_ts NULLS FIRST, src_order)
               AS next_start
    FROM imgs
),
exits AS (
    SELECT x.host, x.pid, x.ts, x.res, n.image_id
    FROM (SELECT host, pid, ts, res FROM {LIFECYCLE} WHERE syscall = 'procexit' AND pid = tid) x
    ASOF JOIN numbered n ON x.host = n.host AND x.pid = n.pid AND x.ts >= n.start_ts
),
ended AS (
    SELECT n.*,
           CASE WHEN x.ts IS NOT NULL AND (n.next_start IS NULL OR x.ts <= n.next_start)
                THEN x.ts ELSE n.next_start END AS end_ts,
           CASE WHEN x.ts IS NOT NULL AND (n.next_start IS NULL OR x.ts <= n.next_start)
                THEN x.res END AS exit_code
    FROM numbered n LEFT JOIN exits x ON x.image_id = n.image_id
),
parented AS (
    SELECT c.*, p.image_id AS parent_image_id
    FROM ended c
    ASOF LEFT JOIN (SELECT host, pid, start_ts, image_id FROM numbered) p
        ON c.host = p.host AND c.ppid = p.pid AND c.start_ts >= p.start_ts
)
SELECT * EXCLUDE (src_order, next_start),
       coalesce(next_start, 9223372036854775807) AS until_ts  -- for the event -> image join
FROM parented
"""

_CHAIN_SQL = f"""
CREATE OR REPLACE TEMP TABLE _fcap_chain AS
WITH RECURSIVE chain(image_id, depth, anc_id) AS (
    SELECT image_id, 1, parent_image_id FROM {IMAGES} WHERE parent_image_id IS NOT NULL
    UNION ALL
    SELECT c.image_id, c.depth + 1, i.parent_image_id
    FROM chain c JOIN {IMAGES} i ON i.image_id = c.anc_id
    WHERE i.parent_image_id IS NOT NULL AND c.depth < 64
)
SELECT c.image_id,
       list(a.pid ORDER BY c.depth) AS ancestor_pids,
       list(a.name ORDER BY c.depth) AS ancestor_names
FROM chain c JOIN {IMAGES} a ON a.image_id = c.anc_id
GROUP BY c.image_id
"""

_CMDLINE = "CASE WHEN len({a}) > 1 THEN {n} || ' ' || array_to_string({a}[2:], ' ') ELSE {n} END"

_PROCESSES_SQL = f"""
CREATE OR REPLACE TEMP VIEW processes AS
SELECT i.host, i.image_id, i.pid, i.ppid, i.vpid, i.sid, i.name, i.exepath, i.argv,
       {_CMDLINE.format(a="i.argv", n="i.name")} AS cmdline,
       i.cwd, i.uid, un.name AS user_name, i.loginuid, i.tty,
       {_SHORT_CID.format("i.container_id")} AS container_id,
       i.start_ts, i.end_ts, make_timestamp_ns(i.start_ts) AS start_time,
       CAST(i.exit_code AS BIGINT) AS exit_code, i.source, i.parent_image_id,
       coalesce(ch.ancestor_pids, []::INTEGER[]) AS ancestor_pids,
       coalesce(ch.ancestor_names, []::VARCHAR[]) AS ancestor_names
FROM {IMAGES} i
LEFT JOIN _fcap_chain ch ON ch.image_id = i.image_id
{_USER_JOIN.format(a="i")}
"""

#: Columns every per-event view ends with (the acting process), over alias r and image p.
_ACTOR_SQL = f"""
       r.pid AS proc_pid, r.tid AS thread_tid, r.ppid AS proc_ppid, r.comm AS proc_name,
       p.exepath AS proc_exepath, {_CMDLINE.format(a="p.argv", n="r.comm")} AS proc_cmdline,
       r.uid AS user_uid, un.name AS user_name,
       {_SHORT_CID.format("r.container_id")} AS container_id, p.image_id"""

#: Event -> process image: a hash join on (host, pid) with the image's time range; faster
#: than an ASOF join on large inputs because a pid has only a few images.
_IMAGE_JOIN = f"""
LEFT JOIN (SELECT host, pid, start_ts, until_ts, image_id, exepath, argv FROM {IMAGES}) p
    ON r.host = p.host AND r.pid = p.pid AND r.ts < p.until_ts
   AND r.ts >= coalesce(p.start_ts, -9223372036854775807)"""

_PROCESS_EVENTS_SQL = f"""
CREATE OR REPLACE TEMP VIEW process_events AS
SELECT r.host, r.ts, make_timestamp_ns(r.ts) AS time, r.syscall AS evt_type,
       CASE WHEN r.syscall = 'procexit' THEN 'exit'
            WHEN r.syscall IN {_EXECS} THEN 'exec' ELSE 'fork' END AS kind,
       r.pid, r.tid, r.ppid, r.comm AS name,
       CASE WHEN r.syscall IN {_EXECS} THEN coalesce(r.exe, p.exepath) ELSE p.exepath END AS exepath,
       CASE WHEN r.syscall IN {_EXECS} THEN r.argv ELSE p.argv END AS argv,
       CASE WHEN r.syscall IN {_EXECS}
            THEN {_CMDLINE.format(a="r.argv", n="r.comm")}
            ELSE {_CMDLINE.format(a="p.argv", n="r.comm")} END AS cmdline,
       r.cwd, r.uid, un.name AS user_name, r.loginuid, r.tty,
       {_SHORT_CID.format("r.container_id")} AS container_id,
       r.res, r.res < 0 AS failed,
       CASE WHEN r.syscall = 'procexit' THEN r.res END AS exit_code,
       p.image_id
FROM (SELECT * FROM {LIFECYCLE}
      WHERE syscall IN {_EXECS} OR syscall = 'procexit'
         OR (syscall IN {_CLONES} AND res = 0)) r
{_IMAGE_JOIN}
{_USER_JOIN.format(a="r")}
"""

_O_CREAT = 0o100
_O_ACCMODE = 3
_FILE_SYSCALLS = {
    "open": "open", "openat": "open", "openat2": "open", "creat": "open",
    "rename": "rename", "renameat": "rename", "renameat2": "rename",
    "unlink": "unlink", "unlinkat": "unlink", "rmdir": "rmdir",
    "mkdir": "mkdir", "mkdirat": "mkdir", "link": "link", "linkat": "link",
    "symlink": "symlink", "symlinkat": "symlink",
    "chmod": "chmod", "fchmod": "chmod", "fchmodat": "chmod",
    "chown": "chown", "lchown": "chown", "fchown": "chown", "fchownat": "chown",
}  # fmt: skip
_FILE_LIST = "(" + ", ".join(f"'{s}'" for s in _FILE_SYSCALLS) + ")"
_OPENS = "('open', 'openat', 'openat2', 'creat')"
#: op by groups of syscalls (a CASE of IN lists: cheap enough to run inside the scan)
_OP_CASE = "CASE " + " ".join(
    "WHEN syscall IN (" + ", ".join(f"'{s}'" for s, o in _FILE_SYSCALLS.items() if o == op)
    + f") THEN '{op}'"
    for op in dict.fromkeys(_FILE_SYSCALLS.values())
) + " END"

_FILE_EVENTS_SQL = f"""
CREATE OR REPLACE TEMP VIEW file_events AS
SELECT r.host, r.ts, make_timestamp_ns(r.ts) AS time, r.syscall AS evt_type,
       CASE WHEN r.syscall = 'unlinkat' AND (r.a2 & 512) <> 0 THEN 'rmdir' ELSE r.op END AS op,
       r.path, r.path2, r.fd, r.oflags AS flags, r.fmode AS mode,
       CASE WHEN r.syscall NOT IN {_OPENS} THEN NULL
            WHEN (r.oflags & {_O_ACCMODE}) = 0 THEN 'r'
            WHEN (r.oflags & {_O_ACCMODE}) = 1 THEN 'w' ELSE 'rw' END AS access,
       coalesce(r.syscall IN {_OPENS} AND (r.oflags & {_O_ACCMODE}) IN (0, 2), false) AS is_read,
       coalesce(r.syscall IN {_OPENS} AND (r.oflags & {_O_ACCMODE}) IN (1, 2), false) AS is_write,
       coalesce(r.syscall IN {_OPENS} AND (r.oflags & {_O_CREAT}) <> 0, false) AS is_create,
       r.res, r.res < 0 AS failed,{_ACTOR_SQL}
FROM (SELECT *, {_OP_CASE} AS op,
             CASE syscall WHEN 'open' THEN a1 WHEN 'openat' THEN a2 WHEN 'openat2' THEN flags_aux
                          WHEN 'creat' THEN 577 END AS oflags,
             CASE syscall WHEN 'open' THEN a2 WHEN 'openat' THEN a3 WHEN 'creat' THEN a1
                          WHEN 'chmod' THEN a1 WHEN 'fchmod' THEN a1 WHEN 'fchmodat' THEN a2
                          WHEN 'mkdir' THEN a1 WHEN 'mkdirat' THEN a2 END AS fmode
      FROM raw_events WHERE syscall IN {_FILE_LIST}) r
{_IMAGE_JOIN}
{_USER_JOIN.format(a="r")}
"""

_SOCKET_EVENTS_SQL = f"""
CREATE OR REPLACE TEMP VIEW socket_events AS
SELECT r.host, r.ts, make_timestamp_ns(r.ts) AS time, r.syscall AS evt_type,
       CASE WHEN r.syscall IN ('connect', 'sendto', 'sendmsg') THEN 'out'
            WHEN r.syscall IN ('bind', 'listen') THEN 'local' ELSE 'in' END AS direction,
       r.fd,
       CASE r.sock_family WHEN 2 THEN 'ipv4' WHEN 10 THEN 'ipv6' WHEN 1 THEN 'unix'
            WHEN 16 THEN 'netlink' ELSE CAST(r.sock_family AS VARCHAR) END AS family,
       CASE r.l4proto WHEN 6 THEN 'tcp' WHEN 17 THEN 'udp' WHEN 1 THEN 'icmp'
            WHEN 58 THEN 'icmp' WHEN 255 THEN 'raw' END AS l4proto,
       r.laddr, r.lport, r.raddr, r.rport, r.unix_path,
       r.res, r.res < 0 AS failed,{_ACTOR_SQL}
FROM (SELECT * FROM raw_events
      WHERE syscall IN ('connect', 'accept', 'accept4', 'bind', 'listen')
         OR (syscall IN ('sendto', 'sendmsg', 'recvfrom', 'recvmsg')
             AND (raddr IS NOT NULL OR unix_path IS NOT NULL))) r
{_IMAGE_JOIN}
{_USER_JOIN.format(a="r")}
"""

_CONTAINERS_SQL = """
CREATE OR REPLACE TEMP VIEW containers AS
SELECT host, left(id, 12) AS container_id, id AS container_full_id, name AS container_name,
       image AS container_image,
       regexp_replace(regexp_replace(image, '@.*$', ''), ':[^:/]*$', '') AS container_image_repository,
       CASE WHEN regexp_matches(regexp_replace(image, '@.*$', ''), ':[^:/]*$')
            THEN regexp_extract(regexp_replace(image, '@.*$', ''), ':([^:/]*)$', 1) END
           AS container_image_tag,
       type AS container_type, privileged AS container_privileged, start_ts AS container_start_ts,
       pod_name AS k8s_pod_name, pod_namespace AS k8s_ns_name, pod_uid AS k8s_pod_uid,
       runtime, pid AS init_pid, labels
FROM raw_containers
"""

_USERS_SQL = f"""
CREATE OR REPLACE TEMP VIEW users AS
SELECT host, uid, name AS user_name, gid, home, shell,
       {_SHORT_CID.format("container_id")} AS container_id
FROM raw_users
"""

_SHELL_COMMANDS_SQL = f"""
CREATE OR REPLACE TEMP VIEW shell_commands AS
SELECT r.host, r.ts, make_timestamp_ns(r.ts) AS time, r.pid AS shell_pid, r.tty,
       CASE WHEN r.syscall = 'shell_line' THEN r.text END AS line,
       r.syscall = 'shell_line_withheld' AS withheld,
       un.name AS user_name,
       {_SHORT_CID.format("r.container_id")} AS container_id
FROM (SELECT * FROM raw_events WHERE syscall IN ('shell_line', 'shell_line_withheld')) r
{_USER_JOIN.format(a="r")}
"""


def _normalize_container_ids(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Re-expose ``view`` with ``container_id`` as the contract has it (12 chars or ``host``)."""
    row = con.execute(
        "SELECT sql FROM duckdb_views() WHERE view_name = ? AND temporary", [view]
    ).fetchall()
    if not row:
        return
    cols = [r[0] for r in con.execute(f"DESCRIBE {view}").fetchall()]
    if "container_id" not in cols:
        return
    body = re.sub(r"^\s*CREATE\s+(OR\s+REPLACE\s+)?(TEMP|TEMPORARY)?\s*VIEW\s+\S+\s+AS\s+", "",
                  row[0][0], flags=re.IGNORECASE)
    src = f"_fcap_src_{view}"
    con.execute(f"CREATE OR REPLACE TEMP VIEW {src} AS {body.rstrip().rstrip(';')}")
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW {view} AS SELECT * REPLACE "
        f"({_SHORT_CID.format('container_id')} AS container_id) FROM {src}"
    )


def _shell_module_views(con: duckdb.DuckDBPyConnection) -> bool:
    """Let the shell-session module define ``shell_commands``/``sessions`` if it is installed."""
    try:
        from fcap.analyze import sessions  # type: ignore[attr-defined]
    except ImportError:
        return False
    fn = getattr(sessions, "create_views", None)
    if not callable(fn):
        return False
    try:
        fn(con)
        for view in ("shell_commands", "sessions", "shell_effects"):
            _normalize_container_ids(con, view)
    except duckdb.Error as err:  # keep the basic view; say why
        warnings.warn(f"shell_commands: the sessions module failed ({err})", stacklevel=3)
        return False
    return True


def create_views(con: duckdb.DuckDBPyConnection, *, shell_module: bool = True) -> None:
    """Create every view of the contract (except ``events`` and ``alerts``) in ``con``.

    ``con`` must hold the ``raw_*`` relations of a capture. Materializes only the
    process-image table; all event views stay lazy over the Parquet data.
    """
    con.execute(_UNAMES_SQL)
    con.execute(_LIFECYCLE_SQL)
    con.execute(_IMAGES_SQL)
    con.execute(_CHAIN_SQL)
    for sql in (
        _PROCESSES_SQL,
        _PROCESS_EVENTS_SQL,
        _FILE_EVENTS_SQL,
        _SOCKET_EVENTS_SQL,
        _CONTAINERS_SQL,
        _USERS_SQL,
    ):
        con.execute(sql)
    if not (shell_module and _shell_module_views(con)):
        con.execute(_SHELL_COMMANDS_SQL)


def views_version() -> str:
    """The contract version of the views this module creates."""
    return VIEWS_VERSION
