"""Recording in live tests: run a workload while the recorder (library API) records."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def record_while(output: Path, work: Callable[[], object], *, syscalls: str | None = None,
                 settle: float = 0.3, **opts: Any) -> Any:
    """Record to ``output`` while ``work()`` runs in a thread; return the RecordResult.

    ``work`` starts once the probes are attached; the recording stops when it
    returns (after ``settle`` seconds, so its last events are drained). An
    exception raised by ``work`` is re-raised here. ``opts`` go to
    ``RecordOptions`` (``shell`` defaults to False, ``duration`` to 60 s).
    """
    from fcap.capture.recorder import RecordOptions, record
    from fcap.capture.syscalls import parse_syscalls

    ready, stop = threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ready.wait(60)
            work()
            time.sleep(settle)
        except BaseException as err:
            errors.append(err)
        finally:
            stop.set()

    opts.setdefault("shell", False)
    opts.setdefault("duration", 60)
    th = threading.Thread(target=run)
    th.start()
    try:
        res = record(RecordOptions(output=output, syscalls=parse_syscalls(syscalls), **opts),
                     ready=ready, stop=stop, handle_signals=False)
    finally:
        stop.set()
        th.join(60)
    if errors:
        raise errors[0]
    return res
