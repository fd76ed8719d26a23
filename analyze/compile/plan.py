"""The replay queries: compiled rules -> DuckDB SQL over the ``events`` relation.

Replay runs in two steps (:func:`fcap.analyze.engine.replay`):

1. :func:`match_sql`, the one scan: per event, the matching rule(s), found by
   a ``CASE`` on ``evt.type`` (:func:`dispatch`) whose branches evaluate only
   the rules of that event type, in rule order. Only matching rows leave the
   scan, with the *columns* their alerts' output fields need (no output
   expression is evaluated during the scan).
2. :func:`values_sql`, over those few matches: per rule, the JSON values of its
   own output fields, ordered by event time, event number, then rule order.

:func:`build_sql` is both steps as one statement (a ``MATERIALIZED`` CTE), for
``fcap rules explain`` and tests; it returns the same rows.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Iterable, Sequence

from .ruleset import CompiledRule, with_prefilter
from .template import value_sql
from .values import sql_str

RULE_MATCHING = ("first", "all")
NESTED_MAX_TYPES = 64  # rules with larger event-type sets are evaluated for every event
#: the internal rule column of the match rows (not a Falco field)
RULE_COL = "__rule"
#: the row id of a match (tables only), to fetch the columns the scan did not read
ROWID_COL = "__rid"
#: typical event frequencies on a busy host (Falco's own benchmarks and fcap's samples): the
#: dispatch tests the branches of frequent types first, so most events pass few comparisons
_FREQUENT = ("openat", "close", "read", "write", "open", "recvfrom", "sendto", "connect",
             "socket", "accept4", "accept", "fstat", "newfstatat", "mmap", "execve", "clone")
_COLUMN = re.compile(r"\be\.([A-Za-z_]\w*)")


def rule_values(r: CompiledRule) -> list[str]:
    """The JSON value expressions rule ``r``'s alert needs: its template's fields in
    order, then the JSON-only fields (the engine's ``_alert`` consumes them in this order)."""
    items = [value_sql(t.operand) for t in r.template.tokens if t.operand]
    items += [value_sql(op) for _, op in r.template.json_fields]
    return items


def value_columns(rules: Sequence[CompiledRule]) -> tuple[list[str], list[list[int]]]:
    """The distinct value expressions of all rules, and per rule the positions of its
    values among them (rules share most output fields: the suggested container fields,
    ``%proc.name``...)."""
    exprs: dict[str, int] = {}
    positions = []
    for r in rules:
        positions.append([exprs.setdefault(x, len(exprs)) for x in rule_values(r)])
    return list(exprs), positions


def referenced_columns(sqls: Iterable[str], available: Collection[str] | None = None) -> list[str]:
    """The ``e.<column>`` names used by ``sqls`` (in first-use order), restricted to
    ``available`` when given (a name inside a string literal is then dropped)."""
    seen: dict[str, None] = {}
    for sql in sqls:
        for name in _COLUMN.findall(sql):
            if available is None or name in available:
                seen.setdefault(name, None)
    return list(seen)


_NAME = r"'[A-Za-z0-9_]+'"


def specialize(pred: str, types: Collection[str], evttype_sql: str = "e.evt_type") -> str:
    """``pred`` for events whose type is one of ``types`` (a dispatch branch): its
    ``evt.type`` tests (``=``, ``<>``, ``IN``, a hashed ``IN``) whose outcome is the
    same for all of ``types`` become ``true``/``false`` literals, which DuckDB folds."""
    tset = set(types)
    x = re.escape(evttype_sql)

    def decide(names: set[str], negate: bool, text: str) -> str:
        if tset <= names:
            return "false" if negate else "true"
        if not tset & names:
            return "true" if negate else "false"
        return text

    def names_of(text: str) -> set[str]:
        return {n[1:-1] for n in re.findall(_NAME, text)}

    pred = re.sub(rf"\({x} (=|<>) ({_NAME})\)",
                  lambda m: decide(names_of(m.group(2)), m.group(1) == "<>", m.group(0)), pred)
    pred = re.sub(rf"\({x} IN \(((?:{_NAME}, )*{_NAME})\)\)",
                  lambda m: decide(names_of(m.group(1)), False, m.group(0)), pred)
    return re.sub(rf"map_contains\(MAP \{{((?:{_NAME}: true, )*{_NAME}: true)\}}, {x}\)",
                  lambda m: decide(names_of(m.group(1)), False, m.group(0)), pred)


def _close_paren(sql: str, i: int) -> int:
    """Index just past the parenthesis closing the one at ``sql[i]`` (string literals
    skipped), or -1."""
    depth, n = 0, len(sql)
    while i < n:
        c = sql[i]
        if c == "'":
            i = sql.find("'", i + 1)
            while i != -1 and sql.startswith("''", i):
                i = sql.find("'", i + 2)
            if i == -1:
                return -1
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return -1


_ARM = re.compile(r" WHEN '([A-Za-z0-9_]+)' THEN (?=CAST\(\()")
_ARM_TYPE = re.compile(r" AS ([A-Z]+(?:\[\])?)\)\Z")


def _arms(sql: str, start: int) -> tuple[dict[str, str], str, int] | None:
    """The arms of ``(CASE <evt> WHEN 'a' THEN CAST((...) AS T) ... END)`` whose body
    starts at ``start``: ``({type: arm}, T, end index)``; None for any other shape."""
    arms: dict[str, str] = {}
    kinds = set()
    i = start
    while True:
        m = _ARM.match(sql, i)
        if m is None:
            break
        j = _close_paren(sql, m.end() + len("CAST"))
        if j == -1:
            return None
        arm = sql[m.end():j]
        t = _ARM_TYPE.search(arm)
        if t is None:
            return None
        kinds.add(t.group(1))
        arms[m.group(1)] = arm
        i = j
    if not arms or len(kinds) != 1 or not sql.startswith(" END)", i):
        return None
    return arms, kinds.pop(), i + len(" END)")


def specialize_args(pred: str, types: Collection[str], evttype_sql: str = "e.evt_type") -> str:
    """``pred`` for events of ``types``: every per-event-type argument expression
    (``evt.arg.*``: ``(CASE e.evt_type WHEN 'open' THEN CAST((..) AS T) ... END)``)
    keeps only the arms of ``types`` (a single arm is used as is), so a branch does not
    test the other event types' arms on each row."""
    head = f"(CASE {evttype_sql}"
    out: list[str] = []
    pos = 0
    while True:
        k = pred.find(head, pos)
        if k == -1:
            break
        parsed = _arms(pred, k + len(head))
        if parsed is None:
            out.append(pred[pos:k + len(head)])
            pos = k + len(head)
            continue
        arms, kind, end = parsed
        keep = [t for t in sorted(types) if t in arms]
        if len(types) == 1 or not keep:
            repl = arms[keep[0]] if keep else f"CAST(NULL AS {kind})"
        else:
            body = " ".join(f"WHEN '{t}' THEN {arms[t]}" for t in keep)
            repl = f"{head} {body} END)"
        out.append(pred[pos:k] + repl)
        pos = end
    out.append(pred[pos:])
    return "".join(out)


def _type_rank(types: Sequence[str]) -> int:
    ranks = [_FREQUENT.index(t) for t in types if t in _FREQUENT]
    return min(ranks) if ranks else len(_FREQUENT)


def dispatch(rules: Sequence[CompiledRule], leaf: Callable[[list[tuple[int, str]]], str]) -> str:
    """Rules grouped by event type: ``CASE WHEN evt_type IN (...) THEN leaf(rules) ... END``.

    Within a branch the rules keep their evaluation order and need no
    pre-filter; rules matching more than NESTED_MAX_TYPES types (or all) are
    "generic": added to every branch and evaluated in the ELSE branch with
    their own pre-filter. Event types evaluating the same rules share one
    branch; branches of frequent event types come first. ``leaf(pairs)``
    builds the expression for a list of ``(rule index, predicate sql)``.
    """
    generic = {i for i, r in enumerate(rules)
               if r.event_types is None or len(r.event_types) > NESTED_MAX_TYPES}
    by_type: dict[str, list[int]] = {}
    for i, r in enumerate(rules):
        if i not in generic:
            for t in r.event_types or ():
                by_type.setdefault(t, []).append(i)
    groups: dict[tuple[int, ...], list[str]] = {}
    for t in sorted(by_type):
        idx = tuple(sorted(set(by_type[t]) | {g for g in generic if _has_type(rules[g], t)}))
        groups.setdefault(idx, []).append(t)
    order = sorted(groups.items(), key=lambda kv: _type_rank(kv[1]))
    branches = []
    evt = rules[0].evttype_sql if rules else "e.evt_type"
    for idx, types in order:
        test = (f"{evt} = {sql_str(types[0])}" if len(types) == 1
                else f"{evt} IN ({', '.join(sql_str(t) for t in types)})")
        pairs = [(i, specialize_args(specialize(rules[i].predicate, types, evt), types, evt))
                 for i in idx]
        branches.append(f"WHEN {test} THEN {leaf(pairs)}")
    default = leaf([(i, rules[i].sql) for i in sorted(generic)])
    if not branches:
        return default
    return "CASE " + " ".join(branches) + f" ELSE {default} END"


def _has_type(rule: CompiledRule, t: str) -> bool:
    return rule.event_types is None or t in rule.event_types


def first_leaf(pairs: list[tuple[int, str]]) -> str:
    if not pairs:
        return "NULL"
    return "CASE " + " ".join(f"WHEN {sql} THEN {i}" for i, sql in pairs) + " END"


def _all_leaf(pairs: list[tuple[int, str]]) -> str:
    if not pairs:
        return "[]"
    items = ", ".join(f"CASE WHEN {sql} THEN {i} END" for i, sql in pairs)
    return f"list_filter([{items}], lambda x: x IS NOT NULL)"


def check_matching(rule_matching: str) -> None:
    from fcap.errors import UsageError

    if rule_matching not in RULE_MATCHING:
        raise UsageError(f"--rule-matching must be 'first' or 'all', not {rule_matching!r}")


def match_sql(rules: Sequence[CompiledRule], rule_matching: str = "first",
              relation: str = "events", carry: Sequence[str] = (), rowid: bool = False) -> str:
    """The one scan: rows ``(ts, evt_num, __rule, *carry)`` for every match (unordered),
    plus ``__rid`` (the row's ``rowid``) when ``rowid`` is True (``relation`` a table).

    ``unnest`` makes DuckDB evaluate the dispatch ``CASE`` once per event (a
    plain column would be inlined by the optimizer into the filter and into
    every use, and long ``IN`` lists outside it become joins over every row).
    When no rule is generic, the union of the rules' event types also filters
    the scan (so a view's joins run for those events only).
    """
    check_matching(rule_matching)
    cols = ", ".join(f"e.{c}" for c in carry if c not in ("ts", "evt_num", RULE_COL, ROWID_COL))
    cols = f", {cols}" if cols else ""
    if rowid:
        cols = f", e.{ROWID_COL}{cols}"
    if not rules:
        cols = cols.replace(f"e.{ROWID_COL}", f"e.rowid AS {ROWID_COL}")
        return (f"SELECT e.ts, e.evt_num, NULL::INTEGER AS {RULE_COL}{cols} "
                f"FROM {relation} e WHERE false")
    prefilter = ""
    if all(r.event_types is not None for r in rules) and len({r.evttype_sql for r in rules}) == 1:
        union: frozenset[str] = frozenset().union(*(r.event_types or () for r in rules))
        prefilter = " WHERE " + with_prefilter("true", union, rules[0].evttype_sql)
    if rule_matching == "first":
        m = "[" + dispatch(rules, first_leaf) + "]"
    else:
        m = dispatch(rules, _all_leaf)
    rid = f"e.rowid AS {ROWID_COL}, " if rowid else ""
    inner = f"SELECT e.*, {rid}unnest({m}) AS {RULE_COL} FROM {relation} e{prefilter}"
    return (f"SELECT e.ts, e.evt_num, e.{RULE_COL}{cols} FROM ({inner}) e "
            f"WHERE e.{RULE_COL} IS NOT NULL")


def values_sql(rules: Sequence[CompiledRule], matched: Iterable[int], source: str,
               host: bool = False) -> str:
    """Over the match rows in ``source``: ``(ts, evt_num, rule_idx, vals)`` in alert order,
    ``vals`` the JSON texts of rule ``rule_idx``'s output values (:func:`rule_values`).
    ``matched``: the rule indices present in ``source`` (one small SELECT per rule).
    ``host``: a fifth column, the rows' ``host`` (``source`` carries it)."""
    h = ", CAST(e.host AS VARCHAR) AS host" if host else ""
    parts = []
    for i in sorted(set(matched)):
        exprs = rule_values(rules[i])
        vals = f"[{', '.join(exprs)}]::VARCHAR[]" if exprs else "[]::VARCHAR[]"
        parts.append(f"SELECT e.ts AS ts, e.evt_num AS evt_num, e.{RULE_COL} AS rule_idx, "
                     f"{vals} AS vals{h} FROM {source} e WHERE e.{RULE_COL} = {i}")
    if not parts:
        return ("SELECT NULL::BIGINT AS ts, NULL::BIGINT AS evt_num, NULL::INTEGER AS rule_idx, "
                f"NULL::VARCHAR[] AS vals{', NULL::VARCHAR AS host' if host else ''} WHERE false")
    return " UNION ALL ".join(parts) + " ORDER BY ts, evt_num, rule_idx"


def output_columns(rules: Sequence[CompiledRule], available: Collection[str] | None = None
                   ) -> list[str]:
    """The relation's columns the rules' output values read (carried by :func:`match_sql`)."""
    return referenced_columns((x for r in rules for x in rule_values(r)), available)


def predicate_columns(rules: Sequence[CompiledRule], available: Collection[str] | None = None
                      ) -> list[str]:
    """The relation's columns the rules' conditions read (the scan reads them anyway)."""
    return referenced_columns((r.sql for r in rules), available)


def fetch_sql(source: str, relation: str, columns: Sequence[str]) -> str:
    """The match rows of ``source`` with ``columns`` of ``relation`` (a table) added,
    joined on the row id: only the matching rows' values are used."""
    cols = ", ".join(f"e.{c}" for c in columns)
    return (f"SELECT m.* EXCLUDE ({ROWID_COL}), {cols} FROM {source} m "
            f"JOIN {relation} e ON e.rowid = m.{ROWID_COL}")


def build_sql(rules: Sequence[CompiledRule], rule_matching: str = "first",
              relation: str = "events") -> str:
    """Both replay steps as one statement: rows ``(ts, evt_num, rule_idx, vals)``."""
    carry = output_columns(rules)
    m = match_sql(rules, rule_matching, relation, carry)
    return f"WITH fc_m AS MATERIALIZED ({m}) " + values_sql(rules, range(len(rules)), "fc_m")
