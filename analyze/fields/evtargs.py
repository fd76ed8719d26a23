"""``evt.arg.NAME`` / ``evt.arg[N]`` / ``evt.rawarg.NAME`` / ``evt.args`` as DuckDB SQL.

A capture row keeps the raw syscall arguments ``a0..a5`` plus decoded columns
(paths, socket addresses, payload). Falco names exit-event parameters per
event type (:mod:`._params`); this module maps each ``(syscall, param)`` to a
SQL expression: the decoded column where there is one, else the raw argument
at its position in the kernel signature (:data:`KARGS`). Rendered values
(``evt.arg``) follow libsinsp: flags as ``NAME|NAME`` in the driver's table
order, enums as their name, modes as ``S_I*`` names, uids as user names.
"""

from __future__ import annotations

from fcap.analyze.fields._params import PARAMS

#: Kernel argument order (a0..a5) by Falco parameter name, per syscall.
KARGS: dict[str, tuple[str, ...]] = {
    "open": ("name", "flags", "mode"),
    "openat": ("dirfd", "name", "flags", "mode"),
    "openat2": ("dirfd", "name", "how", "size"),
    "creat": ("name", "mode"),
    "read": ("fd", "data", "size"), "write": ("fd", "data", "size"),
    "pread": ("fd", "data", "size", "pos"), "pwrite": ("fd", "data", "size", "pos"),
    "readv": ("fd", "iov", "iovcnt"), "writev": ("fd", "iov", "iovcnt"),
    "sendto": ("fd", "data", "size", "flags", "addr", "addrlen"),
    "recvfrom": ("fd", "data", "size", "flags", "addr", "addrlen"),
    "sendmsg": ("fd", "msg", "flags"), "recvmsg": ("fd", "msg", "flags"),
    "connect": ("fd", "addr", "addrlen"), "bind": ("fd", "addr", "addrlen"),
    "accept": ("fd", "addr", "addrlen"), "accept4": ("fd", "addr", "addrlen", "flags"),
    "listen": ("fd", "backlog"), "socket": ("domain", "type", "proto"),
    "socketpair": ("domain", "type", "proto", "sv"), "shutdown": ("fd", "how"),
    "close": ("fd",), "dup": ("oldfd",), "dup2": ("oldfd", "newfd"),
    "dup3": ("oldfd", "newfd", "flags"), "fcntl": ("fd", "cmd", "arg"),
    "execve": ("filename", "argv", "envp"),
    "execveat": ("dirfd", "pathname", "argv", "envp", "flags"),
    "chmod": ("filename", "mode"), "fchmod": ("fd", "mode"),
    "fchmodat": ("dirfd", "filename", "mode"),
    "chown": ("path", "uid", "gid"), "lchown": ("path", "uid", "gid"),
    "fchown": ("fd", "uid", "gid"), "fchownat": ("dirfd", "pathname", "uid", "gid", "flags"),
    "mkdir": ("path", "mode"), "mkdirat": ("dirfd", "path", "mode"),
    "rmdir": ("path",), "unlink": ("path",), "unlinkat": ("dirfd", "name", "flags"),
    "rename": ("oldpath", "newpath"),
    "renameat": ("olddirfd", "oldpath", "newdirfd", "newpath"),
    "renameat2": ("olddirfd", "oldpath", "newdirfd", "newpath", "flags"),
    "link": ("oldpath", "newpath"),
    "linkat": ("olddir", "oldpath", "newdir", "newpath", "flags"),
    "symlink": ("target", "linkpath"), "symlinkat": ("target", "linkdirfd", "linkpath"),
    "ptrace": ("request", "pid", "addr", "data"),
    "setuid": ("uid",), "setgid": ("gid",), "setresuid": ("ruid", "euid", "suid"),
    "setresgid": ("rgid", "egid", "sgid"), "setreuid": ("ruid", "euid"),
    "setregid": ("rgid", "egid"), "setns": ("fd", "nstype"), "unshare": ("flags",),
    "init_module": ("img", "length", "uargs"), "finit_module": ("fd", "uargs", "flags"),
    "bpf": ("cmd", "attr", "size"), "userfaultfd": ("flags",), "kill": ("pid", "sig"),
    "tkill": ("tid", "sig"), "tgkill": ("pid", "tid", "sig"),
    "mount": ("dev", "dir", "type", "flags", "data"), "umount2": ("name", "flags"),
    "umount": ("name",), "chdir": ("path",), "fchdir": ("fd",), "chroot": ("path",),
    "prctl": ("option", "arg2_int"), "ioctl": ("fd", "request", "argument"),
    "memfd_create": ("name", "flags"), "clone": ("flags", "newsp", "ptid", "ctid", "tls"),
    "mmap": ("addr", "length", "prot", "flags", "fd", "offset"),
    "mprotect": ("addr", "length", "prot"), "munmap": ("addr", "length"),
    "pipe2": ("fds", "flags"), "pipe": ("fds",), "eventfd2": ("initval", "flags"),
    "access": ("name", "mode"), "faccessat": ("dirfd", "name", "mode"),
    "stat": ("path", "stat"), "lstat": ("path", "stat"), "fstat": ("fd", "stat"),
    "truncate": ("path", "length"), "ftruncate": ("fd", "length"),
    "capset": ("header", "data"), "splice": ("fd_in", "off_in", "fd_out", "off_out", "size", "flags"),
    "lseek": ("fd", "offset", "whence"), "getdents64": ("fd", "dirp", "count"),
    "getdents": ("fd", "dirp", "count"), "copy_file_range": ("fdin", "offin", "fdout", "offout", "len", "flags"),
    "sendfile": ("out_fd", "in_fd", "offset", "size"), "quotactl": ("cmd", "special", "id", "addr"),
    "seccomp": ("op", "flags", "uargs"), "io_uring_setup": ("entries", "params"),
    "pidfd_open": ("pid", "flags"), "pidfd_getfd": ("pidfd", "targetfd", "flags"),
    "process_vm_readv": ("pid", "local_iov", "liovcnt", "remote_iov", "riovcnt", "flags"),
    "process_vm_writev": ("pid", "local_iov", "liovcnt", "remote_iov", "riovcnt", "flags"),
}

#: Syscalls whose first ``fd`` parameter is the created descriptor (the return value).
_CREATES_FD = {
    "open", "openat", "openat2", "creat", "socket", "accept", "accept4", "bpf", "memfd_create",
    "eventfd", "eventfd2", "signalfd", "signalfd4", "inotify_init", "inotify_init1",
    "timerfd_create", "epoll_create", "epoll_create1", "pidfd_open", "pidfd_getfd",
    "io_uring_setup", "open_by_handle_at", "userfaultfd", "fsopen", "fspick", "open_tree",
}

#: pipe/pipe2/socketpair rows: fd = the first descriptor, flags_aux = the second | the
#: first's inode << 32 (docs/capture-format.md); NULL when the call failed.
_FDPAIR = {"pipe", "pipe2", "socketpair"}
_PAIR_SQL = {
    "fd1": "e.fd",
    "fd2": "(CASE WHEN e.fd IS NOT NULL THEN e.flags_aux & 4294967295 END)",
    "ino": "(CASE WHEN e.fd IS NOT NULL THEN (e.flags_aux >> 32) & 4294967295 END)",
}
#: pipe2 flags as the driver keeps them (pipe2_flags_to_scap), in file_flags order.
_PIPE2_FLAGS = (("O_DIRECT", 0o40000), ("O_NONBLOCK", 0o4000), ("O_CLOEXEC", 0o2000000))

_PATH_TYPES = {"FSPATH", "FSRELPATH"}
_PATH_CHARBUF = {"target", "linkpath", "dev", "dir", "name"}  # CHARBUF params that are paths
_NON_PATH_SYSCALLS = {"memfd_create", "prctl", "init_module", "finit_module", "mount"}

# --- flag tables (driver flags_table.c order; values are Linux x86_64 ABI) ----------
_O_FLAGS = (
    ("O_LARGEFILE", 0o100000), ("O_DIRECTORY", 0o200000), ("O_DIRECT", 0o40000),
    ("O_TRUNC", 0o1000), ("O_SYNC", 0o4010000), ("O_NONBLOCK", 0o4000), ("O_EXCL", 0o200),
    ("O_DSYNC", 0o10000), ("O_APPEND", 0o2000), ("O_CREAT", 0o100),
)
_O_TAIL = (("O_CLOEXEC", 0o2000000),)
_MODE_FLAGS = (
    ("S_IXOTH", 0o1), ("S_IWOTH", 0o2), ("S_IROTH", 0o4), ("S_IXGRP", 0o10), ("S_IWGRP", 0o20),
    ("S_IRGRP", 0o40), ("S_IXUSR", 0o100), ("S_IWUSR", 0o200), ("S_IRUSR", 0o400),
    ("S_ISVTX", 0o1000), ("S_ISGID", 0o2000), ("S_ISUID", 0o4000),
)
_CLONE_FLAGS = (
    ("CLONE_FILES", 0x400), ("CLONE_FS", 0x200), ("CLONE_NEWIPC", 0x08000000),
    ("CLONE_NEWNET", 0x40000000), ("CLONE_NEWNS", 0x00020000), ("CLONE_NEWPID", 0x20000000),
    ("CLONE_NEWUTS", 0x04000000), ("CLONE_PARENT", 0x8000), ("CLONE_PTRACE", 0x2000),
    ("CLONE_SIGHAND", 0x800), ("CLONE_SYSVSEM", 0x40000), ("CLONE_THREAD", 0x10000),
    ("CLONE_UNTRACED", 0x800000), ("CLONE_VM", 0x100), ("CLONE_NEWUSER", 0x10000000),
    ("CLONE_NEWCGROUP", 0x02000000), ("CLONE_VFORK", 0x4000),
)
_AF = {
    0: "AF_UNSPEC", 1: "AF_UNIX", 2: "AF_INET", 10: "AF_INET6", 16: "AF_NETLINK",
    17: "AF_PACKET", 4: "AF_IPX", 5: "AF_APPLETALK", 7: "AF_BRIDGE", 15: "AF_KEY",
    29: "AF_CAN", 31: "AF_BLUETOOTH", 38: "AF_ALG", 40: "AF_VSOCK", 44: "AF_XDP",
}
_PTRACE = {
    0: "PTRACE_TRACEME", 1: "PTRACE_PEEKTEXT", 2: "PTRACE_PEEKDATA", 3: "PTRACE_PEEKUSR",
    4: "PTRACE_POKETEXT", 5: "PTRACE_POKEDATA", 6: "PTRACE_POKEUSR", 7: "PTRACE_CONT",
    8: "PTRACE_KILL", 9: "PTRACE_SINGLESTEP", 12: "PTRACE_GETREGS", 13: "PTRACE_SETREGS",
    14: "PTRACE_GETFPREGS", 15: "PTRACE_SETFPREGS", 16: "PTRACE_ATTACH", 17: "PTRACE_DETACH",
    18: "PTRACE_GETFPXREGS", 19: "PTRACE_SETFPXREGS", 24: "PTRACE_SYSCALL",
    0x4200: "PTRACE_SETOPTIONS", 0x4201: "PTRACE_GETEVENTMSG", 0x4202: "PTRACE_GETSIGINFO",
    0x4203: "PTRACE_SETSIGINFO", 0x4204: "PTRACE_GETREGSET", 0x4205: "PTRACE_SETREGSET",
    0x4206: "PTRACE_SEIZE", 0x4207: "PTRACE_INTERRUPT", 0x4208: "PTRACE_LISTEN",
    0x4209: "PTRACE_PEEKSIGINFO",
}
_BPF_CMDS = {
    0: "BPF_MAP_CREATE", 1: "BPF_MAP_LOOKUP_ELEM", 2: "BPF_MAP_UPDATE_ELEM",
    3: "BPF_MAP_DELETE_ELEM", 4: "BPF_MAP_GET_NEXT_KEY", 5: "BPF_PROG_LOAD", 6: "BPF_OBJ_PIN",
    7: "BPF_OBJ_GET", 8: "BPF_PROG_ATTACH", 9: "BPF_PROG_DETACH", 10: "BPF_PROG_TEST_RUN",
    28: "BPF_LINK_CREATE",
}


def _flags_sql(x: str, table: tuple[tuple[str, int], ...]) -> str:
    parts = ", ".join(f"CASE WHEN ({x} & {v}) = {v} THEN '{n}' END" for n, v in table)
    return f"NULLIF(concat_ws('|', {parts}), '')"


def _enum_sql(x: str, table: dict[int, str]) -> str:
    whens = " ".join(f"WHEN {k} THEN '{v}'" for k, v in table.items())
    return f"CASE {x} {whens} ELSE CAST({x} AS VARCHAR) END"


def open_flags_sql(x: str) -> str:
    """libsinsp's rendering of open flags (``O_TRUNC|O_CREAT|O_WRONLY|O_CLOEXEC``)."""
    acc = (
        f"CASE ({x} & 3) WHEN 0 THEN 'O_RDONLY' WHEN 1 THEN 'O_WRONLY' "
        f"WHEN 2 THEN 'O_RDWR|O_WRONLY|O_RDONLY' END"
    )
    head = ", ".join(f"CASE WHEN ({x} & {v}) = {v} THEN '{n}' END" for n, v in _O_FLAGS)
    tail = ", ".join(f"CASE WHEN ({x} & {v}) = {v} THEN '{n}' END" for n, v in _O_TAIL)
    tmp = f"CASE WHEN ({x} & 4259840) = 4259840 THEN 'O_TMPFILE' END"
    return f"CASE WHEN {x} IS NULL THEN NULL ELSE concat_ws('|', {head}, {acc}, {tail}, {tmp}) END"


def open_flags_raw(syscall_col: str = "e.evt_type") -> str:
    """SQL of the raw open flags for open/openat/openat2/creat rows."""
    return (
        f"CASE {syscall_col} WHEN 'open' THEN e.a1 WHEN 'openat' THEN e.a2 "
        f"WHEN 'openat2' THEN e.flags_aux WHEN 'creat' THEN 577 END"
    )


def _tuple_sql() -> str:
    return (
        "CASE WHEN e.raddr IS NOT NULL OR e.laddr IS NOT NULL THEN "
        "concat(e.laddr, ':', e.lport, '->', e.raddr, ':', e.rport) "
        "ELSE e.unix_path END"
    )


_CAP_PARAMS = ("cap_inheritable", "cap_permitted", "cap_effective")


def param_names(syscall: str) -> tuple[str, ...]:
    """Falco's parameter names of an event type's exit event, in order."""
    return tuple(p.split(":", 1)[0] for p in PARAMS.get(syscall, ()))


def _raw_arg(syscall: str, pname: str) -> str | None:
    order = KARGS.get(syscall)
    if order and pname in order:
        return f"e.a{order.index(pname)}"
    return None


def param_sql(syscall: str, index: int, rendered: bool = True, lookups: bool = True) -> str:
    """SQL for parameter ``index`` of ``syscall`` (rendered text, or raw value).

    ``lookups=False`` renders uids/gids as numbers (no user-table subquery), for the
    ``evt_args`` view column where a correlated subquery would cost every query.
    """
    spec = PARAMS[syscall][index]
    pname, ptype = spec.split(":", 1)
    paths = [
        i
        for i, p in enumerate(PARAMS[syscall])
        if p.split(":", 1)[1] in _PATH_TYPES
        or (
            p.split(":", 1)[1] == "CHARBUF"
            and p.split(":", 1)[0] in _PATH_CHARBUF
            and syscall not in _NON_PATH_SYSCALLS
        )
    ]
    raw = _raw_arg(syscall, pname)
    if pname == "res" or (pname == "fd" and index == 0 and syscall in _CREATES_FD):
        sql = "e.res"
    elif index in paths:
        col = "path" if paths.index(index) == 0 else "path2"
        sql = f"e.{col}" if rendered else f"coalesce(e.{col}_raw, e.{col})"
        return sql
    elif ptype == "SOCKTUPLE":
        return _tuple_sql()
    elif ptype == "SOCKADDR":
        return (
            "CASE WHEN e.raddr IS NOT NULL THEN concat(e.raddr, ':', e.rport) "
            "WHEN e.laddr IS NOT NULL THEN concat(e.laddr, ':', e.lport) ELSE e.unix_path END"
        )
    elif ptype == "BYTEBUF" and pname == "data":
        return "e.data"
    elif pname == "args" and syscall in ("execve", "execveat"):
        return "array_to_string(e.argv[2:], ' ')"
    elif pname in ("exe",) and syscall in ("execve", "execveat"):
        return "e.argv[1]"
    elif pname == "filename" and syscall in ("execve", "execveat"):
        return "e.exe"
    elif pname == "cwd" and syscall in ("execve", "execveat", "clone", "fork", "vfork"):
        return "e.cwd"
    elif pname == "comm":
        return "CAST(e.comm AS VARCHAR)"
    elif pname in ("tid", "pid", "ptid") and syscall in ("execve", "execveat", "clone", "clone3",
                                                        "fork", "vfork"):
        return {"tid": "e.tid", "pid": "e.pid", "ptid": "e.ppid"}[pname]
    elif pname in _CAP_PARAMS and syscall in ("execve", "execveat", "capset"):
        # the thread's sets at the exit (schema 2; null in older captures); PF_HEX
        sql = f"e.{pname}"
        return f"upper(hex({sql}))" if rendered else sql
    elif syscall in _FDPAIR and pname in _PAIR_SQL:
        sql = _PAIR_SQL[pname]
    elif pname in ("fd", "oldfd", "newfd") and raw is None:
        sql = "e.fd"
    elif raw is not None:
        sql = raw
    elif (pname == "flags" and syscall == "openat2") or (pname == "flags" and syscall == "clone3"):
        sql = "e.flags_aux"
    else:
        return "NULL"
    if not rendered:
        return sql
    return _render(syscall, pname, ptype, sql, lookups)


def _render(syscall: str, pname: str, ptype: str, sql: str, lookups: bool = True) -> str:
    if pname == "flags" and syscall in ("open", "openat", "openat2", "creat"):
        return open_flags_sql(sql)
    if pname == "flags" and syscall == "pipe2":
        # libsinsp renders 0 as O_NONE (the driver keeps O_DIRECT, O_NONBLOCK, O_CLOEXEC)
        return (f"CASE WHEN {sql} IS NULL THEN NULL WHEN ({sql} & 2147483648) <> 0 THEN 'O_NONE' "
                f"ELSE coalesce({_flags_sql(f'({sql} & 542720)', _PIPE2_FLAGS)}, 'O_NONE') END")
    if pname == "flags" and syscall in ("clone", "clone3", "unshare"):
        return _flags_sql(sql, _CLONE_FLAGS)
    if pname == "nstype" and syscall == "setns":
        return _flags_sql(sql, _CLONE_FLAGS)
    if ptype == "MODE" or (pname == "mode" and syscall in ("chmod", "fchmod", "fchmodat")):
        return _flags_sql(sql, _MODE_FLAGS)
    if pname == "mode" and ptype == "UINT32":
        return f"'0' || format('{{:o}}', {sql})"
    if pname == "domain":
        return _enum_sql(sql, _AF)
    if pname == "request" and syscall == "ptrace":
        return _enum_sql(sql, _PTRACE)
    if pname == "cmd" and syscall == "bpf":
        return _enum_sql(sql, _BPF_CMDS)
    if ptype in ("UID", "GID") and not lookups:
        return f"CAST({sql} AS VARCHAR)"
    if ptype == "UID":
        return (
            f"coalesce((SELECT u.name FROM fc_users u WHERE u.uid = {sql} "
            f"AND u.cid = coalesce(e.cfull, '') "
            f"AND (u.cid <> '' OR u.host = coalesce(e.host, '')) LIMIT 1), "
            f"CAST({sql} AS VARCHAR))"
        )
    if ptype == "GID":
        return (
            f"coalesce((SELECT g.name FROM fc_groups g WHERE g.gid = {sql} "
            f"AND g.cid = coalesce(e.cfull, '') "
            f"AND (g.cid <> '' OR g.host = coalesce(e.host, '')) LIMIT 1), "
            f"CAST({sql} AS VARCHAR))"
        )
    if ptype.startswith("FLAGS") or (ptype in ("UINT64", "UINT32") and pname in ("request",)):
        return f"'0x' || lower(hex({sql}))"
    return f"CAST({sql} AS VARCHAR)"


def arg_sql(name: str, *, rendered: bool = True, syscalls: tuple[str, ...] | None = None) -> str:
    """``evt.arg.NAME`` over every event type that has a parameter ``name`` (CASE on evt_type).

    Rendered values are text. Raw values (``evt.rawarg``) are BIGINT when every
    matching parameter is numeric, else text.
    """
    pairs = []
    for sc in syscalls or tuple(PARAMS):
        names = param_names(sc)
        if name in names:
            pairs.append((sc, param_sql(sc, names.index(name), rendered)))
    if not pairs:
        return "NULL"
    numeric = not rendered and all(
        sql.startswith("e.a") or sql in ("e.res", "e.fd", "e.flags_aux", "NULL", "e.tid", "e.pid", "e.ppid")
        or sql.startswith("e.cap_") or sql in _PAIR_SQL.values()
        for _, sql in pairs
    )
    cast = "BIGINT" if numeric else "VARCHAR"
    body = " ".join(f"WHEN '{sc}' THEN CAST(({sql}) AS {cast})" for sc, sql in pairs)
    return f"(CASE e.evt_type {body} END)"


def index_sql(n: int) -> str:
    """``evt.arg[N]``: the N-th parameter of whatever event type the row is."""
    whens = []
    for sc, params in PARAMS.items():
        if n < len(params):
            whens.append(f"WHEN '{sc}' THEN CAST(({param_sql(sc, n)}) AS VARCHAR)")
    return f"(CASE e.evt_type {' '.join(whens)} END)" if whens else "NULL"


def known_param(name: str) -> bool:
    """True when some event type has a parameter called ``name``."""
    return any(name in param_names(sc) for sc in PARAMS)
