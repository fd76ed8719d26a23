"""Replay: evaluate a compiled ruleset over a capture in one DuckDB scan.

One ``SELECT`` over the enriched ``events`` relation computes, per event, the
matching rule(s): with ``rule_matching="first"`` (Falco's default) a ``CASE``
returns the first rule in evaluation order whose predicate (event-type
pre-filter folded in) is true; with ``"all"`` a list of every matching rule is
unnested. Only matching rows leave DuckDB, together with the JSON values of
the distinct output fields of all rules (one list, computed for matches only), so memory is bounded by DuckDB's
streaming, not by the capture; per-alert Python only formats the (few) alerts.
Alerts come out ordered by event time, then event number, then rule order.
"""

from __future__ import annotations

import json
import os
import socket
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcap.analyze.compile import CompiledRule, CompiledRuleset
from fcap.analyze.compile.template import value_sql
from fcap.analyze.output.format import apply_width, field_text, priority_name

from fcap.errors import UsageError

RULE_MATCHING = ("first", "all")


@dataclass(frozen=True)
class Alert:
    """One rule match, with everything Falco prints about it."""

    ts: int  # event time, ns since the epoch (UTC)
    evt_num: int
    rule: str
    priority: Any
    source: str
    tags: tuple[str, ...]
    message: str  # the expanded rule output (no time/priority prefix)
    output_fields: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)
    hostname: str = ""

    @property
    def priority_name(self) -> str:
        return priority_name(self.priority)


@dataclass
class ReplayStats:
    """Figures for the closing summary."""

    events: int = 0
    alerts: int = 0
    by_rule: Counter[str] = field(default_factory=Counter)
    by_priority: Counter[str] = field(default_factory=Counter)


def select_rules(
    compiled: CompiledRuleset,
    *,
    min_priority: Any = None,
    tags: Sequence[str] = (),
    exclude_tags: Sequence[str] = (),
    disable: Sequence[str] = (),
) -> CompiledRuleset:
    """Falco's rule selection, returning a ruleset whose ``enabled`` flags are final.

    ``min_priority``: keep rules at least as severe (``priority <= p``, Falco's
    ``priority:``). ``tags`` (``-t``): only rules with at least one of the tags
    are enabled (even ``enabled: false`` ones, as Falco's ``-t`` enables by
    tag). ``exclude_tags`` (``-T``): rules with any of the tags are disabled.
    ``disable`` (``-D``): a pattern with ``*``/``?``/``[`` disables the rules
    whose name matches it (fnmatch), plain text the rules whose name contains it.
    """
    import dataclasses
    from fnmatch import fnmatchcase

    from fcap.analyze.output.format import priority_value

    limit = None if min_priority is None else priority_value(min_priority)
    out = []
    for r in compiled.rules:
        if limit is not None and priority_value(r.priority) > limit:
            continue
        enabled = r.enabled
        if tags:
            enabled = bool(r.tags & set(tags))
        if exclude_tags and r.tags & set(exclude_tags):
            enabled = False
        for pat in disable:
            wild = any(ch in pat for ch in "*?[")
            if (fnmatchcase(r.name, pat) if wild else pat in r.name):
                enabled = False
        out.append(r if enabled == r.enabled else dataclasses.replace(r, enabled=enabled))
    return dataclasses.replace(compiled, rules=tuple(out))


def _rule_list(compiled: CompiledRuleset | Sequence[CompiledRule]) -> list[CompiledRule]:
    rules = compiled.rules if isinstance(compiled, CompiledRuleset) else tuple(compiled)
    return [r for r in rules if r.enabled]


NESTED_MAX_TYPES = 64  # rules with larger event-type sets are evaluated for every event


def _dispatch(rules: Sequence[CompiledRule], leaf: Any) -> str:
    """Rules grouped by event type: ``CASE e.evt_type WHEN 't' THEN leaf(rules for t) ... END``.

    Within a branch the rules keep their evaluation order and need no
    pre-filter; rules matching more than NESTED_MAX_TYPES types (or all) are
    "generic": added to every branch and evaluated in the ELSE branch with
    their own pre-filter. ``leaf(pairs)`` builds the expression for a list of
    ``(rule index, predicate sql)``.
    """
    from fcap.analyze.compile.values import sql_str

    generic = {i for i, r in enumerate(rules)
               if r.event_types is None or len(r.event_types) > NESTED_MAX_TYPES}
    by_type: dict[str, list[int]] = {}
    for i, r in enumerate(rules):
        if i not in generic:
            for t in r.event_types or ():
                by_type.setdefault(t, []).append(i)
    # event types evaluating the same rules share one branch (the open rules are written
    # once for open/openat/openat2, not three times: a smaller query, fewer comparisons)
    groups: dict[tuple[int, ...], list[str]] = {}
    for t in sorted(by_type):
        idx = tuple(sorted(set(by_type[t]) | {g for g in generic if _has_type(rules[g], t)}))
        groups.setdefault(idx, []).append(t)
    branches = []
    evt = rules[0].evttype_sql if rules else "e.evt_type"
    for idx, types in groups.items():
        test = (f"{evt} = {sql_str(types[0])}" if len(types) == 1
                else f"{evt} IN ({', '.join(sql_str(t) for t in types)})")
        branches.append(f"WHEN {test} THEN {leaf([(i, rules[i].predicate) for i in idx])}")
    default = leaf([(i, rules[i].sql) for i in sorted(generic)])
    if not branches:
        return default
    return "CASE " + " ".join(branches) + f" ELSE {default} END"


def _has_type(rule: CompiledRule, t: str) -> bool:
    return rule.event_types is None or t in rule.event_types


def _first_leaf(pairs: list[tuple[int, str]], vals: list[str]) -> str:
    if not pairs:
        return "NULL"
    return "CASE " + " ".join(f"WHEN {sql} THEN {vals[i]}" for i, sql in pairs) + " END"


def _all_leaf(pairs: list[tuple[int, str]], vals: list[str]) -> str:
    if not pairs:
        return "[]"
    items = ", ".join(f"CASE WHEN {sql} THEN {vals[i]} END" for i, sql in pairs)
    return f"list_filter([{items}], lambda x: x IS NOT NULL)"


def _rule_values(r: CompiledRule) -> list[str]:
    """The JSON value expressions rule ``r``'s alert needs: its template's fields in
    order, then the JSON-only fields (``_alert`` consumes them in this order)."""
    items = [value_sql(t.operand) for t in r.template.tokens if t.operand]
    items += [value_sql(op) for _, op in r.template.json_fields]
    return items


def value_columns(rules: Sequence[CompiledRule]) -> tuple[list[str], list[list[int]]]:
    """The distinct value expressions of all rules, and per rule the positions of its
    values among them. Rules share most output fields (the suggested container fields,
    ``%proc.name``...): one list of distinct expressions, computed for matching events
    only, keeps the query small (planning time) and cheap."""
    exprs: dict[str, int] = {}
    positions = []
    for r in rules:
        positions.append([exprs.setdefault(x, len(exprs)) for x in _rule_values(r)])
    return list(exprs), positions


def build_sql(rules: Sequence[CompiledRule], rule_matching: str = "first",
              relation: str = "events") -> str:
    """The one-pass query: rows ``(ts, evt_num, rule_idx, vals)`` for every match.

    Rules are dispatched on the event type (a ``CASE`` on ``evt.type``), then
    evaluated in rule order: the first true predicate gives the rule (``first``)
    or every true predicate is kept (``all``). ``unnest`` makes DuckDB evaluate
    the ``CASE`` once per event (a plain column would be inlined by the
    optimizer into the filter and into every use of the rule index); the JSON
    of the rule's output fields is then computed for matching events only.
    When no rule is generic, the union of the rules' event types also filters
    the scan.
    """
    if rule_matching not in RULE_MATCHING:
        raise UsageError(f"--rule-matching must be 'first' or 'all', not {rule_matching!r}")
    if not rules:
        return ("SELECT NULL::BIGINT AS ts, NULL::BIGINT AS evt_num, NULL::INTEGER AS rule_idx, "
                "NULL::VARCHAR[] AS vals WHERE false")
    exprs, _ = value_columns(rules)
    vals = f"[{', '.join(exprs)}]::VARCHAR[]" if exprs else "[]::VARCHAR[]"
    ids = [str(i) for i in range(len(rules))]
    prefilter = ""
    if all(r.event_types is not None for r in rules) and len({r.evttype_sql for r in rules}) == 1:
        from fcap.analyze.compile.ruleset import with_prefilter

        union: frozenset[str] = frozenset().union(*(r.event_types or () for r in rules))
        prefilter = "WHERE " + with_prefilter("true", union, rules[0].evttype_sql)
    if rule_matching == "first":
        m = "[" + _dispatch(rules, lambda pairs: _first_leaf(pairs, ids)) + "]"
    else:
        m = _dispatch(rules, lambda pairs: _all_leaf(pairs, ids))
    inner = f"SELECT e.*, unnest({m}) AS __rule FROM {relation} e {prefilter}"
    return (f"SELECT e.ts AS ts, e.evt_num AS evt_num, e.__rule AS rule_idx, {vals} AS vals "
            f"FROM ({inner}) e WHERE e.__rule IS NOT NULL ORDER BY ts, evt_num, rule_idx")


def _hostname(con: Any) -> str:
    env = os.environ.get("FALCO_HOSTNAME")
    if env:
        return env
    try:
        row = con.execute("SELECT any_value(host) FROM raw_meta WHERE host IS NOT NULL").fetchone()
        if row and row[0]:
            return str(row[0])
    except Exception:  # no raw_meta (a connection prepared by the caller)
        pass
    return socket.gethostname()


def _alert(rule: CompiledRule, ts: int, evt_num: int, vals: list[str | None],
           hostname: str) -> Alert:
    decoded = [None if v is None else json.loads(v) for v in vals]
    pos = 0
    parts: list[str] = []
    for tok in rule.template.tokens:
        if tok.operand is None:
            parts.append(tok.text)
            continue
        value = decoded[pos]
        pos += 1
        parts.append(apply_width(field_text(tok.name or "", tok.operand.type, value), tok.width))
    fields = {name: decoded[pos + k] for k, (name, _) in enumerate(rule.template.json_fields)}
    return Alert(ts, evt_num, rule.name, rule.priority, rule.source,
                 tuple(sorted(rule.tags)), "".join(parts), fields, hostname)


def _connect(capture: Any, threads: int | None) -> Any:
    import duckdb

    if isinstance(capture, duckdb.DuckDBPyConnection):
        con = capture
    else:
        from fcap.analyze import enrich
        from fcap.capture.reader import Capture, open_capture

        cap = capture if isinstance(capture, Capture) else open_capture(capture)
        con = duckdb.connect()
        cap.attach(con)
        enrich.build(con)
    if threads:
        con.execute(f"SET threads = {int(threads)}")
    return con


def count_events(con: Any) -> int:
    for rel in ("raw_events", "events"):
        try:
            return int(con.execute(f"SELECT count(*) FROM {rel}").fetchone()[0])
        except Exception:
            continue
    return 0


def replay(
    capture: Any,
    compiled: CompiledRuleset | Sequence[CompiledRule],
    *,
    rule_matching: str = "first",
    threads: int | None = None,
    stats: ReplayStats | None = None,
    hostname: str | None = None,
    batch_rows: int = 4096,
) -> Iterator[Alert]:
    """Evaluate ``compiled`` over ``capture`` and yield alerts in order.

    ``capture`` is a path/paths, a ``fcap.capture.reader.Capture``, or a DuckDB
    connection that already holds the ``events`` relation. ``stats`` (if given)
    is filled in as alerts stream out; ``stats.events`` is set first.
    """
    rules = _rule_list(compiled)
    sql = build_sql(rules, rule_matching)
    _, positions = value_columns(rules)
    con = _connect(capture, threads)
    host = hostname or _hostname(con)
    if stats is not None:
        stats.events = count_events(con)
    cur = con.execute(sql)
    while True:
        rows = cur.fetchmany(batch_rows)
        if not rows:
            break
        for ts, evt_num, idx, vals in rows:
            alert = _alert(rules[idx], int(ts), int(evt_num), [vals[k] for k in positions[idx]],
                           host)
            if stats is not None:
                stats.alerts += 1
                stats.by_rule[alert.rule] += 1
                stats.by_priority[alert.priority_name] += 1
            yield alert


def replay_paths(paths: Sequence[str | Path], compiled: CompiledRuleset, **kw: Any) -> list[Alert]:
    """Convenience: every alert of a replay as a list."""
    return list(replay(list(paths), compiled, **kw))


def alerts_table(alerts: Iterator[Alert] | Sequence[Alert]) -> Any:
    """Alerts as a pyarrow Table with the hunting ``alerts`` view's columns.

    ``output`` is the expanded rule output (Falco's ``message``);
    ``output_fields`` the JSON text of the fields and values.
    """
    import pyarrow as pa

    rows = list(alerts)
    ts = pa.array([a.ts for a in rows], pa.int64())
    return pa.table(
        {
            "ts": ts,
            "time": ts.cast(pa.timestamp("ns", tz="UTC")),
            "evt_num": pa.array([a.evt_num for a in rows], pa.int64()),
            "rule": pa.array([a.rule for a in rows], pa.string()),
            "priority": pa.array([a.priority_name for a in rows], pa.string()),
            "source": pa.array([a.source for a in rows], pa.string()),
            "tags": pa.array([list(a.tags) for a in rows], pa.list_(pa.string())),
            "output": pa.array([a.message for a in rows], pa.string()),
            "hostname": pa.array([a.hostname for a in rows], pa.string()),
            "output_fields": pa.array(
                [json.dumps(a.output_fields, ensure_ascii=False, sort_keys=True) for a in rows],
                pa.string(),
            ),
        }
    )
