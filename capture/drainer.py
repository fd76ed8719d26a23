"""A thread that keeps the kernel ring buffer empty, apart from decoding and writing.

Decoding and writing a batch can take a few hundred milliseconds (more on a
busy host); if the same thread drained the ring, the ring would fill and the
kernel would drop events meanwhile. The drainer copies the ring into memory
every poll interval (a memcpy per drain; numpy releases the GIL for it), at
a raised priority when allowed, and the record loop takes the copies in
bulk. Memory is bounded: above ``max_bytes`` of undecoded copies it stops
draining, so the kernel drops (and counts) instead of the host running out
of memory.

The copies go into large reused chunks (:class:`Chunk`), one after the other,
so a batch is one contiguous buffer (no merge copy) and its pages are faulted
in once per recording instead of once per batch: fresh memory costs the
kernel a page fault and a page clear per 4 KiB, which under load was half of
the recorder's CPU. :meth:`Drainer.take` lends the filled chunks out as
:class:`~fcap.capture.ringbuf.Records`; :meth:`Drainer.release` gives them
back once decoded (the decoded batch must not refer to their memory).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections import deque

import numpy as np
from fcap.capture.ringbuf import Records, RingBuffer

#: Smallest chunk (bytes); a chunk also holds at least one whole ring.
CHUNK_BYTES = 64 << 20
#: Free chunks kept for reuse (a steady recording cycles through two or three; a
#: recorder that fell behind needs more for a while, and fresh chunks are costly).
SPARE_CHUNKS = 6
#: Room below which the current chunk is closed and the next one started.
MIN_ROOM = 1 << 20


class Chunk:
    """A reused buffer that drained spans are appended to (each 8-byte aligned)."""

    def __init__(self, capacity: int) -> None:
        self.mem = np.empty(capacity, np.uint8)  # pages are faulted in on first use only
        self.fill = 0
        self.rows = 0
        self._starts: list[np.ndarray] = []
        self._lengths: list[np.ndarray] = []

    @property
    def free(self) -> int:
        return len(self.mem) - self.fill

    def drain(self, ring: RingBuffer) -> int:
        """Copy ``ring``'s complete records to the end of the chunk; rows added."""
        recs = ring.drain(out=self.mem[self.fill :])
        n = len(recs.starts)
        if n:
            self._starts.append(recs.starts + self.fill)
            self._lengths.append(recs.lengths)
            self.rows += n
        self.fill += recs.consumed  # records are padded to 8 bytes: fill stays aligned
        return n

    def records(self) -> Records:
        """The chunk's records, in drain order (a view: valid until the chunk is reused)."""
        cat = np.concatenate if len(self._starts) > 1 else (lambda x: x[0])
        return Records(self.mem[: self.fill], cat(self._starts), cat(self._lengths), self.fill)

    def reset(self) -> None:
        self.fill = self.rows = 0
        self._starts, self._lengths = [], []


class Drainer(threading.Thread):
    """Drain ``rings`` every ``poll_s`` seconds into reused in-memory chunks."""

    def __init__(self, rings: list[RingBuffer], poll_s: float, max_bytes: int = 1 << 30) -> None:
        super().__init__(name="fcap-drain", daemon=True)
        self.rings = rings
        self.poll_s = poll_s
        self.max_bytes = max_bytes
        self.chunk_bytes = max(CHUNK_BYTES, max((r.size for r in rings), default=0))
        self._full: deque[Chunk] = deque()
        self._cur: Chunk | None = None
        self._spare: list[Chunk] = []
        self._lent: dict[int, Chunk] = {}
        self._bytes = 0
        self._rows = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.error: BaseException | None = None
        self.peak_fill = 0.0  # highest share of a ring found pending at a drain
        self.max_gap_s = 0.0  # longest time between two drains (scheduling, GIL)
        self._last = 0.0

    def run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        try:
            while not self._halt.is_set():
                self.drain_once()
                self._halt.wait(self.poll_s)
        except BaseException as err:  # surfaced by the record loop
            self.error = err

    def _chunk_for(self, need: int) -> Chunk:
        """The chunk to copy into: the current one while ``need`` bytes fit, else the next."""
        cur = self._cur
        if cur is not None and cur.free >= need:
            return cur
        self._close_current()
        cur = next((c for c in self._spare if len(c.mem) >= need), None)
        if cur is not None:
            self._spare.remove(cur)
        else:
            cur = Chunk(max(self.chunk_bytes, need))
        self._cur = cur
        return cur

    def _close_current(self) -> None:
        if self._cur is not None and self._cur.fill:
            self._full.append(self._cur)
            self._cur = None

    def drain_once(self) -> None:
        """Copy what the rings hold (unless the memory bound is reached).

        A ring's records fill the current chunk up to its end and go on in
        the next one, so chunks are used whole and a steady recording cycles
        through the same two or three.
        """
        now = time.monotonic()
        if self._last:
            self.max_gap_s = max(self.max_gap_s, now - self._last)
        self._last = now
        with self._lock:
            for ring in self.rings:
                pending = ring.pending()
                if pending > 0:
                    self.peak_fill = max(self.peak_fill, pending / ring.size)
                while pending > 0 and self._bytes < self.max_bytes:
                    chunk = self._chunk_for(min(pending, MIN_ROOM))
                    room = chunk.free
                    before = chunk.fill
                    self._rows += chunk.drain(ring)
                    got = chunk.fill - before
                    self._bytes += got
                    if got == 0:  # the first record is busy, or larger than the room left
                        if before == 0 or pending <= room:
                            break
                        self._close_current()
                    elif chunk.free >= MIN_ROOM:
                        break  # everything complete was copied
                    pending = ring.pending()

    @property
    def pending_rows(self) -> int:
        """Records copied and not yet taken."""
        return self._rows

    def take(self) -> list[Records]:
        """Everything copied so far (oldest first), lent until :meth:`release`."""
        with self._lock:
            chunks = list(self._full)
            self._full.clear()
            if self._cur is not None and self._cur.fill:
                chunks.append(self._cur)
                self._cur = None
            self._bytes = self._rows = 0
            out = []
            for c in chunks:
                if c.rows:
                    recs = c.records()
                    self._lent[id(recs)] = c
                    out.append(recs)
                else:
                    self._recycle(c)
        return out

    def release(self, parts: list[Records]) -> None:
        """Give taken records' memory back for reuse (nothing may refer to it any more)."""
        with self._lock:
            for recs in parts:
                chunk = self._lent.pop(id(recs), None)
                if chunk is not None:
                    self._recycle(chunk)

    def _recycle(self, chunk: Chunk) -> None:
        chunk.reset()
        if len(self._spare) < SPARE_CHUNKS:
            self._spare.append(chunk)

    def stop(self) -> None:
        """Stop the thread, then drain once more so nothing submitted is left behind."""
        self._halt.set()
        if self.is_alive():
            self.join()
        self.drain_once()
