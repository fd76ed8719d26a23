"""Vectorized decoding of ring-buffer records into ``fcap.schema.EVENTS`` batches.

The record layout is ``struct fcap_event`` in bpf/fcap_event.h (mirrored by
:data:`EVENT_DTYPE`, checked by tests/test_bpf_layout.py) followed by the
string slots. Nothing here loops over events in Python: headers are gathered
and transposed into columns block by block, strings become Arrow arrays by offset
arithmetic, and the few per-value Python steps (comm names, path
normalization, address text) run on *unique* values only.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from fcap.capture.arrowbuild import (
    addr_text,
    argv_array,
    normalize_dict,
    string_array,
    to_dict,
)
from fcap.capture.ringbuf import Records
from fcap.capture.syscall_table import SYSCALL_NAME, SYSCALL_NR

from fcap.schema import EVENTS, PROCEXIT

K_SYSCALL, K_CHILD, K_EXEC, K_PROCEXIT = 0, 1, 2, 3
S_PATH, S_PATH2, S_DIR1, S_DIR2, S_CWD, S_EXE, S_ARGV, S_UADDR, S_DATA, S_UNIX = range(10)
NSLOTS = 10
D_DIR1_CWD, D_DIR2_CWD, D_TRUNC, D_NOSTATE = 1, 2, 4, 8
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10

EVENT_DTYPE = np.dtype(
    [
        ("magic", "<u4"), ("kind", "<u2"), ("nr", "<u2"), ("ts", "<u8"), ("cgroup_id", "<u8"),
        ("res", "<i8"), ("args", "<u8", (6,)), ("fd", "<i8"), ("flags_aux", "<i8"),
        ("pid", "<u4"), ("tid", "<u4"), ("ppid", "<u4"), ("vpid", "<u4"), ("vtid", "<u4"),
        ("uid", "<u4"), ("gid", "<u4"), ("euid", "<u4"), ("egid", "<u4"), ("loginuid", "<u4"),
        ("tty", "<u4"), ("sid", "<i4"), ("pgid", "<i4"),
        ("mntns", "<u4"), ("pidns", "<u4"), ("netns", "<u4"),
        ("cpu", "<u2"), ("sock_family", "<u2"), ("sock_type", "<u2"), ("l4proto", "<u2"),
        ("lport", "<u2"), ("rport", "<u2"), ("dflags", "<u2"), ("pad0", "<u2"),
        ("laddr", "u1", (16,)), ("raddr", "u1", (16,)), ("comm", "S16"),
        ("slen", "<u2", (NSLOTS,)), ("pad1", "<u2", (6,)),
    ]
)  # fmt: skip
assert EVENT_DTYPE.itemsize == 256

_DICT = pa.dictionary(pa.int32(), pa.string())
_SCHEMA_TYPES = {f.name: f.type for f in EVENTS}
ContainerLookup = Callable[[np.ndarray], pa.Array]


def sort_by_time(recs: Records) -> Records:
    """Records in timestamp order (several rings interleave; one ring is nearly ordered)."""
    buf = recs.buf
    if len(recs.starts) < 2:
        return recs
    off = EVENT_DTYPE.fields["ts"][1]
    if len(buf) % 8:
        buf = np.concatenate([buf, np.zeros(8 - len(buf) % 8, np.uint8)])
    ts = buf.view(np.uint64)[(recs.starts + off) // 8]
    if (ts[1:] >= ts[:-1]).all():
        return recs
    order = np.argsort(ts, kind="stable")
    return Records(recs.buf, recs.starts[order], recs.lengths[order], recs.consumed)


class HeaderColumns:
    """Column access to the record headers, ``hdr["pid"]`` like a structured array.

    The headers are gathered and transposed in one blocked pass straight from
    the copied ring bytes into 32 contiguous rows of 64-bit words (one row per
    8 header bytes), so each field is then read from contiguous memory instead
    of one value per 256-byte row (a cache line per field), and the gathered
    row-wise copy never goes through main memory.
    """

    BLOCK = 1024  # records per gather+transpose step: 256 KiB, stays in L2

    def __init__(self, recs: Records) -> None:
        self.n = n = len(recs.starts)
        words = EVENT_DTYPE.itemsize // 8
        buf = recs.buf
        need = int(recs.starts.max()) + EVENT_DTYPE.itemsize if n else 0
        if len(buf) < need or len(buf) % 8:
            pad = max(need - len(buf), 0) + (-(len(buf) + max(need - len(buf), 0))) % 8
            buf = np.concatenate([buf, np.zeros(pad, np.uint8)])
        win = np.lib.stride_tricks.sliding_window_view(buf.view(np.uint64), words)
        idx = recs.starts // 8
        self.w64 = np.empty((words, n), np.uint64)
        for i in range(0, n, self.BLOCK):
            self.w64[:, i : i + self.BLOCK] = win[idx[i : i + self.BLOCK]].T
        self._cache: dict[str, np.ndarray] = {}
        self._w32: dict[int, np.ndarray] = {}

    def word32(self, k: int) -> np.ndarray:
        """The 32-bit little-endian word ``k`` of every header (contiguous, cached)."""
        got = self._w32.get(k)
        if got is None:
            w = self.w64[k >> 1]
            got = ((w >> np.uint64(32)) if k & 1 else w).astype(np.uint32)
            self._w32[k] = got
        return got

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, name: str) -> np.ndarray:
        got = self._cache.get(name)
        if got is not None:
            return got
        ftype, off = EVENT_DTYPE.fields[name][:2]
        size = ftype.itemsize
        if off % 8 == 0 and size == 8 and not ftype.shape:
            out = self.w64[off // 8].view(ftype)
        elif off % 4 == 0 and size == 4 and not ftype.shape:
            out = self.word32(off // 4).view(ftype)
        elif off % 4 in (0, 2) and size == 2 and not ftype.shape:
            w = self.word32(off // 4)
            out = ((w >> 16) if off % 4 else (w & 0xFFFF)).astype(ftype)
        else:
            k0, k1 = off // 8, (off + size + 7) // 8
            rows = np.ascontiguousarray(self.w64[k0:k1].T).view(np.uint8)
            raw = np.ascontiguousarray(rows[:, off - 8 * k0 : off - 8 * k0 + size])
            if ftype.shape:
                out = raw.view(ftype.base).reshape(self.n, *ftype.shape)
            else:
                out = raw.view(ftype).reshape(self.n)
        self._cache[name] = out
        return out

    def arg(self, i: int) -> np.ndarray:
        """Raw syscall argument ``i`` (int64 column)."""
        return self.w64[EVENT_DTYPE.fields["args"][1] // 8 + i].view(np.int64)


def _slot_columns(hdr: HeaderColumns, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(length, start offset in the copied buffer) of every slot, as (NSLOTS, N) arrays."""
    base = EVENT_DTYPE.fields["slen"][1]
    slen = np.empty((NSLOTS, hdr.n), np.int64)
    for k in range(NSLOTS):  # one contiguous column per slot, straight from the word rows
        off = base + 2 * k
        w = hdr.word32(off // 4)
        slen[k] = (w >> 16) if off % 4 else (w & 0xFFFF)
    soff = np.empty_like(slen)
    acc = starts.astype(np.int64) + EVENT_DTYPE.itemsize
    for k in range(NSLOTS):
        soff[k] = acc
        acc = acc + slen[k]
    return slen, soff


def _dict_codes(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(codes int32, first row of each code) of an integer column (hash-based, O(n))."""
    d = pa.array(key).dictionary_encode()
    codes = d.indices.to_numpy().astype(np.int32, copy=False)
    first = np.empty(len(d.dictionary), np.int64)
    first[codes[::-1]] = np.arange(len(codes) - 1, -1, -1)  # the last write wins: first row
    return codes, first


def _comm(hdr: HeaderColumns) -> pa.Array:
    """comm as a dictionary array; uniques found on a 64-bit hash, verified exactly."""
    off = EVENT_DTYPE.fields["comm"][1]
    if off % 8 == 4:  # 16 bytes = high half of one word, one word, low half of the next
        w = hdr.w64[off // 8 : off // 8 + 3]
        mid = w[1]
        edge = (w[0] >> np.uint64(32)) | (w[2] << np.uint64(32))
    else:
        words = np.ascontiguousarray(hdr["comm"]).view(np.uint64).reshape(-1, 2)
        edge, mid = words[:, 0], words[:, 1]
    codes, first = _dict_codes(mid * np.uint64(0x9E3779B97F4A7C15) ^ edge)
    if not ((edge[first][codes] == edge).all() and (mid[first][codes] == mid).all()):
        # a hash collision (never seen): the exact, slower path
        _, first, codes = np.unique(hdr["comm"], return_index=True, return_inverse=True)
        codes = codes.ravel().astype(np.int32)
    raw = hdr["comm"][first] if off % 8 != 4 else [
        int(edge[i] & np.uint64(0xFFFFFFFF)).to_bytes(4, "little") + int(mid[i]).to_bytes(8, "little")
        + int(edge[i] >> np.uint64(32)).to_bytes(4, "little") for i in first]
    names = [bytes(b).split(b"\0", 1)[0].decode("utf-8", "replace") for b in raw]
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))


def _syscall_names(hdr: HeaderColumns) -> pa.Array:
    code = np.where(hdr["kind"] == K_PROCEXIT, 65535, hdr["nr"]).astype(np.int64)
    codes, first = _dict_codes(code)
    names = [PROCEXIT if c == 65535 else SYSCALL_NAME.get(int(c), f"syscall_{c}")
             for c in code[first]]
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))


def decode(
    recs: Records, *, boot_offset_ns: int, containers: ContainerLookup | None = None
) -> pa.RecordBatch:
    """Decode found records into one EVENTS record batch."""
    n = len(recs.starts)
    if n == 0:
        return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in EVENTS], schema=EVENTS)
    recs = sort_by_time(recs)
    hdr = HeaderColumns(recs)
    buf = recs.buf
    slen, soff = _slot_columns(hdr, recs.starts)
    has = slen > 0
    kind = hdr["kind"]
    dflags = hdr["dflags"]
    args = [hdr.arg(i) for i in range(6)]

    def sstr(slot: int) -> pa.Array:  # string slot, NUL dropped
        return string_array(buf, soff[slot], slen[slot] - 1, has[slot])

    cols: dict[str, pa.Array] = {}
    cols["ts"] = pa.array(hdr["ts"].astype(np.int64) + boot_offset_ns)
    cols["cpu"] = pa.array(hdr["cpu"])
    cols["pid"] = pa.array(hdr["pid"].astype(np.int32))
    cols["tid"] = pa.array(hdr["tid"].astype(np.int32))
    for name in ("ppid", "vpid", "vtid"):
        cols[name] = pa.array(hdr[name].astype(np.int32))
    for name in ("uid", "gid", "euid", "egid", "loginuid", "tty"):
        cols[name] = pa.array(hdr[name])
    cols["sid"] = pa.array(hdr["sid"])
    cols["pgid"] = pa.array(hdr["pgid"])
    cols["comm"] = _comm(hdr)
    cg = hdr["cgroup_id"]
    cols["cgroup_id"] = pa.array(cg)
    if containers is not None:
        cols["container_id"] = containers(cg).cast(_DICT)
    else:
        cols["container_id"] = pa.nulls(n, _DICT)
    for name in ("mntns", "pidns", "netns"):
        cols[name] = pa.array(hdr[name])
    cols["syscall"] = _syscall_names(hdr)
    cols["res"] = pa.array(hdr["res"])
    nostate = (dflags & D_NOSTATE) != 0
    for i in range(6):
        cols[f"a{i}"] = pa.array(args[i], mask=nostate)
    fd = hdr["fd"]
    cols["fd"] = pa.array(fd, mask=fd < 0)

    # paths: absolute where a base directory was recorded
    for col, slot, dslot in (("path", S_PATH, S_DIR1), ("path2", S_PATH2, S_DIR2)):
        raw = sstr(slot)
        base = sstr(dslot)
        if slot == S_PATH:  # exec: a relative filename is relative to the cwd
            cwd_exec = (kind == K_EXEC) & has[S_CWD] & ~has[dslot]
            if cwd_exec.any():
                base = pc.if_else(pa.array(cwd_exec), sstr(S_CWD), base)
        rel = pc.fill_null(pc.invert(pc.starts_with(raw, "/")), False)
        join = pc.and_(rel, pc.is_valid(base))
        if pc.any(join).as_py():
            joined = pc.binary_join_element_wise(base, raw, "/")
            joined = pc.if_else(join, joined, pa.nulls(n, pa.string()))
            normd = normalize_dict(joined).cast(pa.string())
            cols[col] = to_dict(pc.if_else(join, normd, raw))
            cols[col + "_raw"] = to_dict(pc.if_else(join, raw, pa.nulls(n, pa.string())))
        else:
            cols[col] = to_dict(raw)
            cols[col + "_raw"] = pa.nulls(n, _DICT)

    cwd = sstr(S_CWD)
    d1 = (dflags & D_DIR1_CWD) != 0
    d2 = (dflags & D_DIR2_CWD) != 0
    if d1.any() or d2.any():
        cwd = pc.if_else(pa.array(~has[S_CWD] & d1), sstr(S_DIR1), cwd)
        cwd = pc.if_else(pa.array(~has[S_CWD] & ~d1 & d2), sstr(S_DIR2), cwd)
    cols["cwd"] = to_dict(cwd)
    cols["exe"] = to_dict(sstr(S_EXE))
    cols["argv"] = argv_array(buf, soff[S_ARGV], slen[S_ARGV], has[S_ARGV])

    # sockets: kernel socket fields, overridden by the user sockaddr where given
    fam = hdr["sock_family"].astype(np.int16)
    laddr = hdr["laddr"].copy()
    raddr = hdr["raddr"].copy()
    lport = hdr["lport"].copy()
    rport = hdr["rport"].copy()
    ua = has[S_UADDR] & (slen[S_UADDR] >= 2)
    ufam = np.zeros(n, np.int16)
    unix_user = np.zeros(n, bool)
    if ua.any():
        u = np.flatnonzero(ua)
        ub = np.zeros((len(u), 28), np.uint8)
        for j in range(28):  # 28 byte columns, not events
            ok = slen[S_UADDR][u] > j
            ub[ok, j] = buf[soff[S_UADDR][u][ok] + j]
        uf = ub[:, 0].astype(np.int16) | (ub[:, 1].astype(np.int16) << 8)
        ufam[u] = uf
        port = (ub[:, 2].astype(np.uint16) << 8) | ub[:, 3]
        is_bind = hdr["nr"][u] == SYSCALL_NR["bind"]
        inet = (uf == AF_INET) | (uf == AF_INET6)
        a16 = np.zeros((len(u), 16), np.uint8)
        a16[uf == AF_INET, :4] = ub[uf == AF_INET, 4:8]
        a16[uf == AF_INET6] = ub[uf == AF_INET6, 8:24]
        loc = u[inet & is_bind]
        rem = u[inet & ~is_bind]
        laddr[loc] = a16[inet & is_bind]
        lport[loc] = port[inet & is_bind]
        raddr[rem] = a16[inet & ~is_bind]
        rport[rem] = port[inet & ~is_bind]
        fam = np.where(fam == 0, ufam, fam).astype(np.int16)
        unix_user[u] = uf == AF_UNIX
    # socket(): family/type/proto from the arguments when the kernel gave none
    is_socket = (hdr["nr"] == SYSCALL_NR["socket"]) & (kind == K_SYSCALL)
    fam = np.where(is_socket & (fam == 0), args[0], fam).astype(np.int16)
    stype = np.where(is_socket & (hdr["sock_type"] == 0), args[1] & 0xF, hdr["sock_type"])
    known = fam != 0
    cols["sock_family"] = pa.array(fam, mask=~known)
    cols["sock_type"] = pa.array(stype.astype(np.int32), mask=~known)
    cols["l4proto"] = pa.array(hdr["l4proto"].astype(np.uint8), mask=~known)
    inet = known & ((fam == AF_INET) | (fam == AF_INET6))
    cols["laddr"] = addr_text(fam, laddr, inet)
    cols["lport"] = pa.array(lport, mask=~inet)
    cols["raddr"] = addr_text(fam, raddr, inet)
    cols["rport"] = pa.array(rport, mask=~inet)
    # AF_UNIX path: from the user sockaddr (connect/bind/sendto), else the kernel's
    upath_valid = unix_user & (slen[S_UADDR] > 2)
    upath = string_array(buf, soff[S_UADDR] + 2, slen[S_UADDR] - 2, upath_valid)
    upath = pc.replace_substring_regex(upath, "\x00.*$", "")  # sun_path ends at its NUL
    kpath = sstr(S_UNIX)
    cols["unix_path"] = to_dict(pc.if_else(pa.array(upath_valid), upath, kpath))
    cols["data"] = string_array(buf, soff[S_DATA], slen[S_DATA], has[S_DATA], binary=True)
    cols["text"] = pa.nulls(n, pa.string())
    fa = hdr["flags_aux"]
    cols["flags_aux"] = pa.array(fa, mask=fa == 0)
    arrays = [cols[f.name].cast(f.type) if cols[f.name].type != f.type else cols[f.name] for f in EVENTS]
    return pa.RecordBatch.from_arrays(arrays, schema=EVENTS)
