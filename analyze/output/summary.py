"""The closing summary printed on stderr after a replay (like Falco's at exit).

Falco prints ``Events detected: N``, ``Rule counts by severity:`` and
``Triggered rules by rule name:`` (``falco:userspace/falco/app/actions/process_events.cpp``
and ``falco_outputs`` statistics); fcap prints the same sections plus the
number of events replayed.
"""

from __future__ import annotations

from typing import Any

from .format import PRIORITY_NAMES


def summary_text(stats: Any, *, seconds: float | None = None) -> str:
    """The summary for a :class:`fcap.analyze.engine.ReplayStats`."""
    lines = [f"Events processed: {stats.events}"]
    if seconds is not None and seconds > 0:
        lines[0] += f" in {seconds:.2f}s ({stats.events / seconds:,.0f} events/s)"
    lines.append(f"Events detected: {stats.alerts}")
    lines.append("Rule counts by severity:")
    for name in PRIORITY_NAMES:
        if stats.by_priority.get(name):
            lines.append(f"   {name.upper()}: {stats.by_priority[name]}")
    lines.append("Triggered rules by rule name:")
    for rule, n in sorted(stats.by_rule.items(), key=lambda kv: (-kv[1], kv[0])):
        lines.append(f"   {rule}: {n}")
    return "\n".join(lines)
