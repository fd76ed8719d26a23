"""The ``getopt`` field transformer (libs 0.25 ``sinsp_filter_multivalue_transformer_getopt``).

The cases of libs' ``test/filter_transformer.ut.cpp`` (``multivalue_transformer_getopt``)
are ported as data -- the same conditions and expected results -- compiled with
``compile_condition`` and evaluated in DuckDB over a one-row table aliased ``e``;
then fcap-specific checks (fields inside the list, a missing item or optstring,
``in``/``exists`` on the list, ``not``) and a replay of a rule over a synthetic capture.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest
from fcap.analyze.compile import compile_condition

from fcap.errors import FcapError

# libs test/filter_transformer.ut.cpp, TEST_F(sinsp_with_test_input, multivalue_transformer_getopt):
# (condition, EXPECT_TRUE -> True / EXPECT_FALSE -> False)
LIBS_CASES: list[tuple[str, bool]] = [
    (r'getopt(("-n",""), "n") intersects ("n")', True),
    (r'getopt(("-t", "hello"), "t:") intersects ("t", "hello")', True),
    (r'getopt(("-nt", "hello"), "nt:") intersects ("n", "t", "hello")', True),
    (r'getopt(("-thello"), "t:") intersects ("t", "hello")', True),
    (r'getopt(("-n", "-t", "hello"), "nt:") intersects ("n", "t", "hello")', True),
    (r'getopt(("-n"), "n") intersects ("t")', False),
    (r'getopt(("-n", "--", "-t"), "nt:") intersects ("n")', True),
    (r'getopt(("-n", "--", "-t"), "nt:") intersects ("t")', False),
    (r'getopt(("-x", "-n"), "n") intersects ("?", "n")', True),
    (r'getopt(("-x", "-n"), "n") intersects ("x")', False),
    (r'getopt(("-l", "-p", "8080", "-e", "/bin/sh"), "lp:e:") intersects '
     r'("l", "p", "e", "8080", "/bin/sh")', True),
    (r'getopt(("-lpe", "/bin/sh"), "lp:e:") intersects ("l","p","e")', True),
    (r'getopt(("-lpe", "/bin/sh"), "lpe:") intersects ("/bin/sh")', True),
    (r'getopt(("-n", "-t"), "") intersects ("n")', False),
    (r'getopt(("-n", "-t"), "") intersects ("t")', False),
    (r'getopt((""), "n") intersects ("n")', False),
    (r'getopt(("arg1", "arg2", "arg3"), "n") intersects ("n")', False),
    (r'getopt(("arg1", "-n", "arg2"), "n") intersects ("n")', False),
    (r'getopt(("-", "-n"), "n") intersects ("n")', False),
    (r'getopt(("-"), "n") intersects ("n")', False),
    (r'getopt(("-t"), "t:") intersects ("")', True),
    (r'getopt(("-t"), "t:") intersects ("?")', False),
    (r'getopt(("-t"), "t:") intersects ("t")', False),
    (r'getopt(("-t"), ":t:") intersects ("")', True),
    (r'getopt(("-t"), ":t:") intersects (":")', False),
    (r'getopt(("-n", "--", "--"), "n") intersects ("n")', True),
    (r'getopt(("--", "-n"), "n") intersects ("n")', False),
    (r'getopt(("-nat", "hello"), "na:t") intersects ("n", "a", "t")', True),
    (r'getopt(("-abcvalue"), "abc:") intersects ("a", "b", "c", "value")', True),
    (r'getopt(("-abc", "value"), "abc:") intersects ("a", "b", "c", "value")', True),
    (r'getopt(("-n", "-n", "-n"), "n") intersects ("n")', True),
    (r'getopt(("-v", "-v", "-v"), "v") intersects ("v")', True),
    (r'getopt(("-t", "val1", "-t", "val2"), "t:") intersects ("t", "val1", "val2")', True),
    (r'getopt(("-p", "8080"), "p:") intersects ("p", "8080")', True),
    (r'getopt(("-p8080"), "p:") intersects ("p", "8080")', True),
    (r'getopt(("-n", "42"), "n:") intersects ("n", "42")', True),
    (r'getopt(("-t", "-123"), "t:") intersects ("t", "-123")', True),
    (r'getopt(("-f", "/etc/passwd"), "f:") intersects ("f", "/etc/passwd")', True),
    (r'getopt(("-f", "./relative/path"), "f:") intersects ("f", "./relative/path")', True),
    (r'getopt(("-u", "http://example.com:8080/path"), "u:") intersects '
     r'("u", "http://example.com:8080/path")', True),
    (r'getopt(("-t", ""), "t:") intersects ("t", "")', True),
    (r'getopt(("-p", "22", "-i", "keyfile", "user@host"), "p:i:") intersects '
     r'("p", "22", "i", "keyfile")', True),
    (r'getopt(("-xzf", "file.tar.gz"), "xzf:") intersects ("x", "z", "f", "file.tar.gz")', True),
    (r'getopt(("-X", "POST", "-H", "header", "-d", "data", "url"), "X:H:d:") intersects '
     r'("X", "POST", "H", "header", "d", "data")', True),
    (r'getopt(("-e", "/bin/sh", "attacker.com", "4444"), "e:") intersects ("e", "/bin/sh")',
     True),
    (r'getopt(("-rn", "pattern", "/path"), "rn") intersects ("r", "n")', True),
    (r'getopt(("-it", "-p", "8080:80", "-v", "/host:/container", "image"), "itp:v:") '
     r'intersects ("i", "t", "p", "8080:80", "v", "/host:/container")', True),
    (r'getopt(("-a", "1", "-b", "2", "-c", "3"), "a:b:c:") intersects '
     r'("a", "1", "b", "2", "c", "3")', True),
    (r'getopt(("-abc"), "abc") intersects ("a", "b", "c")', True),
    (r'getopt(("-a", "val", "-b"), "a:b") intersects ("a", "val", "b")', True),
    (r'getopt(("-abcdefg"), "abcdefg") intersects ("a", "b", "c", "d", "e", "f", "g")', True),
    (r'getopt(("-1", "-2", "-3"), "123") intersects ("1", "2", "3")', True),
    (r'getopt(("-a1b2c3"), "a1b2c3") intersects ("a", "1", "b", "2", "c", "3")', True),
    (r'getopt(("regular_file", "-f", "another_file"), "f:") intersects ("f", "another_file")',
     False),
    (r'getopt(("-f", "another_file", "regular_file"), "f:") intersects ("f", "another_file")',
     True),
    (r'getopt(("-t", " "), "t:") intersects ("t", " ")', True),
    (r'getopt(("", "-n", ""), "n") intersects ("n")', False),
    (r'getopt(("-@", "-+"), "@+") intersects ("@", "+")', True),
    (r'getopt(("-nx"), "n") intersects ("n", "?")', True),
    (r'getopt(("-n", "-t", "hello"), "nt:")[t] = hello', True),
    (r'getopt(("-n", "-t", "hello"), "nt:")[t] = n', False),
    (r'getopt(("-n", "-t", "hello"), "nt:")[n] = n', True),
    (r'getopt(("-t", "v1", "-t", "v2"), "t:")[t] = v2', True),
    (r'getopt(("-t?"), "t:")[t] = ?', True),
    (r'getopt(("-t:"), ":t:")[t] = :', True),
    (r'getopt(("-t"), "t:")[t] != ""', False),
    (r'getopt(("-t"), "t:")[t] = ""', True),
    (r'getopt(("-t"), "t:")[t] = ?', False),
    (r'getopt(("-t"), ":t:")[t] = :', False),
    (r'getopt(("-n"), "nt:")[t] != ""', False),
    (r'getopt(("-t", "v1", "-t"), "t:")[t] = v1', False),
    (r'getopt(("-t", "v1", "-t"), "t:")[t] = ""', True),
    (r'getopt(("--exec"), "e:") intersects ("?")', False),
    (r'getopt(("--exec"), "e:") intersects ("e")', False),
    (r'getopt(("--exec", "-n"), "n") intersects ("n")', True),
    (r'getopt(("-n", "file", "-t"), "nt") intersects ("n")', True),
    (r'getopt(("-n", "file", "-t"), "nt") intersects ("t")', False),
    (r'getopt(("-abcdefghijklmnopqrstuvwxyz"), "abcdefghijklmnopqrstuvwxyz") intersects '
     r'("a", "b", "c", "z")', True),
    (r'getopt(("-a", "-b", "-c", "-d", "-e", "-f"), "abcdef") intersects '
     r'("a", "b", "c", "d", "e", "f")', True),
    (r'getopt(("-t", "this_is_a_very_long_argument_value_that_might_test_buffer_handling"), '
     r'"t:") intersects ("t", "this_is_a_very_long_argument_value_that_might_test_buffer_handling")',
     True),
]

# the same test's EXPECT_THROW cases; fcap reports libs' message (a syntax error for getopt())
LIBS_ERRORS: list[tuple[str, str]] = [
    (r'getopt() intersects ("n")', "unexpected ')'"),
    (r'getopt(("a")) intersects ("n")',
     "getopt() requires exactly 2 arguments: args list and optstring"),
    (r'getopt(("a"), "n", "extra") intersects ("n")',
     "getopt() requires exactly 2 arguments: args list and optstring"),
    (r'getopt("not_a_list", "n") intersects ("n")', "getopt() first argument must be a list"),
    (r'getopt(("-n"), ("n")) intersects ("n")',
     "getopt() second argument (optstring) must be a single value"),
    (r'getopt(("-n"), "n")[""] = n', "getopt() field argument must be a single option character"),
]

COLUMNS = {"evt_num": "UBIGINT", "proc_name": "VARCHAR", "proc_pid": "BIGINT",
           "proc_argv": "VARCHAR[]", "proc_args": "VARCHAR"}


@pytest.fixture(scope="module")
def con() -> duckdb.DuckDBPyConnection:
    c = duckdb.connect()
    c.execute("CREATE TABLE events (" + ", ".join(f"{k} {t}" for k, t in COLUMNS.items()) + ")")
    return c


def evaluate(con: duckdb.DuckDBPyConnection, cond: str, **row: object) -> bool:
    """``cond`` on one event whose columns are ``row`` (others NULL)."""
    con.execute("DELETE FROM events")
    row = row or {"evt_num": 1}
    con.execute(f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
                list(row.values()))
    out = con.execute(f"SELECT {compile_condition(cond)} FROM events e").fetchone()
    assert out is not None
    return bool(out[0])


@pytest.mark.parametrize(("cond", "expected"), LIBS_CASES)
def test_libs_getopt_cases(con: duckdb.DuckDBPyConnection, cond: str, expected: bool) -> None:
    assert evaluate(con, cond) is expected


@pytest.mark.parametrize(("cond", "message"), LIBS_ERRORS)
def test_libs_getopt_errors(cond: str, message: str) -> None:
    with pytest.raises(FcapError) as err:
        compile_condition(cond)
    assert message in str(err.value)


def _list(con: duckdb.DuckDBPyConnection, cond_lhs: str) -> list[str] | None:
    """The list a ``getopt(...)`` expression yields (through its SQL, on an empty row)."""
    from fcap.analyze.compile.ruleset import default_catalog
    from fcap.analyze.compile.typecheck import TypeChecker
    from fcap.analyze.condition.parser import parse_condition

    expr = parse_condition(f"{cond_lhs} exists")
    op = TypeChecker(default_catalog()).run(expr).lhs[id(expr)]
    con.execute("DELETE FROM events")
    con.execute("INSERT INTO events (evt_num) VALUES (1)")
    row = con.execute(f"SELECT {op.sql} FROM events e").fetchone()
    assert row is not None
    return row[0]


@pytest.mark.parametrize(
    ("lhs", "expected"),
    [
        # option, value pairs in argv order; '?' for an unknown option; "" for a missing value
        (r'getopt(("-l", "-p", "8080", "-e", "/bin/sh"), "lp:e:")',
         ["l", "p", "8080", "e", "/bin/sh"]),
        (r'getopt(("-lpe", "/bin/sh"), "lp:e:")', ["l", "p", "e"]),
        (r'getopt(("-xn", "-t"), "nt:")', ["?", "n", ""]),
        (r'getopt(("-a", "--long", "-b", "x", "-c"), "ab:c")', ["a", "b", "x", "c"]),
        (r'getopt(("-a", "file", "-b"), "ab")', ["a"]),
        (r'getopt(("-:"), ":a")', ["?"]),
        (r'getopt(("-a"), "a::")', [""]),  # a second ':' is ignored: -a takes a value
        (r'getopt((), "a")', []),
    ],
)
def test_getopt_result_lists(con: duckdb.DuckDBPyConnection, lhs: str,
                             expected: list[str]) -> None:
    assert _list(con, lhs) == expected


@pytest.mark.parametrize(
    ("cond", "row", "expected"),
    [
        # fields inside the list, optstring from a field
        (r'getopt(("-e", proc.name), "e:")[e] = nc', {"proc_name": "nc"}, True),
        (r'getopt(("-e", proc.name), "e:")[e] = nc', {"proc_name": "sh"}, False),
        (r'getopt(("-p", proc.pid), "p:")[p] = 4444', {"proc_pid": 4444}, True),
        (r'getopt((proc.args[0], proc.args[1]), "lp:")[p] = 80',
         {"proc_argv": ["nc", "-lp", "80"]}, True),
        (r'getopt((proc.args[0], proc.args[1]), proc.name)[p] = 80',
         {"proc_argv": ["nc", "-lp", "80"], "proc_name": "lp:"}, True),
        # a list item or the optstring that is missing: the check is false, also with !=
        (r'getopt(("-e", proc.name), "e:")[e] != nc', {}, False),
        (r'not getopt(("-e", proc.name), "e:")[e] = nc', {}, True),
        (r'getopt(("-e"), proc.name) intersects ("e", "")', {}, False),
        (r'getopt(("-e"), proc.name) intersects ("e", "")', {"proc_name": "e"}, True),
        # exists: the list could be extracted (even empty); [x] exists: option x is present
        (r'getopt(("file"), "n") exists', {}, True),
        (r'getopt(("-e", proc.name), "e:") exists', {}, False),
        (r'getopt(("-n"), "nt:")[t] exists', {}, False),
        (r'getopt(("-n", "-t"), "nt:")[t] exists', {}, True),
        # in: every element in the set (libs list semantics), an empty list included
        (r'getopt(("-n", "-x"), "n") in ("n")', {}, False),
        (r'getopt(("-n", "-x"), "n") in ("n", "?")', {}, True),
        (r'getopt(("file"), "n") in ("n")', {}, True),
        (r'not getopt(("-n", "-x"), "n") in ("n")', {}, True),
        (r'getopt(("-e", proc.name), "e:") in ("e")', {}, False),
        # transformers over the result
        (r'len(getopt(("-n", "-t", "v"), "nt:")) = 3', {}, True),
        (r'toupper(getopt(("-t", "v"), "t:")[t]) = V', {}, True),
    ],
)
def test_getopt_fcap_cases(con: duckdb.DuckDBPyConnection, cond: str, row: dict[str, object],
                           expected: bool) -> None:
    assert evaluate(con, cond, evt_num=1, **row) is expected


@pytest.mark.parametrize(
    ("cond", "message", "hint", "col"),
    [
        (r'getopt(("-n"), "n") = n', "'=' operator not supported list filters",
         "getopt(...)[x]", 1),
        (r'getopt(("-n"), "n") contains n', "'contains' operator not supported list filters",
         None, 1),
        (r'getopt(proc.args, "nt:")[t] = value', "getopt() first argument must be a list",
         "'proc.args' is one value in libs", 1),
        (r'getopt(proc.aname, "n") intersects (n)', "getopt() first argument must be a list",
         None, 1),
        (r'getopt(("-n"), proc.pid) intersects (n)', "getopt() arguments must be strings", None, 1),
        (r'getopt(("-n"), "n")[nt] = n',
         "getopt() field argument must be a single option character", None, 1),
        (r'tolower(("-n"))[n] = n', "does not take an [argument]", None, 1),
        (r'getopt(("-n"), "n") intersects val(proc.name)', "only with a list of values", None,
         32),
    ],
)
def test_getopt_misuse(cond: str, message: str, hint: str | None, col: int) -> None:
    with pytest.raises(FcapError) as err:
        compile_condition(cond)
    text = str(err.value)
    assert message in text
    assert f"<condition>:1:{col}: error: " in text  # at the transformer (or the value)
    if hint is not None:
        assert hint in text


# --- a rule over a synthetic capture -------------------------------------------------------

_RULE = """- rule: Netcat with exec option
  desc: nc started with -e (getopt over its first arguments)
  condition: >
    evt.type = execve and proc.name = nc and
    getopt((proc.args[0], proc.args[1], proc.args[2]), "lvnp:e:")[e] exists
  output: nc exec (pid=%proc.pid args=%proc.args)
  priority: WARNING
"""


def test_replay_rule_with_getopt(tmp_path: Path) -> None:
    from fcap.analyze.regress.engine_bridge import replay_json
    from fcap.capture.synth import make_capture

    def nc(pid: int, *args: str) -> dict[str, object]:
        return {"syscall": "execve", "pid": pid, "ppid": 1, "comm": "nc",
                "path": "/usr/bin/nc", "argv": ["nc", *args]}

    events = [
        nc(401, "-lp", "4444", "-e", "/bin/sh"),  # -e listed, its value is not: [e] = ""
        nc(402, "-lvp", "4444", "-e/bin/sh"),  # -e attached: found
        nc(403, "-v", "example.com", "-e", "/bin/sh"),  # stops at example.com
        nc(404, "-n", "-e", "/bin/sh"),  # found (value in the next argument)
        nc(405, "-p", "-e", "/bin/sh"),  # -e is -p's value
        nc(406, "--exec", "-e", "/bin/sh"),  # the long option is skipped
        nc(407, "-n", "--", "-e"),  # after --: not an option
        {"syscall": "execve", "pid": 408, "ppid": 1, "comm": "ncat", "path": "/usr/bin/ncat",
         "argv": ["ncat", "-n", "-e", "/bin/sh"]},  # another program
    ]
    cap = make_capture(tmp_path / "nc.parquet", events)
    rules = tmp_path / "getopt_rules.yaml"
    rules.write_text(_RULE)
    alerts = replay_json([cap], [rules], "all")
    assert [(a["rule"], a["output_fields"]["proc.pid"]) for a in alerts] == [
        ("Netcat with exec option", 401),
        ("Netcat with exec option", 402),
        ("Netcat with exec option", 404),
        ("Netcat with exec option", 406),
    ]
    assert "nc exec (pid=402 args=-lvp 4444 -e/bin/sh)" in alerts[1]["output"]
    # the value itself: only where it is within the listed arguments
    rules.write_text(_RULE.replace("[e] exists", "[e] startswith /bin/"))
    alerts = replay_json([cap], [rules], "all")
    assert [a["output_fields"]["proc.pid"] for a in alerts] == [402, 404, 406]


def test_proc_args_index_past_the_end_is_empty() -> None:
    """libsinsp TYPE_ARGS with an index gives "" past the last argument (not a missing
    value), so a getopt list naming more arguments than a process has still parses."""
    con = duckdb.connect()

    def check(cond: str, argv: list[str]) -> bool:
        q = (f"SELECT {compile_condition(cond)} FROM (SELECT CAST($1 AS VARCHAR[]) "
             "AS proc_argv, 'nc' AS proc_name) e")
        return bool(con.execute(q, [argv]).fetchone()[0])

    assert check('proc.args[0] = "-l"', ["nc", "-l"])
    assert check('proc.args[3] = ""', ["nc", "-l"])
    assert check('getopt((proc.args[0], proc.args[1], proc.args[2]), "le:")[l] exists',
                 ["nc", "-l"])
