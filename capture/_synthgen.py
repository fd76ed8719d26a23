"""The body of :func:`fcap.capture.synth.generate`: a large, realistic synthetic capture.

A few hundred long-lived processes in the snapshot, short-lived children
appearing through clone/execve/procexit rows, openat/close/read mixes over
realistic paths, connects and accepts, and a few containers; vectorized with
numpy (~10M rows in seconds). Argument columns come from :mod:`._synthargs`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
from fcap.capture import journal as jr
from fcap.capture._synthargs import _OFLAGS, _OFLAGS_P, _RARE_WRITES, _paths
from fcap.capture._synthargs import arguments as _arguments
from fcap.capture.synth import (
    BASE_TS,
    CAP_FULL,
    _as_table,
    _default_groups,
    _default_users,
    default_meta,
)

from fcap.schema import EVENTS

_COMMS = [
    ("systemd", "/usr/lib/systemd/systemd"), ("sshd", "/usr/sbin/sshd"),
    ("bash", "/usr/bin/bash"), ("python3", "/usr/bin/python3.11"), ("nginx", "/usr/sbin/nginx"),
    ("postgres", "/usr/lib/postgresql/15/bin/postgres"), ("java", "/usr/bin/java"),
    ("containerd", "/usr/bin/containerd"), ("kubelet", "/usr/bin/kubelet"),
    ("containerd-shim", "/usr/bin/containerd-shim-runc-v2"), ("cron", "/usr/sbin/cron"),
    ("node", "/usr/bin/node"), ("redis-server", "/usr/bin/redis-server"),
    ("rsyslogd", "/usr/sbin/rsyslogd"), ("coredns", "/coredns"), ("etcd", "/usr/local/bin/etcd"),
]
_SHORT = [
    ("ls", "/usr/bin/ls", ["ls", "-la"]), ("cat", "/usr/bin/cat", ["cat", "/etc/hosts"]),
    ("grep", "/usr/bin/grep", ["grep", "-r", "error", "/var/log"]),
    ("curl", "/usr/bin/curl", ["curl", "-s", "https://example.com"]),
    ("ps", "/usr/bin/ps", ["ps", "aux"]), ("sh", "/usr/bin/dash", ["sh", "-c", "true"]),
    ("date", "/usr/bin/date", ["date"]), ("git", "/usr/bin/git", ["git", "status"]),
    ("id", "/usr/bin/id", ["id"]), ("uname", "/usr/bin/uname", ["uname", "-a"]),
]
_SYSCALLS = [  # (name, weight)
    ("openat", 0.30), ("close", 0.28), ("read", 0.07), ("write", 0.05), ("connect", 0.03),
    ("socket", 0.03), ("accept4", 0.012), ("sendto", 0.02), ("recvfrom", 0.02),
    ("unlinkat", 0.02), ("renameat2", 0.01), ("mkdirat", 0.005), ("fchmodat", 0.005),
    ("dup2", 0.01), ("bind", 0.003), ("listen", 0.001), ("chdir", 0.003), ("setuid", 0.001),
    ("kill", 0.002), ("ptrace", 0.0002), ("memfd_create", 0.0002), ("bpf", 0.0001),
    ("mount", 0.0003), ("symlinkat", 0.001), ("fchownat", 0.001),
]
_LIFECYCLE = ["clone", "execve", "procexit"]
_IPS = ["93.184.216.34", "10.96.0.1", "10.96.0.10", "140.82.112.3", "151.101.1.69",
        "10.244.1.17", "10.244.2.5", "192.168.1.1", "8.8.8.8", "172.217.16.206"]
_PORTS = np.array([443, 80, 53, 5432, 6443, 22, 6379, 8080, 2379], np.uint16)


def _dict(indices: np.ndarray, values: list[str], mask: np.ndarray | None = None) -> pa.Array:
    """A dictionary array with a duplicate-free dictionary.

    Parquet's writer falls back to PLAIN for a column whose Arrow dictionary
    holds duplicates, so values are unified first (as real recordings are).
    """
    uniq, inverse = np.unique(np.array(values, dtype=object), return_inverse=True)
    idx = pa.array(inverse.astype(np.int32)[indices], mask=mask)
    return pa.DictionaryArray.from_arrays(idx, pa.array(list(uniq), pa.string()))


def generate(path: Path | str, n_events: int, seed: int = 0, *, chunk: int = 1_000_000,
             hostname: str = "synth-host") -> Path:
    """Write a realistic capture of ``n_events`` rows (vectorized; ~1 s per million)."""
    path = Path(path)
    rng = np.random.default_rng(seed)
    world = _World(rng, n_events)
    span_ns = max(n_events, 1) * 50_000  # ~20k events/s
    meta = default_meta(hostname=hostname, start_ns=BASE_TS, end_ns=BASE_TS + span_ns,
                        drops_per_cpu=[0, 0], syscalls=sorted(n for n, _ in _SYSCALLS))

    def batches() -> Iterator[pa.RecordBatch]:
        done = 0
        while done < n_events:
            m = min(chunk, n_events - done)
            t0 = BASE_TS + span_ns * done // max(n_events, 1)
            t1 = BASE_TS + span_ns * (done + m) // max(n_events, 1)
            yield from world.chunk(m, t0, t1).to_batches()
            done += m

    jr.write_parquet(path, batches(), meta, world.tables())
    return path


class _World:
    """The simulated host: processes, containers, paths; emits event chunks."""

    def __init__(self, rng: np.random.Generator, n_events: int) -> None:
        self.rng = rng
        self.paths, writable = _paths(rng)
        pos = {p: i for i, p in enumerate(self.paths)}
        self.writable_idx = np.array([pos[p] for p in writable])
        self.rare_write_idx = np.array([pos[p] for p in _RARE_WRITES])
        self.containers = [rng.bytes(32).hex() for _ in range(4)]
        n_long = 300
        self.n_long = n_long
        self.pid = np.arange(n_long, dtype=np.int32) * 7 + 1
        self.ppid = np.where(np.arange(n_long) == 0, 0, self.pid[rng.integers(0, np.maximum(np.arange(n_long), 1))])
        self.ppid[0] = 0
        self.comm_idx = rng.integers(0, len(_COMMS), n_long)
        self.comm_idx[0] = 0
        self.uid = rng.choice(np.array([0, 0, 0, 33, 1000, 999], np.uint32), n_long)
        self.cont = np.where(rng.random(n_long) < 0.3, rng.integers(0, 4, n_long), -1)
        self.cont[0] = -1
        self.short_next = 100_000
        self.n_events = n_events
        self.comms = [c for c, _ in _COMMS] + [c for c, _, _ in _SHORT]

    def tables(self) -> dict[str, pa.Table]:
        n = self.n_long
        procs = pa.table({
            "pid": pa.array(self.pid), "ppid": pa.array(self.ppid.astype(np.int32)),
            "vpid": pa.array(self.pid), "sid": pa.array(self.pid), "pgid": pa.array(self.pid),
            "comm": pa.array([_COMMS[i][0] for i in self.comm_idx]),
            "exe": pa.array([_COMMS[i][1] for i in self.comm_idx]),
            "exepath": pa.array([_COMMS[i][1] for i in self.comm_idx]),
            "argv": pa.array([[_COMMS[i][1]] for i in self.comm_idx], pa.list_(pa.string())),
            "cwd": pa.array(["/"] * n), "uid": pa.array(self.uid), "gid": pa.array(self.uid),
            "euid": pa.array(self.uid), "egid": pa.array(self.uid),
            "loginuid": pa.array(np.full(n, 4294967295, np.uint32)),
            "tty": pa.array(np.zeros(n, np.uint32)),
            "start_ts": pa.array(BASE_TS - 3_000_000_000_000 + self.pid.astype(np.int64) * 10**9),
            "container_id": pa.array([self.containers[c] if c >= 0 else None for c in self.cont]),
        })
        conts = pa.table({
            "id": self.containers,
            "name": [f"app-{i}" for i in range(4)],
            "image": ["docker.io/library/nginx:1.25", "docker.io/library/postgres:15",
                      "docker.io/library/redis:7", "registry.k8s.io/coredns/coredns:v1.11.1"],
            "runtime": ["runc"] * 4, "type": ["containerd"] * 4,
            "privileged": [False, False, False, True],
            "pod_name": [f"web-{i}" for i in range(4)], "pod_namespace": ["default"] * 3 + ["kube-system"],
        })
        return {"processes": jr.conform(procs, "processes"), "containers": jr.conform(conts, "containers"),
                "users": _as_table("users", _default_users()), "groups": _as_table("groups", _default_groups())}

    def chunk(self, m: int, t0: int, t1: int) -> pa.Table:
        rng = self.rng
        n_short = max(1, m // 500)  # short-lived children: 4 rows each (clone, execve, openat, procexit)
        n_rand = m - 4 * n_short
        names = [n for n, _ in _SYSCALLS] + _LIFECYCLE
        w = np.array([p for _, p in _SYSCALLS])
        sys_idx = rng.choice(len(_SYSCALLS), n_rand, p=w / w.sum())
        proc = rng.zipf(1.6, n_rand) % self.n_long
        ts = rng.integers(t0, t1, n_rand)
        # short-lived processes
        spid = np.arange(self.short_next, self.short_next + n_short, dtype=np.int32)
        self.short_next += n_short
        parent = rng.integers(0, self.n_long, n_short)
        kind = rng.integers(0, len(_SHORT), n_short)
        st = rng.integers(t0, max(t0 + 1, t1 - 5_000_000), n_short)
        s_ts = np.concatenate([st, st + 200_000, st + 900_000, st + 3_000_000])
        s_sys = np.concatenate([np.full(n_short, len(_SYSCALLS)), np.full(n_short, len(_SYSCALLS) + 1),
                                np.full(n_short, 0), np.full(n_short, len(_SYSCALLS) + 2)])
        all_ts = np.concatenate([ts, s_ts])
        all_sys = np.concatenate([sys_idx, s_sys])
        pid = np.concatenate([self.pid[proc], np.tile(spid, 4)])
        ppid = np.concatenate([self.ppid[proc], np.tile(self.pid[parent], 4)]).astype(np.int32)
        uid = np.concatenate([self.uid[proc], np.tile(self.uid[parent], 4)])
        cont = np.concatenate([self.cont[proc], np.tile(self.cont[parent], 4)])
        comm = np.concatenate([self.comm_idx[proc],
                               np.concatenate([self.comm_idx[parent]] + [len(_COMMS) + kind] * 3)])
        order = np.argsort(all_ts, kind="stable")
        n = m
        all_ts, all_sys, pid, ppid, uid, cont, comm = (a[order] for a in
                                                        (all_ts, all_sys, pid, ppid, uid, cont, comm))
        is_short_exec = np.zeros(m, bool)
        is_short_exec[n_rand + n_short: n_rand + 2 * n_short] = True
        exec_kind = np.zeros(m, np.int64)
        exec_kind[n_rand + n_short: n_rand + 2 * n_short] = kind
        is_short_exec, exec_kind = is_short_exec[order], exec_kind[order]
        code = {nm: i for i, nm in enumerate(names)}

        def isin(*wanted: str) -> np.ndarray:
            lut = np.zeros(len(names), bool)
            lut[[code[w] for w in wanted]] = True
            return lut[all_sys]

        res = np.zeros(n, np.int64)
        fd = np.full(n, -1, np.int64)
        opn = isin("openat")
        fdv = rng.integers(3, 64, n)
        fail = rng.random(n)
        res[opn] = np.where(fail[opn] < 0.1, -2, np.where(fail[opn] < 0.11, -13, fdv[opn]))
        fd[opn] = np.where(res[opn] >= 0, res[opn], -1)
        usefd = isin("close", "read", "write", "connect", "sendto", "recvfrom", "bind", "listen")
        fd[usefd] = fdv[usefd]
        dup = isin("dup2")  # dup2(oldfd, newfd) returns newfd, the descriptor the event is about
        res[dup] = fdv[dup] % 3
        fd[dup] = res[dup]
        rw = isin("read", "write", "sendto", "recvfrom")
        res[rw] = rng.integers(0, 65536, rw.sum())
        newfd = isin("socket", "accept4", "memfd_create", "bpf")
        res[newfd] = fdv[newfd]
        fd[newfd] = fdv[newfd]
        conn = isin("connect")
        res[conn] = np.where(fail[conn] < 0.05, -111, np.where(fail[conn] < 0.3, -115, 0))
        pathy = opn | isin("unlinkat", "renameat2", "mkdirat", "fchmodat", "chdir",
                                     "symlinkat", "fchownat", "mount")
        pidx = (rng.zipf(1.3, n) - 1) % len(self.paths)
        # writes and changes go to the usual writable places, rarely elsewhere
        oflags = _OFLAGS[rng.choice(len(_OFLAGS), n, p=_OFLAGS_P)]
        writes = (opn & ((oflags & 3) != 0)) | isin("unlinkat", "renameat2", "mkdirat",
                                                     "fchmodat", "symlinkat", "fchownat")
        wpick = self.writable_idx[rng.integers(0, len(self.writable_idx), n)]
        rare = self.rare_write_idx[rng.integers(0, len(self.rare_write_idx), n)]
        pidx = np.where(writes, np.where(rng.random(n) < 0.002, rare, wpick), pidx)
        path_idx = np.where(pathy, pidx, 0)
        paths = self.paths + [e for _, e, _ in _SHORT]
        path_idx[is_short_exec] = len(self.paths) + exec_kind[is_short_exec]
        path_mask = ~(pathy | is_short_exec)
        path2_mask = ~isin("renameat2", "symlinkat")
        path2_idx = wpick
        net = isin("connect", "accept4", "sendto", "recvfrom")
        ip_idx = rng.integers(0, len(_IPS), n)
        port = _PORTS[rng.integers(0, len(_PORTS), n)]
        lport = rng.integers(32768, 60999, n).astype(np.uint16)
        acc = isin("accept4")
        lp = np.where(acc, port, lport)
        rp = np.where(acc, lport, port)
        # argv for exec rows
        argv_lists = [a for _, _, a in _SHORT]
        ex = np.flatnonzero(is_short_exec)
        lens = np.zeros(n, np.int32)
        lens[ex] = np.array([len(a) for a in argv_lists], np.int32)[exec_kind[ex]]
        offsets = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32)
        flat = [s for k in exec_kind[ex] for s in argv_lists[k]]
        argv = pa.ListArray.from_arrays(pa.array(offsets), pa.array(flat, pa.string()),
                                        mask=pa.array(~is_short_exec))
        cont_ids = self.containers
        args, args_mask = _arguments(names, all_sys, fd=fd, res=res, pid=pid, uid=uid,
                                     is_exec=is_short_exec, oflags=oflags, rng=rng)
        cols = {
            "ts": pa.array(all_ts.astype(np.int64)),
            "cpu": pa.array(rng.integers(0, 2, n).astype(np.uint16)),
            "pid": pa.array(pid), "tid": pa.array(pid), "ppid": pa.array(ppid),
            "vpid": pa.array(pid), "vtid": pa.array(pid),
            "uid": pa.array(uid), "gid": pa.array(uid), "euid": pa.array(uid), "egid": pa.array(uid),
            "loginuid": pa.array(np.where(uid == 1000, 1000, 4294967295).astype(np.uint32)),
            "tty": pa.array(np.where(comm == 2, 34816, 0).astype(np.uint32)),
            "sid": pa.array(pid), "pgid": pa.array(pid),
            "comm": _dict(comm, self.comms),
            "cgroup_id": pa.array((cont + 2).astype(np.uint64) * 1000),
            "container_id": _dict(np.maximum(cont, 0), cont_ids, mask=cont < 0),
            "mntns": pa.array((4026531841 + cont + 1).astype(np.uint32)),
            "pidns": pa.array((4026531836 + cont + 1).astype(np.uint32)),
            "netns": pa.array((4026531840 + cont + 1).astype(np.uint32)),
            "syscall": _dict(all_sys, names),
            "res": pa.array(res),
            **{f"a{i}": pa.array(args[i], mask=args_mask) for i in range(6)},
            "fd": pa.array(fd, mask=fd < 0),
            "path": _dict(path_idx, paths, mask=path_mask),
            "path2": _dict(path2_idx, self.paths, mask=path2_mask),
            "exe": _dict(exec_kind, [e for _, e, _ in _SHORT], mask=~is_short_exec),
            "argv": argv,
            "sock_family": pa.array(np.where(net, 2, 0).astype(np.int16), mask=~net),
            "l4proto": pa.array(np.where(net, 6, 0).astype(np.uint8), mask=~net),
            "laddr": _dict(np.zeros(n, np.int64), ["10.0.0.5"], mask=~net),
            "lport": pa.array(lp, mask=~net),
            "raddr": _dict(ip_idx, _IPS, mask=~net),
            "rport": pa.array(rp, mask=~net),
            # root processes hold the full set, the others none (no file capabilities)
            "cap_permitted": pa.array(np.where(uid == 0, CAP_FULL, 0).astype(np.uint64)),
            "cap_inheritable": pa.array(np.zeros(n, np.uint64)),
            "cap_effective": pa.array(np.where(uid == 0, CAP_FULL, 0).astype(np.uint64)),
        }
        table = pa.table(cols)
        return _to_events(table)


def _to_events(table: pa.Table) -> pa.Table:
    cols = []
    for f in EVENTS:
        if f.name in table.column_names:
            c = table.column(f.name)
            cols.append(c if c.type == f.type else c.cast(f.type))
        else:
            cols.append(pa.nulls(table.num_rows, f.type))
    return pa.Table.from_arrays(cols, schema=EVENTS)

