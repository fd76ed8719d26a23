"""Host metadata for a capture's ``fcap.meta`` (hostname, kernel, boot time ...)."""

from __future__ import annotations

import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from fcap.schema import SCHEMA_VERSION


def boot_time_ns(proc: Path = Path("/proc")) -> int:
    """Wall-clock time of boot in ns.

    ``/proc/stat``'s ``btime`` has 1 s resolution; CLOCK_REALTIME minus
    CLOCK_BOOTTIME (sampled a few times, the tightest pair kept) gives ns
    resolution. The refined value is used when it agrees with btime within 2 s
    (it would not after the wall clock was stepped), else btime.
    """
    btime = None
    try:
        for line in (proc / "stat").read_text().splitlines():
            if line.startswith("btime "):
                btime = int(line.split()[1]) * 10**9
                break
    except OSError:
        pass
    best = None
    for _ in range(5):
        a = time.clock_gettime_ns(time.CLOCK_REALTIME)
        b = time.clock_gettime_ns(time.CLOCK_BOOTTIME)
        c = time.clock_gettime_ns(time.CLOCK_REALTIME)
        width = c - a
        if best is None or width < best[0]:
            best = (width, (a + c) // 2 - b)
    refined = best[1] if best else None
    if btime is None:
        return int(refined or 0)
    if refined is not None and abs(refined - btime) < 2 * 10**9:
        return int(refined)
    return btime


def fcap_version() -> str:
    """The installed fcap version."""
    from fcap import __version__

    return __version__


def host_meta(
    *,
    syscalls: list[str] | None = None,
    filters: dict[str, Any] | None = None,
    snaplen: int = 0,
    command: list[str] | None = None,
    start_ns: int | None = None,
) -> dict[str, Any]:
    """The start metadata of a recording on this host (fcap.meta keys)."""
    u = os.uname()
    return {
        "schema_version": SCHEMA_VERSION,
        "fcap_version": fcap_version(),
        "hostname": socket.gethostname() or u.nodename,
        "kernel": u.release,
        "machine": u.machine,
        "boot_time_ns": boot_time_ns(),
        "start_ns": start_ns if start_ns is not None else time.time_ns(),
        "end_ns": None,
        "syscalls": sorted(syscalls) if syscalls else None,
        "filters": filters or {},
        "snaplen": int(snaplen),
        "events_written": 0,
        "drops_per_cpu": [0] * (os.cpu_count() or 1),
        "drops_total": 0,
        "complete": False,
        "repaired": False,
        "segment": None,
        "command": list(command) if command is not None else list(sys.argv),
    }
