"""Whole-column numpy helpers for the state stages: packed sort keys and ASOF lookups.

An ASOF lookup ("the latest reference row of the same key at or before t") is
done by packing ``(key, time)`` into one int64 whose order is the
lexicographic order of the pair, then one ``np.searchsorted``. Keys are made
dense first when the raw values would not fit. No per-row Python anywhere.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np

#: Sentinel for a null integer in the int64 columns handed to numpy.
NONE = np.int64(-(2**62))


def bits(n: int) -> int:
    """Bits needed to hold 0..n."""
    return max(int(n), 0).bit_length()


def dense(sorted_keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(unique keys, dense id per element) of an already sorted key array."""
    if len(sorted_keys) == 0:
        return sorted_keys[:0], np.zeros(0, np.int64)
    new = np.empty(len(sorted_keys), bool)
    new[0] = True
    np.not_equal(sorted_keys[1:], sorted_keys[:-1], out=new[1:])
    return sorted_keys[new], np.cumsum(new, dtype=np.int64) - 1


def unique(a: np.ndarray) -> np.ndarray:
    """Sorted distinct values (a sort: numpy's hash-based ``np.unique`` is slower on ints)."""
    return dense(np.sort(a))[0]


def asof(rkey: np.ndarray, rts: np.ndarray, qkey: np.ndarray, qts: np.ndarray) -> np.ndarray:
    """Index of the last reference row with ``rkey == qkey`` and ``rts <= qts``, else -1.

    The reference rows must be sorted by ``(rkey, rts)``. Queries may be in any
    order; they are looked up in sorted order (binary searches over sorted
    queries stay in cache).
    """
    out = np.full(len(qkey), -1, np.int64)
    if len(rkey) == 0 or len(qkey) == 0:
        return out
    uk, rd = dense(rkey)
    qi = np.searchsorted(uk, qkey)
    np.minimum(qi, len(uk) - 1, out=qi)
    ok = uk[qi] == qkey
    base = int(qts.min()) - 1
    rt = np.maximum(rts, base) - base  # earlier reference times all behave alike
    span = max(int(rt.max()), int(qts.max()) - base)
    tb = bits(span)
    if tb + bits(len(uk)) > 62:  # pragma: no cover - needs > 2**62 ns x keys
        raise OverflowError("time span x keys too large to pack")
    rp = (rd << tb) | rt
    qp = (qi.astype(np.int64) << tb) | (qts - base)
    order = np.argsort(qp, kind="stable")
    idx = np.searchsorted(rp, qp[order], side="right") - 1
    hit = idx >= 0
    hit[hit] = rd[idx[hit]] == qi[order][hit]
    res = np.where(hit, idx, -1)
    out[order] = res
    out[~ok] = -1
    return out


class Windows:
    """"Is there an event of instance ``k`` in ``(a, b]``?" for a sorted set of (key, ts)."""

    def __init__(self, keys: np.ndarray, ts: np.ndarray) -> None:
        order = np.lexsort((ts, keys))
        self.keys = keys[order]
        self.ts = ts[order]

    def any_in(self, k: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """Boolean per query: some row of key ``k`` with ``a < ts <= b``."""
        if len(self.keys) == 0 or len(k) == 0:
            return np.zeros(len(k), bool)
        hb = asof(self.keys, self.ts, k, b)
        has = hb >= 0
        has[has] = self.ts[hb[has]] > a[has]
        return has



@contextlib.contextmanager
def small_pages() -> Iterator[None]:
    """Within the block, numpy does not ask the kernel for huge pages for its arrays.

    numpy ``madvise(MADV_HUGEPAGE)``s every large array on Linux. When the
    kernel must compact memory to find huge pages (``defrag`` = ``madvise``,
    the usual default), the first touch of each fresh array stalls: the
    descriptor stage, which allocates dozens of arrays the size of the capture,
    measured 15-25% slower with it on the project's VM (docs/performance.md).
    ``NUMPY_MADVISE_HUGEPAGE`` still decides outside the block.
    """
    try:
        from numpy._core import multiarray as ma
    except ImportError:  # pragma: no cover - numpy < 2
        from numpy.core import multiarray as ma  # type: ignore[no-redef]
    setter = getattr(ma, "_set_madvise_hugepage", None)
    if setter is None:  # pragma: no cover - a numpy without the switch
        yield
        return
    before = setter(False)
    try:
        yield
    finally:
        setter(before)
