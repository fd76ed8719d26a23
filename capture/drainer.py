"""A thread that keeps the kernel ring buffer empty, apart from decoding and writing.

Decoding and writing a batch can take a few hundred milliseconds (more on a
busy host); if the same thread drained the ring, the ring would fill and the
kernel would drop events meanwhile. The drainer copies the ring into memory
every poll interval (a memcpy per drain; numpy releases the GIL for it), at
a raised priority when allowed, and the record loop takes the copies in
bulk. Memory is bounded: above ``max_bytes`` of undecoded copies it stops
draining, so the kernel drops (and counts) instead of the host running out
of memory.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque

from fcap.capture.ringbuf import Records, RingBuffer


class Drainer(threading.Thread):
    """Drain ``rings`` every ``poll_s`` seconds into an in-memory queue."""

    def __init__(self, rings: list[RingBuffer], poll_s: float, max_bytes: int = 1 << 30) -> None:
        super().__init__(name="fcap-drain", daemon=True)
        self.rings = rings
        self.poll_s = poll_s
        self.max_bytes = max_bytes
        self._queue: deque[Records] = deque()
        self._bytes = 0
        self._rows = 0
        self._lock = threading.Lock()
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        with contextlib.suppress(OSError, AttributeError):
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), -10)
        try:
            while not self._halt.is_set():
                self.drain_once()
                self._halt.wait(self.poll_s)
        except BaseException as err:  # surfaced by the record loop
            self.error = err

    def drain_once(self) -> None:
        """Copy what the ring holds (unless the memory bound is reached)."""
        with self._lock:
            if self._bytes >= self.max_bytes:
                return
            for ring in self.rings:
                recs = ring.drain()
                if len(recs.starts):
                    self._queue.append(recs)
                    self._bytes += len(recs.buf)
                    self._rows += len(recs.starts)

    @property
    def pending_rows(self) -> int:
        """Records copied and not yet taken."""
        return self._rows

    def take(self) -> list[Records]:
        """Everything copied so far (oldest first)."""
        with self._lock:
            out = list(self._queue)
            self._queue.clear()
            self._bytes = self._rows = 0
        return out

    def stop(self) -> None:
        """Stop the thread, then drain once more so nothing submitted is left behind."""
        self._halt.set()
        if self.is_alive():
            self.join()
        self.drain_once()
