"""A small BTF reader: kernel struct member offsets from ``/sys/kernel/btf/vmlinux``.

The recorder must not trust the kernel headers (this kind of host carries the
distro's generic headers, not the running kernel's), so every kernel struct
access in ``bpf/recorder.c`` uses offsets that this module reads from the
running kernel's BTF and passes to the compiler as ``-D`` macros.

Only what the recorder needs is implemented: the type section is parsed into
``(kind, name, size, members)`` records, and :func:`BTF.offset` resolves a
dotted member path (``"task_struct.signal"``, ``"mm_struct.arg_start"``,
``"dentry.d_name.name"``), looking through anonymous struct/union members
the way C does. Results are cached per BTF content hash, because parsing the
whole vmlinux BTF in Python takes about a second.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path

from fcap.errors import PrerequisiteError

BTF_MAGIC = 0xEB9F
VMLINUX = Path("/sys/kernel/btf/vmlinux")

# BTF kinds (include/uapi/linux/btf.h)
INT, PTR, ARRAY, STRUCT, UNION, ENUM, FWD, TYPEDEF = 1, 2, 3, 4, 5, 6, 7, 8
VOLATILE, CONST, RESTRICT, FUNC, FUNC_PROTO, VAR, DATASEC, FLOAT = 9, 10, 11, 12, 13, 14, 15, 16
DECL_TAG, TYPE_TAG, ENUM64 = 17, 18, 19
_MODIFIERS = {TYPEDEF, VOLATILE, CONST, RESTRICT, TYPE_TAG}


class BTFError(PrerequisiteError):
    """The BTF blob is missing, malformed, or lacks a member the recorder needs."""


@dataclass(frozen=True)
class Member:
    """A struct/union member: name, type id, offset in bits (bitfield size in bits or 0)."""

    name: str
    type_id: int
    bit_offset: int
    bitfield_size: int = 0


@dataclass
class BTFType:
    """One BTF type record."""

    kind: int
    name: str
    size_or_type: int
    members: list[Member] = field(default_factory=list)
    array: tuple[int, int] | None = None  # (element type id, nelems)


class BTF:
    """Parsed type section of a BTF blob."""

    def __init__(self, data: bytes) -> None:
        if len(data) < 24:
            raise BTFError("BTF blob too short")
        magic, _version, _flags, hdr_len = struct.unpack_from("<HBBI", data, 0)
        if magic != BTF_MAGIC:
            raise BTFError(f"not a BTF blob (magic {magic:#x})")
        type_off, type_len, str_off, str_len = struct.unpack_from("<IIII", data, 8)
        base = hdr_len
        self._strings = data[base + str_off : base + str_off + str_len]
        self.types: list[BTFType] = [BTFType(0, "void", 0)]  # id 0 is void
        self._by_name: dict[tuple[int, str], int] = {}
        self._parse(data[base + type_off : base + type_off + type_len])

    def _str(self, off: int) -> str:
        end = self._strings.index(b"\0", off)
        return self._strings[off:end].decode("utf-8", "replace")

    def _parse(self, buf: bytes) -> None:
        pos, n = 0, len(buf)
        unpack = struct.unpack_from
        while pos < n:
            name_off, info, sot = unpack("<III", buf, pos)
            pos += 12
            kind = (info >> 24) & 0x1F
            vlen = info & 0xFFFF
            kflag = info >> 31
            t = BTFType(kind, self._str(name_off) if name_off else "", sot)
            if kind == INT:
                pos += 4
            elif kind == ARRAY:
                elem, _index, nelems = unpack("<III", buf, pos)
                t.array = (elem, nelems)
                pos += 12
            elif kind in (STRUCT, UNION):
                for _ in range(vlen):
                    m_name, m_type, m_off = unpack("<III", buf, pos)
                    pos += 12
                    if kflag:
                        t.members.append(
                            Member(self._str(m_name) if m_name else "", m_type, m_off & 0xFFFFFF, m_off >> 24)
                        )
                    else:
                        t.members.append(Member(self._str(m_name) if m_name else "", m_type, m_off))
            elif kind in (ENUM, FUNC_PROTO):
                pos += 8 * vlen
            elif kind in (VAR, DECL_TAG):
                pos += 4
            elif kind in (DATASEC, ENUM64):
                pos += 12 * vlen
            elif kind in (PTR, FWD, TYPEDEF, VOLATILE, CONST, RESTRICT, FUNC, FLOAT, TYPE_TAG):
                pass
            else:
                raise BTFError(f"unknown BTF kind {kind} at type {len(self.types)}")
            tid = len(self.types)
            self.types.append(t)
            if t.name and kind in (STRUCT, UNION):
                self._by_name.setdefault((kind, t.name), tid)

    # --- queries -------------------------------------------------------------

    def resolve(self, type_id: int) -> int:
        """Strip typedefs and qualifiers."""
        while self.types[type_id].kind in _MODIFIERS:
            type_id = self.types[type_id].size_or_type
        return type_id

    def struct_id(self, name: str) -> int:
        """Type id of ``struct name`` (or ``union name``)."""
        for kind in (STRUCT, UNION):
            tid = self._by_name.get((kind, name))
            if tid is not None:
                return tid
        raise BTFError(f"kernel BTF has no struct {name}")

    def sizeof(self, type_id: int) -> int:
        """Size in bytes of a type."""
        t = self.types[self.resolve(type_id)]
        if t.kind in (STRUCT, UNION, INT, ENUM, ENUM64, FLOAT):
            return t.size_or_type
        if t.kind == PTR:
            return 8
        if t.kind == ARRAY and t.array:
            return t.array[1] * self.sizeof(t.array[0])
        raise BTFError(f"cannot size BTF type {type_id} (kind {t.kind})")

    def _find_member(self, type_id: int, name: str) -> tuple[int, Member] | None:
        """(byte offset, member) of ``name`` in a struct/union, through anonymous members."""
        t = self.types[self.resolve(type_id)]
        for m in t.members:
            if m.name == name:
                return m.bit_offset, m
        for m in t.members:
            if not m.name:
                inner = self.types[self.resolve(m.type_id)]
                if inner.kind in (STRUCT, UNION):
                    found = self._find_member(m.type_id, name)
                    if found:
                        return m.bit_offset + found[0], found[1]
        return None

    def member(self, path: str) -> tuple[int, int, int]:
        """Resolve ``"struct.member[.member...]"`` to (byte offset, byte size, type id)."""
        parts = path.split(".")
        tid = self.struct_id(parts[0])
        bits = 0
        m: Member | None = None
        for name in parts[1:]:
            found = self._find_member(tid, name)
            if found is None:
                raise BTFError(f"kernel BTF: struct {parts[0]} has no member {path}")
            off, m = found
            bits += off
            tid = m.type_id
        if m is None:
            return 0, self.sizeof(tid), tid
        if m.bitfield_size:
            raise BTFError(f"{path} is a bitfield; the recorder cannot read it")
        return bits // 8, self.sizeof(tid), tid

    def offset(self, path: str) -> int:
        """Byte offset of a dotted member path."""
        return self.member(path)[0]


def btf_hash(path: Path = VMLINUX) -> str:
    """Content hash identifying one kernel build's BTF."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:24]


def _cache_dir() -> Path:
    base = os.environ.get("FCAP_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "fcap"
    )
    return Path(base)


def kernel_offsets(
    members: dict[str, str], sizes: dict[str, str], path: Path = VMLINUX
) -> dict[str, int]:
    """Macro name -> value for member offsets (``members``) and struct sizes (``sizes``).

    ``members`` maps a macro name to a dotted member path, ``sizes`` maps a macro
    name to a struct name. Cached per BTF content hash (and request).
    """
    if not path.exists():
        raise BTFError(
            f"{path} is missing: the recorder needs a kernel built with CONFIG_DEBUG_INFO_BTF"
        )
    req = json.dumps([members, sizes], sort_keys=True).encode()
    key = f"{btf_hash(path)}-{hashlib.sha256(req).hexdigest()[:12]}"
    cache = _cache_dir() / f"btf-offsets-{key}.json"
    try:
        return json.loads(cache.read_text())
    except (OSError, ValueError):
        pass
    btf = BTF(path.read_bytes())
    out = {macro: btf.offset(p) for macro, p in members.items()}
    out.update({macro: btf.sizeof(btf.struct_id(s)) for macro, s in sizes.items()})
    try:
        cache.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        tmp = cache.with_suffix(".tmp")
        tmp.write_text(json.dumps(out))
        tmp.replace(cache)
    except OSError:
        pass
    return out
