"""Readable reports: a failed regression test, and the alerts a rule change moves.

The failure report names the test, the capture and the rules, then one line
per problem: ``- missing`` for an expected alert that did not fire (with the
rule name, and the counts when a count was pinned) and ``+ unexpected`` for
an alert nobody expected — the same convention as a unified diff, expected
on the minus side.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from fcap.analyze.regress.alerts import STABLE_FIELDS, Alert, Comparison
from fcap.analyze.regress.runner import Result, bundled_rule_files


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _origin(origin: str) -> str:
    """``file:line`` with the file made relative to the working directory."""
    file, _, line = origin.rpartition(":")
    if file and line.isdigit():
        return f"{_rel(Path(file))}:{line}"
    return origin


def _rules_text(rules: Sequence[Path]) -> str:
    bundled = {p.resolve() for p in bundled_rule_files()}
    if rules and {p.resolve() for p in rules} == bundled:
        return "bundled (" + ", ".join(p.name for p in rules) + ")"
    return ", ".join(_rel(p) for p in rules) or "bundled"


def render_result(result: Result, *, max_lines: int = 40) -> str:
    """The report of one test: a PASS line, or FAIL with the missing/unexpected alerts."""
    spec = result.spec
    where = _rel(spec.file) + (f":{spec.line}" if spec.index is not None else "")
    head = f"{'PASS' if result.ok else 'FAIL'} {spec.name} ({where})"
    if result.ok:
        n = result.comparison.total if result.comparison else 0
        return f"{head}: {n} alert(s) as expected [{result.seconds:.2f}s]"
    lines = [head]
    lines.append(f"  capture: {spec.capture.describe()}")
    lines.append(f"  rules:   {_rules_text(spec.rules)} (rule_matching={spec.rule_matching})")
    if result.error is not None:
        lines.append("  error:   " + result.error.replace("\n", "\n           "))
        return "\n".join(lines)
    assert result.comparison is not None
    lines.append(_comparison_body(result.comparison, max_lines))
    return "\n".join(lines)


def _comparison_body(cmp: Comparison, max_lines: int) -> str:
    body: list[str] = []
    for exp, got in cmp.missing:
        want = "at least 1" if exp.count is None else str(exp.count)
        origin = f"  [{_origin(exp.origin)}]" if exp.origin else ""
        body.append(f"  - missing: {exp.describe()}: expected {want}, got {len(got)}{origin}")
        for a in got[:3]:
            body.append(f"      got: {a.describe()}")
    for a in cmp.unexpected:
        body.append(f"  + unexpected: {a.describe()}")
    if len(body) > max_lines:
        body = [*body[:max_lines], f"  ... {len(body) - max_lines} more line(s)"]
    body.append(
        f"  {len(cmp.missing)} missing, {len(cmp.unexpected)} unexpected, "
        f"{cmp.matched} of {cmp.total} alert(s) matched"
    )
    return "\n".join(body)


def render_comparison(cmp: Comparison, *, title: str = "alerts", max_lines: int = 40) -> str:
    """A comparison outside a spec (the ``assert_alerts`` fixture)."""
    head = "alerts as expected" if cmp.ok else "unexpected alert differences"
    return f"{title}: {head}\n" + _comparison_body(cmp, max_lines)


def render_summary(results: Sequence[Result]) -> str:
    """One closing line: passed/failed counts."""
    failed = sum(not r.ok for r in results)
    total = len(results)
    secs = sum(r.seconds for r in results)
    verdict = "FAILED" if failed else "ok"
    return f"{verdict}: {total - failed} passed, {failed} failed ({total} test(s), {secs:.2f}s)"


@dataclass(frozen=True)
class AlertChange:
    """Alerts a rule change adds and removes on one capture.

    An alert of the same rule on the same event in both runs is the same
    alert; if its priority or output fields differ it is *changed*, not
    removed and added.
    """

    capture: Path
    added: tuple[Alert, ...]
    removed: tuple[Alert, ...]
    unchanged: int
    changed: tuple[tuple[Alert, Alert], ...] = ()


def _key(a: Alert) -> tuple:
    """Identity of an alert across two rulesets: the rule and the event's time."""
    return (a.rule, a.time)


def alert_change(capture: Path, old: Sequence[Alert], new: Sequence[Alert]) -> AlertChange:
    """Which alerts ``new`` adds, removes or changes with respect to ``old`` (multisets)."""
    pending: dict[tuple, list[Alert]] = {}
    for a in new:
        pending.setdefault(_key(a), []).append(a)
    removed: list[Alert] = []
    changed: list[tuple[Alert, Alert]] = []
    unchanged = 0
    for a in old:
        bucket = pending.get(_key(a))
        if not bucket:
            removed.append(a)
            continue
        same = next((b for b in bucket if b == a), None)
        b = same if same is not None else bucket[0]
        bucket.remove(b)
        if same is not None:
            unchanged += 1
        else:
            changed.append((a, b))
    added = [a for bucket in pending.values() for a in bucket]
    added.sort(key=lambda a: (a.time, a.rule))
    return AlertChange(capture, tuple(added), tuple(removed), unchanged, tuple(changed))


def render_change(change: AlertChange, *, max_lines: int = 60) -> str:
    """Per capture: ``+`` alerts the new rules add, ``-`` alerts they remove, by rule."""
    lines = [
        f"{_rel(change.capture)}: +{len(change.added)} added, -{len(change.removed)} removed, "
        f"~{len(change.changed)} changed, {change.unchanged} unchanged"
    ]
    body: list[str] = []
    for sign, alerts in (("-", change.removed), ("+", change.added)):
        by_rule = Counter(a.rule for a in alerts)
        for rule, n in sorted(by_rule.items()):
            body.append(f"  {sign} {rule}: {n} alert(s)")
            for a in [a for a in alerts if a.rule == rule][:5]:
                body.append(f"      {sign} {a.describe(STABLE_FIELDS)}")
            if n > 5:
                body.append(f"      ... {n - 5} more")
    by_rule = Counter(a.rule for a, _ in change.changed)
    for rule, n in sorted(by_rule.items()):
        body.append(f"  ~ {rule}: {n} alert(s) with a different priority or output")
        for a, b in [p for p in change.changed if p[0].rule == rule][:3]:
            body.append(f"      - {a.describe(STABLE_FIELDS)}")
            body.append(f"      + {b.describe(STABLE_FIELDS)}")
    if len(body) > max_lines:
        body = [*body[:max_lines], f"  ... {len(body) - max_lines} more line(s)"]
    return "\n".join(lines + body)
