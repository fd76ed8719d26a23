"""SQL of the session views, over the ``raw_*`` relations of a capture.

Only ``raw_events``, ``raw_processes``, ``raw_containers``, ``raw_cgroups`` and
``raw_users`` are read (:meth:`fcap.capture.reader.Capture.attach`), so the
views work with or without the enriched ``events`` view. Everything is set
based: the typed lines are few, and the effect joins first cut ``raw_events``
down to the actors' pids and the effect syscalls.

Tables and views created (``fs_*`` are internal):

* ``fs_lines``: the ``shell_line``/``shell_line_withheld`` rows;
* ``sessions`` (view over ``fs_sessions``): one row per interactive shell
  (host, shell pid, terminal);
* ``shell_commands`` (view over ``fs_commands``): one row per command; a line
  ending in a backslash and the line that continues it are one command;
  a command's window runs from its first line to the next command of the same
  shell (or the end of the capture);
* ``shell_effects`` (view over ``fs_effects``): per command, the processes it
  spawned (whole subtree: exec rows), the files it created/wrote/renamed/
  deleted/changed (by the shell itself inside the window, e.g. a builtin's
  redirection, or by any process of the subtree), and the connections it
  opened or accepted.
"""

from __future__ import annotations

TS_MAX = 2**62

#: Placeholder for the event source of the statements after ``LINES``:
#: ``raw_events``, or an empty relation when the capture has no typed lines
#: (so opening a capture without shell input costs no scan).
EVENTS_SOURCE = "@EVENTS@"
FORKS = "('clone', 'clone3', 'fork', 'vfork')"
EXECS = "('execve', 'execveat')"
FILE_SYSCALLS = (
    "('open', 'openat', 'openat2', 'creat', 'rename', 'renameat', 'renameat2', 'unlink', "
    "'unlinkat', 'rmdir', 'mkdir', 'mkdirat', 'link', 'linkat', 'symlink', 'symlinkat', "
    "'chmod', 'fchmodat', 'chown', 'lchown', 'fchownat', 'truncate')"
)
NET_SYSCALLS = "('connect', 'accept', 'accept4', 'bind', 'listen')"

#: Ancestor comm -> how the session was entered (the nearest match wins).
ENTRY_PATTERNS: tuple[tuple[str, str], ...] = (
    ("^sshd", "ssh"),
    ("^sudo$", "sudo"),
    ("^su$", "su"),
    ("^(login|agetty|getty|mingetty)$", "console"),
    ("^(containerd-shim.*|runc.*|crun|conmon|docker-init|kubelet)$", "container exec"),
    ("^(tmux.*|screen)$", "terminal multiplexer"),
    ("^(gnome-terminal.*|xterm|konsole|alacritty|kitty)$", "terminal emulator"),
    ("^(bash|rbash|sh|dash|ash|zsh|ksh|mksh|fish|busybox)$", "shell"),
)

_HOST = "coalesce(host, '')"

LINES = f"""
CREATE OR REPLACE TEMP TABLE fs_lines AS
SELECT {_HOST} AS host_key, host, ts, pid, tid, ppid, vpid, tty, sid, uid, loginuid,
       CAST(comm AS VARCHAR) AS comm, cgroup_id, CAST(container_id AS VARCHAR) AS container_id,
       syscall = 'shell_line_withheld' AS withheld,
       CASE WHEN syscall = 'shell_line' THEN text END AS text, flags_aux
FROM raw_events WHERE syscall IN ('shell_line', 'shell_line_withheld')
"""

SEED = """
CREATE OR REPLACE TEMP TABLE fs_ancestry_seed AS
SELECT DISTINCT host_key, pid, arg_min(ppid, ts) OVER (PARTITION BY host_key, pid) AS ppid
FROM fs_lines
"""

# One row per (host, pid): its latest parent and name, from the snapshot and events.
PARENTS = f"""
CREATE OR REPLACE TEMP TABLE fs_parents AS
SELECT host_key, pid, arg_max(ppid, ts) AS ppid, arg_max(name, ts) AS name
FROM (
    SELECT {_HOST} AS host_key, pid, ppid, comm AS name, coalesce(start_ts, -{TS_MAX}) AS ts
    FROM raw_processes
    UNION ALL
    SELECT {_HOST}, pid, ppid, CAST(comm AS VARCHAR), ts FROM @EVENTS@
    WHERE pid IN (SELECT DISTINCT pid FROM fs_ancestry_seed)
       OR syscall IN {EXECS} OR (syscall IN {FORKS} AND res = 0)
)
WHERE pid IS NOT NULL AND ppid IS NOT NULL
GROUP BY ALL
"""

ANCESTORS = """
CREATE OR REPLACE TEMP TABLE fs_ancestors AS
WITH RECURSIVE a(host_key, start_pid, pid, name, depth) AS (
    SELECT s.host_key, s.pid, s.ppid, p.name, 1
    FROM fs_ancestry_seed s LEFT JOIN fs_parents p ON p.host_key = s.host_key AND p.pid = s.ppid
    UNION ALL
    SELECT a.host_key, a.start_pid, p.ppid, q.name, a.depth + 1
    FROM a JOIN fs_parents p ON p.host_key = a.host_key AND p.pid = a.pid
    LEFT JOIN fs_parents q ON q.host_key = a.host_key AND q.pid = p.ppid
    WHERE a.depth < 64 AND p.ppid IS NOT NULL AND p.ppid > 0 AND p.ppid <> a.pid
)
SELECT * FROM a WHERE name IS NOT NULL
"""

SESSIONS = """
CREATE OR REPLACE TEMP TABLE fs_sessions AS
WITH s AS (
    SELECT host_key, any_value(host) AS host, pid, tty,
           min(ts) AS start_ts, max(ts) AS last_ts,
           arg_min(ppid, ts) AS ppid, arg_min(vpid, ts) AS vpid, arg_min(sid, ts) AS sid,
           arg_min(uid, ts) AS uid, arg_min(loginuid, ts) AS loginuid,
           list(DISTINCT comm) AS shells, arg_min(comm, ts) AS shell,
           arg_min(cgroup_id, ts) AS cgroup_id,
           coalesce(arg_min(container_id, ts), any_value(container_id)) AS raw_cid,
           count(*) FILTER (WHERE NOT withheld) AS lines,
           count(*) FILTER (WHERE withheld) AS withheld_lines
    FROM fs_lines GROUP BY host_key, pid, tty
),
anc AS (
    SELECT s.host_key, s.pid, s.tty, list(a.name ORDER BY a.depth) AS ancestors
    FROM s JOIN fs_ancestors a ON a.host_key = s.host_key AND a.start_pid = s.pid
    GROUP BY ALL
),
cg AS (SELECT id, any_value(container_id) AS container_id FROM raw_cgroups GROUP BY id)
SELECT row_number() OVER (ORDER BY s.start_ts, s.host_key, s.pid) AS session_id,
       s.*, coalesce(anc.ancestors, []) AS ancestors,
       coalesce(s.raw_cid, cg.container_id) AS container_id
FROM s
LEFT JOIN anc USING (host_key, pid, tty)
LEFT JOIN cg ON cg.id = s.cgroup_id
"""

COMMANDS = f"""
CREATE OR REPLACE TEMP TABLE fs_commands AS
WITH l0 AS (
    SELECT s.session_id, l.*,
           -- input to a running command rather than a command: a line read with echo
           -- off, or (in a shell whose commands come from readline) a line the shell
           -- read without readline, i.e. by its `read` builtin
           l.withheld OR ((coalesce(l.flags_aux, 0) & 1) = 0 AND coalesce(bool_or(
               (coalesce(l.flags_aux, 0) & 1) = 1) OVER (PARTITION BY s.session_id, l.comm
               ORDER BY l.ts ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING), false))
               AS is_input
    FROM fs_lines l JOIN fs_sessions s
      ON s.host_key = l.host_key AND s.pid = l.pid AND s.tty IS NOT DISTINCT FROM l.tty
),
l AS (
    SELECT *,
           CASE WHEN is_input AND lag(ts) OVER w IS NOT NULL THEN 0
                WHEN lag(text) OVER w LIKE '%\\' AND NOT lag(is_input) OVER w THEN 0
                ELSE 1 END AS starts
    FROM l0 WINDOW w AS (PARTITION BY session_id ORDER BY ts)
),
g AS (SELECT *, sum(starts) OVER (PARTITION BY session_id ORDER BY ts
                                  ROWS UNBOUNDED PRECEDING) AS command_no FROM l),
c AS (
    SELECT session_id, command_no, any_value(host_key) AS host_key, any_value(host) AS host,
           min(ts) AS ts, coalesce(max(ts) FILTER (WHERE NOT is_input), min(ts)) AS last_line_ts,
           arg_min(pid, ts) AS pid, arg_max(comm, ts) AS comm, arg_max(uid, ts) AS uid,
           bool_and(is_input) AND bool_and(withheld) AS withheld,
           string_agg(text, chr(10) ORDER BY ts) FILTER (WHERE NOT is_input) AS line,
           list({{'ts': ts, 'text': text, 'withheld': withheld}} ORDER BY ts)
               FILTER (WHERE is_input AND NOT (starts = 1)) AS inputs,
           count(*) FILTER (WHERE NOT is_input) AS n_lines,
           bit_or(coalesce(flags_aux, 0)) AS flags
    FROM g GROUP BY session_id, command_no
)
SELECT c.* REPLACE (CAST(c.command_no AS BIGINT) AS command_no,
                    coalesce(c.inputs, []) AS inputs),
       coalesce(lead(ts) OVER (PARTITION BY session_id ORDER BY ts), {TS_MAX}) AS end_ts
FROM c
"""

# Fork edges from the child side of fork/clone (host pids, unlike the parent's res).
SUBTREE = f"""
CREATE OR REPLACE TEMP TABLE fs_subtree AS
WITH RECURSIVE forks AS (
    SELECT {_HOST} AS host_key, ppid AS parent, pid AS child, ts
    FROM @EVENTS@ WHERE syscall IN {FORKS} AND res = 0 AND pid = tid
),
sub(session_id, command_no, host_key, pid, ppid, ts, depth) AS (
    SELECT c.session_id, c.command_no, c.host_key, f.child, f.parent, f.ts, 1
    FROM fs_commands c JOIN forks f
      ON f.host_key = c.host_key AND f.parent = c.pid AND f.ts >= c.last_line_ts
     AND f.ts < c.end_ts
    UNION ALL
    SELECT s.session_id, s.command_no, s.host_key, f.child, f.parent, f.ts, s.depth + 1
    FROM sub s JOIN forks f ON f.host_key = s.host_key AND f.parent = s.pid AND f.ts >= s.ts
    WHERE s.depth < 64
)
SELECT DISTINCT * FROM sub
"""

# An actor's window also ends when its process exits (a later process may reuse the pid).
ACTORS = f"""
CREATE OR REPLACE TEMP TABLE fs_actors AS
WITH a AS (
    SELECT session_id, command_no, host_key, pid, last_line_ts AS from_ts, end_ts AS to_ts,
           0 AS depth
    FROM fs_commands
    UNION ALL
    SELECT session_id, command_no, host_key, pid, min(ts), {TS_MAX}, min(depth)
    FROM fs_subtree GROUP BY ALL
),
exits AS (
    SELECT {_HOST} AS host_key, pid, ts FROM @EVENTS@
    WHERE syscall = 'procexit' AND pid = tid AND pid IN (SELECT DISTINCT pid FROM a)
)
SELECT a.session_id, a.command_no, a.host_key, a.pid, a.from_ts,
       least(a.to_ts, coalesce(min(x.ts), {TS_MAX}) + 1) AS to_ts, a.depth
FROM a LEFT JOIN exits x ON x.host_key = a.host_key AND x.pid = a.pid AND x.ts >= a.from_ts
GROUP BY a.session_id, a.command_no, a.host_key, a.pid, a.from_ts, a.to_ts, a.depth
"""

_OPEN_FLAGS = (
    "CASE syscall WHEN 'openat' THEN a2 WHEN 'open' THEN a1 WHEN 'openat2' THEN flags_aux "
    "WHEN 'creat' THEN 577 END"
)

EFFECTS = f"""
CREATE OR REPLACE TEMP TABLE fs_effects AS
WITH r AS (
    SELECT {_HOST} AS host_key, ts, pid, tid, CAST(comm AS VARCHAR) AS comm,
           CAST(syscall AS VARCHAR) AS syscall, res, {_OPEN_FLAGS} AS open_flags,
           CAST(path AS VARCHAR) AS path, CAST(path2 AS VARCHAR) AS path2,
           CAST(exe AS VARCHAR) AS exe, argv, sock_family, CAST(laddr AS VARCHAR) AS laddr,
           lport, CAST(raddr AS VARCHAR) AS raddr, rport, CAST(unix_path AS VARCHAR) AS unix_path
    FROM @EVENTS@
    WHERE pid IN (SELECT DISTINCT pid FROM fs_actors)
      AND (syscall IN {EXECS} OR syscall IN {FILE_SYSCALLS} OR syscall IN {NET_SYSCALLS})
),
hit AS (
    SELECT a.session_id, a.command_no, a.depth, r.*
    FROM r JOIN fs_actors a
      ON a.host_key = r.host_key AND a.pid = r.pid AND r.ts >= a.from_ts AND r.ts < a.to_ts
)
SELECT session_id, command_no, ts, pid, comm, syscall, depth,
       CASE WHEN syscall IN {EXECS} THEN 'process'
            WHEN syscall IN {NET_SYSCALLS} THEN 'network' ELSE 'file' END AS kind,
       CASE WHEN syscall IN {EXECS} THEN exe
            WHEN syscall IN {NET_SYSCALLS} THEN coalesce(unix_path, raddr, laddr)
            ELSE path END AS target,
       CASE WHEN syscall IN {EXECS} THEN array_to_string(argv, ' ')
            WHEN syscall IN ('connect', 'accept', 'accept4') AND raddr IS NOT NULL
                 THEN raddr || ':' || rport
            WHEN syscall IN ('bind', 'listen') AND laddr IS NOT NULL THEN laddr || ':' || lport
            WHEN syscall IN {NET_SYSCALLS} THEN unix_path
            WHEN path2 IS NOT NULL THEN path || ' -> ' || path2
            ELSE path END AS detail,
       open_flags, res
FROM hit
WHERE (syscall IN {EXECS} AND res = 0)
   OR (syscall IN {NET_SYSCALLS} AND (res >= 0 OR syscall = 'connect'))
   OR (syscall IN {FILE_SYSCALLS} AND res >= 0
       AND (syscall NOT IN ('open', 'openat', 'openat2')
            OR (open_flags & 3) <> 0 OR (open_flags & 576) <> 0))
"""

def entry_sql() -> str:
    """``fs_sessions_named``: sessions plus ``entered_via`` (nearest matching ancestor)."""
    values = ", ".join(
        f"('{p}', '{v}', {1 if v == 'shell' else 64})" for p, v in ENTRY_PATTERNS
    )  # a parent shell counts only as the direct parent
    return f"""
CREATE OR REPLACE TEMP TABLE fs_sessions_named AS
WITH pat(pattern, via, max_depth) AS (VALUES {values}),
m AS (
    SELECT a.host_key, a.start_pid AS pid, arg_min(pat.via, a.depth) AS via
    FROM fs_ancestors a
    JOIN pat ON regexp_matches(a.name, pat.pattern) AND a.depth <= pat.max_depth
    GROUP BY ALL
)
SELECT s.*,
       CASE WHEN s.container_id IS NOT NULL AND coalesce(m.via, '') NOT IN ('su', 'sudo')
            THEN CASE WHEN s.vpid = 1 THEN 'container console' ELSE 'container exec' END
            ELSE coalesce(m.via, 'terminal') END AS entered_via
FROM fs_sessions s LEFT JOIN m USING (host_key, pid)
"""


VIEWS = """
CREATE OR REPLACE TEMP VIEW sessions AS
SELECT s.session_id, s.host, s.pid AS shell_pid, s.shell, s.shells, s.tty, s.sid,
       make_timestamp_ns(s.start_ts) AS start_time, s.start_ts, s.last_ts,
       s.uid, coalesce(uc.name, uh.name) AS user_name, s.loginuid,
       CASE WHEN s.loginuid = 4294967295 THEN NULL ELSE ul.name END AS login_user_name,
       s.container_id, c.name AS container_name, c.image AS container_image,
       c.pod_name AS k8s_pod_name, c.pod_namespace AS k8s_ns_name,
       s.entered_via, s.ancestors, s.lines, s.withheld_lines,
       (SELECT count(*) FROM fs_commands fc WHERE fc.session_id = s.session_id) AS commands
FROM fs_sessions_named s
LEFT JOIN (SELECT id, any_value(name) AS name, any_value(image) AS image,
                  any_value(pod_name) AS pod_name, any_value(pod_namespace) AS pod_namespace
           FROM raw_containers GROUP BY id) c ON c.id = s.container_id
LEFT JOIN (SELECT uid, container_id, min(name) AS name FROM raw_users GROUP BY ALL) uc
       ON uc.uid = s.uid AND uc.container_id = s.container_id
LEFT JOIN (SELECT uid, min(name) AS name FROM raw_users WHERE container_id IS NULL
           GROUP BY ALL) uh ON uh.uid = s.uid
LEFT JOIN (SELECT uid, min(name) AS name FROM raw_users WHERE container_id IS NULL
           GROUP BY ALL) ul ON ul.uid = s.loginuid;

CREATE OR REPLACE TEMP VIEW shell_commands AS
SELECT c.session_id, c.command_no, c.host, c.pid AS shell_pid, c.comm AS shell,
       make_timestamp_ns(c.ts) AS time, c.ts, CASE WHEN c.end_ts >= 4611686018427387904
       THEN NULL ELSE c.end_ts END AS end_ts, c.line, c.withheld, c.inputs, c.n_lines, c.flags,
       s.user_name, s.container_id, s.container_name, s.k8s_pod_name, s.k8s_ns_name, s.tty,
       (SELECT count(*) FROM fs_effects e WHERE e.session_id = c.session_id
          AND e.command_no = c.command_no AND e.kind = 'process') AS processes,
       (SELECT count(*) FROM fs_effects e WHERE e.session_id = c.session_id
          AND e.command_no = c.command_no AND e.kind = 'file') AS file_changes,
       (SELECT count(*) FROM fs_effects e WHERE e.session_id = c.session_id
          AND e.command_no = c.command_no AND e.kind = 'network') AS connections
FROM fs_commands c JOIN sessions s USING (session_id);

CREATE OR REPLACE TEMP VIEW shell_effects AS
SELECT session_id, command_no, make_timestamp_ns(ts) AS time, ts, pid, comm, kind, syscall,
       target, detail, open_flags, res, depth
FROM fs_effects
"""
