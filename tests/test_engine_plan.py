"""The replay query plan (fcap.analyze.compile.plan): branch specialisation, dispatch
order, the columns carried by the scan."""

from __future__ import annotations

import duckdb
from compile_fakes import CATALOG
from compile_rules import FakeRule, ruleset
from fcap.analyze.compile import compile_ruleset
from fcap.analyze.compile.plan import dispatch, match_sql, output_columns, specialize


def test_specialize_folds_event_type_tests_decided_by_the_branch() -> None:
    p = ("((e.evt_type IN ('execve', 'execveat')) AND (e.evt_type = 'connect') AND "
         "coalesce((e.evt_type <> 'execve'), false) AND "
         "map_contains(MAP {'open': true, 'execve': true}, e.evt_type) AND "
         "(e.evt_type IN ('execve', 'open')) AND (e.proc_name = 'execve'))")
    assert specialize(p, ["execve"]) == (
        "(true AND false AND coalesce(false, false) AND true AND true AND "
        "(e.proc_name = 'execve'))")
    # undecided for the branch {execve, execveat}: tests that differ between them stay
    two = specialize(p, ["execve", "execveat"])
    assert two.startswith("(true AND false AND coalesce((e.evt_type <> 'execve'), false) AND map_")
    assert "(e.evt_type IN ('execve', 'open'))" in two


def test_specialize_leaves_string_literals_alone() -> None:
    p = "(e.proc_cmdline = '(e.evt_type = ''execve'')')"
    assert specialize(p, ["execve"]) == p


def test_frequent_event_types_are_dispatched_first() -> None:
    rules = ruleset(
        FakeRule("x", "evt.type = execve and proc.name = a", "x"),
        FakeRule("o", "evt.type in (open, openat) and proc.name = b", "o"),
    )
    compiled = compile_ruleset(rules, catalog=CATALOG).rules
    case = dispatch(compiled, lambda pairs: "[" + ",".join(str(i) for i, _ in pairs) + "]")
    assert case.index("WHEN e.evt_type IN ('open', 'openat')") < case.index(
        "WHEN e.evt_type = 'execve'")


def test_scan_carries_only_existing_output_columns() -> None:
    rules = ruleset(FakeRule("a", "evt.type = openat and proc.name = vi",
                             "a %proc.name file=%fd.name 'e.not_a_column'"))
    compiled = compile_ruleset(rules, catalog=CATALOG).rules
    con = duckdb.connect()
    con.execute("CREATE TABLE events (evt_num BIGINT, ts BIGINT, evt_type VARCHAR, "
                "proc_name VARCHAR, fd_name VARCHAR, container_id VARCHAR)")
    con.execute("INSERT INTO events VALUES (1, 10, 'openat', 'vi', '/etc/x', 'host'), "
                "(2, 20, 'openat', 'cat', '/etc/y', 'host')")
    cols = {d[0] for d in con.execute("SELECT * FROM events LIMIT 0").description}
    carry = output_columns(compiled, cols)
    assert carry[:2] == ["proc_name", "fd_name"] and "not_a_column" not in carry
    rows = con.execute(match_sql(compiled, "first", "events", carry)).fetchall()
    assert rows == [(10, 1, 0, "vi", "/etc/x", "host")]


def test_specialize_args_keeps_the_arms_of_the_branch_types() -> None:
    from fcap.analyze.compile.plan import specialize_args

    arg = ("(CASE e.evt_type WHEN 'open' THEN CAST((e.a1) AS VARCHAR) "
           "WHEN 'openat' THEN CAST((concat(e.a2, ')')) AS VARCHAR) "
           "WHEN 'ptrace' THEN CAST((CASE e.a0 WHEN 0 THEN 'X' END) AS VARCHAR) END)")
    p = f"(contains({arg}, 'O_TRUNC') AND (e.fd_num >= 0))"
    assert specialize_args(p, ["openat"]) == (
        "(contains(CAST((concat(e.a2, ')')) AS VARCHAR), 'O_TRUNC') AND (e.fd_num >= 0))")
    assert specialize_args(p, ["open", "openat2"]) == (
        "(contains((CASE e.evt_type WHEN 'open' THEN CAST((e.a1) AS VARCHAR) END), 'O_TRUNC') "
        "AND (e.fd_num >= 0))")
    assert specialize_args(p, ["connect"]) == (
        "(contains(CAST(NULL AS VARCHAR), 'O_TRUNC') AND (e.fd_num >= 0))")
    # other shapes are left alone
    odd = "(CASE e.evt_type WHEN 'open' THEN e.a1 END)"
    assert specialize_args(odd, ["open"]) == odd
    con = duckdb.connect()
    for types in (["openat"], ["open", "openat2"], ["connect"]):
        for t, a in (("openat", 2), ("open", 1)):
            q = f"SELECT {arg} = {specialize_args(arg, types)} FROM (SELECT '{t}' AS evt_type, " \
                f"{a} AS a1, {a} AS a2, 0 AS a0) e"
            if t in types:
                assert con.execute(q).fetchone()[0] is True
