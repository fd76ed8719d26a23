"""Replay engine on a hand-built ``events`` table (fake catalog): matching modes,
order, pre-filter, rule selection, diagnostics and exact alert text/JSON."""

from __future__ import annotations

import json

import duckdb
import pytest
from compile_fakes import CATALOG
from compile_rules import FakeRule, Prio, ruleset
from fcap.analyze.compile import compile_ruleset
from fcap.analyze.engine import ReplayStats, build_sql, replay, select_rules
from fcap.analyze.output import AlertWriter

T0 = 1470327477881781397
SUFFIX = (
    " container_id=host container_name=host container_image_repository=<NA>"
    " container_image_tag=<NA> k8s_pod_name=<NA> k8s_ns_name=<NA>"
)


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute(
        """CREATE TABLE events AS SELECT * FROM (VALUES
        (1, 1470327477881781397, 'openat', 'cat', 'cat /dev/null', '/dev/null', 5),
        (2, 1470327477881785348, 'read', 'cat', 'cat /dev/null', '/dev/null', 5),
        (3, 1470327477881799840, 'execve', 'bash', 'bash -c "x"', NULL, 7),
        (4, 1470327477881799840, 'openat', 'vi', 'vi /etc/passwd', '/etc/passwd', 9)
        ) t(evt_num, ts, evt_type, proc_name, proc_cmdline, fd_name, proc_pid)"""
    )
    for col in ("image_repo", "image_tag", "pod_name", "ns_name"):
        c.execute(f"ALTER TABLE events ADD COLUMN {col} VARCHAR")
    c.execute("ALTER TABLE events ADD COLUMN container_id VARCHAR DEFAULT 'host'")
    c.execute("ALTER TABLE events ADD COLUMN container_name VARCHAR DEFAULT 'host'")
    return c


RULES = ruleset(
    FakeRule(
        "open_from_cat",
        "evt.type in (open, openat) and proc.name = cat",
        "An open was seen (command=%proc.cmdline)",
        tags=frozenset({"filesystem", "process", "testing"}),
    ),
    FakeRule("any_cat", "proc.name = cat", "cat %proc.name pid=%proc.pid", Prio.INFORMATIONAL),
    FakeRule("etc_open", "evt.type = openat and fd.name startswith /etc", "etc %fd.name",
             Prio.ERROR, tags=frozenset({"filesystem"})),
)


def run(con, rules=RULES, **kw):
    compiled = compile_ruleset(rules, catalog=CATALOG)
    assert not compiled.errors, compiled.errors
    return list(replay(con, compiled, hostname="h", **kw))


def test_first_match_only_in_rule_order(con) -> None:
    alerts = run(con)
    assert [(a.evt_num, a.rule) for a in alerts] == [
        (1, "open_from_cat"),
        (2, "any_cat"),
        (4, "etc_open"),
    ]


def test_all_matches_ordered_by_time_then_rule(con) -> None:
    alerts = run(con, rule_matching="all")
    assert [(a.evt_num, a.rule) for a in alerts] == [
        (1, "open_from_cat"),
        (1, "any_cat"),
        (2, "any_cat"),
        (4, "etc_open"),
    ]


def test_exact_text_and_json(con) -> None:
    import io

    alerts = run(con)
    buf = io.StringIO()
    AlertWriter(buf, iso8601=True).write(alerts[0])
    assert buf.getvalue() == (
        "2016-08-04T16:17:57.881781397+0000: Warning An open was seen (command=cat /dev/null)"
        + SUFFIX + "\n"
    )
    obj = json.loads(AlertWriter(io.StringIO(), json_output=True, iso8601=True).format(alerts[1]))
    assert obj == {
        "hostname": "h",
        "output": "2016-08-04T16:17:57.881785348+0000: Informational cat cat pid=5" + SUFFIX,
        "output_fields": {
            "container.id": "host",
            "container.image.repository": None,
            "container.image.tag": None,
            "container.name": "host",
            "evt.time.iso8601": 1470327477881785348,
            "k8s.ns.name": None,
            "k8s.pod.name": None,
            "proc.name": "cat",
            "proc.pid": 5,
        },
        "priority": "Informational",
        "rule": "any_cat",
        "source": "syscall",
        "tags": [],
        "time": "2016-08-04T16:17:57.881785348Z",
    }


def test_stats(con) -> None:
    stats = ReplayStats()
    compiled = compile_ruleset(RULES, catalog=CATALOG)
    list(replay(con, compiled, stats=stats, hostname="h"))
    assert stats.events == 4
    assert stats.alerts == 3
    assert stats.by_rule == {"open_from_cat": 1, "any_cat": 1, "etc_open": 1}
    assert stats.by_priority == {"Warning": 1, "Informational": 1, "Error": 1}


def test_one_scan_query_with_union_prefilter() -> None:
    compiled = compile_ruleset(ruleset(RULES.rules[0], RULES.rules[2]), catalog=CATALOG)
    sql = build_sql(compiled.rules)
    assert sql.count("FROM events e") == 1
    assert "WHERE (e.evt_type IN ('open', 'openat') AND true)" in sql


def test_output_values_are_computed_after_the_scan(con) -> None:
    """The scan evaluates no output expression: it carries the columns the outputs read
    for matching events; each rule's values are computed over its own matches only."""
    from fcap.analyze.compile.plan import match_sql, output_columns, values_sql

    rules = ruleset(
        FakeRule("a", "evt.type = openat and proc.name = vi", "a %proc.name %fd.name"),
        FakeRule("b", "evt.type = read and proc.name = cat", "b %fd.name %proc.name"),
        FakeRule("c", "evt.type = execve", "c %proc.name"),
    )
    compiled = compile_ruleset(rules, catalog=CATALOG).rules
    carry = output_columns(compiled)
    assert {"proc_name", "fd_name", "container_id"} <= set(carry)
    scan = match_sql(compiled, "first", "events", carry)
    assert "to_json" not in scan and "e.proc_name, e.fd_name" in scan
    values = values_sql(compiled, [2], "m")
    assert values.count(" UNION ALL ") == 0 and "to_json(e.fd_name)" not in values
    got = [(a.evt_num, a.rule, a.message.split(" container_id=")[0]) for a in run(con, rules)]
    assert got == [(2, "b", "b /dev/null cat"), (3, "c", "c bash"), (4, "a", "a vi /etc/passwd")]


def test_event_types_with_the_same_rules_share_a_branch() -> None:
    rules = ruleset(
        FakeRule("o", "evt.type in (open, openat, openat2) and proc.name = cat", "o"),
        FakeRule("x", "evt.type = execve and proc.name = cat", "x"),
    )
    sql = build_sql(compile_ruleset(rules, catalog=CATALOG).rules)
    assert sql.count("e.proc_name = 'cat'") == 2  # once per rule, not once per event type
    assert "WHEN e.evt_type IN ('open', 'openat', 'openat2') THEN" in sql


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"min_priority": Prio.WARNING}, ["open_from_cat", "etc_open"]),
        ({"tags": ["filesystem"]}, ["open_from_cat", "etc_open"]),
        ({"exclude_tags": ["testing"]}, ["any_cat", "etc_open"]),
        ({"disable": ["cat"]}, ["etc_open"]),
        ({"disable": ["any_*"]}, ["open_from_cat", "etc_open"]),
        ({"disable": ["*_cat"]}, ["etc_open"]),
    ],
)
def test_rule_selection(con, kw, expected) -> None:
    compiled = select_rules(compile_ruleset(RULES, catalog=CATALOG), **kw)
    names = {a.rule for a in replay(con, compiled, hostname="h", rule_matching="all")}
    assert sorted(names) == sorted(expected)


def test_disabled_rules_compile_but_do_not_run(con) -> None:
    rs = ruleset(FakeRule("off", "proc.name = cat", "x", enabled=False))
    compiled = compile_ruleset(rs, catalog=CATALOG)
    assert [r.name for r in compiled.rules] == ["off"]
    assert list(replay(con, compiled, hostname="h")) == []


def test_unknown_field_is_an_error_unless_skip_if_unknown_filter() -> None:
    bad = FakeRule("bad", "proc.nme = cat", "x")
    compiled = compile_ruleset(ruleset(bad), catalog=CATALOG)
    assert compiled.rules == ()
    assert [d.code for d in compiled.errors] == ["LOAD_ERR_COMPILE_CONDITION"]
    assert compiled.errors[0].hint == "did you mean proc.name?"
    skip = FakeRule("bad", "proc.nme = cat", "x", skip_if_unknown_filter=True)
    compiled = compile_ruleset(ruleset(skip), catalog=CATALOG)
    assert compiled.rules == () and not compiled.errors
    assert [d.code for d in compiled.warnings] == ["LOAD_UNKNOWN_FILTER"]
    assert compiled.skipped == ("bad",)


def test_unknown_output_field_is_an_error() -> None:
    compiled = compile_ruleset(ruleset(FakeRule("o", "proc.name = a", "x %proc.nope")),
                               catalog=CATALOG)
    assert [d.code for d in compiled.errors] == ["LOAD_ERR_COMPILE_OUTPUT"]


def test_warnings_no_evttype_and_evt_dir(con) -> None:
    rs = ruleset(
        FakeRule("neutral", "proc.name = cat", "x"),
        FakeRule("quiet", "proc.name = cat", "x", warn_evttypes=False),
        FakeRule("dir", "evt.type = openat and evt.dir = < and proc.name = cat", "x"),
    )
    compiled = compile_ruleset(rs, catalog=CATALOG)
    codes = [(d.rule, d.code) for d in compiled.warnings]
    assert codes == [("neutral", "LOAD_NO_EVTTYPE"), ("dir", "LOAD_DEPRECATED_ITEM")]
    # evt.dir = < is always true: the rule still fires on the exit event
    assert [a.evt_num for a in replay(con, compiled.rules[2:], hostname="h")] == [1]


def test_non_syscall_source_is_skipped() -> None:
    rs = ruleset(FakeRule("k8s", "ka.verb = create", "x", source="k8s_audit",
                          condition=object()))
    compiled = compile_ruleset(rs, catalog=CATALOG)
    assert compiled.rules == () and compiled.skipped == ("k8s",)


def test_hostname_from_env(con, monkeypatch) -> None:
    monkeypatch.setenv("FALCO_HOSTNAME", "from-env")
    compiled = compile_ruleset(RULES, catalog=CATALOG)
    assert {a.hostname for a in replay(con, compiled)} == {"from-env"}


def test_alerts_table_columns(con) -> None:
    from fcap.analyze.engine import alerts_table

    compiled = compile_ruleset(RULES, catalog=CATALOG)
    table = alerts_table(replay(con, compiled, hostname="h"))
    assert table.column_names == ["ts", "time", "evt_num", "rule", "priority", "source", "tags",
                                  "output", "hostname", "output_fields"]
    assert table.column("rule").to_pylist() == ["open_from_cat", "any_cat", "etc_open"]
    assert table.column("priority").to_pylist() == ["Warning", "Informational", "Error"]
    assert json.loads(table.column("output_fields")[2].as_py())["fd.name"] == "/etc/passwd"


def test_negated_event_type_rule_in_dispatch(con) -> None:
    rs = ruleset(
        FakeRule("not_read", "not evt.type = read and proc.name = cat", "x"),
        FakeRule("open_etc", "evt.type = openat and fd.name startswith /etc", "y"),
    )
    compiled = compile_ruleset(rs, catalog=CATALOG)
    assert compiled.rules[0].event_types is not None and "read" not in compiled.rules[0].event_types
    got = [(a.evt_num, a.rule) for a in replay(con, compiled, hostname="h", rule_matching="all")]
    assert got == [(1, "not_read"), (4, "open_etc")]
