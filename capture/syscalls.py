"""The recorded syscall set and how the kernel side decodes each syscall.

:data:`DESCRIPTORS` says, per syscall, which argument is a path, a dirfd, the
subject fd, a socket address or a payload; :func:`desc_table` turns the
selected set into the ``struct fcap_sc_desc`` array the BPF program reads
(bpf/fcap_event.h), so the C side has no per-syscall code.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from fcap.capture.syscall_table import NR_MAX, SYSCALL_NR

from fcap.errors import UsageError

# flags (bpf/fcap_event.h FCAP_SC_*)
SELECTED = 0x0001
RES_FD = 0x0002
SOCK = 0x0004
CTX = 0x0008
CWD_AFTER = 0x0010
EXEC = 0x0020
CLONE = 0x0040
P1_RAW = 0x0080
P2_RAW = 0x0100
ADDR_MSGHDR = 0x0200
ADDRLEN_PTR = 0x0400
AUX_U64 = 0x0800
DATA = 0x1000
ADDR_OUT = 0x2000
#: the kernel writes two descriptors to int[2] at aux (pipe, pipe2, socketpair): fd = the
#: first, flags_aux = the second | the first's inode number << 32 (docs/capture-format.md)
FDPAIR = 0x4000
NOARG = 0xFF

#: pseudo syscall name for sched_process_exit rows
PROCEXIT = "procexit"

SC_DESC_DTYPE = np.dtype(
    [
        ("flags", "<u2"),
        ("path_arg", "u1"),
        ("dirfd_arg", "u1"),
        ("path2_arg", "u1"),
        ("dirfd2_arg", "u1"),
        ("fd_arg", "u1"),
        ("addr_arg", "u1"),
        ("addrlen_arg", "u1"),
        ("data_arg", "u1"),
        ("aux_arg", "u1"),
        ("pad", "u1", (5,)),
    ]
)


@dataclass(frozen=True)
class Desc:
    """How to decode one syscall (argument indexes, NOARG = none)."""

    flags: int = 0
    path: int = NOARG
    dirfd: int = NOARG
    path2: int = NOARG
    dirfd2: int = NOARG
    fd: int = NOARG
    addr: int = NOARG
    addrlen: int = NOARG
    data: int = NOARG
    aux: int = NOARG


_D = Desc
DESCRIPTORS: dict[str, Desc] = {
    # processes
    "execve": _D(EXEC | CTX, path=0),
    "execveat": _D(EXEC | CTX, path=1, dirfd=0),
    "clone": _D(CLONE),
    "clone3": _D(CLONE | AUX_U64, aux=0),
    "fork": _D(CLONE),
    "vfork": _D(CLONE),
    "exit": _D(),
    "exit_group": _D(),
    "kill": _D(),
    "tkill": _D(),
    "tgkill": _D(),
    "ptrace": _D(),
    "setns": _D(CTX, fd=0),
    "unshare": _D(CTX),
    "setuid": _D(CTX),
    "setgid": _D(CTX),
    "setreuid": _D(CTX),
    "setregid": _D(CTX),
    "setresuid": _D(CTX),
    "setresgid": _D(CTX),
    "setfsuid": _D(CTX),
    "setfsgid": _D(CTX),
    "setsid": _D(CTX),
    "setpgid": _D(CTX),
    "capset": _D(CTX),
    "chdir": _D(CWD_AFTER, path=0),
    "fchdir": _D(CWD_AFTER, fd=0),
    "chroot": _D(0, path=0),
    "prctl": _D(),
    # files
    "open": _D(RES_FD, path=0),
    "openat": _D(RES_FD, path=1, dirfd=0),
    "openat2": _D(RES_FD | AUX_U64, path=1, dirfd=0, aux=2),
    "creat": _D(RES_FD, path=0),
    "open_by_handle_at": _D(RES_FD, fd=0),
    "close": _D(0, fd=0),
    "dup": _D(RES_FD, fd=0),
    "dup2": _D(RES_FD, fd=0),
    "dup3": _D(RES_FD, fd=0),
    "fcntl": _D(0, fd=0),
    "rename": _D(0, path=0, path2=1),
    "renameat": _D(0, dirfd=0, path=1, dirfd2=2, path2=3),
    "renameat2": _D(0, dirfd=0, path=1, dirfd2=2, path2=3),
    "unlink": _D(0, path=0),
    "unlinkat": _D(0, dirfd=0, path=1),
    "mkdir": _D(0, path=0),
    "mkdirat": _D(0, dirfd=0, path=1),
    "rmdir": _D(0, path=0),
    "link": _D(0, path=0, path2=1),
    "linkat": _D(0, dirfd=0, path=1, dirfd2=2, path2=3),
    "symlink": _D(P1_RAW, path=0, path2=1),
    "symlinkat": _D(P1_RAW, path=0, dirfd2=1, path2=2),
    "chmod": _D(0, path=0),
    "fchmod": _D(0, fd=0),
    "fchmodat": _D(0, dirfd=0, path=1),
    "fchmodat2": _D(0, dirfd=0, path=1),
    "chown": _D(0, path=0),
    "lchown": _D(0, path=0),
    "fchown": _D(0, fd=0),
    "fchownat": _D(0, dirfd=0, path=1),
    "truncate": _D(0, path=0),
    "ftruncate": _D(0, fd=0),
    "access": _D(0, path=0),
    "faccessat": _D(0, dirfd=0, path=1),
    "faccessat2": _D(0, dirfd=0, path=1),
    "stat": _D(0, path=0),
    "lstat": _D(0, path=0),
    "newfstatat": _D(0, dirfd=0, path=1),
    "statx": _D(0, dirfd=0, path=1),
    "readlink": _D(0, path=0),
    "readlinkat": _D(0, dirfd=0, path=1),
    "utimensat": _D(0, dirfd=0, path=1),
    "mknod": _D(0, path=0),
    "mknodat": _D(0, dirfd=0, path=1),
    "mount": _D(P2_RAW, path=1, path2=0),
    "umount2": _D(0, path=0),
    "pivot_root": _D(0, path=0, path2=1),
    "memfd_create": _D(RES_FD | P1_RAW, path=0),
    "userfaultfd": _D(RES_FD),
    "init_module": _D(),
    "finit_module": _D(0, fd=0),
    "delete_module": _D(P1_RAW, path=0),
    "bpf": _D(),
    "mmap": _D(0, fd=4),
    "mprotect": _D(),
    "io_uring_setup": _D(RES_FD),
    "pidfd_open": _D(RES_FD),
    "pidfd_getfd": _D(RES_FD),
    # io (payloads with --snaplen)
    "read": _D(DATA, fd=0, data=1),
    "write": _D(DATA, fd=0, data=1),
    "pread64": _D(DATA, fd=0, data=1),
    "pwrite64": _D(DATA, fd=0, data=1),
    "readv": _D(0, fd=0),
    "writev": _D(0, fd=0),
    "sendfile": _D(0, fd=0),
    "pipe": _D(FDPAIR, aux=0),
    "pipe2": _D(FDPAIR, aux=0),
    # sockets
    "socket": _D(RES_FD | SOCK),
    "socketpair": _D(FDPAIR, aux=3),
    "connect": _D(SOCK, fd=0, addr=1, addrlen=2),
    "accept": _D(RES_FD | SOCK | ADDRLEN_PTR | ADDR_OUT, addr=1, addrlen=2),
    "accept4": _D(RES_FD | SOCK | ADDRLEN_PTR | ADDR_OUT, addr=1, addrlen=2),
    "bind": _D(SOCK, fd=0, addr=1, addrlen=2),
    "listen": _D(SOCK, fd=0),
    "shutdown": _D(SOCK, fd=0),
    "sendto": _D(SOCK | DATA, fd=0, addr=4, addrlen=5, data=1),
    "recvfrom": _D(SOCK | DATA | ADDRLEN_PTR | ADDR_OUT, fd=0, addr=4, addrlen=5, data=1),
    "sendmsg": _D(SOCK | ADDR_MSGHDR, fd=0, addr=1),
    "recvmsg": _D(SOCK | ADDR_MSGHDR | ADDR_OUT, fd=0, addr=1),
    "sendmmsg": _D(SOCK, fd=0),
    "recvmmsg": _D(SOCK, fd=0),
}

#: The default recorded set (issue 2), plus procexit rows.
DEFAULT_SYSCALLS: tuple[str, ...] = (
    "execve", "execveat", "clone", "clone3", "fork", "vfork", "exit", "exit_group",
    "open", "openat", "openat2", "creat", "close", "dup", "dup2", "dup3",
    "rename", "renameat", "renameat2", "unlink", "unlinkat", "mkdir", "mkdirat", "rmdir",
    "link", "linkat", "symlink", "symlinkat", "chmod", "fchmod", "fchmodat", "fchmodat2",
    "chown", "lchown", "fchown", "fchownat", "chdir", "fchdir",
    "socket", "connect", "accept", "accept4", "bind", "listen",
    "sendto", "sendmsg", "recvfrom", "recvmsg", "pipe", "pipe2", "socketpair",
    "ptrace", "setns", "unshare", "setuid", "setgid", "setresuid", "setresgid",
    "setreuid", "setregid", "setsid",
    "mount", "umount2", "init_module", "finit_module", "bpf", "memfd_create",
    "userfaultfd", "kill", "tkill", "tgkill", PROCEXIT,
)  # fmt: skip

#: Added by --snaplen when the user did not name them.
PAYLOAD_SYSCALLS: tuple[str, ...] = ("read", "write")


def _known(name: str) -> str:
    if name != PROCEXIT and name not in SYSCALL_NR:
        import difflib

        close = difflib.get_close_matches(name, [*SYSCALL_NR, PROCEXIT], n=1)
        hint = f"did you mean {close[0]}?" if close else "see /usr/include/asm/unistd_64.h"
        raise UsageError(f"unknown syscall {name!r} in --syscalls", hint=hint)
    return name


def parse_syscalls(spec: str | None, *, snaplen: int = 0) -> tuple[str, ...]:
    """The recorded set from a ``--syscalls`` value.

    ``None`` = the default set. A comma-separated list of plain names replaces
    the default; ``+name`` adds to it and ``-name`` removes from it (forms can
    be mixed: plain names first form the base). ``default`` names the default
    set explicitly (``default,-close``).
    """
    items = [s.strip() for s in (spec or "").split(",") if s.strip()]
    plain = [s for s in items if s[0] not in "+-"]
    base: list[str] = []
    if not items or not plain:
        base = list(DEFAULT_SYSCALLS)
    for name in plain:
        if name == "default":
            base += DEFAULT_SYSCALLS
        else:
            base.append(_known(name))
    chosen = dict.fromkeys(base)
    for s in items:
        if s[0] == "+":
            chosen[_known(s[1:])] = None
        elif s[0] == "-":
            chosen.pop(_known(s[1:]), None)
    if snaplen > 0:
        named = {s.lstrip("+-") for s in items}
        for name in PAYLOAD_SYSCALLS:
            if name not in named:
                chosen[name] = None
    if not chosen:
        raise UsageError("--syscalls selects nothing")
    return tuple(chosen)


def desc_table(selected: Iterable[str]) -> np.ndarray:
    """The ``struct fcap_sc_desc[NR_MAX]`` array for the selected names.

    Index 0 (``read``) always carries a valid descriptor; the kernel uses it
    only for its flags when ``read`` itself is selected. Unselected syscalls
    flagged :data:`CTX` get that flag alone (no :data:`SELECTED`): they emit
    nothing, they only invalidate the thread's cached context.
    """
    table = np.zeros(NR_MAX, dtype=SC_DESC_DTYPE)
    for k in ("path_arg", "dirfd_arg", "path2_arg", "dirfd2_arg", "fd_arg", "addr_arg",
              "addrlen_arg", "data_arg", "aux_arg"):  # fmt: skip
        table[k] = NOARG
    # unselected syscalls that change credentials or namespaces keep CTX (without
    # SELECTED): the kernel side then only marks the thread's cached context stale,
    # so the next recorded event carries the new uids and capability sets
    for name, d in DESCRIPTORS.items():
        if d.flags & CTX and name in SYSCALL_NR:
            table[SYSCALL_NR[name]]["flags"] = CTX
    for name in selected:
        if name == PROCEXIT:
            continue
        nr = SYSCALL_NR[name]
        d = DESCRIPTORS.get(name, Desc())
        table[nr] = (
            d.flags | SELECTED, d.path, d.dirfd, d.path2, d.dirfd2, d.fd, d.addr, d.addrlen,
            d.data, d.aux, (0, 0, 0, 0, 0),
        )  # fmt: skip
    return table


#: Syscalls whose argument registers do not survive to the exit: a successful
#: execve/execveat resets them for the new image, rt_sigreturn restores the
#: interrupted context. Their arguments are saved at entry by a probe on their
#: own ``syscalls:sys_enter_<name>`` tracepoint; every other syscall's are read
#: from the saved user registers at exit.
ENTRY_SYSCALLS: tuple[str, ...] = ("execve", "execveat", "rt_sigreturn")


def entry_syscalls(selected: Iterable[str]) -> tuple[str, ...]:
    """The selected syscalls that need an entry probe (in :data:`ENTRY_SYSCALLS` order)."""
    chosen = set(selected)
    return tuple(n for n in ENTRY_SYSCALLS if n in chosen)
