"""Bulk draining of a BPF ring buffer that we mmap ourselves.

Layout of a ``BPF_MAP_TYPE_RINGBUF`` mapping (kernel/bpf/ringbuf.c): page 0
holds ``consumer_pos`` (read-write for us), page 1 ``producer_pos``
(read-only), then the data area, mapped twice in a row so a record that
wraps around the end is contiguous. Each record has an 8-byte header
(``u32 len`` with ``BUSY`` bit 31 and ``DISCARD`` bit 30, ``u32 pg_off``) and
is padded to 8 bytes.

:func:`find_records` finds the record boundaries without a Python loop per
record: every fcap record starts with ``FCAP_MAGIC``, so candidates are the
8-aligned positions followed by the magic; the fast path checks in one
vectorized step that each candidate's length leads exactly to the next
candidate. When the check fails (a payload happened to contain the magic),
the chain is followed from the first record by pointer doubling over the
candidates, still vectorized (O(n log n)).
"""

from __future__ import annotations

import mmap
from dataclasses import dataclass

import numpy as np

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
LEN_MASK = DISCARD_BIT - 1
HDR = 8
FCAP_MAGIC = 0xFCA90002  # bpf/fcap_event.h (low half = FCAP_ABI_VERSION)


@dataclass(frozen=True)
class Records:
    """Records found in a copied span of the ring: offsets of their payloads."""

    buf: np.ndarray  # uint8, the copied bytes
    starts: np.ndarray  # int64, offset of each record's payload (after the 8-byte header)
    lengths: np.ndarray  # int64, payload length
    consumed: int  # bytes that may be released to the producer


def _chain(cand: np.ndarray, nxt: np.ndarray, end: int) -> np.ndarray:
    """Indexes of the candidates reached from cand[0] by following nxt (pointer doubling)."""
    m = len(cand)
    idx = np.searchsorted(cand, nxt)
    idx_c = np.minimum(idx, m - 1)
    ok = (idx < m) & (cand[idx_c] == nxt)
    jump = np.where(ok, idx, m)  # m = terminal
    jump = np.append(jump, m)
    reached = np.zeros(m + 1, dtype=bool)
    reached[0] = True
    steps = 1
    while steps <= m:
        src = np.flatnonzero(reached)
        reached[jump[src]] = True
        jump = jump[jump]
        steps *= 2
    return np.flatnonzero(reached[:m])


def find_records(buf: np.ndarray, magic: int = FCAP_MAGIC,
                 scratch: np.ndarray | None = None) -> Records:
    """Find the complete records in ``buf`` (bytes copied from consumer to producer).

    ``scratch`` (bool, reused by the caller) holds the magic test of every
    8-byte position when it is large enough, instead of fresh memory.
    """
    n = len(buf)
    empty = np.zeros(0, dtype=np.int64)
    if n < HDR + 4:
        return Records(buf, empty, empty, 0)
    nwords = n // 4
    words = buf[: nwords * 4].view(np.uint32)
    # candidate record starts p (8-aligned): word at p+8 is the magic
    at = words[2::2]
    out = scratch[: len(at)] if scratch is not None and len(scratch) >= len(at) else None
    cand = np.flatnonzero(np.equal(at, magic, out=out)).astype(np.int64) * 8
    if len(cand) == 0 or cand[0] != 0:
        # the first record may be busy (not yet written) or not ours
        first_len = int(words[0])
        if first_len & BUSY_BIT or len(cand) == 0:
            return Records(buf, empty, empty, 0)
        cand = np.concatenate([[0], cand])
    hdr = words[cand // 4]
    plen = (hdr & LEN_MASK).astype(np.int64)
    nxt = cand + ((plen + HDR + 7) & ~7)
    if not (np.array_equal(nxt[:-1], cand[1:]) and nxt[-1] == n):
        keep = _chain(cand, nxt, n)
        cand, hdr, plen, nxt = cand[keep], hdr[keep], plen[keep], nxt[keep]
        # the chain must be contiguous from 0; stop where it is not
        if len(cand):
            gaps = np.flatnonzero(nxt[:-1] != cand[1:])
            if len(gaps):
                cut = gaps[0] + 1
                cand, hdr, plen, nxt = cand[:cut], hdr[:cut], plen[:cut], nxt[:cut]
    busy = np.flatnonzero((hdr & BUSY_BIT) | (nxt > n))
    if len(busy):
        cut = busy[0]
        cand, hdr, plen, nxt = cand[:cut], hdr[:cut], plen[:cut], nxt[:cut]
    consumed = int(nxt[-1]) if len(nxt) else 0
    live = (hdr & DISCARD_BIT) == 0
    return Records(buf, cand[live] + HDR, plen[live], consumed)


class RingBuffer:
    """A BPF ring buffer map mmapped by us and drained in bulk."""

    def __init__(self, map_fd: int, size: int) -> None:
        page = mmap.PAGESIZE
        self.size = size
        self.mask = size - 1
        self._cons_map = mmap.mmap(
            map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0
        )
        self._prod_map = mmap.mmap(
            map_fd, page + 2 * size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page
        )
        self._cons = np.frombuffer(self._cons_map, dtype=np.uint64, count=1)
        self._prod = np.frombuffer(self._prod_map, dtype=np.uint64, count=1)
        self._data = np.frombuffer(self._prod_map, dtype=np.uint8, offset=page)
        self._scratch = np.empty(size // 8 + 1, bool)  # find_records' magic test, reused

    def pending(self) -> int:
        """Bytes between the consumer and producer positions."""
        return int(self._prod[0]) - int(self._cons[0])

    def drain(self, max_bytes: int | None = None, out: np.ndarray | None = None) -> Records:
        """Copy out every complete record and release their space to the producer.

        With ``out`` (a uint8 array, e.g. free space of a reused buffer) the
        bytes are copied into it instead of fresh memory, at most ``len(out)``
        of them; the records found then lie in ``out``, and bytes after
        ``consumed`` are scratch the caller may overwrite.
        """
        cons = int(self._cons[0])
        prod = int(self._prod[0])
        n = prod - cons
        if max_bytes is not None:
            n = min(n, max_bytes)
        if out is not None:
            n = min(n, len(out))
        if n <= 0:
            return find_records(np.zeros(0, dtype=np.uint8))
        start = cons & self.mask
        if out is None:
            buf = self._data[start : start + n].copy()
        else:
            buf = out[:n]
            np.copyto(buf, self._data[start : start + n])
        recs = find_records(buf, scratch=getattr(self, "_scratch", None))
        if recs.consumed:
            self._cons[0] = cons + recs.consumed
        return recs

    def close(self) -> None:
        """Unmap (the numpy views must not be used afterwards)."""
        del self._cons, self._prod, self._data
        self._cons_map.close()
        self._prod_map.close()
