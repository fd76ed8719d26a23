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
from fcap.capture.headers import (
    EVENT_DTYPE,
    NSLOTS,
    HeaderColumns,
    Workspace,
    alloc,
    owned,
    wrap,
)
from fcap.capture.ringbuf import Records
from fcap.capture.syscall_table import SYSCALL_NAME, SYSCALL_NR

from fcap.schema import EVENTS, PROCEXIT

K_SYSCALL, K_CHILD, K_EXEC, K_PROCEXIT = 0, 1, 2, 3
S_PATH, S_PATH2, S_DIR1, S_DIR2, S_CWD, S_EXE, S_ARGV, S_UADDR, S_DATA, S_UNIX = range(10)
D_DIR1_CWD, D_DIR2_CWD, D_TRUNC, D_NOSTATE = 1, 2, 4, 8
AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10

_DICT = pa.dictionary(pa.int32(), pa.string())
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


def _slot_columns(hdr: HeaderColumns, starts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(length, start offset in the copied buffer) of every slot, as (NSLOTS, N) arrays."""
    base = EVENT_DTYPE.fields["slen"][1]
    work, n = hdr.work, hdr.n
    slen = work.get("slen", (NSLOTS, n), np.int64)
    soff = work.get("soff", (NSLOTS, n), np.int64)
    for k in range(NSLOTS):  # one column per slot, straight from the word rows
        off = base + 2 * k
        slen[k] = hdr.w64[off // 8].view(np.uint16)[(off % 8) // 2 :: 4]
    np.add(starts, EVENT_DTYPE.itemsize, out=soff[0])
    for k in range(1, NSLOTS):
        np.add(soff[k - 1], slen[k - 1], out=soff[k])
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
    k = EVENT_DTYPE.fields["comm"][1] // 8  # 16 bytes = two whole words
    lo, hi = hdr.w64[k], hdr.w64[k + 1]
    key = hdr.work.get("comm_hash", hdr.n, np.uint64)
    np.multiply(hi, np.uint64(0x9E3779B97F4A7C15), out=key)
    np.bitwise_xor(key, lo, out=key)
    codes, first = _dict_codes(key)
    lo_f, hi_f = lo[first], hi[first]
    if not ((lo_f[codes] == lo).all() and (hi_f[codes] == hi).all()):
        # a hash collision (never seen): the exact, slower path
        pair = np.stack([lo, hi], axis=1).view("V16").ravel()
        _, first, codes = np.unique(pair, return_index=True, return_inverse=True)
        codes = codes.ravel().astype(np.int32)
        lo_f, hi_f = lo[first], hi[first]
    raw = np.stack([lo_f, hi_f], axis=1).view("S16").ravel()
    names = [bytes(b).split(b"\0", 1)[0].decode("utf-8", "replace") for b in raw]
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))


def _syscall_names(hdr: HeaderColumns) -> pa.Array:
    code = np.where(hdr["kind"] == K_PROCEXIT, 65535, hdr["nr"]).astype(np.int64)
    codes, first = _dict_codes(code)
    names = [PROCEXIT if c == 65535 else SYSCALL_NAME.get(int(c), f"syscall_{c}")
             for c in code[first]]
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(names, pa.string()))


def decode(
    recs: Records, *, boot_offset_ns: int, containers: ContainerLookup | None = None,
    work: Workspace | None = None,
) -> pa.RecordBatch:
    """Decode found records into one EVENTS record batch.

    ``work`` holds scratch memory reused from call to call (a recording keeps
    one); the batch never refers to it, nor to ``recs.buf``.
    """
    n = len(recs.starts)
    if n == 0:
        return pa.RecordBatch.from_arrays([pa.array([], f.type) for f in EVENTS], schema=EVENTS)
    recs = sort_by_time(recs)
    hdr = HeaderColumns(recs, work)
    buf = recs.buf
    slen, soff = _slot_columns(hdr, recs.starts)
    has = hdr.work.get("has", (NSLOTS, n), np.bool_)
    np.greater(slen, 0, out=has)
    kind = hdr["kind"]
    dflags = hdr["dflags"]
    args = [hdr.arg(i) for i in range(6)]

    def sstr(slot: int) -> pa.Array:  # string slot, NUL dropped
        return string_array(buf, soff[slot], slen[slot] - 1, has[slot])

    cols: dict[str, pa.Array] = {}
    tsb, ts = alloc(n, np.int64)
    np.add(hdr["ts"].view(np.int64), np.int64(boot_offset_ns), out=ts)
    cols["ts"] = wrap(tsb, n, pa.int64())
    cols["cpu"] = owned(hdr["cpu"])
    for name in ("pid", "tid", "ppid", "vpid", "vtid"):
        cols[name] = owned(hdr[name], dtype=np.int32)
    for name in ("uid", "gid", "euid", "egid", "loginuid", "tty", "sid", "pgid"):
        cols[name] = owned(hdr[name])
    cols["comm"] = _comm(hdr)
    cols["cgroup_id"] = owned(hdr["cgroup_id"])
    if containers is not None:
        cols["container_id"] = containers(cols["cgroup_id"].to_numpy()).cast(_DICT)
    else:
        cols["container_id"] = pa.nulls(n, _DICT)
    for name in ("mntns", "pidns", "netns"):
        cols[name] = owned(hdr[name])
    cols["syscall"] = _syscall_names(hdr)
    cols["res"] = owned(hdr["res"])
    nostate = (dflags & D_NOSTATE) != 0
    for i in range(6):
        cols[f"a{i}"] = owned(args[i], mask=nostate)
    fd = hdr["fd"]
    cols["fd"] = owned(fd, mask=fd < 0)

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
    cols.update(_socket_columns(hdr, buf, slen, soff, has, args))
    cols["data"] = string_array(buf, soff[S_DATA], slen[S_DATA], has[S_DATA], binary=True)
    cols["text"] = pa.nulls(n, pa.string())
    fa = hdr["flags_aux"]
    cols["flags_aux"] = owned(fa, mask=fa == 0)
    for name in ("cap_permitted", "cap_inheritable", "cap_effective"):
        cols[name] = owned(hdr[name])
    cols.update(_exe_inode_columns(hdr))
    arrays = [cols[f.name].cast(f.type) if cols[f.name].type != f.type else cols[f.name] for f in EVENTS]
    return pa.RecordBatch.from_arrays(arrays, schema=EVENTS)


def _exe_inode_columns(hdr: HeaderColumns) -> dict[str, pa.Array]:
    """exe_ino, exe_ino_ctime, exe_ino_mtime: exec records carry them in the socket
    address words (bpf/fcap_event.h); null elsewhere and where the kernel gave 0."""
    n = hdr.n
    names = (("exe_ino", np.uint64), ("exe_ino_ctime", np.int64), ("exe_ino_mtime", np.int64))
    is_exec = hdr["kind"] == K_EXEC
    if not is_exec.any():
        return {name: pa.nulls(n, pa.from_numpy_dtype(dt)) for name, dt in names}
    la = EVENT_DTYPE.fields["laddr"][1] // 8
    ra = EVENT_DTYPE.fields["raddr"][1] // 8
    words = (hdr.w64[la], hdr.w64[la + 1], hdr.w64[ra])
    return {name: owned(w, mask=~is_exec | (w == 0), dtype=dt)
            for (name, dt), w in zip(names, words, strict=True)}


def _socket_columns(hdr: HeaderColumns, buf: np.ndarray, slen: np.ndarray, soff: np.ndarray,
                    has: np.ndarray, args: list[np.ndarray]) -> dict[str, pa.Array]:
    """Socket family/type/protocol, addresses, ports and AF_UNIX path of every row.

    The kernel's socket fields, overridden by the user sockaddr where given
    (connect/bind/sendto); socket() takes them from its arguments.
    """
    n = hdr.n
    kind = hdr["kind"]
    nr = hdr["nr"]
    kfam = hdr["sock_family"]
    ua = has[S_UADDR] & (slen[S_UADDR] >= 2)
    is_socket = (nr == SYSCALL_NR["socket"]) & (kind == K_SYSCALL)
    cols: dict[str, pa.Array] = {}
    kpath = string_array(buf, soff[S_UNIX], slen[S_UNIX] - 1, has[S_UNIX])
    if not (kfam.any() or ua.any() or is_socket.any()):  # no socket in the batch
        for name, typ in (("sock_family", pa.int16()), ("sock_type", pa.int32()),
                          ("l4proto", pa.uint8()), ("lport", pa.uint16()), ("rport", pa.uint16())):
            cols[name] = pa.nulls(n, typ)
        cols["laddr"] = cols["raddr"] = pa.nulls(n, _DICT)
        cols["unix_path"] = to_dict(kpath)
        return cols
    fam = kfam.astype(np.int16)
    laddr = hdr.bytes_field("laddr")
    raddr = hdr.bytes_field("raddr")
    lport = hdr["lport"].copy()
    rport = hdr["rport"].copy()
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
        is_bind = nr[u] == SYSCALL_NR["bind"]
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
    fam = np.where(is_socket & (fam == 0), args[0], fam).astype(np.int16)
    stype = np.where(is_socket & (hdr["sock_type"] == 0), args[1] & 0xF, hdr["sock_type"])
    known = fam != 0
    cols["sock_family"] = owned(fam, mask=~known)
    cols["sock_type"] = owned(stype, mask=~known, dtype=np.int32)
    cols["l4proto"] = owned(hdr["l4proto"], mask=~known, dtype=np.uint8)
    inet = known & ((fam == AF_INET) | (fam == AF_INET6))
    cols["laddr"] = addr_text(fam, laddr, inet)
    cols["lport"] = owned(lport, mask=~inet)
    cols["raddr"] = addr_text(fam, raddr, inet)
    cols["rport"] = owned(rport, mask=~inet)
    # AF_UNIX path: from the user sockaddr (connect/bind/sendto), else the kernel's
    upath_valid = unix_user & (slen[S_UADDR] > 2)
    upath = string_array(buf, soff[S_UADDR] + 2, slen[S_UADDR] - 2, upath_valid)
    upath = pc.replace_substring_regex(upath, "\x00.*$", "")  # sun_path ends at its NUL
    cols["unix_path"] = to_dict(pc.if_else(pa.array(upath_valid), upath, kpath))
    return cols
