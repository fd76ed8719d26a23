"""Condition compiler: exact SQL for inline conditions, and libs semantics checked by evaluation.

Uses a small fake catalog (tests/compile_fakes.py) so the compiler is tested on
its own; the semantic cases come from libs' unit tests
(``test/filter_op_pmatch.ut.cpp``, ``filter_compiler.ut.cpp``, ``cmp_operator_modifiers.cpp``).
"""

from __future__ import annotations

import duckdb
import pytest
from compile_fakes import CATALOG
from fcap.analyze.compile import ConditionCompileError, compile_condition

COLUMNS = {
    "evt_num": "UBIGINT",
    "ts": "BIGINT",
    "evt_type": "VARCHAR",
    "proc_name": "VARCHAR",
    "proc_cmdline": "VARCHAR",
    "proc_pid": "BIGINT",
    "proc_anames": "VARCHAR[]",
    "fd_name": "VARCHAR",
    "fd_sip": "VARCHAR",
    "fd_cip": "VARCHAR",
    "fd_num": "BIGINT",
    "buf": "BLOB",
    "user_uid": "UBIGINT",
    "exe_writable": "BOOLEAN",
    "container_id": "VARCHAR",
}


def sql(cond: str, **kw: object) -> str:
    return compile_condition(cond, catalog=CATALOG, **kw)  # type: ignore[arg-type]


def evaluate(cond: str, **row: object) -> bool:
    """Evaluate ``cond`` on one event whose columns are ``row`` (others NULL)."""
    con = duckdb.connect()
    cols = ", ".join(f"{k} {t}" for k, t in COLUMNS.items())
    con.execute(f"CREATE TABLE events ({cols})")
    row = row or {"evt_num": 1}
    con.execute(
        f"INSERT INTO events ({', '.join(row)}) VALUES ({', '.join('?' for _ in row)})",
        list(row.values()),
    )
    return bool(con.execute(f"SELECT {sql(cond)} FROM events e").fetchone()[0])


# -- exact SQL -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("proc.name = cat", "coalesce((e.proc_name = 'cat'), false)"),
        ("proc.name == cat", "coalesce((e.proc_name = 'cat'), false)"),
        ("proc.name != cat", "coalesce((e.proc_name <> 'cat'), false)"),
        ("proc.pid >= 10", "coalesce((e.proc_pid >= 10), false)"),
        ("proc.name contains at", "coalesce(contains(e.proc_name, 'at'), false)"),
        ("proc.name icontains AT", "coalesce(contains(lower(e.proc_name), 'at'), false)"),
        ("fd.name startswith /etc", "coalesce(starts_with(e.fd_name, '/etc'), false)"),
        ("fd.name endswith .log", "coalesce(ends_with(e.fd_name, '.log'), false)"),
        ("proc.name in (a, 'b c')", "coalesce((e.proc_name IN ('a', 'b c')), false)"),
        ("proc.name in ()", "coalesce(false, false)"),
        ("fd.name glob '*.log'", "coalesce((e.fd_name LIKE '%.log' ESCAPE '\\'), false)"),
        ("fd.name glob 'a_b*'", "coalesce((e.fd_name LIKE 'a\\_b%' ESCAPE '\\'), false)"),
        ("fd.name iglob '*.LOG'", "coalesce((e.fd_name ILIKE '%.LOG' ESCAPE '\\'), false)"),
        ("fd.name regex 'a.c'", "coalesce(regexp_full_match(e.fd_name, 'a.c'), false)"),
        ("proc.name exists", "coalesce((e.proc_name IS NOT NULL), false)"),
        # checks are coalesced to false only under 'not' (and once at the top)
        ("not proc.name = a", "coalesce((NOT coalesce((e.proc_name = 'a'), false)), false)"),
        (
            "proc.name = a and (fd.num = 1 or fd.num = 2)",
            "coalesce(((e.proc_name = 'a') AND ((e.fd_num = 1) OR (e.fd_num = 2))), false)",
        ),
        (
            "proc.name in (a, b, c, d, e, f, g, h, i, a)",
            "coalesce(map_contains(MAP {'a': true, 'b': true, 'c': true, 'd': true, 'e': true, "
            "'f': true, 'g': true, 'h': true, 'i': true}, e.proc_name), false)",
        ),
        ("proc.name = val(fd.name)", "coalesce((e.proc_name = e.fd_name), false)"),
        ("tolower(proc.name) = bash", "coalesce((lower(e.proc_name) = 'bash'), false)"),
        ("len(proc.name) > 3", "coalesce((CAST(strlen(e.proc_name) AS UBIGINT) > 3), false)"),
        ("proc.aname in (bash, sh)", "coalesce(list_has_any(e.proc_anames, ['bash', 'sh']), false)"),
        (
            "evt.type = open and proc.name = cat",
            "coalesce((e.evt_type IN ('open') AND ((e.proc_name = 'cat') AND "
            "(e.evt_type = 'open'))), false)",
        ),
        (
            "proc.name startswith oneof (a, b)",
            "coalesce((CAST(coalesce(starts_with(e.proc_name, 'a'), false) AS INTEGER) + "
            "CAST(coalesce(starts_with(e.proc_name, 'b'), false) AS INTEGER) = 1), false)",
        ),
    ],
)
def test_exact_sql(cond: str, expected: str) -> None:
    assert sql(cond) == expected


def test_negated_evttype_prefilter_excludes_only_listed_names() -> None:
    assert sql("not evt.type in (open, openat) and proc.name = a").startswith(
        "coalesce((e.evt_type NOT IN ('open', 'openat') AND "
    )


# -- values never spliced unescaped -------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    ["a'b", "x') OR true OR ('", "'; DROP TABLE events; --", "back\\slash'", "%_*"],
)
def test_injection_attempts_stay_literal(payload: str) -> None:
    quoted = '"' + payload.replace("\\", "\\\\").replace('"', '\\"') + '"'
    cond = f"proc.name = {quoted}"
    assert evaluate(cond, proc_name=payload)
    assert not evaluate(cond, proc_name="other")
    assert not evaluate(f"proc.name contains {quoted}", proc_name="innocent")
    assert evaluate(f"proc.name in ({quoted}, x)", proc_name=payload)


def test_nul_in_value_is_an_error() -> None:
    with pytest.raises(ConditionCompileError):
        sql('proc.name = "a\x00b"')


# -- semantics (evaluated) --------------------------------------------------------------


def test_missing_field_makes_every_operator_false() -> None:
    # libs: a field that cannot be extracted fails the check, even '!='
    assert not evaluate("proc.name != cat")
    assert evaluate("not proc.name = cat")
    assert not evaluate("proc.name exists")
    assert evaluate("not proc.name exists")


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("fd.name pmatch (/opt/dir)", True),
        ("fd.name pmatch (/opt/dir/subdir)", True),
        ("fd.name pmatch (/opt/dir2)", False),
        ("fd.name pmatch (/opt/dir, /opt/dir2)", True),
        ("fd.name pmatch (/opt/dir3, /opt/dir2)", False),
        ("fd.name pmatch (/opt/*)", True),
        ("fd.name pmatch (/opt/*/subdir)", True),
        ("fd.name pmatch (/opt/di?/subdir)", True),
        ("fd.name pmatch (/opt/dii?/subdir)", False),
        ("fd.name pmatch (/opt/di[r]/subdir)", True),
        ("fd.name pmatch (/opt/di[!r]/subdir)", False),
        ("fd.name pmatch (/opt/di[t]/subdir)", False),
        ("fd.name pmatch (/opt/di/subdir)", False),
        ("fd.name pmatch (/opt/*/subdir2)", False),
        ("fd.name pmatch (/opt/*/*)", True),
        ("fd.name pmatch (/opt/*/*/subsubdir)", False),
    ],
)
def test_pmatch_libs_cases(cond: str, expected: bool) -> None:
    # libs test/filter_op_pmatch.ut.cpp, fd.name = /opt/dir/subdir/file.txt
    assert evaluate(cond, fd_name="/opt/dir/subdir/file.txt") is expected


@pytest.mark.parametrize(
    ("pattern", "value", "expected"),
    [
        ("*.log", "/var/log/a.log", True),  # '*' crosses '/' (no FNM_PATHNAME)
        ("/var/*", "/var/a/b", True),
        ("a?c", "abc", True),
        ("a?c", "ac", False),
        ("[ab]x", "bx", True),
        ("[!ab]x", "bx", False),
        ("a\\\\*b", "a*b", True),  # condition text a\\*b -> pattern a\*b
        ("a\\\\*b", "axb", False),
        ("*.LOG", "x.log", False),
    ],
)
def test_glob_is_fnmatch(pattern: str, value: str, expected: bool) -> None:
    assert evaluate(f"fd.name glob '{pattern}'", fd_name=value) is expected


def test_iglob_and_icontains_fold_case() -> None:
    assert evaluate("fd.name iglob '*.LOG'", fd_name="x.log")
    assert evaluate("proc.name icontains BaSh", proc_name="xbashy")


def test_regex_is_anchored_both_ends() -> None:
    assert evaluate("proc.name regex 'ba.h'", proc_name="bash")
    assert not evaluate("proc.name regex 'ba.h'", proc_name="bash2")


def test_numeric_vs_string_comparison() -> None:
    assert evaluate("proc.pid > 9", proc_pid=10)  # numeric, not "10" < "9"
    assert evaluate("proc.name > 9", proc_name="a")  # strcmp order for strings


def test_modifiers() -> None:
    assert evaluate("proc.name startswith anyof (x, ba)", proc_name="bash")
    assert not evaluate("proc.name startswith allof (b, ba, x)", proc_name="bash")
    assert evaluate("proc.name startswith allof (b, ba)", proc_name="bash")
    assert evaluate("proc.name startswith oneof (b, x)", proc_name="bash")
    assert not evaluate("proc.name startswith oneof (b, ba)", proc_name="bash")


def test_ip_and_cidr() -> None:
    assert evaluate("fd.sip = 10.0.0.1", fd_sip="10.0.0.1")
    assert evaluate("fd.snet in (10.0.0.0/8, 192.168.0.0/16)", fd_sip="192.168.3.4")
    assert not evaluate("fd.snet in (10.0.0.0/8)", fd_sip="11.0.0.1")
    assert evaluate("fd.snet = 10.0.0.0/8", fd_sip="10.255.255.255")


@pytest.mark.parametrize(
    ("net", "ip", "expected"),
    [("10.0.0.0/8", "10.255.255.255", True), ("10.0.0.0/8", "100.0.0.1", False),
     ("192.168.0.0/16", "192.168.3.4", True), ("192.168.0.0/16", "192.169.0.1", False),
     ("172.16.0.0/12", "172.31.0.1", True), ("172.16.0.0/12", "172.32.0.1", False),
     ("1.2.3.0/24", "1.2.3.255", True), ("1.2.3.0/24", "1.2.30.1", False),
     ("1.2.3.4/32", "1.2.3.4", True), ("1.2.3.4/32", "1.2.3.40", False)],
)
def test_cidr_membership(net: str, ip: str, expected: bool) -> None:
    assert evaluate(f"fd.snet = {net}", fd_sip=ip) is expected
    assert evaluate(f"fd.snet in ({net}, 5.5.5.5/32)", fd_sip=ip) is expected


def test_cidr_on_octet_boundary_is_a_prefix_test() -> None:
    """/8, /16, /24 need no conversion of the address to an integer (cheap per row)."""
    assert sql("fd.snet = 10.0.0.0/8") == "coalesce(starts_with(e.fd_sip, '10.'), false)"
    assert sql("fd.snet = 1.2.3.4/32") == "coalesce((e.fd_sip = '1.2.3.4'), false)"
    assert "split_part" in sql("fd.snet = 172.16.0.0/12")


def test_fixed_list_field_any_element_without_lambda() -> None:
    """fd.ip (client or server address) as an OR over its columns, not a lambda per row."""
    q = sql("fd.ip = 1.2.3.4")
    assert "lambda" not in q
    assert q == ("coalesce((coalesce((e.fd_cip = '1.2.3.4'), false) OR "
                 "coalesce((e.fd_sip = '1.2.3.4'), false)), false)")
    assert evaluate("fd.ip = 1.2.3.4", fd_cip="1.2.3.4", fd_sip="5.6.7.8")
    assert evaluate("fd.ip = 1.2.3.4", fd_sip="1.2.3.4")
    assert not evaluate("fd.ip = 1.2.3.4", fd_cip="5.6.7.8")
    assert not evaluate("fd.ip = 1.2.3.4")
    assert evaluate("not fd.ip = 1.2.3.4", fd_cip="5.6.7.8")
    # '!=' needs every address present to differ (libsinsp compare_ip/compare_net/
    # compare_port: sip_cmp && dip_cmp; a listening socket has one address)
    assert not evaluate("fd.ip != 0.0.0.0", fd_cip="0.0.0.0", fd_sip="1.1.1.1")
    assert evaluate("fd.ip != 0.0.0.0", fd_cip="2.2.2.2", fd_sip="1.1.1.1")
    assert not evaluate("fd.ip != 0.0.0.0", fd_cip="0.0.0.0")
    assert evaluate("fd.ip != 0.0.0.0", fd_sip="1.1.1.1")
    assert not evaluate("fd.ip != 0.0.0.0")


def test_and_puts_cheap_checks_first() -> None:
    """AND operands are ordered by estimated cost (the result does not change)."""
    q = sql("proc.name regex 'a.*' and proc.name = cat")
    assert q.index("e.proc_name = 'cat'") < q.index("regexp")
    assert evaluate("proc.name regex 'c.*' and proc.name = cat", proc_name="cat")
    assert not evaluate("proc.name regex 'x.*' and proc.name = cat", proc_name="cat")


def test_and_puts_selective_checks_first() -> None:
    """A value test rules out most events: it runs before checks that are true on most
    (exceptions under 'not', '!=', 'exists', the event type the dispatch already applied)."""
    q = sql("fd.name exists and not fd.name in (a, b) and proc.cmdline != x "
            "and evt.type = execve and proc.name in (bash, sh)")
    first = q.index("e.proc_name IN ('bash', 'sh')")
    assert all(first < q.index(x) for x in ("e.fd_name IS NOT NULL", "NOT coalesce((e.fd_name",
                                            "e.proc_cmdline <> 'x'", "(e.evt_type = 'execve')"))
    assert evaluate("fd.name exists and not fd.name in (a, b) and proc.name in (bash, sh)",
                    proc_name="sh", fd_name="c")
    assert not evaluate("fd.name exists and not fd.name in (a, b) and proc.name in (bash, sh)",
                        proc_name="sh", fd_name="a")


def test_bcontains_and_bstartswith() -> None:
    assert evaluate("evt.buffer bcontains 2f657463", buf=b"xx/etc/passwd")
    assert not evaluate("evt.buffer bcontains 2f657463", buf=b"xx/et")
    assert evaluate("evt.buffer bstartswith 7878", buf=b"xx/etc")
    # hex alignment: '0f' must not match across the byte boundary of 0x00 0xf0
    assert not evaluate("evt.buffer bcontains 0f", buf=bytes([0x00, 0xF0]))


def test_multi_valued_any_element() -> None:
    assert evaluate("proc.aname in (sh)", proc_anames=["bash", "sh"])
    assert evaluate("proc.aname startswith ba", proc_anames=["x", "bash"])
    assert not evaluate("proc.aname = zsh", proc_anames=["bash", "sh"])
    assert evaluate("proc.aname[1] = bash", proc_anames=["bash", "sh"])


def test_transformers() -> None:
    assert evaluate("basename(fd.name) = passwd", fd_name="/etc/passwd")
    assert evaluate("toupper(proc.name) = BASH", proc_name="bash")
    assert evaluate("b64(proc.name) = hello", proc_name="aGVsbG8=")
    assert not evaluate("b64(proc.name) = hello", proc_name="!!notb64")
    assert evaluate("len(fd.name) = 11", fd_name="/etc/passwd")


def test_transformer_on_the_right_side() -> None:
    """libs accepts a field transformer as the right operand (``proc.name = toupper(...)``)."""
    assert sql("proc.name = toupper(proc.cmdline)") == (
        "coalesce((e.proc_name = upper(e.proc_cmdline)), false)")
    assert evaluate("proc.name = toupper(proc.cmdline)", proc_name="CAT", proc_cmdline="cat")
    assert not evaluate("proc.name = toupper(proc.cmdline)", proc_name="cat",
                        proc_cmdline="cat")
    assert not evaluate("proc.name = toupper(proc.cmdline)", proc_name="CAT")
    assert evaluate("proc.name != tolower(proc.cmdline)", proc_name="CAT", proc_cmdline="cat")
    with pytest.raises(ConditionCompileError, match="doesn't support right-hand side fields"):
        sql("proc.name regex toupper(proc.cmdline)")


def _warnings(cond: str) -> list[str]:
    from fcap.analyze.compile.ruleset import compile_expr
    from fcap.analyze.condition.parser import parse_condition

    res = compile_expr(parse_condition(cond), CATALOG)  # type: ignore[arg-type]
    assert res.predicate is not None
    return [i.message for i in res.issues if i.severity == "warning"]


@pytest.mark.parametrize(
    ("cond", "expected"),
    [
        ("proc.name = proc.cmdline",
         "'proc.cmdline' may be a valid field misused as a const string value"),
        ("proc.name = 'proc.cmdline '",
         "'proc.cmdline ' may be a valid field misused as a const string value"),
        ("proc.name in (a, 'proc.aname[2]')",
         "'proc.aname[2]' may be a valid field misused as a const string value"),
        ("proc.name = 'toupper( proc.cmdline)'",
         "'toupper( proc.cmdline)' may be a valid field transformer misused as a const string "
         "value"),
        ("proc.name = 'val(x)'", "'val(x)' may be a valid field transformer misused as a const "
         "string value"),
    ],
)
def test_const_value_looks_like_a_field_warning(cond: str, expected: str) -> None:
    """libs ``check_value_and_add_warnings``: the check compiles, with a warning."""
    assert expected in _warnings(cond)


@pytest.mark.parametrize(
    "cond",
    ["proc.name = cat", "proc.name = proc.nosuchfield", "proc.name = 'a.b'",
     "proc.name = toupper(proc.cmdline)", "proc.name = 'toupper'", "fd.name = /etc/passwd"],
)
def test_no_const_value_warning(cond: str) -> None:
    assert not any("misused" in w for w in _warnings(cond))


@pytest.mark.parametrize(
    ("cond", "warns"),
    [
        ("proc.name = '<NA>'", False),  # syscall fields: libs reports no unsafe check
        ("proc.name in (a, '<NA>')", False),
        ("ka.user.name = '<NA>'", True),
        ("ka.user.name != '<NA>'", True),
        ("ka.user.name in (a, '<NA>')", True),
        ("toupper(ka.user.name) = '<NA>'", True),
        ("ka.user.name contains '<NA>'", False),
        ("ka.user.name = a", False),
    ],
)
def test_unsafe_na_check_only_for_ka_and_jevt_fields(cond: str, warns: bool) -> None:
    """Falco's ``filter_warning_resolver``: ``<NA>`` in an equality check on a ``ka.``
    or ``jevt.`` field (whose extraction yields ``<NA>``) warns; other fields do not."""
    assert ("Unsafe <NA> comparison in condition" in _warnings(cond)) == warns


def test_bool_field() -> None:
    assert evaluate("proc.is_exe_writable = true", exe_writable=True)
    assert not evaluate("proc.is_exe_writable = true", exe_writable=False)


# -- errors -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cond", "message", "col"),
    [
        ("proc.nme = x", "unknown field 'proc.nme'", 1),
        ("proc.pid = abc", "abc is not a valid number", 12),
        ("evt.type = opne", "unknown event type opne", 12),
        ("proc.pid contains 1", "'contains' operator not supported for numeric filters", 1),
        ("fd.sip = 10.0.0.300", "10.0.0.300 is not a valid IP address", 10),
        ("proc.name regex '('", "invalid regex pattern", 17),
    ],
)
def test_errors_point_at_the_token(cond: str, message: str, col: int) -> None:
    with pytest.raises(ConditionCompileError) as info:
        sql(cond)
    assert message in info.value.message
    assert info.value.location is not None and info.value.location.col == col


def test_unknown_field_hint() -> None:
    with pytest.raises(ConditionCompileError) as info:
        sql("proc.nme = x")
    assert info.value.hint == "did you mean proc.name?"


def test_long_in_list_map_lookup_semantics() -> None:
    items = ", ".join(f"n{i}" for i in range(20)) + ", 'b c', n3"
    assert evaluate(f"proc.name in ({items})", proc_name="b c")
    assert evaluate(f"proc.name in ({items})", proc_name="n19")
    assert not evaluate(f"proc.name in ({items})", proc_name="n20")
    assert not evaluate(f"proc.name in ({items})")
    assert evaluate(f"not proc.name in ({items})")
    assert evaluate(f"not proc.name in ({items})", proc_name="zz")
