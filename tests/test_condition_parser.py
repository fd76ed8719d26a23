"""The condition parser agrees with falcosecurity/libs' filter parser.

Test data: every accept/reject string of libs
``userspace/libsinsp/test/filter_parser.ut.cpp`` (``tests/data/
libs_filter_parser_cases.json``, commit noted in the file), expanded with the
same whitespace variants libs' ``test_accept`` checks, plus AST shapes and
spans checked by hand against libs' ``ast.h`` semantics.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fcap.analyze.condition.ast import (
    And,
    Compare,
    Exists,
    Field,
    FieldValue,
    Identifier,
    ListLiteral,
    Literal,
    Not,
    Or,
    Span,
    Transform,
    TransformerList,
)
from fcap.analyze.condition.escaping import EscapeError, escape, unescape
from fcap.analyze.condition.parser import ConditionSyntaxError, parse_condition

DATA = json.loads((Path(__file__).parent / "data" / "libs_filter_parser_cases.json").read_text())


def _variants(case: dict) -> list[str]:
    out = [case["text"]]
    if case.get("whitespace_variants"):
        s = " " + case["text"] + " "
        out.append(s)
        s = s.replace(" ", "\n")
        out.append(s)
        out.append(s.replace("\n", "\t"))
    return out


def _accepts(text: str) -> bool:
    try:
        parse_condition(text)
    except ConditionSyntaxError:
        return False
    return True


def test_libs_case_file_is_complete() -> None:
    cases = DATA["cases"]
    assert len(DATA["commit"]) == 40
    assert sum(c["expect"] == "accept" for c in cases) > 300
    assert sum(c["expect"] == "reject" for c in cases) > 150


@pytest.mark.parametrize(
    "case", DATA["cases"], ids=[f"L{c['line']}-{c['expect']}" for c in DATA["cases"]]
)
def test_libs_parser_case(case: dict) -> None:
    for text in _variants(case):
        assert _accepts(text) == (case["expect"] == "accept"), repr(text)


def test_deep_nesting_is_rejected_cleanly() -> None:
    with pytest.raises(ConditionSyntaxError):
        parse_condition("(" * 100000)
    assert parse_condition("((((((((((a))))))))))") == Identifier("a")


def test_precedence_not_and_or() -> None:
    e = parse_condition("not a and b or c")
    assert e == Or((And((Not(Identifier("a")), Identifier("b"))), Identifier("c")))
    assert parse_condition("not not a") == Identifier("a")
    assert parse_condition("not not not(a)") == Not(Identifier("a"))


def test_or_paren_does_not_absorb_a_following_and() -> None:
    # libs parses "or(" + expr + ")" as the operand itself
    assert _accepts("a or (b) and c")
    assert not _accepts("a or(b) and c")


def test_rhs_is_a_string_never_a_field() -> None:
    e = parse_condition("a.b = a.a")
    assert e == Compare(Field("a.b"), "=", Literal("a.a"))
    assert parse_condition("a.b = not").rhs == Literal("not")
    e = parse_condition("a.b = val(a.a)")
    assert e.rhs == FieldValue(Field("a.a"))


def test_fields_with_args() -> None:
    assert parse_condition("proc.aname[2] = bash").lhs == Field("proc.aname", "2")
    assert parse_condition("evt.arg.flags contains O_RDWR").lhs == Field("evt.arg.flags")
    e = parse_condition('evt.arg["key with space"] = x')
    assert e.lhs == Field("evt.arg", "key with space")
    e = parse_condition("container.mount.dest[/var/run/docker.sock] exists")
    assert e == Exists(Field("container.mount.dest", "/var/run/docker.sock"))
    assert not _accepts("proc.aname [2] = bash")


def test_lists_and_identifiers() -> None:
    e = parse_condition('proc.name in (cat, "my app", 3)')
    assert e.rhs == ListLiteral((Literal("cat"), Literal("my app", True), Literal("3")))
    # a bare identifier is a one-value list (libs compiles a value_expr)
    assert parse_condition("proc.name in foo").rhs == ListLiteral((Literal("foo"),))
    assert parse_condition("proc.name in ()").rhs == ListLiteral(())
    assert not _accepts("proc.name in ( 1 ,, , b)")


def test_modifiers() -> None:
    e = parse_condition("proc.name startswith oneof (a, b)")
    assert e == Compare(
        Field("proc.name"), "startswith", ListLiteral((Literal("a"), Literal("b"))), "oneof"
    )
    assert parse_condition("proc.name == anyof my_list").modifier == "anyof"
    # a modifier word followed by and/or/not is a plain string
    e = parse_condition("proc.name == anyof and fd.name exists")
    assert e.children[0] == Compare(Field("proc.name"), "==", Literal("anyof"))
    assert not _accepts("proc.name =oneof (cat)")


def test_transformers() -> None:
    e = parse_condition('join("-", (tolower(fd.name), fd.directory)) = /tmp/x')
    assert e.lhs == Transform(
        "join",
        (Literal("-", True), TransformerList((Transform("tolower", (Field("fd.name"),)),
                                              Field("fd.directory")))),
    )
    e = parse_condition('getopt(proc.args, "nt:")[t] = value')
    assert e.lhs == Transform("getopt", (Field("proc.args"), Literal("nt:", True)), "t")
    assert not _accepts('getopt(proc.args, "nt:") [t] = value')
    assert parse_condition("len(proc.args) > 3").lhs == Transform("len", (Field("proc.args"),))


def test_spans_point_into_the_text() -> None:
    text = "proc.name = cat and\n  fd.name startswith '/etc'"
    e = parse_condition(text, origin="macro:m")
    second = e.children[1]
    assert text[second.span.start : second.span.end] == "fd.name startswith '/etc'"
    assert text[second.rhs.span.start : second.rhs.span.end] == "'/etc'"
    assert second.span.origin == "macro:m"
    assert e.span == Span(0, len(text), "macro:m")


def test_syntax_error_position_and_caret() -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition("proc.name = cat and\n  fd.name startswit /etc")
    err = info.value
    assert err.offset == 30
    assert (err.location.line, err.location.col) == (2, 11)
    assert "^" in str(err)


@pytest.mark.parametrize(
    ("token", "value"),
    [('"a\\tb"', "a\tb"), ("'a\\'b'", "a'b"), ('"a\\"b"', 'a"b'), ('"a\\ b"', "a\\b"),
     ('"\\x41"', "A"), ('"\\/"', "/"), ('""', "")],
)
def test_unescape(token: str, value: str) -> None:
    assert unescape(token) == value


@pytest.mark.parametrize("token", ['"a\\\'b"', "'a\\\"b'", '"\\q"', '"\\x4"', '"\\xzz"'])
def test_unescape_rejects(token: str) -> None:
    with pytest.raises(EscapeError):
        unescape(token)
    with pytest.raises(ConditionSyntaxError):
        parse_condition("a.b = " + token)


def test_escape_round_trip() -> None:
    for v in ("plain", "with space", 'q"uote', "tab\there", "back\\slash"):
        e = parse_condition("a.b = " + escape(v))
        assert e.rhs.value == v


@pytest.mark.shared
def test_every_upstream_condition_parses(shared_dir: Path) -> None:
    import yaml

    n = 0
    for path in sorted((shared_dir / "anchors" / "falco-rules").glob("*.yaml")):
        for item in yaml.safe_load(path.read_text()) or []:
            if isinstance(item, dict) and item.get("condition"):
                parse_condition(item["condition"])
                n += 1
    assert n > 1000


# ---------------------------------------------------------------------------
# differential test against a transcription of libs' recursive-descent parser

_FIELDS = ("proc.name", "fd.name", "evt.arg.flags", "proc.aname[2]", "evt.arg[0]",
           'evt.arg["a b"]', "container.mount.dest[/x]")
_STRS = ("cat", "'a b'", '"c\\"d"', "*.log", "/etc/", "0a!@#", "andx", "not", "oneof", "val",
         "b64", '"\\q"')
_NUMS = ("1", "-1", "0x1F", "1.5e+3", "2e5", "0xg")


def _blank(rng, required: bool = False) -> str:
    if rng.random() < 0.15 and not required:
        return ""
    return rng.choice((" ", " ", "  ", "\n", "\t", " \n "))


def _lhs(rng, depth: int) -> str:
    if rng.random() < 0.2 and depth < 3:
        x = rng.choice(("tolower", "toupper", "b64", "basename", "len", "join", "getopt"))
        if x == "join":
            return f'join({_blank(rng)}"-",{_blank(rng)}({_lhs(rng, depth + 1)}, fd.name))'
        if x == "getopt":
            return f'getopt(proc.args,{_blank(rng)}"nt:")' + rng.choice(("", "[t]", " [t]"))
        return f"{x}({_blank(rng)}{_lhs(rng, depth + 1)}{_blank(rng)})"
    return rng.choice(_FIELDS)


def _check(rng, depth: int) -> str:
    f = _lhs(rng, depth)
    r = rng.random()
    if r < 0.1:
        return f + _blank(rng, True) + "exists"
    if r < 0.25:
        op = rng.choice(("<", "<=", ">", ">="))
        return f + _blank(rng) + op + _blank(rng) + rng.choice((*_NUMS, "val(proc.pid)"))
    if r < 0.55:
        op = rng.choice(("=", "==", "!=", "contains", "startswith", "glob", "regex", "bcontains"))
        pre, post = _blank(rng, op[0].isalpha()), _blank(rng, op[0].isalpha())
        if rng.random() < 0.3:
            mod = rng.choice(("oneof", "anyof", "allof"))
            rhs = rng.choice(("(a, b)", "()", "my_list", "and", "(x)", "not_x"))
            return f + pre + op + post + mod + _blank(rng) + rhs
        return f + pre + op + post + rng.choice((*_STRS, "val(fd.name)", "tolower(fd.name)"))
    if r < 0.9:
        op = rng.choice(("in", "intersects", "pmatch"))
        items = ", ".join(rng.choice(_STRS) for _ in range(rng.randint(0, 3)))
        return f + _blank(rng, True) + op + _blank(rng) + rng.choice((f"({items})", "my_list"))
    return rng.choice(("macro_a", "not_macro", "and_x"))


def _expr(rng, depth: int = 0) -> str:
    r = rng.random()
    if depth > 3 or r < 0.35:
        return _check(rng, depth)
    if r < 0.5:
        return "not" + _blank(rng, True) + _expr(rng, depth + 1)
    if r < 0.6:
        return "not(" + _expr(rng, depth + 1) + ")"
    if r < 0.7:
        return "(" + _blank(rng) + _expr(rng, depth + 1) + _blank(rng) + ")"
    op = rng.choice(("and", "or"))
    tail = rng.choice((_blank(rng, True) + _expr(rng, depth + 1),
                       "(" + _expr(rng, depth + 1) + ")"))
    return _expr(rng, depth + 1) + _blank(rng) + op + tail


def _mutate(rng, s: str) -> str:
    if rng.random() < 0.5 or not s:
        return s
    i = rng.randrange(len(s))
    c = rng.random()
    if c < 0.33:
        return s[:i] + s[i + 1 :]
    if c < 0.66:
        return s[:i] + rng.choice(" (),=a\"'[]\\") + s[i:]
    return s[:i] + s[i:].replace(" ", "", 1)


def test_oracle_agrees_with_libs_test_strings() -> None:
    from libs_parser_oracle import libs_accepts

    for case in DATA["cases"]:
        for text in _variants(case):
            assert libs_accepts(text) == (case["expect"] == "accept"), repr(text)


@pytest.mark.parametrize("seed", range(4))
def test_grammar_agrees_with_libs_transcription(seed: int) -> None:
    import random

    from libs_parser_oracle import libs_accepts

    rng = random.Random(seed)
    accepted = 0
    for _ in range(1000):
        text = _mutate(rng, _expr(rng))
        libs = libs_accepts(text, max_depth=1000)
        accepted += libs
        assert _accepts(text) == libs, repr(text)
    assert 200 < accepted < 950  # both outcomes are well represented


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("proc.name startswit /etc", "unexpected 'startswit', expecting an operator",
         "did you mean 'startswith'?"),
        ("proc.name = cat and", "unexpected end of condition after 'and'", None),
        ("proc.name = cat andx", "expected blank or '(' after 'and'", None),
        ('proc.name == "abc', "unterminated quoted string", 'close it with "'),
        ("proc.name contains", "'contains' needs a value after it", None),
        ("proc.name containsx", "expected a blank after 'contains'", None),
    ],
)
def test_friendly_syntax_errors(text: str, message: str, hint: str | None) -> None:
    with pytest.raises(ConditionSyntaxError) as info:
        parse_condition(text)
    assert info.value.message == message
    assert info.value.hint == hint
