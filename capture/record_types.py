"""The recorder's options and result, and the merge of drained ring spans.

:class:`RecordOptions` is everything ``fcap record`` can set,
:class:`RecordResult` what a finished recording produced, and
:func:`merge_records` joins the :class:`~fcap.capture.ringbuf.Records` spans the
drainer took into one (bulk numpy, no per-record Python). No bcc here: the
types import without root. :mod:`fcap.capture.recorder` re-exports them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from fcap.capture.filters import Filters
from fcap.capture.ringbuf import Records


@dataclass(frozen=True)
class RecordOptions:
    """Everything ``fcap record`` can set."""

    output: Path
    syscalls: tuple[str, ...]
    filters: Filters = field(default_factory=Filters)
    snaplen: int = 0
    duration: float | None = None
    max_events: int | None = None
    rotate_bytes: int | None = None
    rotate_seconds: float | None = None
    quiet: bool = True
    shell: bool = True
    ring_mb: int = 64
    poll_ms: int = 10
    batch_ms: int = 250
    batch_rows: int = 131_072
    with_env: bool = False
    command: tuple[str, ...] = ()


@dataclass
class RecordResult:
    """What a finished recording produced."""

    files: list[Path]
    events: int
    drops_per_cpu: list[int]
    elapsed_s: float
    cpu_s: float
    shell_lost: int = 0  # shell-probe records lost (included in drops_per_cpu[0])
    ring_peak_fill: float = 0.0  # highest share of a ring buffer found pending by a drain
    drain_gap_s: float = 0.0  # longest time between two drains

    @property
    def drops_total(self) -> int:
        """Drops summed over the CPUs (shell-probe losses included)."""
        return sum(self.drops_per_cpu)


def merge_records(parts: list[Records]) -> Records:
    """One Records over several drained spans (buffers concatenated, offsets shifted)."""
    parts = [p for p in parts if len(p.starts)]
    if not parts:
        return Records(np.zeros(0, np.uint8), np.zeros(0, np.int64), np.zeros(0, np.int64), 0)
    if len(parts) == 1:
        return parts[0]
    shifts = np.cumsum([0] + [len(p.buf) for p in parts[:-1]])
    buf = np.concatenate([p.buf for p in parts])
    starts = np.concatenate([p.starts + s for p, s in zip(parts, shifts, strict=True)])
    lengths = np.concatenate([p.lengths for p in parts])
    return Records(buf, starts, lengths, sum(p.consumed for p in parts))
