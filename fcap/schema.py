"""The capture format contract: Arrow schemas of every table a capture holds.

A capture is one Parquet file (or a directory of Parquet segments, each a
complete capture) whose rows are the ``events`` table. The other tables
(``processes``, ``fds``, ``containers``, ``users``, ``groups``, ``cgroups``) and
the host metadata travel in the same file, in the Parquet footer's key/value
metadata: each table as a base64-encoded Arrow IPC stream under
``fcap.table.<name>``, the metadata as JSON under ``fcap.meta``. Readers must
check ``fcap.schema_version`` first.

While a recording runs, data goes to a journal directory ``<output>.partial/``
(Arrow IPC stream flushed at least once a second, plus the side tables and a
stats file); finishing the recording, or ``fcap repair`` after a crash, turns
the journal into the Parquet file. See docs/capture-format.md.

Conventions for ``events``:

* one row per syscall, emitted at syscall exit with all parameters and the
  return value (Falco >= 0.42's exit-only model; ``evt.dir`` is always ``<``);
* process lifecycle rows come from the same stream: the child side of
  fork/clone (``syscall`` = the clone-family name, ``res`` = 0), ``execve`` /
  ``execveat`` exits, and ``procexit`` rows from ``sched_process_exit``;
* typed shell input (fcap extension) appears as ``shell_line`` rows, and input
  withheld because the terminal's echo was off as ``shell_line_withheld``;
* ``a0``..``a5`` are the raw syscall arguments as passed (read from the
  saved user registers at exit; at entry for execve/execveat), pointers
  included, so any Falco parameter can be derived; decoded values
  (strings, socket addresses, argv) have their own typed columns;
* ``path``/``path2`` hold the path arguments made absolute where the kernel
  gave enough to do so (cwd or dirfd known); ``path_raw``/``path2_raw`` keep
  the string exactly as passed when it differs, else null;
* nulls mean "not applicable to this syscall" or "not recorded".
"""

from __future__ import annotations

from typing import Final

import pyarrow as pa

#: Bump on any change to a table below; readers refuse newer versions and read
#: older ones (columns added since read as null). 2: events.cap_permitted,
#: cap_inheritable, cap_effective. 3: events.exe_ino, exe_ino_ctime, exe_ino_mtime.
SCHEMA_VERSION: Final[int] = 3

#: Footer metadata keys.
META_KEY: Final[bytes] = b"fcap.meta"
VERSION_KEY: Final[bytes] = b"fcap.schema_version"
TABLE_KEY_PREFIX: Final[str] = "fcap.table."

#: Pseudo event types that are not syscalls.
PROCEXIT: Final[str] = "procexit"
SHELL_LINE: Final[str] = "shell_line"
SHELL_LINE_WITHHELD: Final[str] = "shell_line_withheld"

_dict_str = pa.dictionary(pa.int32(), pa.string())

EVENTS: Final[pa.Schema] = pa.schema(
    [
        # --- who and when -------------------------------------------------
        pa.field("ts", pa.int64(), nullable=False),  # wall clock, ns since the epoch (UTC)
        pa.field("cpu", pa.uint16(), nullable=False),
        pa.field("pid", pa.int32(), nullable=False),  # thread group id (host pid namespace)
        pa.field("tid", pa.int32(), nullable=False),  # thread id (host)
        pa.field("ppid", pa.int32()),  # real parent's tgid at the event
        pa.field("vpid", pa.int32()),  # tgid inside the task's pid namespace
        pa.field("vtid", pa.int32()),  # tid inside the task's pid namespace
        pa.field("uid", pa.uint32()),  # real uid
        pa.field("gid", pa.uint32()),  # real gid
        pa.field("euid", pa.uint32()),  # effective uid
        pa.field("egid", pa.uint32()),  # effective gid
        pa.field("loginuid", pa.uint32()),  # audit loginuid; 4294967295 = unset
        pa.field("tty", pa.uint32()),  # controlling tty, new_encode_dev(major, minor); 0 = none
        pa.field("sid", pa.int32()),  # session id (host pid namespace)
        pa.field("pgid", pa.int32()),  # process group id (host pid namespace)
        pa.field("comm", _dict_str),  # task->comm at the event (after exec: the new comm)
        pa.field("cgroup_id", pa.uint64()),  # cgroup v2 id (bpf_get_current_cgroup_id)
        pa.field("container_id", _dict_str),  # full container id, or null on the host
        pa.field("mntns", pa.uint32()),  # mount namespace inode
        pa.field("pidns", pa.uint32()),  # pid namespace inode
        pa.field("netns", pa.uint32()),  # network namespace inode
        # --- what -----------------------------------------------------------
        pa.field("syscall", _dict_str, nullable=False),  # Falco event type name (evt.type)
        pa.field("res", pa.int64()),  # return value (negative errno on failure)
        pa.field("a0", pa.int64()),
        pa.field("a1", pa.int64()),
        pa.field("a2", pa.int64()),
        pa.field("a3", pa.int64()),
        pa.field("a4", pa.int64()),
        pa.field("a5", pa.int64()),
        # --- decoded arguments --------------------------------------------
        pa.field("fd", pa.int64()),  # the descriptor the event is about (arg, or result for open/socket/accept/dup)
        pa.field("path", _dict_str),  # first path argument, absolute where resolvable
        pa.field("path_raw", _dict_str),  # first path exactly as passed, when it differs from path
        pa.field("path2", _dict_str),  # second path argument (rename/link/symlink target ...)
        pa.field("path2_raw", _dict_str),
        pa.field("cwd", _dict_str),  # cwd when the kernel read it (relative paths, chdir, exec)
        pa.field("exe", _dict_str),  # exec: filename passed to execve; exepath of the new image
        pa.field("argv", pa.list_(pa.string())),  # exec: the new argv
        pa.field("sock_family", pa.int16()),  # AF_* of the socket address(es)
        pa.field("sock_type", pa.int32()),  # socket(): type; connect/accept: SOCK_STREAM ...
        pa.field("l4proto", pa.uint8()),  # IPPROTO_TCP/UDP/... when known
        pa.field("laddr", _dict_str),  # local address (IPv4/IPv6 text)
        pa.field("lport", pa.uint16()),
        pa.field("raddr", _dict_str),  # remote address (IPv4/IPv6 text)
        pa.field("rport", pa.uint16()),
        pa.field("unix_path", _dict_str),  # AF_UNIX socket path
        pa.field("data", pa.binary()),  # read/write/send/recv payload when --snaplen > 0
        pa.field("text", pa.string()),  # shell_line: the line typed
        pa.field("flags_aux", pa.int64()),  # secondary flags decoded from user memory (clone3 flags, openat2 how.flags)
        # --- capability sets (schema 2) ---------------------------------------
        # the thread's cred->cap_* masks at the event (bit n = capability n, e.g.
        # 1 << 21 = CAP_SYS_ADMIN); null when not recorded (schema 1 captures,
        # shell_line rows)
        pa.field("cap_permitted", pa.uint64()),
        pa.field("cap_inheritable", pa.uint64()),
        pa.field("cap_effective", pa.uint64()),
        # --- the new image's executable file (schema 3) --------------------------
        # execve/execveat rows with res = 0: inode number, ctime and mtime (ns since
        # the epoch) of mm->exe_file's inode at the exec; null on other rows, when
        # the kernel's BTF has no known inode time layout, and in older captures
        pa.field("exe_ino", pa.uint64()),
        pa.field("exe_ino_ctime", pa.int64()),
        pa.field("exe_ino_mtime", pa.int64()),
    ],
    metadata={b"fcap.table": b"events"},
)

PROCESSES: Final[pa.Schema] = pa.schema(
    [
        pa.field("pid", pa.int32(), nullable=False),
        pa.field("ppid", pa.int32()),
        pa.field("vpid", pa.int32()),
        pa.field("sid", pa.int32()),
        pa.field("pgid", pa.int32()),
        pa.field("comm", pa.string()),
        pa.field("exe", pa.string()),  # argv[0] as Falco's proc.exe
        pa.field("exepath", pa.string()),  # /proc/PID/exe target
        pa.field("argv", pa.list_(pa.string())),
        pa.field("env", pa.list_(pa.string())),  # only with --env
        pa.field("cwd", pa.string()),
        pa.field("uid", pa.uint32()),
        pa.field("gid", pa.uint32()),
        pa.field("euid", pa.uint32()),
        pa.field("egid", pa.uint32()),
        pa.field("loginuid", pa.uint32()),
        pa.field("tty", pa.uint32()),
        pa.field("start_ts", pa.int64()),  # ns since the epoch
        pa.field("cgroup", pa.string()),  # the process's cgroup path (v2, or v1 'pids'/'memory')
        pa.field("container_id", pa.string()),
        pa.field("mntns", pa.uint32()),
        pa.field("pidns", pa.uint32()),
        pa.field("netns", pa.uint32()),
        pa.field("exe_ino", pa.uint64()),
        pa.field("exe_writable", pa.bool_()),
        pa.field("exe_from_memfd", pa.bool_()),
        pa.field("exe_upper_layer", pa.bool_()),
        pa.field("threads", pa.list_(pa.int32())),  # tids of the thread group
    ],
    metadata={b"fcap.table": b"processes"},
)

FDS: Final[pa.Schema] = pa.schema(
    [
        pa.field("pid", pa.int32(), nullable=False),
        pa.field("fd", pa.int64(), nullable=False),
        pa.field("type", pa.string()),  # file, directory, ipv4, ipv6, unix, pipe, event, signalfd, eventpoll, inotify, timerfd, netlink, memfd, bpf, userfaultfd, io_uring, other
        pa.field("name", pa.string()),  # path, or socket/pipe description
        pa.field("flags", pa.int64()),  # open flags from /proc/PID/fdinfo
        pa.field("ino", pa.uint64()),
        pa.field("sock_family", pa.int16()),
        pa.field("l4proto", pa.uint8()),
        pa.field("laddr", pa.string()),
        pa.field("lport", pa.uint16()),
        pa.field("raddr", pa.string()),
        pa.field("rport", pa.uint16()),
        pa.field("unix_path", pa.string()),
        pa.field("listening", pa.bool_()),
    ],
    metadata={b"fcap.table": b"fds"},
)

CONTAINERS: Final[pa.Schema] = pa.schema(
    [
        pa.field("id", pa.string(), nullable=False),  # full id (64 hex for runc/containerd)
        pa.field("name", pa.string()),
        pa.field("image", pa.string()),  # full reference, e.g. docker.io/library/busybox:1.36
        pa.field("image_id", pa.string()),
        pa.field("runtime", pa.string()),  # runc, containerd, cri-o, docker
        pa.field("type", pa.string()),  # Falco container.type: docker, containerd, cri-o, ...
        pa.field("privileged", pa.bool_()),
        pa.field("pid", pa.int32()),  # init pid on the host
        pa.field("start_ts", pa.int64()),
        pa.field("cgroup", pa.string()),
        pa.field("bundle", pa.string()),
        pa.field("pod_name", pa.string()),
        pa.field("pod_namespace", pa.string()),
        pa.field("pod_uid", pa.string()),
        pa.field("pod_sandbox_id", pa.string()),
        pa.field("labels", pa.map_(pa.string(), pa.string())),
        pa.field("annotations", pa.map_(pa.string(), pa.string())),
        pa.field(
            "mounts",
            pa.list_(
                pa.struct(
                    [
                        ("source", pa.string()),
                        ("dest", pa.string()),
                        ("mode", pa.string()),
                        ("rw", pa.bool_()),
                        ("propagation", pa.string()),
                    ]
                )
            ),
        ),
        pa.field("first_seen_ts", pa.int64()),  # when the recorder first saw it
    ],
    metadata={b"fcap.table": b"containers"},
)

USERS: Final[pa.Schema] = pa.schema(
    [
        pa.field("uid", pa.uint32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("gid", pa.uint32()),
        pa.field("home", pa.string()),
        pa.field("shell", pa.string()),
        pa.field("container_id", pa.string()),  # null: the host's /etc/passwd
    ],
    metadata={b"fcap.table": b"users"},
)

GROUPS: Final[pa.Schema] = pa.schema(
    [
        pa.field("gid", pa.uint32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("container_id", pa.string()),
    ],
    metadata={b"fcap.table": b"groups"},
)

CGROUPS: Final[pa.Schema] = pa.schema(
    [
        pa.field("id", pa.uint64(), nullable=False),  # cgroup v2 inode id
        pa.field("path", pa.string()),
        pa.field("container_id", pa.string()),
    ],
    metadata={b"fcap.table": b"cgroups"},
)

#: Side tables stored in the footer, by name.
SIDE_TABLES: Final[dict[str, pa.Schema]] = {
    "processes": PROCESSES,
    "fds": FDS,
    "containers": CONTAINERS,
    "users": USERS,
    "groups": GROUPS,
    "cgroups": CGROUPS,
}

#: Keys of the ``fcap.meta`` JSON object (all present; unknown values null).
META_FIELDS: Final[tuple[str, ...]] = (
    "schema_version",  # int, == SCHEMA_VERSION
    "fcap_version",  # str
    "hostname",  # str
    "kernel",  # str, uname -r
    "machine",  # str, uname -m
    "boot_time_ns",  # int, wall-clock ns of boot
    "start_ns",  # int, first moment recorded (wall clock)
    "end_ns",  # int, last moment recorded
    "syscalls",  # list[str], the recorded syscall set
    "filters",  # dict, record-time filters as given
    "snaplen",  # int, payload bytes kept (0 = none)
    "events_written",  # int
    "drops_per_cpu",  # list[int], events lost in the kernel per CPU
    "drops_total",  # int
    "complete",  # bool, false when recovered from a crash by fcap repair
    "repaired",  # bool, true when finalized by fcap repair (or the reader's journal view)
    "first_ts",  # int, smallest event ts in this file (null when empty)
    "last_ts",  # int, largest event ts in this file (null when empty)
    "segment",  # int, 0-based index within a rotated directory
    "command",  # list[str], the fcap command line
    "shell_lost",  # int, shell-probe records lost (also counted in drops_per_cpu[0]); null without --shell
)


def empty_table(name: str) -> pa.Table:
    """Return an empty table with the schema of side table ``name`` or ``events``."""
    schema = EVENTS if name == "events" else SIDE_TABLES[name]
    return schema.empty_table()


#: Names of the capability bits of the ``events.cap_*`` masks (bit n = ``CAPABILITY_NAMES[n]``,
#: the Linux ``CAP_*`` numbers, as libsinsp names them), up to CAP_LAST_CAP 40 (Linux 5.9+).
CAPABILITY_NAMES: Final[tuple[str, ...]] = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_DAC_READ_SEARCH", "CAP_FOWNER", "CAP_FSETID",
    "CAP_KILL", "CAP_SETGID", "CAP_SETUID", "CAP_SETPCAP", "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE", "CAP_NET_BROADCAST", "CAP_NET_ADMIN", "CAP_NET_RAW",
    "CAP_IPC_LOCK", "CAP_IPC_OWNER", "CAP_SYS_MODULE", "CAP_SYS_RAWIO", "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE", "CAP_SYS_PACCT", "CAP_SYS_ADMIN", "CAP_SYS_BOOT", "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE", "CAP_SYS_TIME", "CAP_SYS_TTY_CONFIG", "CAP_MKNOD", "CAP_LEASE",
    "CAP_AUDIT_WRITE", "CAP_AUDIT_CONTROL", "CAP_SETFCAP", "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN", "CAP_SYSLOG", "CAP_WAKE_ALARM", "CAP_BLOCK_SUSPEND", "CAP_AUDIT_READ",
    "CAP_PERFMON", "CAP_BPF", "CAP_CHECKPOINT_RESTORE",
)  # fmt: skip
