"""The start snapshot: every process alive when recording starts, and its open fds.

Plain Python over ``/proc`` (startup work, a few hundred processes). Every
read tolerates the process exiting mid-scan (it is then skipped, or the
missing fields are null). Sockets are resolved through ``/proc/PID/net/*``
by inode, once per network namespace.
"""

from __future__ import annotations

import contextlib
import os
import stat as st
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
from fcap.capture import netinfo
from fcap.capture.cgroups import container_id_from_cgroup, parse_proc_cgroup, pick_cgroup
from fcap.capture.hostinfo import boot_time_ns

from fcap.schema import FDS, PROCESSES

CLK_TCK = os.sysconf("SC_CLK_TCK")
LOGINUID_UNSET = 4294967295


@dataclass
class Snapshot:
    """The PROCESSES and FDS tables of a snapshot."""

    processes: pa.Table
    fds: pa.Table
    errors: int = 0  # processes that vanished or could not be read


def _read(path: str) -> str | None:
    try:
        with open(path, "rb") as f:
            return f.read().decode(errors="replace")
    except OSError:
        return None


def _readlink(path: str) -> str | None:
    try:
        return os.readlink(path)
    except OSError:
        return None


def _ns_inode(pid: int, name: str) -> int | None:
    link = _readlink(f"/proc/{pid}/ns/{name}")
    if link and "[" in link:
        with contextlib.suppress(ValueError):
            return int(link[link.index("[") + 1: link.index("]")])
    return None


def parse_stat(text: str) -> dict[str, Any]:
    """Fields of /proc/PID/stat (comm may hold spaces and parentheses)."""
    lpar, rpar = text.index("("), text.rindex(")")
    rest = text[rpar + 2:].split()
    return {
        "comm": text[lpar + 1: rpar],
        "state": rest[0],
        "ppid": int(rest[1]),
        "pgid": int(rest[2]),
        "sid": int(rest[3]),
        "tty_nr": int(rest[4]),  # already new_encode_dev(major, minor)
        "starttime": int(rest[19]),
    }


def parse_status(text: str) -> dict[str, list[str]]:
    """/proc/PID/status as {key: whitespace-split values}."""
    out = {}
    for line in text.splitlines():
        k, _, v = line.partition(":")
        out[k] = v.split()
    return out


@dataclass
class _Ctx:
    boot_ns: int
    with_env: bool
    upper: dict[int, str | None] = field(default_factory=dict)  # mntns -> overlay upperdir


def _overlay_upper(pid: int) -> str | None:
    text = _read(f"/proc/{pid}/mountinfo")
    if not text:
        return None
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        f = left.split()
        r = right.split()
        if len(f) > 4 and f[4] == "/" and r and r[0] == "overlay" and len(r) > 2:
            for opt in r[2].split(","):
                if opt.startswith("upperdir="):
                    return opt[len("upperdir="):]
    return None


def read_process(pid: int, ctx: _Ctx) -> dict[str, Any] | None:
    """One PROCESSES row, or None if the process is gone."""
    base = f"/proc/{pid}"
    stat_text = _read(f"{base}/stat")
    status_text = _read(f"{base}/status")
    if stat_text is None or status_text is None:
        return None
    s = parse_stat(stat_text)
    status = parse_status(status_text)
    cmd = _read(f"{base}/cmdline")
    argv = cmd.split("\0")[:-1] if cmd else []
    exepath = _readlink(f"{base}/exe")
    if exepath and exepath.endswith(" (deleted)"):
        exepath = exepath[: -len(" (deleted)")]
    cg_text = _read(f"{base}/cgroup") or ""
    cgroups = parse_proc_cgroup(cg_text)
    cgroup = pick_cgroup(cgroups)
    cid = None
    for p in [cgroup, *cgroups.values()]:
        cid = container_id_from_cgroup(p)
        if cid:
            break

    def ids(key: str) -> list[int]:
        return [int(x) for x in status.get(key, [])]

    uids, gids = ids("Uid"), ids("Gid")
    nstgid = ids("NStgid")
    loginuid = _read(f"{base}/loginuid")
    mntns = _ns_inode(pid, "mnt")
    exe_ino = exe_writable = exe_upper = None
    try:
        est = os.stat(f"{base}/exe")
        exe_ino = est.st_ino
        euid = uids[1] if len(uids) > 1 else None
        egid = gids[1] if len(gids) > 1 else None
        mode = est.st_mode
        # as the kernel's inode_permission(MAY_WRITE) would answer for the
        # process's credentials: root overrides the mode bits, a read-only
        # filesystem refuses everyone
        exe_writable = bool(
            (euid == 0) or (est.st_uid == euid and mode & st.S_IWUSR)
            or (est.st_gid == egid and mode & st.S_IWGRP) or (mode & st.S_IWOTH)
        )
        with contextlib.suppress(OSError):
            if os.statvfs(f"{base}/exe").f_flag & os.ST_RDONLY:
                exe_writable = False
    except OSError:
        pass
    if exepath and mntns is not None:
        if mntns not in ctx.upper:
            ctx.upper[mntns] = _overlay_upper(pid)
        upper = ctx.upper[mntns]
        if upper:
            exe_upper = os.path.lexists(upper + exepath)
    try:
        threads = sorted(int(t) for t in os.listdir(f"{base}/task"))
    except OSError:
        threads = [pid]
    env = None
    if ctx.with_env:
        e = _read(f"{base}/environ")
        env = e.split("\0")[:-1] if e else []
    return {
        "pid": pid,
        "ppid": s["ppid"],
        "vpid": nstgid[-1] if nstgid else pid,
        "sid": s["sid"],
        "pgid": s["pgid"],
        "comm": s["comm"],
        "exe": argv[0] if argv else s["comm"],
        "exepath": exepath,
        "argv": argv,
        "env": env,
        "cwd": _readlink(f"{base}/cwd"),
        "uid": uids[0] if uids else None,
        "gid": gids[0] if gids else None,
        "euid": uids[1] if len(uids) > 1 else None,
        "egid": gids[1] if len(gids) > 1 else None,
        "loginuid": int(loginuid) if loginuid and loginuid.strip().isdigit() else LOGINUID_UNSET,
        "tty": s["tty_nr"] & 0xFFFFFFFF,
        "start_ts": ctx.boot_ns + s["starttime"] * 10**9 // CLK_TCK,
        "cgroup": cgroup,
        "container_id": cid,
        "mntns": mntns,
        "pidns": _ns_inode(pid, "pid"),
        "netns": _ns_inode(pid, "net"),
        "exe_ino": exe_ino,
        "exe_writable": exe_writable,
        "exe_from_memfd": bool(exepath and exepath.startswith("/memfd:")),
        "exe_upper_layer": exe_upper,
        "threads": threads,
    }


def read_fds(pid: int, netns: int | None, nets: netinfo.NetCache) -> list[dict[str, Any]]:
    """FDS rows of one process (empty if it is gone or unreadable)."""
    base = f"/proc/{pid}"
    try:
        names = os.listdir(f"{base}/fd")
    except OSError:
        return []
    rows = []
    for name in names:
        try:
            fd = int(name)
        except ValueError:
            continue
        target = _readlink(f"{base}/fd/{name}")
        if target is None:
            continue
        flags = None
        info = _read(f"{base}/fdinfo/{name}")
        if info:
            for line in info.splitlines():
                if line.startswith("flags:"):
                    with contextlib.suppress(ValueError):
                        flags = int(line.split()[1], 8)
                    break
        row: dict[str, Any] = {"pid": pid, "fd": fd, "flags": flags, "name": target}
        row.update(netinfo.classify(pid, fd, target, netns, nets))
        rows.append(row)
    return rows


def take_snapshot(*, with_env: bool = False, with_fds: bool = True,
                  exclude_pids: set[int] | None = None) -> Snapshot:
    """Snapshot every process (and its fds) from /proc."""
    ctx = _Ctx(boot_time_ns(), with_env)
    nets = netinfo.NetCache()
    procs, fds = [], []
    errors = 0
    exclude = exclude_pids or set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if pid in exclude:
            continue
        try:
            row = read_process(pid, ctx)
        except (OSError, ValueError, IndexError):
            row = None
        if row is None:
            errors += 1
            continue
        procs.append(row)
        if with_fds:
            try:
                fds.extend(read_fds(pid, row["netns"], nets))
            except (OSError, ValueError):
                errors += 1
    procs.sort(key=lambda r: r["pid"])
    return Snapshot(pa.Table.from_pylist(procs, schema=PROCESSES),
                    pa.Table.from_pylist(fds, schema=FDS), errors)


def start_tables(*, with_env: bool = False, exclude_pids: set[int] | None = None,
                 resolver: Any = None) -> dict[str, pa.Table]:
    """Every side table of a recording's start: processes, fds, containers, users, groups, cgroups.

    ``resolver`` is a :class:`fcap.capture.containers.ContainerResolver` (one is
    created when None); keep using it while recording for ``lookup``/``refresh``.
    """
    from fcap.capture.accounts import read_accounts
    from fcap.capture.containers import ContainerResolver

    if resolver is None:
        resolver = ContainerResolver()
    snap = take_snapshot(with_env=with_env, exclude_pids=exclude_pids)
    users, groups = read_accounts(Path("/"), resolver.rootfs())
    resolver.new_cgroups()  # everything known now is in the full table below
    return {
        "processes": snap.processes,
        "fds": snap.fds,
        "containers": resolver.table(),
        "users": users,
        "groups": groups,
        "cgroups": resolver.index.table(),
    }
