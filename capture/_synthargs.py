"""Synthetic captures' world: the paths opened (popularity order) and the raw
syscall registers in the kernel's argument order."""

from __future__ import annotations

import numpy as np

#: Paths the synthetic world opens, most popular first (ranks drawn from a Zipf law),
#: as on a real host: the loader cache, libraries, /dev and /proc first, secrets rare.
_COMMON = ["/etc/ld.so.cache", "/dev/null", "/proc/self/status", "/dev/urandom",
           "/etc/localtime", "/etc/nsswitch.conf", "/etc/hosts", "/etc/resolv.conf",
           "/proc/meminfo", "/proc/stat", "/etc/passwd", "/etc/group",
           "/etc/ssl/certs/ca-certificates.crt", "/sys/fs/cgroup/memory/memory.stat", "/dev/pts/0"]
_SENSITIVE = ["/etc/shadow", "/etc/sudoers", "/etc/kubernetes/admin.conf",
              "/root/.ssh/authorized_keys", "/root/.bash_history", "/home/alice/.bashrc",
              "/var/run/secrets/kubernetes.io/serviceaccount/token"]
#: Rare write targets outside the usual writable places (a few per million events).
_RARE_WRITES = ["/etc/hosts", "/etc/resolv.conf", "/etc/passwd", "/etc/shadow", "/etc/sudoers",
                "/root/.bash_history", "/root/.ssh/authorized_keys"]
#: openat flags and their odds: ~97% read-only opens, as in real recordings
_OFLAGS = np.array([0, 524288, 577, 1089, 2, 524353])  # RDONLY, |CLOEXEC, W|CREAT|TRUNC, W|CREAT|APPEND, RDWR
_OFLAGS_P = np.array([0.45, 0.52, 0.012, 0.008, 0.005, 0.005])


def _paths(rng: np.random.Generator) -> tuple[list[str], list[str]]:
    """(every path in popularity order, the paths written to normally)."""
    libs = [f"/usr/lib/x86_64-linux-gnu/lib{n}.so.{v}" for n in
            ("c", "m", "pthread", "ssl", "crypto", "z", "pcre2-8", "selinux", "dl", "stdc++",
             "gcc_s", "ffi", "lzma", "bz2", "yaml-0", "sqlite3", "curl", "nghttp2", "zstd")
            for v in (1, 3, 6)]
    logs = [f"/var/log/{n}" for n in ("syslog", "auth.log", "kern.log", "nginx/access.log",
                                      "nginx/error.log", "postgresql/postgresql-15-main.log")]
    py = [f"/usr/lib/python3.11/{m}.py" for m in
          ("os", "re", "json/__init__", "socket", "ssl", "subprocess", "typing", "pathlib",
           "collections/__init__", "functools", "enum", "logging/__init__", "threading")]
    www = [f"/var/www/html/{i}.html" for i in range(200)]
    pg = [f"/var/lib/postgresql/15/main/base/16384/{16000 + i}" for i in range(400)]
    procs = [f"/proc/{p}/{f}" for p in rng.integers(1, 40000, 300) for f in ("stat", "cmdline")]
    tmp = [f"/tmp/tmp{rng.integers(0, 36**6):x}" for _ in range(800)]
    ordered = libs[:6] + _COMMON + libs[6:] + py + procs + www + logs + pg + tmp + _SENSITIVE
    writable = list(dict.fromkeys(["/dev/null", *logs, *pg, *tmp]))
    return list(dict.fromkeys(ordered)), writable


AT_FDCWD = 4294967196  # -100 as a 32-bit int, zero-extended: what glibc callers leave in the register
O_CREAT = 0o100


def arguments(names: list[str], sys_code: np.ndarray, *, fd: np.ndarray, res: np.ndarray,
               pid: np.ndarray, uid: np.ndarray, is_exec: np.ndarray, oflags: np.ndarray,
               rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Raw registers ``a0..a5`` in the kernel's argument order, per syscall.

    Returns ``(args[6, n], mask)``: rows with ``mask`` set (lifecycle rows: the
    clone child side, procexit) carry no arguments; every syscall row carries
    all six, unused ones 0 (a real recording reads whatever is in the register).
    The layouts follow :data:`fcap.analyze.fields.evtargs.KARGS`.
    """
    n = len(sys_code)
    a = np.zeros((6, n), np.int64)
    ptr = 140_730_000_000_000 + (pid.astype(np.int64) << 12) + rng.integers(0, 512, n) * 8
    ptr2 = ptr + 4096

    def rows(*wanted: str) -> np.ndarray:
        lut = np.zeros(len(names), bool)
        lut[[names.index(w) for w in wanted if w in names]] = True
        return lut[sys_code]

    def put(sel: np.ndarray, *vals: np.ndarray | int) -> None:
        for i, v in enumerate(vals):
            a[i, sel] = v[sel] if isinstance(v, np.ndarray) else v

    size = rng.choice(np.array([512, 4096, 65536]), n)
    opn = rows("openat")
    put(opn, AT_FDCWD, ptr, oflags, np.where(oflags & O_CREAT, 0o644, 0))
    put(rows("close"), fd)
    put(rows("read", "write"), fd, ptr, size)
    put(rows("connect", "bind"), fd, ptr, 16)
    put(rows("listen"), fd, 4096)
    put(rows("socket"), 2, np.where(rng.random(n) < 0.5, 1, 524289), 0)
    put(rows("accept4"), rng.integers(3, 16, n), ptr, ptr2, 524288)
    put(rows("sendto", "recvfrom"), fd, ptr, size, 0, 0, 0)
    put(rows("unlinkat"), AT_FDCWD, ptr, np.where(rng.random(n) < 0.1, 512, 0))
    put(rows("renameat2"), AT_FDCWD, ptr, AT_FDCWD, ptr2, 0)
    put(rows("mkdirat"), AT_FDCWD, ptr, 0o755)
    put(rows("fchmodat"), AT_FDCWD, ptr, rng.choice(np.array([0o644, 0o755, 0o600]), n))
    put(rows("fchownat"), AT_FDCWD, ptr, uid.astype(np.int64), uid.astype(np.int64), 0)
    put(rows("dup2"), rng.integers(3, 64, n), res)
    put(rows("chdir"), ptr)
    put(rows("setuid"), uid.astype(np.int64))
    put(rows("kill"), rng.integers(1, 40000, n), rng.choice(np.array([0, 9, 15]), n))
    put(rows("ptrace"), 16, rng.integers(1, 40000, n), 0, 0)
    put(rows("memfd_create"), ptr, 1)
    put(rows("bpf"), rng.choice(np.array([0, 5]), n), ptr, 128)
    put(rows("mount"), ptr, ptr2, ptr2 + 4096, 0, 0)
    put(rows("symlinkat"), ptr, AT_FDCWD, ptr2)
    put(is_exec, ptr, ptr2, ptr2 + 4096)
    mask = rows("clone", "procexit") | (rows("execve") & ~is_exec)
    return a, mask
