"""Alerts as regression tests see them, and expectations that match them.

An :class:`Alert` is the part of a Falco JSON alert that a regression test can
compare: rule name, priority, time and ``output_fields``. ``expected.jsonl``
files hold one Falco JSON alert per line (exactly what ``fcap replay -o json``
prints), so a person can read them and Falco's own tools can parse them.

An :class:`Expectation` says "this rule fires (``count`` times, or at least
once), with these output fields". Expectations are matched against alerts
greedily in a deterministic order (the most specific expectation first), so
the outcome never depends on the order alerts arrive in.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcap.errors import FcapError

#: Output fields that identify *what happened* and survive a re-recording
#: (unlike pids, inode numbers and times). Used by loose comparisons.
STABLE_FIELDS: tuple[str, ...] = (
    "proc.name",
    "proc.exepath",
    "proc.exe",
    "proc.pname",
    "proc.cmdline",
    "fd.name",
    "fd.sport",
    "fd.lport",
    "evt.type",
    "user.name",
    "container.name",
    "container.image.repository",
    "k8s.pod.name",
    "k8s.ns.name",
    "shell.line",
)


class ExpectationError(FcapError):
    """An expected-alerts file or entry cannot be understood."""

    exit_code = 2


def _text(value: Any) -> str:
    """Compare values as Falco prints them: JSON scalars turned into text."""
    if value is None:
        return "<NA>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(_text(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class Alert:
    """One alert: the comparable subset of Falco's JSON alert object."""

    rule: str
    priority: str = ""
    time: str = ""
    output: str = ""
    output_fields: tuple[tuple[str, str], ...] = ()
    source: str = "syscall"
    tags: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Alert:
        """Build from a Falco JSON alert (``rule`` is required)."""
        if not isinstance(obj, Mapping) or "rule" not in obj:
            raise ExpectationError(f"not a Falco alert object (no 'rule' key): {obj!r:.120}")
        fields = obj.get("output_fields") or {}
        return cls(
            rule=str(obj["rule"]),
            priority=str(obj.get("priority") or ""),
            time=str(obj.get("time") or ""),
            output=str(obj.get("output") or ""),
            output_fields=tuple(sorted((str(k), _text(v)) for k, v in fields.items())),
            source=str(obj.get("source") or "syscall"),
            tags=tuple(obj.get("tags") or ()),
        )

    @property
    def fields(self) -> dict[str, str]:
        """``output_fields`` as a dict of text values."""
        return dict(self.output_fields)

    def describe(self, keys: Sequence[str] | None = None) -> str:
        """A one-line human description: rule, priority, time and some fields."""
        fields = self.fields
        shown = [k for k in (keys or STABLE_FIELDS) if k in fields]
        parts = [f"{k}={fields[k]}" for k in shown]
        head = f"{self.rule} ({self.priority})" if self.priority else self.rule
        when = f" at {self.time}" if self.time else ""
        return f"{head}{when}" + (f" {' '.join(parts)}" if parts else "")


@dataclass(frozen=True)
class Expectation:
    """An expected alert: rule, optional priority/time/fields, and a count.

    ``count`` None means "at least once"; an integer means exactly that many
    alerts match (0 = the rule must not fire with these fields).
    """

    rule: str
    count: int | None = None
    priority: str | None = None
    time: str | None = None
    fields: tuple[tuple[str, str], ...] = ()
    origin: str = ""  # where it was declared, for messages (file:line)

    def matches(self, alert: Alert) -> bool:
        """True when ``alert`` satisfies every constraint of this expectation."""
        if alert.rule != self.rule:
            return False
        if self.priority and alert.priority.lower() != self.priority.lower():
            return False
        if self.time and alert.time != self.time:
            return False
        have = alert.fields
        return all(have.get(k) == v for k, v in self.fields)

    @property
    def specificity(self) -> int:
        """More constraints first, so a general expectation does not steal alerts."""
        return len(self.fields) + (1 if self.time else 0) + (1 if self.priority else 0)

    def describe(self) -> str:
        """A one-line human description (identifying fields first, times left out)."""
        fields = dict(self.fields)
        keys = [k for k in STABLE_FIELDS if k in fields]
        keys += [k for k in sorted(fields) if k not in keys and not k.startswith("evt.time")]
        parts = [f"{k}={fields[k]}" for k in keys]
        head = f"{self.rule} ({self.priority})" if self.priority else self.rule
        when = f" at {self.time}" if self.time else ""
        return f"{head}{when}" + (f" {' '.join(parts)}" if parts else "")

    @classmethod
    def parse(cls, item: Any, origin: str = "") -> Expectation:
        """Parse one entry of an ``alerts:`` list in a ``*.fcap.yaml`` file.

        Accepts a bare rule name, or a mapping with ``rule`` and optional
        ``count``, ``priority``, ``time`` and ``fields`` (output fields).
        """
        if isinstance(item, str):
            return cls(rule=item, origin=origin)
        if not isinstance(item, Mapping) or "rule" not in item:
            raise ExpectationError(
                f"{origin}: an expected alert needs a 'rule' key (got {item!r:.80})",
                hint="write e.g. {rule: Terminal shell in container, count: 1}",
            )
        unknown = set(item) - {"rule", "count", "priority", "time", "fields"}
        if unknown:
            raise ExpectationError(
                f"{origin}: unknown key(s) {', '.join(sorted(unknown))} in expected alert",
                hint="allowed: rule, count, priority, time, fields",
            )
        count = item.get("count")
        if count is not None and (not isinstance(count, int) or count < 0):
            raise ExpectationError(f"{origin}: count must be a non-negative integer")
        fields = item.get("fields") or {}
        if not isinstance(fields, Mapping):
            raise ExpectationError(f"{origin}: fields must be a mapping of output fields")
        return cls(
            rule=str(item["rule"]),
            count=count,
            priority=str(item["priority"]) if item.get("priority") else None,
            time=str(item["time"]) if item.get("time") else None,
            fields=tuple(sorted((str(k), _text(v)) for k, v in fields.items())),
            origin=origin,
        )


def expectations_from_alerts(
    alerts: Iterable[Alert], *, key_fields: Sequence[str] | None = None, with_time: bool = True
) -> list[Expectation]:
    """Turn recorded alerts into exact-count expectations.

    Alerts with the same key (rule, priority, time when ``with_time``, and the
    ``key_fields`` subset of output fields, all fields when None) are merged
    into one expectation with their count.
    """
    counts: dict[tuple, int] = {}
    for a in alerts:
        have = a.fields
        keys = sorted(have) if key_fields is None else [k for k in key_fields if k in have]
        key = (a.rule, a.priority, a.time if with_time else "", tuple((k, have[k]) for k in keys))
        counts[key] = counts.get(key, 0) + 1
    return [
        Expectation(rule=r, count=n, priority=p or None, time=t or None, fields=f)
        for (r, p, t, f), n in counts.items()
    ]


def read_jsonl(path: Path) -> list[Alert]:
    """Read a Falco JSON-lines alert file (blank lines and ``#`` comments skipped)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ExpectationError(f"cannot read expected alerts {path}: {err.strerror}") from err
    alerts = []
    for no, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            raise ExpectationError(f"{path}:{no}: not JSON: {err.msg}") from err
        alerts.append(Alert.from_json(obj))
    return alerts


def write_jsonl(path: Path, alerts: Iterable[Mapping[str, Any]]) -> int:
    """Write Falco JSON alert objects, one per line (sorted keys); return the count."""
    n = 0
    with path.open("w", encoding="utf-8") as out:
        for obj in alerts:
            out.write(json.dumps(obj, sort_keys=True, ensure_ascii=False) + "\n")
            n += 1
    return n


@dataclass(frozen=True)
class Comparison:
    """Expected vs actual alerts: what is missing, what is unexpected."""

    #: (expectation, alerts it claimed) for every expectation not satisfied
    missing: tuple[tuple[Expectation, tuple[Alert, ...]], ...] = ()
    #: alerts no expectation claimed
    unexpected: tuple[Alert, ...] = ()
    #: number of alerts claimed by some expectation
    matched: int = 0
    total: int = 0
    notes: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        """True when nothing is missing and nothing is unexpected."""
        return not self.missing and not self.unexpected


def compare(
    expected: Sequence[Expectation], alerts: Sequence[Alert], *, allow_unexpected: bool = False
) -> Comparison:
    """Match alerts to expectations and report what is missing or unexpected.

    Each alert is claimed by at most one expectation; expectations with more
    constraints claim first. An exact ``count`` expectation claims every alert
    it matches (so surplus alerts show up as a count mismatch, not as
    unexpected alerts of another rule); an at-least-once expectation claims all
    its matches too.
    """
    order = sorted(range(len(expected)), key=lambda i: (-expected[i].specificity, i))
    claimed = [False] * len(alerts)
    missing: list[tuple[Expectation, tuple[Alert, ...]]] = []
    matched = 0
    for i in order:
        exp = expected[i]
        mine = [j for j, a in enumerate(alerts) if not claimed[j] and exp.matches(a)]
        for j in mine:
            claimed[j] = True
        matched += len(mine)
        got = len(mine)
        if (exp.count is None and got == 0) or (exp.count is not None and got != exp.count):
            missing.append((exp, tuple(alerts[j] for j in mine)))
    unexpected = () if allow_unexpected else tuple(a for j, a in enumerate(alerts) if not claimed[j])
    return Comparison(
        missing=tuple(missing), unexpected=unexpected, matched=matched, total=len(alerts)
    )
