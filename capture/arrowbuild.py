"""Arrow arrays from ring-buffer bytes, without a Python loop per event.

Helpers of :mod:`fcap.capture.decode`: byte ranges of a copied ring span
become binary/string arrays through one Arrow ``take`` (the buffer is viewed
as alternating gap/range elements), NUL-separated argv blobs become
``list<string>`` by offset arithmetic, and the few per-value steps (path
normalization, address text) run on unique values only.
"""

from __future__ import annotations

import ipaddress
import posixpath

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

AF_INET, AF_INET6 = 2, 10
DICT = pa.dictionary(pa.int32(), pa.string())



def take_ranges(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> pa.Array:
    """A compact binary array of the byte ranges (starts ascending, ranges disjoint).

    The whole buffer is viewed, without copying, as a binary array alternating
    gap / range elements; Arrow's ``take`` of the odd elements then copies
    each range with one memcpy.
    """
    n = len(starts)
    if n == 0:
        return pa.array([], pa.binary())
    lens = lens.astype(np.int64)
    # slot offsets increase through the buffer (records in order, slots in order), so the
    # offsets below are monotonic; clipping keeps absent slots at the end inside it
    starts = np.minimum(starts.astype(np.int64), len(buf))
    ends = np.minimum(starts + lens, len(buf))
    offs = np.empty(2 * n + 1, np.int64)
    offs[0] = 0
    offs[1::2] = starts
    offs[2::2] = ends
    big = pa.Array.from_buffers(
        pa.large_binary(), 2 * n, [None, pa.py_buffer(offs), pa.py_buffer(buf)]
    )
    taken = big.take(pa.array(np.arange(1, 2 * n, 2, dtype=np.int64)))
    return taken.cast(pa.binary())


def gather(buf: np.ndarray, starts: np.ndarray, lens: np.ndarray) -> np.ndarray:
    """Concatenate buf[starts[i] : starts[i] + lens[i]] for all i (ranges in increasing order)."""
    return np.frombuffer(take_ranges(buf, starts, lens).buffers()[2] or b"", np.uint8)[
        : int(lens.sum())
    ]


def string_array(buf, starts, lens, valid, *, binary: bool = False) -> pa.Array:
    """Arrow string (or binary) array from byte ranges; rows not ``valid`` are null."""
    if not valid.any():
        return pa.nulls(len(valid), pa.binary() if binary else pa.string())
    lens = np.where(valid, lens, 0).astype(np.int64)
    arr = take_ranges(buf, starts, lens)
    if not valid.all():
        arr = pc.if_else(pa.array(valid), arr, pa.nulls(len(arr), pa.binary()))
    if binary:
        return arr
    try:
        return arr.cast(pa.string())
    except pa.ArrowInvalid:  # invalid UTF-8 in a path: replace, slow path (rare)
        vals = [None if v is None else v.decode("utf-8", "replace") for v in arr.to_pylist()]
        return pa.array(vals, pa.string())


def to_dict(arr: pa.Array) -> pa.Array:
    if len(arr) == 0 or arr.null_count == len(arr):
        return pa.nulls(len(arr), DICT)
    return arr.dictionary_encode().cast(DICT)


def normalize_dict(arr: pa.Array) -> pa.Array:
    """Normalize the (unique) dictionary values of a joined path array."""
    d = arr.dictionary_encode()
    vals = [None if v is None else norm_path(v) for v in d.dictionary.to_pylist()]
    return pa.DictionaryArray.from_arrays(d.indices, pa.array(vals, pa.string()))


def norm_path(p: str) -> str:
    q = posixpath.normpath(p)
    return "/" + q.lstrip("/") if q.startswith("//") else q


def argv_array(buf, starts, lens, valid) -> pa.Array:
    """list<string> from NUL-separated argv blobs."""
    if not valid.any():
        return pa.nulls(len(valid), pa.list_(pa.string()))
    lens = np.where(valid, lens, 0).astype(np.int64)
    data = gather(buf, starts, lens)
    ends = np.cumsum(lens)
    # a truncated blob (no final NUL) still ends its last element: insert one
    need = (lens > 0) & (data[np.maximum(ends - 1, 0)] != 0) if len(data) else lens > 0
    if need.any():
        data = np.insert(data, ends[need], 0)
        ends = ends + np.cumsum(need)
    nul = np.flatnonzero(data == 0)
    elem_start = np.concatenate([[0], nul[:-1] + 1]) if len(nul) else np.zeros(0, np.int64)
    elem_len = nul - elem_start
    # per-row element counts: NULs inside each row's range
    list_off = np.searchsorted(nul, ends, side="left").astype(np.int32)
    list_off = np.concatenate([[0], list_off]).astype(np.int32)
    chars = data[data != 0] if len(data) else data
    str_off = np.zeros(len(elem_len) + 1, dtype=np.int32)
    np.cumsum(elem_len, out=str_off[1:])
    values = pa.Array.from_buffers(
        pa.string(), len(elem_len), [None, pa.py_buffer(str_off), pa.py_buffer(chars)]
    )
    try:
        values.validate(full=True)
    except pa.ArrowInvalid:
        values = pa.array(
            [v.decode("utf-8", "replace") for v in values.view(pa.binary()).to_pylist()],
            pa.string(),
        )
    mask = pa.array(~valid)
    return pa.ListArray.from_arrays(pa.array(list_off), values, mask=mask)


def addr_text(fam: np.ndarray, addr16: np.ndarray, valid: np.ndarray) -> pa.Array:
    """IPv4/IPv6 text from 16-byte address fields (vectorized over unique values)."""
    n = len(fam)
    out = np.full(n, -1, dtype=np.int32)
    texts: list[str] = []
    v4 = valid & (fam == AF_INET)
    v6 = valid & (fam == AF_INET6)
    if v4.any():
        keys = addr16[v4, :4].copy().view(np.uint32).ravel()
        uniq, inv = np.unique(keys, return_inverse=True)
        base = len(texts)
        texts += [str(ipaddress.IPv4Address(int(k).to_bytes(4, "little"))) for k in uniq]
        out[v4] = base + inv
    if v6.any():
        keys = np.ascontiguousarray(addr16[v6]).view("V16").ravel()
        uniq, inv = np.unique(keys, return_inverse=True)
        base = len(texts)
        texts += [_v6(bytes(k)) for k in uniq]
        out[v6] = base + inv
    if not texts:
        return pa.nulls(n, DICT)
    idx = pa.array(out, mask=out < 0)
    return pa.DictionaryArray.from_arrays(idx, pa.array(texts, pa.string()))


def _v6(b: bytes) -> str:
    a = ipaddress.IPv6Address(b)
    return str(a.ipv4_mapped) if a.ipv4_mapped else str(a)
