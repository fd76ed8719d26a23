"""The hunting views as one documented, versioned contract.

Every view fcap creates for SQL hunting is described here: its name, what one
row is, and each column with its DuckDB type and meaning. The SQL in
:mod:`fcap.analyze.hunt.views` must produce exactly these columns (a test
compares them with ``DESCRIBE``), and the contract section of
``docs/hunting.md`` is generated from this module by :func:`render_markdown`
(a test checks that the doc holds the current text), so code, docs and tests
cannot drift apart.

Versioning: :data:`VIEWS_VERSION` is ``MAJOR.MINOR``. Adding a view or a
column bumps MINOR; renaming or removing one, or changing a column's type or
meaning, bumps MAJOR. Queries written against ``1.x`` keep working on any
later ``1.y``.

Naming: columns that mean what a Falco field means use the field's name in
snake_case (``proc.name`` -> ``proc_name``, ``k8s.ns.name`` -> ``k8s_ns_name``),
with Falco's conventions (``container_id`` is the 12-character short id, or
``host`` outside containers). Columns about the object of an event (a path, an
address) use plain names. Times are ``ts`` (BIGINT, ns since the epoch, UTC,
exact) plus ``time`` (TIMESTAMP_NS, for reading).
"""

from __future__ import annotations

from dataclasses import dataclass

#: Version of the view contract below (see the module docstring for the rules).
VIEWS_VERSION = "1.0"


@dataclass(frozen=True)
class Column:
    """One column of a view: its name, DuckDB type (as ``DESCRIBE`` spells it) and meaning."""

    name: str
    type: str
    doc: str


@dataclass(frozen=True)
class View:
    """A hunting view: name, what one row is, its columns, and when it exists."""

    name: str
    row: str
    columns: tuple[Column, ...]
    available: str = "always"

    def column_names(self) -> tuple[str, ...]:
        """The column names in order."""
        return tuple(c.name for c in self.columns)


def _c(name: str, type_: str, doc: str) -> Column:
    return Column(name, type_, doc)


_HOST = _c("host", "VARCHAR", "host the capture was recorded on (hostname, or the `host=` folder)")
_TS = _c("ts", "BIGINT", "event time, ns since the epoch (UTC), exact")
_TIME = _c("time", "TIMESTAMP_NS", "the same instant as a timestamp (UTC)")
_ACTOR = (
    _c("proc_pid", "INTEGER", "proc.pid: thread group id of the acting process (host pid namespace)"),
    _c("thread_tid", "INTEGER", "thread.tid: the acting thread"),
    _c("proc_ppid", "INTEGER", "proc.ppid: its parent's pid at the event"),
    _c("proc_name", "VARCHAR", "proc.name: the process's comm at the event"),
    _c("proc_exepath", "VARCHAR", "proc.exepath: executable of the process image the event ran in"),
    _c("proc_cmdline", "VARCHAR", "proc.cmdline: name and arguments of that image"),
    _c("user_uid", "UINTEGER", "user.uid: real uid"),
    _c("user_name", "VARCHAR", "user.name: from the capture's users (the container's own passwd inside a container)"),
    _c("container_id", "VARCHAR", "container.id: 12-character id, or `host`"),
    _c("image_id", "BIGINT", "the `processes.image_id` of the process image the event ran in"),
)

EVENTS = View(
    "events",
    "one syscall (or fcap pseudo-event) with every Falco field as a column",
    (
        _c("evt_num", "BIGINT", "evt.num: unique, in time order"),
        _c("ts", "BIGINT", "evt.rawtime: ns since the epoch"),
        _c("evt_type", "VARCHAR", "evt.type: syscall name, `procexit`, `shell_line` ..."),
        _c("proc_name", "VARCHAR", "proc.name"),
        _c("proc_cmdline", "VARCHAR", "proc.cmdline"),
        _c("fd_name", "VARCHAR", "fd.name"),
        _c("user_name", "VARCHAR", "user.name"),
        _c("container_id", "VARCHAR", "container.id"),
        _c("k8s_pod_name", "VARCHAR", "k8s.pod.name"),
    ),
    available="always; built by fcap.analyze.enrich, every column is listed in docs/fields.md "
    "(only the columns below are shown here; their types are the catalog's)",
)

PROCESSES = View(
    "processes",
    "one process image: a process alive when recording started (`snapshot`), an exec (`exec`), "
    "or a forked child that has not exec'd yet (`fork`)",
    (
        _HOST,
        _c("image_id", "BIGINT", "identifier of this image, unique within the opened captures"),
        _c("pid", "INTEGER", "process id (host pid namespace)"),
        _c("ppid", "INTEGER", "parent pid when the image started"),
        _c("vpid", "INTEGER", "pid inside the process's pid namespace"),
        _c("sid", "INTEGER", "session id"),
        _c("name", "VARCHAR", "comm (Falco proc.name)"),
        _c("exepath", "VARCHAR", "executable path (Falco proc.exepath)"),
        _c("argv", "VARCHAR[]", "arguments including argv[0]"),
        _c("cmdline", "VARCHAR", "name and arguments (Falco proc.cmdline)"),
        _c("cwd", "VARCHAR", "working directory at the start of the image"),
        _c("uid", "UINTEGER", "real uid"),
        _c("user_name", "VARCHAR", "user name of uid"),
        _c("loginuid", "UINTEGER", "audit login uid (4294967295: unset)"),
        _c("tty", "UINTEGER", "controlling tty device number, 0 = none"),
        _c("container_id", "VARCHAR", "12-character container id, or `host`"),
        _c("start_ts", "BIGINT", "image start, ns since the epoch (snapshot: the process start time)"),
        _c("end_ts", "BIGINT", "image end (next exec of the pid, or its exit); null if still running"),
        _c("start_time", "TIMESTAMP_NS", "start_ts as a timestamp"),
        _c("exit_code", "BIGINT", "exit status recorded by procexit; null when the image exec'd or still runs"),
        _c("source", "VARCHAR", "`snapshot`, `exec` or `fork`"),
        _c("parent_image_id", "BIGINT", "image_id of the parent process's image when this one started"),
        _c("ancestor_pids", "INTEGER[]", "pids of the parent chain, parent first"),
        _c("ancestor_names", "VARCHAR[]", "names of the parent chain, parent first (Falco proc.aname[1..])"),
    ),
)

PROCESS_EVENTS = View(
    "process_events",
    "one exec (successful or failed), fork/clone (child side) or process exit",
    (
        _HOST,
        _TS,
        _TIME,
        _c("evt_type", "VARCHAR", "execve, execveat, clone, clone3, fork, vfork, procexit"),
        _c("kind", "VARCHAR", "`exec`, `fork` or `exit`"),
        _c("pid", "INTEGER", "process id"),
        _c("tid", "INTEGER", "thread id (differs from pid for a new thread)"),
        _c("ppid", "INTEGER", "parent pid"),
        _c("name", "VARCHAR", "comm after the event"),
        _c("exepath", "VARCHAR", "exec: the new executable"),
        _c("argv", "VARCHAR[]", "exec: the new argv"),
        _c("cmdline", "VARCHAR", "exec: name and arguments"),
        _c("cwd", "VARCHAR", "working directory when known"),
        _c("uid", "UINTEGER", "real uid"),
        _c("user_name", "VARCHAR", "user name of uid"),
        _c("loginuid", "UINTEGER", "audit login uid"),
        _c("tty", "UINTEGER", "controlling tty, 0 = none"),
        _c("container_id", "VARCHAR", "12-character container id, or `host`"),
        _c("res", "BIGINT", "return value (negative errno on failure)"),
        _c("failed", "BOOLEAN", "res < 0"),
        _c("exit_code", "BIGINT", "procexit: the exit status"),
        _c("image_id", "BIGINT", "the process image after the event"),
    ),
)

FILE_EVENTS = View(
    "file_events",
    "one file-system syscall: open/openat/openat2/creat, rename, unlink, mkdir, rmdir, link, "
    "symlink, chmod, chown",
    (
        _HOST,
        _TS,
        _TIME,
        _c("evt_type", "VARCHAR", "the syscall"),
        _c("op", "VARCHAR", "open, rename, unlink, rmdir, mkdir, link, symlink, chmod, chown"),
        _c("path", "VARCHAR", "the path, absolute where resolvable (rename/link: the source)"),
        _c("path2", "VARCHAR", "rename/link/symlink: the target path"),
        _c("fd", "BIGINT", "the descriptor (open: the new one)"),
        _c("flags", "BIGINT", "open flags (creat: O_CREAT|O_WRONLY|O_TRUNC)"),
        _c("mode", "BIGINT", "open/chmod/mkdir mode"),
        _c("access", "VARCHAR", "open: `r`, `w` or `rw` (O_ACCMODE); null for other operations"),
        _c("is_read", "BOOLEAN", "open for reading (Falco evt.is_open_read)"),
        _c("is_write", "BOOLEAN", "open for writing (Falco evt.is_open_write)"),
        _c("is_create", "BOOLEAN", "open with O_CREAT, or creat"),
        _c("res", "BIGINT", "return value"),
        _c("failed", "BOOLEAN", "res < 0"),
        *_ACTOR,
    ),
)

SOCKET_EVENTS = View(
    "socket_events",
    "one connect, accept/accept4, bind or listen, and sendto/sendmsg/recvfrom/recvmsg that "
    "carry an address",
    (
        _HOST,
        _TS,
        _TIME,
        _c("evt_type", "VARCHAR", "the syscall"),
        _c("direction", "VARCHAR", "`out` (connect, send), `in` (accept, recv), `local` (bind, listen)"),
        _c("fd", "BIGINT", "the socket descriptor (accept: the new one)"),
        _c("family", "VARCHAR", "`ipv4`, `ipv6`, `unix`, `netlink` or the AF_ number"),
        _c("l4proto", "VARCHAR", "`tcp`, `udp`, `icmp`, `raw` or null"),
        _c("laddr", "VARCHAR", "local address"),
        _c("lport", "USMALLINT", "local port"),
        _c("raddr", "VARCHAR", "remote address"),
        _c("rport", "USMALLINT", "remote port"),
        _c("unix_path", "VARCHAR", "AF_UNIX socket path"),
        _c("res", "BIGINT", "return value"),
        _c("failed", "BOOLEAN", "res < 0 (EINPROGRESS on a non-blocking connect counts as failed)"),
        *_ACTOR,
    ),
)

CONTAINERS = View(
    "containers",
    "one container seen by the recorder",
    (
        _HOST,
        _c("container_id", "VARCHAR", "container.id: 12-character id"),
        _c("container_full_id", "VARCHAR", "the full id"),
        _c("container_name", "VARCHAR", "container.name"),
        _c("container_image", "VARCHAR", "container.image: full image reference"),
        _c("container_image_repository", "VARCHAR", "container.image.repository"),
        _c("container_image_tag", "VARCHAR", "container.image.tag"),
        _c("container_type", "VARCHAR", "container.type: docker, containerd, cri-o ..."),
        _c("container_privileged", "BOOLEAN", "container.privileged"),
        _c("container_start_ts", "BIGINT", "container.start_ts: ns since the epoch"),
        _c("k8s_pod_name", "VARCHAR", "k8s.pod.name"),
        _c("k8s_ns_name", "VARCHAR", "k8s.ns.name"),
        _c("k8s_pod_uid", "VARCHAR", "k8s.pod.uid"),
        _c("runtime", "VARCHAR", "runc, containerd, cri-o, docker"),
        _c("init_pid", "INTEGER", "host pid of the container's init"),
        _c("labels", "MAP(VARCHAR, VARCHAR)", "pod/container labels"),
    ),
)

USERS = View(
    "users",
    "one user account from the host's or a container's passwd",
    (
        _HOST,
        _c("uid", "UINTEGER", "user.uid"),
        _c("user_name", "VARCHAR", "user.name"),
        _c("gid", "UINTEGER", "primary group"),
        _c("home", "VARCHAR", "home directory"),
        _c("shell", "VARCHAR", "login shell"),
        _c("container_id", "VARCHAR", "12-character id of the container whose passwd it is, or `host`"),
    ),
)

SHELL_COMMANDS = View(
    "shell_commands",
    "one command typed in an interactive shell (bash readline, sh/ash on a tty)",
    (
        _HOST,
        _TS,
        _TIME,
        _c("shell_pid", "INTEGER", "the shell's pid"),
        _c("tty", "UINTEGER", "the terminal"),
        _c("line", "VARCHAR", "the command as typed; null when withheld (echo off)"),
        _c("withheld", "BOOLEAN", "true when input was withheld because echo was off"),
        _c("user_name", "VARCHAR", "user name of the shell"),
        _c("container_id", "VARCHAR", "12-character container id, or `host`"),
    ),
    available="always; with the shell-session module (fcap.analyze.sessions) it has these "
    "columns and more (session_id, command_no, effects counts: see docs/sessions.md)",
)

SESSIONS = View(
    "sessions",
    "one interactive shell session: how it was entered, who, where",
    (),
    available="with the shell-session module; columns in docs/sessions.md (`container_id` "
    "normalized to the 12-character id or `host`)",
)

SHELL_EFFECTS = View(
    "shell_effects",
    "one effect of a typed command: a process, a file change, a connection",
    (),
    available="with the shell-session module; columns in docs/sessions.md",
)

ALERTS = View(
    "alerts",
    "one rule match, as `fcap replay` reports it (Falco's first-match semantics)",
    (
        _TS,
        _TIME,
        _c("evt_num", "BIGINT", "the matching event's `events.evt_num`"),
        _c("rule", "VARCHAR", "rule name"),
        _c("priority", "VARCHAR", "Falco priority name (Critical, Warning ...)"),
        _c("source", "VARCHAR", "rule source (`syscall`)"),
        _c("tags", "VARCHAR[]", "rule tags"),
        _c("output", "VARCHAR", "the rule's output, expanded"),
        _c("hostname", "VARCHAR", "host of the event"),
        _c("output_fields", "JSON", "the output's fields and values, as in Falco's JSON output"),
    ),
    available="only when rules are given (`fcap.open(..., rules=...)`, `fcap sql --rules`)",
)

#: Every view of the contract, in documentation order.
VIEWS: tuple[View, ...] = (
    EVENTS,
    PROCESSES,
    PROCESS_EVENTS,
    FILE_EVENTS,
    SOCKET_EVENTS,
    CONTAINERS,
    USERS,
    SHELL_COMMANDS,
    SESSIONS,
    SHELL_EFFECTS,
    ALERTS,
)

VIEW_NAMES: tuple[str, ...] = tuple(v.name for v in VIEWS)


def view(name: str) -> View:
    """The contract of view ``name`` (KeyError if it is not one)."""
    for v in VIEWS:
        if v.name == name:
            return v
    raise KeyError(name)


def render_markdown() -> str:
    """The contract as Markdown (kept verbatim in docs/hunting.md, checked by a test)."""
    out = [f"View contract version **{VIEWS_VERSION}**.", ""]
    for v in VIEWS:
        out.append(f"### `{v.name}`")
        out.append("")
        out.append(f"One row: {v.row}. Available: {v.available}.")
        out.append("")
        if v.columns:
            out.append("| column | type | meaning |")
            out.append("|---|---|---|")
            for c in v.columns:
                out.append(f"| `{c.name}` | {c.type} | {c.doc.replace('|', '/')} |")
            out.append("")
    return "\n".join(out).rstrip() + "\n"
