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


#: The end of the hints, for the captures built in parts and for the others.
_PARTS_HINT = "FCAP_FD_PARTS=N forces N parts; "
_HOSTS_HINT = "captures of several hosts are replayed one host at a time; "


def _shortfall(rows: int) -> tuple[int, int] | None:
    """(bytes needed, bytes available) when the state of ``rows`` rows would not fit;
    None when it fits, when the kernel does not say, or with ``FCAP_NO_MEMORY_CHECK=1``."""
    if os.environ.get("FCAP_NO_MEMORY_CHECK") == "1":
        return None
    avail = available_memory()
    need = rows * STATE_BYTES_PER_EVENT
    return (need, avail) if avail is not None and need > avail else None


def _error(what: str, need: int, avail: int, extra: str, hint: str = "",
           tail: str = _PARTS_HINT) -> ResourceError:
    return ResourceError(
        f"the descriptor state (fd.* fields) {what} needs about {need / 2**30:.1f} GiB of "
        f"memory; {avail / 2**30:.1f} GiB are available{extra}",
        hint=f"{hint}free memory or use a larger machine; rules and queries without fd.* "
             f"fields do not build it; {tail}FCAP_NO_MEMORY_CHECK=1 skips this check")


def check(events: int) -> None:
    """Raise :class:`fcap.errors.ResourceError` when the descriptor state of ``events``
    rows would not fit in memory: a clear error now instead of the OOM killer later
    (captures without a scan position, which are not built in parts).
    ``FCAP_NO_MEMORY_CHECK=1`` skips the check."""
    short = _shortfall(events)
    if short:
        raise _error(f"of {events:,} events", *short, "", tail=_HOSTS_HINT)


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
    short = _shortfall(events)
    if not short:
        return 1
    need, avail = short
    n = math.ceil(need / (avail * PART_SHARE))
    if n > MAX_PARTS:
        raise _error(f"of {events:,} events", need, avail,
                     f", too little even in {MAX_PARTS} parts")
    return n


def check_part(rows: int, n: int) -> None:
    """Raise :class:`fcap.errors.ResourceError` when the largest of ``n`` parts of the
    descriptor state (``rows`` rows) would not fit in memory either (unless the parts
    were forced with ``FCAP_FD_PARTS`` or ``FCAP_NO_MEMORY_CHECK=1``)."""
    if os.environ.get("FCAP_FD_PARTS"):
        return
    short = _shortfall(rows)
    if short:
        raise _error(f"does not fit in memory even in {n} parts: the largest part reads "
                     f"{rows:,} events and", *short, "",
                     "a part holds whole descriptor numbers and the sources of their dups; ")
