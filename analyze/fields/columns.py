"""The column expressions of the ``events`` view (one per Falco field column).

Aliases in the FROM clause built by :func:`fcap.analyze.enrich.build`:
``e`` = ``fc_events`` (raw row + evt_num + keys), ``c`` = ``fc_chain`` (process
image and ancestors), ``w`` = ``fc_pcwd`` (cwd), ``r`` = ``fc_fdrec`` (descriptor state), ``u``/``lu``/``g``
= user, login user and group, ``k`` = ``fc_cont`` (container), ``cg`` = cgroup.
"""

from __future__ import annotations

import functools
import re

from fcap.analyze.fields import evtargs, sockrole
from fcap.analyze.fields.caps import caps_sql

ERRNO = {
    1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG",
    8: "ENOEXEC", 9: "EBADF", 10: "ECHILD", 11: "EAGAIN", 12: "ENOMEM", 13: "EACCES",
    14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV", 19: "ENODEV", 20: "ENOTDIR",
    21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 25: "ENOTTY", 26: "ETXTBSY",
    27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 31: "EMLINK", 32: "EPIPE",
    36: "ENAMETOOLONG", 38: "ENOSYS", 39: "ENOTEMPTY", 40: "ELOOP", 61: "ENODATA",
    62: "ETIME", 75: "EOVERFLOW", 88: "ENOTSOCK", 90: "EMSGSIZE", 91: "EPROTOTYPE",
    92: "ENOPROTOOPT", 93: "EPROTONOSUPPORT", 95: "EOPNOTSUPP", 97: "EAFNOSUPPORT",
    98: "EADDRINUSE", 99: "EADDRNOTAVAIL", 100: "ENETDOWN", 101: "ENETUNREACH",
    103: "ECONNABORTED", 104: "ECONNRESET", 105: "ENOBUFS", 106: "EISCONN", 107: "ENOTCONN",
    110: "ETIMEDOUT", 111: "ECONNREFUSED", 113: "EHOSTUNREACH", 114: "EALREADY",
    115: "EINPROGRESS", 116: "ESTALE", 122: "EDQUOT", 125: "ECANCELED",
}
_OPENS = "('open', 'openat', 'openat2', 'creat', 'open_by_handle_at')"
_OPENS_RW = "('open', 'openat', 'openat2', 'open_by_handle_at')"
_IO_READ = "('read', 'pread', 'pread64', 'readv', 'preadv', 'recvfrom', 'recvmsg', 'recvmmsg')"
_IO_WRITE = (
    "('write', 'pwrite', 'pwrite64', 'writev', 'pwritev', 'sendto', 'sendmsg', 'sendmmsg', "
    "'sendfile', 'splice')"
)
_WAIT = (
    "('nanosleep', 'clock_nanosleep', 'poll', 'ppoll', 'select', 'pselect6', 'epoll_wait', "
    "'epoll_pwait', 'futex', 'wait4', 'waitid', 'pause')"
)
_TWO_PATHS = "('rename', 'renameat', 'renameat2', 'link', 'linkat', 'symlink', 'symlinkat')"
_CATEGORY = {
    "file": _OPENS[:-1] + ", 'close', 'unlink', 'unlinkat', 'rename', 'renameat', "
    "'renameat2', 'mkdir', 'mkdirat', 'rmdir', 'chmod', 'fchmod', 'fchmodat', 'link', "
    "'linkat', 'symlink', 'symlinkat', 'read', 'write', 'pread', 'pwrite', 'readv', 'writev', "
    "'dup', 'dup2', 'dup3', 'fcntl', 'chown', 'fchown', 'fchownat', 'lchown', 'stat', 'lstat')",
    "net": "('socket', 'connect', 'accept', 'accept4', 'bind', 'listen', 'sendto', 'recvfrom', "
    "'sendmsg', 'recvmsg', 'shutdown', 'socketpair', 'setsockopt', 'getsockopt')",
    "process": "('clone', 'clone3', 'fork', 'vfork', 'execve', 'execveat', 'procexit', "
    "'kill', 'tkill', 'tgkill', 'ptrace', 'prctl', 'setuid', 'setgid', 'setresuid', "
    "'setresgid', 'setns', 'unshare', 'chdir', 'fchdir', 'chroot', 'capset')",
    "memory": "('mmap', 'munmap', 'mprotect', 'brk', 'userfaultfd')",
}


def _isin(values: str, x: str = "e.evt_type") -> str:
    """``x IN values`` as a CASE: DuckDB turns IN lists into joins it never prunes from views."""
    names = [v.strip().strip("'") for v in values.strip("()").split(",")]
    whens = " ".join(f"WHEN '{n}' THEN true" for n in names)
    return f"(CASE {x} {whens} ELSE false END)"


def _ts_text(fmt: str, ns: bool) -> str:
    base = f"strftime(make_timestamp(e.ts // 1000), '{fmt}')"
    return f"{base} || '.' || lpad(CAST(e.ts % 1000000000 AS VARCHAR), 9, '0')" if ns else base


def _errno() -> str:
    whens = " ".join(f"WHEN {-k} THEN '{v}'" for k, v in ERRNO.items())
    return (
        "CASE WHEN e.res IS NULL OR e.res >= 0 THEN 'SUCCESS' "
        f"ELSE CASE e.res {whens} ELSE CAST(e.res AS VARCHAR) END END"
    )


def _evt_args() -> str:
    whens = []
    for sc, params in evtargs.PARAMS.items():
        if sc not in evtargs.KARGS and sc not in ("procexit",):
            continue
        parts = [
            f"'{p.split(':', 1)[0]}=' || coalesce(CAST(({evtargs.param_sql(sc, i, lookups=False)}) AS VARCHAR), '')"
            for i, p in enumerate(params)
            if evtargs.param_sql(sc, i) != "NULL" and p.split(":", 1)[0] != "data"
        ]
        if parts:
            whens.append(f"WHEN '{sc}' THEN concat_ws(' ', {', '.join(parts)})")
    return f"CASE e.evt_type {' '.join(whens)} END"


_LEADER = "list_position(c.pids, {x})"
_OPEN_FLAGS = evtargs.open_flags_raw("e.evt_type")
_FILE_NAME = f"CASE WHEN {_isin(_OPENS)} THEN CAST(e.path AS VARCHAR) END"
_IS_FILE = f"(r.fd_type = 'file' OR (r.fd_type IS NULL AND {_isin(_OPENS)}))"
_FDNAME = f"coalesce(r.name, {_FILE_NAME})"  # sockets: fds._name_tuples


def columns(first_ts: int | str, hostname: str | None) -> dict[str, str]:
    """Column name -> SQL expression of the ``events`` view.

    ``first_ts``: ``evt.reltime``'s origin, an integer or SQL (per host, see
    :mod:`fcap.analyze.state.hosts`)."""
    host = "NULL" if hostname is None else "'" + hostname.replace("'", "''") + "'"
    sid_i = _LEADER.format(x="e.sid")
    pg_i = _LEADER.format(x="e.pgid")
    cols = {
        # --- evt -----------------------------------------------------------
        "evt_dir": "'<'",
        "evt_res": _errno(),
        "evt_rawres": "e.res",
        "evt_failed": "coalesce(e.res < 0, false)",
        "evt_cpu": "e.cpu",
        "evt_buffer": "e.data",
        "evt_buflen": f"CASE WHEN {_isin(_IO_READ)} OR {_isin(_IO_WRITE)} "
        "THEN greatest(e.res, 0) END",
        "evt_is_io": f"{_isin(_IO_READ)} OR {_isin(_IO_WRITE)}",
        "evt_is_io_read": f"{_isin(_IO_READ)}",
        "evt_is_io_write": f"{_isin(_IO_WRITE)}",
        "evt_io_dir": f"CASE WHEN {_isin(_IO_READ)} THEN 'r' "
        f"WHEN {_isin(_IO_WRITE)} THEN 'w' END",
        "evt_is_wait": f"{_isin(_WAIT)}",
        "evt_is_syslog": f"{_isin(_IO_WRITE)} AND {_FDNAME} = '/dev/log'",
        # libsinsp: open/openat/openat2/open_by_handle_at only (creat only counts for exec)
        "evt_is_open_read": f"{_isin(_OPENS_RW)} AND coalesce(({_OPEN_FLAGS} & 3) IN (0, 2), false)",
        "evt_is_open_write": f"{_isin(_OPENS_RW)} AND coalesce(({_OPEN_FLAGS} & 3) IN (1, 2), false)",
        "evt_is_open_create": f"{_isin(_OPENS_RW)} AND coalesce(({_OPEN_FLAGS} & 64) <> 0 "
        f"OR (({_OPEN_FLAGS} & 4259840) = 4259840 AND e.res >= 0), false)",
        "evt_is_open_exec": f"coalesce(CASE WHEN e.evt_type = 'creat' THEN (e.a1 & 73) <> 0 "
        f"WHEN {_isin(_OPENS_RW)} AND e.evt_type <> 'open_by_handle_at' AND "
        f"(({_OPEN_FLAGS} & 64) <> 0 OR ({_OPEN_FLAGS} & 4259840) = 4259840) "
        "THEN (CASE e.evt_type WHEN 'open' THEN e.a2 WHEN 'openat' THEN e.a3 END & 73) <> 0 "
        "END, false)",
        "evt_args": _evt_args(),
        "syscall_type": "CASE WHEN " + _isin("('procexit', 'shell_line', 'shell_line_withheld')")
        + " THEN NULL ELSE e.evt_type END",
        "evt_category": "CASE "
        + " ".join(f"WHEN {_isin(v)} THEN '{k}'" for k, v in _CATEGORY.items())
        + " ELSE 'other' END",
        "evt_time": _ts_text("%H:%M:%S", True),
        "evt_time_s": _ts_text("%H:%M:%S", False),
        "evt_time_iso8601": _ts_text("%Y-%m-%dT%H:%M:%S", True) + " || 'Z'",
        "evt_datetime": _ts_text("%Y-%m-%d %H:%M:%S", True),
        "evt_datetime_s": _ts_text("%Y-%m-%d %H:%M:%S", False),
        "evt_rawtime_s": "e.ts // 1000000000",
        "evt_rawtime_ns": "e.ts % 1000000000",
        "evt_reltime": f"e.ts - {first_ts}",
        "evt_reltime_s": f"(e.ts - {first_ts}) // 1000000000",
        "evt_reltime_ns": f"(e.ts - {first_ts}) % 1000000000",
        "evt_deltatime": "e.evt_deltatime",
        "evt_deltatime_s": "e.evt_deltatime // 1000000000",
        "evt_deltatime_ns": "e.evt_deltatime % 1000000000",
        "evt_pluginname": "CAST(NULL AS VARCHAR)",
        "evt_plugininfo": "CAST(NULL AS VARCHAR)",
        "evt_source": "'syscall'",
        "evt_is_async": "false",
        "evt_asynctype": "CAST(NULL AS VARCHAR)",
        "evt_hostname": f"coalesce(e.host, {host})",
        "evt_abspath": "CAST(e.path AS VARCHAR)",
        # --- proc / thread ------------------------------------------------------
        "proc_pid": "e.pid",
        "proc_ppid": "coalesce(e.ppid, c.pids[2])",
        "proc_vpid": "e.vpid",
        "proc_pvpid": "CASE WHEN e.vpid = e.pid THEN coalesce(e.ppid, c.pids[2]) END",
        "thread_tid": "e.tid",
        "thread_vtid": "e.vtid",
        "thread_ismain": "e.pid = e.tid",
        "proc_name": "coalesce(c.names[1], CAST(e.comm AS VARCHAR))",
        "thread_nametid": "coalesce(c.names[1], CAST(e.comm AS VARCHAR)) || ':' || e.tid",
        "proc_exe": "c.exes[1]",
        "proc_exepath": "c.exepaths[1]",
        "proc_argv": "c.argv",
        "proc_args": "coalesce(c.argss[1], '')",
        "proc_cmdline": "coalesce(c.cmdlines[1], CAST(e.comm AS VARCHAR))",
        "proc_exeline": "c.exes[1] || CASE WHEN len(c.argv) > 1 THEN ' ' || c.argss[1] ELSE '' END",
        "proc_cmdnargs": "greatest(len(c.argv) - 1, 0)",
        "proc_cmdlenargs": "coalesce(list_sum(list_transform(c.argv[2:], lambda x: length(x))), 0)",
        "proc_env": "array_to_string(c.env, ' ')",
        "proc_env_list": "c.env",
        "proc_cwd": "w.cwd",
        "proc_pname": "c.names[2]",
        "proc_pexe": "c.exes[2]",
        "proc_pexepath": "c.exepaths[2]",
        "proc_pcmdline": "c.cmdlines[2]",
        "proc_anames": "c.names",
        "proc_aexes": "c.exes",
        "proc_aexepaths": "c.exepaths",
        "proc_acmdlines": "c.cmdlines",
        "proc_apids": "c.pids",
        "proc_aargss": "c.argss",
        "proc_aenvs": "list_transform(c.envs, lambda x: array_to_string(x, ' '))",
        "proc_aenv_lists": "c.envs",
        "proc_tty": "e.tty",
        "proc_sid": "e.sid",
        "proc_sname": f"c.names[{sid_i}]",
        "proc_sid_exe": f"c.exes[{sid_i}]",
        "proc_sid_exepath": f"c.exepaths[{sid_i}]",
        "proc_pgid": "e.pgid",
        "proc_vpgid": "CASE WHEN e.vpid = e.pid THEN e.pgid WHEN e.pid = e.pgid THEN e.vpid END",
        "proc_vpgid_name": f"c.names[{pg_i}]",
        "proc_vpgid_exe": f"c.exes[{pg_i}]",
        "proc_vpgid_exepath": f"c.exepaths[{pg_i}]",
        "proc_is_sid_leader": "e.pid = e.sid",
        "proc_is_vpgid_leader": "e.pid = e.pgid",
        "proc_loginshellid": "c.pids[len(c.names) + 1 - list_position(list_reverse("
        "list_transform(c.names, lambda x: coalesce(x LIKE '%sh', false))), true)]",
        "proc_duration": "e.ts - c.starts[1]",
        "proc_pid_ts": "c.starts[1]",
        "proc_ppid_ts": "c.starts[2]",
        "proc_ppid_duration": "e.ts - c.starts[2]",
        "proc_is_exe_writable": "c.exe_writable",
        "proc_is_exe_upper_layer": "c.exe_upper_layer",
        "proc_is_exe_from_memfd": "c.exe_from_memfd",
        "proc_exe_ino": "nullif(c.exe_ino, 0)",
        "proc_exe_ino_ctime": "nullif(c.exe_ino_ctime, 0)",
        "proc_exe_ino_mtime": "nullif(c.exe_ino_mtime, 0)",
        "proc_exe_ino_ctime_duration_proc_start": "c.exe_ino_ctime_dur",
        "thread_cgroups": "cg.path",
        "thread_cgroup": "cg.path",
        "thread_cap_permitted": caps_sql("e.cap_permitted"),
        "thread_cap_inheritable": caps_sql("e.cap_inheritable"),
        "thread_cap_effective": caps_sql("e.cap_effective"),
        # --- fd -------------------------------------------------------------------
        "fd_num": "e.fd",
        "fd_type": "r.fd_type",
        "fd_typechar": "CASE r.fd_type WHEN 'file' THEN 'f' WHEN 'directory' THEN 'd' "
        "WHEN 'ipv4' THEN '4' WHEN 'ipv6' THEN '6' WHEN 'unix' THEN 'u' WHEN 'pipe' THEN 'p' "
        "WHEN 'event' THEN 'e' WHEN 'signalfd' THEN 's' WHEN 'eventpoll' THEN 'l' "
        "WHEN 'inotify' THEN 'i' WHEN 'timerfd' THEN 't' WHEN 'netlink' THEN 'n' "
        "WHEN 'bpf' THEN 'b' WHEN 'userfaultfd' THEN 'u' WHEN 'io_uring' THEN 'r' "
        "WHEN 'memfd' THEN 'm' WHEN 'pidfd' THEN 'P' "
        f"ELSE CASE WHEN r.fd_type IS NOT NULL THEN 'o' WHEN {_isin(_OPENS)} THEN 'f' END END",
        "fd_name": _FDNAME,
        "fd_nameraw": f"coalesce(r.name_raw, r.name, CASE WHEN {_isin(_OPENS)} "
        "THEN CAST(coalesce(e.path_raw, e.path) AS VARCHAR) END)",
        # the name up to its last '/' ('/' for none or a top-level name; a name ending in
        # '/' is its own directory); parse_dirpath is ~2x faster than a regex
        "fd_directory": f"CASE WHEN {_IS_FILE} THEN CASE WHEN strpos({_FDNAME}, '/') = 0 "
        f"THEN '/' WHEN ends_with({_FDNAME}, '/') THEN {_FDNAME} "
        f"ELSE coalesce(nullif(parse_dirpath({_FDNAME}, 'forward_slash'), ''), '/') END "
        f"WHEN r.fd_type = 'directory' THEN {_FDNAME} END",
        "fd_filename": f"CASE WHEN {_IS_FILE} AND r.fd_type IS NOT NULL THEN "
        f"CASE WHEN strpos({_FDNAME}, '/') = 0 THEN '/' WHEN ends_with({_FDNAME}, '/') "
        f"THEN {_FDNAME} ELSE parse_filename({_FDNAME}, false, 'forward_slash') END END",
        **sockrole.COLUMNS,
        "fd_sockfamily": "r.family",
        "fd_is_server": sockrole.IS_SERVER,
        "fd_connected": "CASE WHEN r.family IS NOT NULL THEN coalesce(r.connected, false) END",
        "fd_name_changed": "CASE WHEN r.fd_type IS NOT NULL OR r.family IS NOT NULL THEN "
        "coalesce(r.changed AND r.ts = e.ts AND r.ev_tid = e.tid, false) END",
        "fd_ino": "r.ino",
        "fd_uid": "CAST(e.pid AS VARCHAR) || ':' || CAST(e.fd AS VARCHAR)",
        "fd_cproto": "CAST(NULL AS VARCHAR)",
        "fd_sproto": "CAST(NULL AS VARCHAR)",
        "fd_lproto": "CAST(NULL AS VARCHAR)",
        "fd_rproto": "CAST(NULL AS VARCHAR)",
        "fd_cip_name": "CAST(NULL AS VARCHAR)",
        "fd_sip_name": "CAST(NULL AS VARCHAR)",
        "fd_lip_name": "CAST(NULL AS VARCHAR)",
        "fd_rip_name": "CAST(NULL AS VARCHAR)",
        "fs_path_name": f"CASE WHEN NOT {_isin(_TWO_PATHS)} THEN CAST(e.path AS VARCHAR) END",
        "fs_path_nameraw": f"CASE WHEN NOT {_isin(_TWO_PATHS)} "
        "THEN CAST(coalesce(e.path_raw, e.path) AS VARCHAR) END",
        "fs_path_source": f"CASE WHEN {_isin(_TWO_PATHS)} THEN CAST(e.path AS VARCHAR) END",
        "fs_path_sourceraw": f"CASE WHEN {_isin(_TWO_PATHS)} "
        "THEN CAST(coalesce(e.path_raw, e.path) AS VARCHAR) END",
        "fs_path_target": f"CASE WHEN {_isin(_TWO_PATHS)} THEN CAST(e.path2 AS VARCHAR) END",
        "fs_path_targetraw": f"CASE WHEN {_isin(_TWO_PATHS)} "
        "THEN CAST(coalesce(e.path2_raw, e.path2) AS VARCHAR) END",
        # --- user / group ---------------------------------------------------------
        "user_uid": "coalesce(e.euid, e.uid)",  # rows without euid (typed lines): real uid
        "user_name": "coalesce(u.name, CASE WHEN coalesce(e.euid, e.uid) = 0 THEN 'root' ELSE '<NA>' END)",
        "user_homedir": "coalesce(u.home, CASE WHEN coalesce(e.euid, e.uid) = 0 THEN '/root' ELSE '<NA>' END)",
        "user_shell": "coalesce(u.shell, '<NA>')",
        "user_loginuid": "CASE WHEN e.loginuid < 4294967295 THEN CAST(e.loginuid AS BIGINT) "
        "ELSE -1 END",
        "user_loginname": "coalesce(lu.name, CASE WHEN e.loginuid = 0 THEN 'root' ELSE '<NA>' END)",
        "group_gid": "coalesce(e.egid, e.gid)",
        "group_name": "coalesce(g.name, CASE WHEN coalesce(e.egid, e.gid) = 0 THEN 'root' ELSE '<NA>' END)",
        # --- container / k8s (host: the plugin's 'host' pseudo-container) ---------
        "container_full_id": "coalesce(e.cfull, 'host')",
        "container_id": "CASE WHEN e.cfull IS NULL THEN 'host' ELSE left(e.cfull, 12) END",
        "container_name": "CASE WHEN e.cfull IS NULL THEN 'host' ELSE k.name END",
        "container_image": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.image END",
        "container_image_id": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.image_id END",
        "container_type": "CASE WHEN e.cfull IS NULL THEN 'host' ELSE k.type END",
        "container_privileged": "CASE WHEN e.cfull IS NULL THEN false ELSE k.privileged END",
        "container_mounts": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.mounts_text END",
        "container_mount_list": "k.mount_list",
        "container_image_repository": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.image_repository END",
        "container_image_tag": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.image_tag END",
        "container_image_digest": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.image_digest END",
        "container_start_ts": "k.start_ts",
        "container_duration": "e.ts - k.start_ts",
        "container_labels": "CASE WHEN e.cfull IS NULL THEN '' ELSE k.labels_text END",
        "container_label_map": "k.label_map",
        "k8s_pod_name": "k.pod_name",
        "k8s_ns_name": "k.pod_namespace",
        "k8s_pod_uid": "k.pod_uid",
        "k8s_pod_sandbox_id": "left(k.sandbox_id, 12)",
        "k8s_pod_full_sandbox_id": "k.sandbox_id",
        "k8s_pod_labels": "k.labels_text",
        "fd_containername": f"CASE WHEN e.cfull IS NULL THEN 'host' ELSE left(e.cfull, 12) END "
        f"|| ':' || {_FDNAME}",
        "fd_containerdirectory": "NULL",
        # --- fcap shell extension ---------------------------------------------------
        "shell_line": "CASE WHEN e.evt_type = 'shell_line' THEN e.text END",
        "shell_session": "CASE WHEN e.evt_type IN ('shell_line', 'shell_line_withheld') "
        "THEN e.sid END",
        "shell_tty": "CASE WHEN e.evt_type IN ('shell_line', 'shell_line_withheld') THEN e.tty END",
        "shell_withheld": "CASE WHEN e.evt_type IN ('shell_line', 'shell_line_withheld') "
        "THEN e.evt_type = 'shell_line_withheld' END",
    }
    cols["fd_containerdirectory"] = (
        f"CASE WHEN e.cfull IS NULL THEN 'host' ELSE left(e.cfull, 12) END || ':' || "
        f"({cols['fd_directory']})"
    )
    return cols


#: A column expression reading a joined table (process chain, cwd, users, groups,
#: container, cgroup) or a per-row key computed by a join.
_JOINED = re.compile(r"\b(?:c|w|u|lu|g|k|cg)\.|\be\.(?:cfull|cid|wid|ckey|rid|evt_deltatime)\b")
#: A column expression reading the descriptor record valid at the event.
_FDREC = re.compile(r"\br\.")


@functools.cache
def needs() -> dict[str, frozenset[str]]:
    """Per field column, the state beyond its own raw row that it reads.

    ``"fd"``: the descriptor record valid at the event (``r``, the descriptor
    state); ``"join"``: a joined table or per-row key (process chain, cwd,
    users, groups, container, cgroup, ``evt.deltatime``). A column with neither
    is computed from its raw row alone (and ``evt_num``, from its scan position).
    The replay's pre-filter (:mod:`fcap.analyze.compile.relax`) relies on this.
    """
    return {name: sql_needs(sql) for name, sql in columns(0, None).items()}


def sql_needs(sql: str) -> frozenset[str]:
    """What an expression over the view's inner aliases reads beyond its raw row (see
    :func:`needs`); a field column's name (``e.fd_name``) is not looked up here."""
    kinds = set()
    if _FDREC.search(sql):
        kinds.add("fd")
    if _JOINED.search(sql):
        kinds.add("join")
    return frozenset(kinds)
