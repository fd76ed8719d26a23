"""Memory checks before the per-row stages: a clear error instead of the OOM killer.

The descriptor state (:mod:`.fds`) holds numpy columns the size of the
capture while it is built; a capture too large for the machine would get fcap
killed by the kernel after minutes of work, with no message.
"""

from __future__ import annotations

import math
import os

from fcap.errors import ResourceError

#: Peak memory of the descriptor state per event read (numpy columns and the key stream):
#: 220-260 bytes measured on 2M and 10M synthetic events (docs/performance.md).
STATE_BYTES_PER_EVENT = 260
#: Share of the available memory a part of the descriptor state may take (the rest: the
#: DuckDB tables the parts append to, the other part's columns being freed).
PART_SHARE = 0.6
#: At most this many parts (each scans the capture twice).
MAX_PARTS = 64


def available_memory() -> int | None:
    """Bytes the kernel can give without swapping out others (MemAvailable + SwapFree)."""
    try:
        with open("/proc/meminfo") as f:
            info = dict(line.split(":", 1) for line in f)
    except OSError:  # pragma: no cover - not Linux
        return None
    return sum(int(info[k].split()[0]) * 1024 for k in ("MemAvailable", "SwapFree") if k in info)


def check(events: int) -> None:
    """Raise :class:`fcap.errors.ResourceError` when the descriptor state of ``events``
    rows would not fit in memory: a clear error now instead of the OOM killer later.
    ``FCAP_NO_MEMORY_CHECK=1`` skips the check."""
    if os.environ.get("FCAP_NO_MEMORY_CHECK") == "1":
        return
    avail = available_memory()
    need = events * STATE_BYTES_PER_EVENT
    if avail is not None and need > avail:
        raise ResourceError(
            f"the descriptor state (fd.* fields) of {events:,} events needs about "
            f"{need / 2**30:.1f} GiB of memory; {avail / 2**30:.1f} GiB are available",
            hint="free memory or use a larger machine; rules and queries without fd.* "
                 "fields do not build it; captures of several hosts are replayed one host "
                 "at a time; FCAP_NO_MEMORY_CHECK=1 skips this check")


def parts(events: int) -> int:
    """How many parts the descriptor state of ``events`` rows is built in
    (:mod:`.fdparts`): 1 when it fits in the available memory, else enough parts
    for each to take :data:`PART_SHARE` of it.

    ``FCAP_FD_PARTS=N`` forces N parts; ``FCAP_NO_MEMORY_CHECK=1`` always gives 1.
    Raises :class:`fcap.errors.ResourceError` beyond :data:`MAX_PARTS` parts."""
    forced = os.environ.get("FCAP_FD_PARTS")
    if forced:
        try:
            return max(1, int(forced))
        except ValueError:
            raise ResourceError(f"FCAP_FD_PARTS={forced!r} is not a number of parts",
                                hint="use a whole number, e.g. FCAP_FD_PARTS=4") from None
    if os.environ.get("FCAP_NO_MEMORY_CHECK") == "1":
        return 1
    avail = available_memory()
    need = events * STATE_BYTES_PER_EVENT
    if avail is None or need <= avail:
        return 1
    n = math.ceil(need / (avail * PART_SHARE))
    if n > MAX_PARTS:
        raise ResourceError(
            f"the descriptor state (fd.* fields) of {events:,} events needs about "
            f"{need / 2**30:.1f} GiB of memory; {avail / 2**30:.1f} GiB are available, "
            f"too little even in {MAX_PARTS} parts",
            hint="free memory or use a larger machine; rules and queries without fd.* "
                 "fields do not build it; FCAP_FD_PARTS=N forces N parts; "
                 "FCAP_NO_MEMORY_CHECK=1 skips this check")
    return n


def check_part(rows: int, n: int) -> None:
    """Raise :class:`fcap.errors.ResourceError` when the largest of ``n`` parts of the
    descriptor state (``rows`` rows) would not fit in memory either (unless the parts
    were forced with ``FCAP_FD_PARTS`` or ``FCAP_NO_MEMORY_CHECK=1``)."""
    if os.environ.get("FCAP_FD_PARTS") or os.environ.get("FCAP_NO_MEMORY_CHECK") == "1":
        return
    avail = available_memory()
    need = rows * STATE_BYTES_PER_EVENT
    if avail is not None and need > avail:
        raise ResourceError(
            f"the descriptor state (fd.* fields) does not fit in memory even in {n} parts: "
            f"the largest part reads {rows:,} events and needs about {need / 2**30:.1f} GiB; "
            f"{avail / 2**30:.1f} GiB are available",
            hint="a part holds whole descriptor numbers and the sources of their dups; "
                 "free memory or use a larger machine; FCAP_FD_PARTS=N forces N parts; "
                 "FCAP_NO_MEMORY_CHECK=1 skips this check")
