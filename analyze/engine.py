"""Replay: evaluate a compiled ruleset over a capture in one DuckDB scan.

One scan of the enriched ``events`` relation (:func:`fcap.analyze.compile.plan.match_sql`)
computes, per event, the matching rule(s): with ``rule_matching="first"``
(Falco's default) a ``CASE`` dispatched on the event type returns the first
rule in evaluation order whose predicate is true; with ``"all"`` a list of
every matching rule is unnested. Only matching rows leave the scan, into a
DuckDB temporary table, with the columns their output fields read; a second
query over those few rows (:func:`~fcap.analyze.compile.plan.values_sql`)
computes each rule's own output values as JSON, in alert order (event time,
event number, rule order). Memory is bounded by DuckDB's streaming and the
number of matches, not by the capture; per-alert Python only formats alerts.
"""

from __future__ import annotations

import heapq
import json
import os
import socket
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fcap.analyze import prefilter
from fcap.analyze.compile import CompiledRule, CompiledRuleset
from fcap.analyze.compile.plan import (
    NESTED_MAX_TYPES,
    RULE_COL,
    RULE_MATCHING,
    build_sql,
    check_matching,
    fetch_sql,
    match_sql,
    output_columns,
    predicate_columns,
    value_columns,
    values_sql,
)
from fcap.analyze.fields.columns import needs
from fcap.analyze.output.format import apply_width, field_text, priority_name
from fcap.analyze.state import hosts, stages

__all__ = ["NESTED_MAX_TYPES", "RULE_MATCHING", "Alert", "ReplayStats", "alerts_table",
           "build_sql", "count_events", "replay", "replay_paths", "select_rules",
           "value_columns"]


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


def _alert(rule: CompiledRule, ts: int, evt_num: int, vals: Sequence[str | None],
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
        enrich.prepare(con)
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
    prefilter_scan: bool | None = None,
) -> Iterator[Alert]:
    """Evaluate ``compiled`` over ``capture`` and yield alerts in order.

    ``capture`` is a path/paths, a ``fcap.capture.reader.Capture``, or a DuckDB
    connection that already holds the ``events`` relation. ``stats`` (if given)
    is filled in as alerts stream out; ``stats.events`` is set first.
    ``prefilter_scan``: evaluate the exact conditions over the events the rules'
    relaxations keep (:mod:`fcap.analyze.prefilter`) -- True always, False never
    (every event of the rules' types), None for captures of at least
    ``prefilter.MIN_EVENTS`` events. The alerts are the same.

    Captures of several hosts (``raw_meta.host``) are replayed one host at a
    time, since process and descriptor state is keyed by pid, and their alerts
    merged in event-time order (ties: hosts in input order); each alert's
    ``hostname`` is its host's unless ``hostname``/``FALCO_HOSTNAME`` is given.
    """
    check_matching(rule_matching)
    parts = _host_parts(capture)
    if len(parts) > 1:
        yield from _replay_hosts(parts, compiled, stats=stats, rule_matching=rule_matching,
                                 threads=threads, hostname=hostname, batch_rows=batch_rows,
                                 prefilter_scan=prefilter_scan)
        return
    rules = _rule_list(compiled)
    con = _connect(parts[0], threads)
    host = hostname or _hostname(con)
    # a connection holding several hosts (their state kept apart, state.hosts): each
    # alert names its event's host, unless a hostname is imposed
    per_host = (hostname is None and not os.environ.get("FALCO_HOSTNAME")
                and hosts.names(con) is not None)
    extra = ["host"] if per_host else []
    if stats is not None:
        stats.events = count_events(con)
    table = f"fc_matches_{uuid.uuid4().hex[:12]}"
    relation, out_fields, staged = _events_relation(
        con, rules, f"fc_rv_{table[11:]}",
        stats.events if stats is not None else None, prefilter_scan)
    out_view = f"fc_ro_{table[11:]}"
    try:
        if out_fields is not None:
            _two_step_matches(con, rules, rule_matching, relation, out_view, out_fields, table,
                              extra)
        else:
            _one_scan_matches(con, rules, rule_matching, relation, table, extra)
        matched = [int(r[0]) for r in con.execute(
            f"SELECT DISTINCT {RULE_COL} FROM {table}").fetchall()]
        # step 2: each matched rule's output values over its matches, in alert order
        cur = con.execute(values_sql(rules, matched, table, host=per_host))
        while True:
            rows = cur.fetchmany(batch_rows)
            if not rows:
                break
            for ts, evt_num, idx, vals, *row_host in rows:
                alert = _alert(rules[idx], int(ts), int(evt_num), vals,
                               (row_host[0] or host) if row_host else host)
                if stats is not None:
                    stats.alerts += 1
                    stats.by_rule[alert.rule] += 1
                    stats.by_priority[alert.priority_name] += 1
                yield alert
    finally:
        con.execute(f"DROP VIEW IF EXISTS {out_view}")
        for suffix in ("_s", "_r", ""):
            con.execute(f"DROP TABLE IF EXISTS {table}{suffix}")
        if relation != "events":
            con.execute(f"DROP VIEW IF EXISTS {relation}")
        if staged is not None:
            staged.drop(con)


def _host_parts(capture: Any) -> list[Any]:
    """``capture`` as one part per host (a connection is one part as it is)."""
    import duckdb

    if isinstance(capture, duckdb.DuckDBPyConnection):
        return [capture]
    from fcap.capture.reader import Capture, open_capture

    cap = capture if isinstance(capture, Capture) else open_capture(capture)
    return cap.by_host() or [cap]


def _replay_hosts(parts: Sequence[Any], compiled: CompiledRuleset | Sequence[CompiledRule], *,
                  stats: ReplayStats | None, **kw: Any) -> Iterator[Alert]:
    """Replay each host's capture on its own connection (one at a time: memory is the
    largest host's), then merge their alerts by event time, hosts in input order on ties
    (each host's alerts keep their order)."""
    runs: list[list[tuple[tuple[int, int], Alert]]] = []
    events = 0
    for i, part in enumerate(parts):
        st = ReplayStats()
        runs.append([((a.ts, i), a) for a in replay(part, compiled, stats=st, **kw)])
        events += st.events
    if stats is not None:
        stats.events = events
    for _, alert in heapq.merge(*runs, key=lambda x: x[0]):
        if stats is not None:
            stats.alerts += 1
            stats.by_rule[alert.rule] += 1
            stats.by_priority[alert.priority_name] += 1
        yield alert


def _one_scan_matches(con: Any, rules: Sequence[CompiledRule], rule_matching: str,
                      relation: str, table: str, extra: Sequence[str] = ()) -> None:
    """Matches with their output columns (and ``extra`` columns) into ``table``, read by
    the one scan."""
    available = _relation_columns(con, relation) if rules else set()
    carry = list(dict.fromkeys([*output_columns(rules, available), *extra]))
    fetch: list[str] = []
    if carry and _is_table(con, relation):
        # a table is cheap to re-read by row id: the scan carries only the output
        # columns its conditions read anyway, the others are fetched for matches
        read = set(predicate_columns(rules, available))
        fetch = [c for c in carry if c not in read]
        carry = [c for c in carry if c in read]
    step1 = match_sql(rules, rule_matching, relation, carry, rowid=bool(fetch))
    con.execute(f"CREATE TEMP TABLE {table}_s AS {step1}" if fetch
                else f"CREATE TEMP TABLE {table} AS {step1}")
    if fetch:
        con.execute(f"CREATE TEMP TABLE {table} AS {fetch_sql(f'{table}_s', relation, fetch)}")


def _two_step_matches(con: Any, rules: Sequence[CompiledRule], rule_matching: str,
                      relation: str, out_view: str, out_fields: list[str], table: str,
                      extra: Sequence[str] = ()) -> None:
    """Matches into ``table``: the scan of ``relation`` (the conditions' columns only)
    keeps each match's scan position; a view of the output columns restricted to
    those rows then gives their values (no output column is computed for the others)."""
    from fcap.analyze import enrich

    step1 = match_sql(rules, rule_matching, relation, ["_rn"])
    con.execute(f"CREATE TEMP TABLE {table}_s AS {step1}")
    con.execute(f"CREATE TEMP TABLE {table}_r AS SELECT DISTINCT _rn AS rn FROM {table}_s")
    enrich.build_view(con, out_view, out_fields, rows=f"{table}_r", with_rn=True)
    carry = dict.fromkeys([*output_columns(rules, _relation_columns(con, out_view)), *extra])
    cols = "".join(f", e.{c}" for c in carry if c not in ("ts", "evt_num"))
    con.execute(f"CREATE TEMP TABLE {table} AS SELECT m.* EXCLUDE (_rn){cols} "
                f"FROM {table}_s m JOIN {out_view} e ON e._rn = m._rn")


def _events_relation(con: Any, rules: Sequence[CompiledRule], name: str,
                     events: int | None = None, staged_scan: bool | None = None
                     ) -> tuple[str, list[str] | None, prefilter.Staged | None]:
    """The relation the rules scan, the field columns of their outputs (or None), and
    the pre-filter's tables (or None).

    With a capture prepared by :func:`fcap.analyze.enrich.prepare`: a view with
    only the field columns the rules read (their conditions', plus ``_rn`` when
    the capture has a scan position: the outputs' columns are then read for the
    matching rows only, see :func:`_two_step_matches`; else the outputs' too).
    With a scan position, the view only holds the rows the pre-filter kept
    (:mod:`fcap.analyze.prefilter`): always with ``staged_scan=True``, never with
    False, for captures of at least ``prefilter.MIN_EVENTS`` events with None;
    not when it would keep too many.
    Otherwise ``events`` as it is (e.g. a materialised table) and None.
    """
    from fcap.analyze import enrich

    if not enrich.prepared(con):
        return "events", None, None
    fields = enrich.field_columns()
    every = set(enrich.view_columns())
    pred = set(predicate_columns(rules, every)) & fields
    out = set(output_columns(rules, every)) & fields
    if enrich.scan_position(con):
        staged = None
        if rules and staged_scan is not False:
            n = events if events is not None else count_events(con)
            if staged_scan or n >= prefilter.MIN_EVENTS:
                staged = prefilter.stage(con, rules, f"fc_pf_{name[6:]}", n)
        try:
            if staged is not None and "evt_deltatime" not in pred and any(
                    "fd" in needs()[c] for c in pred):
                # the descriptor state for the kept rows only (unless it exists)
                staged.partial_fd = stages.ensure(con, {"fd"}, rows=staged.rows)
            enrich.build_view(con, name, sorted(pred), with_rn=True,
                              rows=staged.rows if staged else None)
        except BaseException:
            if staged is not None:
                staged.drop(con)
            raise
        return name, sorted(out), staged
    enrich.build_view(con, name, sorted(pred | out))
    return name, None, None


def _is_table(con: Any, relation: str) -> bool:
    """True when ``relation`` names a table (not a view) in the connection."""
    kinds = {r[0] for r in con.execute(
        "SELECT table_type FROM information_schema.tables WHERE table_name = ?",
        [relation]).fetchall()}
    return bool(kinds) and "VIEW" not in kinds


def _relation_columns(con: Any, relation: str) -> set[str]:
    return {d[0] for d in con.execute(f"SELECT * FROM {relation} LIMIT 0").description}


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
