"""Raw syscall registers for synthetic captures, in the kernel's argument order."""

from __future__ import annotations

import numpy as np

AT_FDCWD = 4294967196  # -100 as a 32-bit int, zero-extended: what glibc callers leave in the register
O_CREAT = 0o100


def arguments(names: list[str], sys_code: np.ndarray, *, fd: np.ndarray, res: np.ndarray,
               pid: np.ndarray, uid: np.ndarray, is_exec: np.ndarray,
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
    oflags = rng.choice(np.array([0, 0, 0, 524288, 2, 577, 524353, 1089]), n)  # RDONLY..|CREAT
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
