"""Kernel struct member offsets for the shell probe, from the running kernel's BTF.

The machine's kernel headers do not match the running kernel, so ``bpf/shell.c``
never dereferences a kernel struct by type: it reads ``*(u64 *)(ptr + OFF_X)``
with offsets read from ``/sys/kernel/btf/vmlinux`` by the recorder's
:mod:`fcap.capture.btf` (cached per BTF content) and passed as ``-D`` macros.
"""

from __future__ import annotations

from functools import lru_cache

#: Each ``OFF_*`` macro: (struct name, member). Array members (``pids``,
#: ``numbers``) give the offset of element 0.
WANTED: dict[str, tuple[str, str]] = {
    "OFF_TASK_REAL_PARENT": ("task_struct", "real_parent"),
    "OFF_TASK_TGID": ("task_struct", "tgid"),
    "OFF_TASK_SIGNAL": ("task_struct", "signal"),
    "OFF_TASK_FILES": ("task_struct", "files"),
    "OFF_TASK_LOGINUID": ("task_struct", "loginuid"),
    "OFF_SIGNAL_TTY": ("signal_struct", "tty"),
    "OFF_SIGNAL_PIDS": ("signal_struct", "pids"),
    "OFF_PID_NUMBERS": ("pid", "numbers"),
    "OFF_UPID_NR": ("upid", "nr"),
    "OFF_FILES_FDT": ("files_struct", "fdt"),
    "OFF_FDT_MAX_FDS": ("fdtable", "max_fds"),
    "OFF_FDT_FD": ("fdtable", "fd"),
    "OFF_FILE_INODE": ("file", "f_inode"),
    "OFF_FILE_PRIVATE": ("file", "private_data"),
    "OFF_INODE_MODE": ("inode", "i_mode"),
    "OFF_INODE_RDEV": ("inode", "i_rdev"),
    "OFF_TFP_TTY": ("tty_file_private", "tty"),
    "OFF_TTY_DRIVER": ("tty_struct", "driver"),
    "OFF_TTY_INDEX": ("tty_struct", "index"),
    "OFF_TTY_TERMIOS": ("tty_struct", "termios"),
    "OFF_KTERMIOS_LFLAG": ("ktermios", "c_lflag"),
    "OFF_DRIVER_MAJOR": ("tty_driver", "major"),
    "OFF_DRIVER_MINOR_START": ("tty_driver", "minor_start"),
    "OFF_TASK_MM": ("task_struct", "mm"),
    "OFF_MM_EXE_FILE": ("mm_struct", "exe_file"),
    "OFF_INODE_INO": ("inode", "i_ino"),
    "OFF_INODE_SB": ("inode", "i_sb"),
    "OFF_SB_DEV": ("super_block", "s_dev"),
}


@lru_cache(maxsize=1)
def shell_offsets() -> dict[str, int]:
    """The ``OFF_*`` macros ``bpf/shell.c`` needs, for the running kernel."""
    from fcap.capture.btf import kernel_offsets

    return kernel_offsets({m: f"{s}.{f}" for m, (s, f) in WANTED.items()}, {})
