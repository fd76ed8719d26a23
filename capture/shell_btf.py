"""Kernel struct member offsets for the shell probe, read from the running kernel's BTF.

The machine's kernel headers do not match the running kernel, so ``bpf/shell.c``
never dereferences a kernel struct by type: it reads ``*(u64 *)(ptr + OFF_X)``
with offsets computed here from ``/sys/kernel/btf/vmlinux`` and passed as
``-D`` macros. This is a deliberately small BTF reader (structs, unions,
typedef/modifier chains, anonymous members); the recorder's
:mod:`fcap.capture.btf` is the project-wide one and this module can switch to
it once both agree on an API.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from fcap.errors import PrerequisiteError

VMLINUX_BTF = Path("/sys/kernel/btf/vmlinux")

_KIND_INT, _KIND_PTR, _KIND_ARRAY, _KIND_STRUCT, _KIND_UNION = 1, 2, 3, 4, 5
_KIND_ENUM, _KIND_FWD, _KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST = 6, 7, 8, 9, 10
_KIND_RESTRICT, _KIND_FUNC, _KIND_PROTO, _KIND_VAR, _KIND_DATASEC = 11, 12, 13, 14, 15
_KIND_FLOAT, _KIND_DECL_TAG, _KIND_TYPE_TAG, _KIND_ENUM64 = 16, 17, 18, 19
_MODIFIERS = {_KIND_TYPEDEF, _KIND_VOLATILE, _KIND_CONST, _KIND_RESTRICT, _KIND_TYPE_TAG}

#: Each ``OFF_*`` macro: (struct name, dotted member path). Array members
#: (``pids``, ``numbers``) give the offset of element 0.
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
}


@dataclass(frozen=True)
class _Type:
    kind: int
    name: str
    size_or_type: int
    members: tuple[tuple[str, int, int], ...] = ()  # (name, type id, bit offset)


class _Btf:
    """The types of one BTF blob, indexed by id, with struct lookup by name."""

    def __init__(self, blob: bytes) -> None:
        magic, _ver, _flags, hdr_len, type_off, type_len, str_off, str_len = struct.unpack_from(
            "<HBBIIIII", blob, 0
        )
        if magic != 0xEB9F:
            raise PrerequisiteError("kernel BTF has an unexpected magic number")
        types = blob[hdr_len + type_off : hdr_len + type_off + type_len]
        strings = blob[hdr_len + str_off : hdr_len + str_off + str_len]

        def name_at(off: int) -> str:
            end = strings.index(b"\0", off)
            return strings[off:end].decode()

        self.types: list[_Type | None] = [None]
        self.by_name: dict[str, int] = {}
        pos, n = 0, len(types)
        while pos < n:
            name_off, info, size_or_type = struct.unpack_from("<III", types, pos)
            pos += 12
            kind, vlen, kflag = (info >> 24) & 0x1F, info & 0xFFFF, info >> 31
            members: tuple[tuple[str, int, int], ...] = ()
            if kind in (_KIND_STRUCT, _KIND_UNION):
                mem = []
                for i in range(vlen):
                    m_name, m_type, m_off = struct.unpack_from("<III", types, pos + 12 * i)
                    bit_off = m_off & 0xFFFFFF if kflag else m_off
                    mem.append((name_at(m_name) if m_name else "", m_type, bit_off))
                members = tuple(mem)
                pos += 12 * vlen
            elif kind in (_KIND_INT, _KIND_VAR, _KIND_DECL_TAG):
                pos += 4
            elif kind == _KIND_ARRAY:
                pos += 12
            elif kind in (_KIND_ENUM, _KIND_PROTO):
                pos += 8 * vlen
            elif kind in (_KIND_DATASEC, _KIND_ENUM64):
                pos += 12 * vlen
            tid = len(self.types)
            name = name_at(name_off) if name_off and kind in (_KIND_STRUCT, _KIND_UNION) else ""
            self.types.append(_Type(kind, name, size_or_type, members))
            if name and members and name not in self.by_name:
                self.by_name[name] = tid

    def _strip(self, tid: int) -> int:
        t = self.types[tid]
        while t is not None and t.kind in _MODIFIERS:
            tid = t.size_or_type
            t = self.types[tid]
        return tid

    def _find(self, tid: int, member: str) -> tuple[int, int] | None:
        """(byte offset, member type id) of ``member`` in struct ``tid``, looking
        through anonymous struct/union members."""
        t = self.types[self._strip(tid)]
        if t is None:
            return None
        for m_name, m_type, bit_off in t.members:
            if m_name == member:
                return bit_off // 8, m_type
            if not m_name:
                inner = self._find(m_type, member)
                if inner is not None:
                    return bit_off // 8 + inner[0], inner[1]
        return None

    def offset(self, struct_name: str, path: str) -> int:
        """Byte offset of the dotted member ``path`` in ``struct struct_name``."""
        if struct_name not in self.by_name:
            raise PrerequisiteError(f"kernel BTF has no struct {struct_name}")
        tid, total = self.by_name[struct_name], 0
        for part in path.split("."):
            found = self._find(tid, part)
            if found is None:
                raise PrerequisiteError(f"kernel BTF: struct {struct_name} has no member {path}")
            total += found[0]
            tid = found[1]
        return total


@lru_cache(maxsize=1)
def shell_offsets(btf_path: Path = VMLINUX_BTF) -> dict[str, int]:
    """The ``OFF_*`` macros ``bpf/shell.c`` needs, for the running kernel."""
    try:
        blob = btf_path.read_bytes()
    except OSError as err:
        raise PrerequisiteError(
            f"cannot read kernel BTF at {btf_path}: {err.strerror}",
            hint="the shell probe needs a kernel built with CONFIG_DEBUG_INFO_BTF",
        ) from err
    btf = _Btf(blob)
    return {macro: btf.offset(s, m) for macro, (s, m) in WANTED.items()}
