"""``regex`` with libsinsp's dialect: RE2 in POSIX syntax (``re2::RE2::POSIX``), anchored.

libsinsp (``sinsp_filtercheck.cpp``, ``add_filter_value``) compiles the value
with ``RE2::POSIX`` and rejects the condition with ``invalid regex pattern:
<RE2's error>``; it matches with ``ANCHOR_BOTH``. The oracle below is RE2
itself (the ``google-re2`` binding with the same options), compared with the
SQL fcap runs in DuckDB.
"""

from __future__ import annotations

import random

import duckdb
import pytest
from fcap.analyze.compile import ConditionCompileError
from fcap.analyze.compile import regex as R
from test_compile import evaluate, sql

re2 = pytest.importorskip("re2")  # a declared dependency: present wherever fcap is installed


def _q(pattern: str) -> str:
    """``pattern`` as a double-quoted string of the condition language."""
    return '"' + pattern.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


@pytest.mark.parametrize(
    ("pattern", "error"),
    [
        (r"\d+", r"invalid escape sequence: \d"),  # Perl classes: off in POSIX syntax
        (r"[a-z]\s", r"invalid escape sequence: \s"),
        (r"\w", r"invalid escape sequence: \w"),
        (r"sh\b", r"invalid escape sequence: \b"),  # word boundaries: off
        (r"(?:ba)sh", "no argument for repetition operator: ?"),  # Perl extensions: off
        (r"(?i)bash", "no argument for repetition operator: ?"),
        (r"\pL", r"invalid escape sequence: \p"),  # Unicode groups: off
        (r"\Abash", r"invalid escape sequence: \A"),
        ("ba(sh", "missing ): ba(sh"),
    ],
)
def test_falco_rejects_what_re2_posix_rejects(pattern: str, error: str) -> None:
    with pytest.raises(ConditionCompileError) as info:
        sql(f"proc.name regex {_q(pattern)}")
    assert info.value.message == f"invalid regex pattern: {error}"
    assert info.value.location is not None and info.value.location.col == 17


@pytest.mark.parametrize(
    ("pattern", "name", "match"),
    [
        ("ba.h", "bash", True),
        ("ba.h", "bash2", False),  # anchored at both ends
        ("[[:alpha:]]+[[:digit:]]", "python3", True),
        ("a**", "aaa", True),  # a repeated repetition: Perl syntax rejects it, POSIX not
        ("(ba){1}{2}", "baba", True),
        ("(ba){1}{2}", "ba", False),
        ("sh*?", "shh", True),  # POSIX: (h*)? -- the same strings as Perl's lazy h*?
        ("x$\n^y", "x\ny", True),  # ^ and $ also match at line boundaries (no one_line)
        ("x$\n^y", "xy", False),
    ],
)
def test_posix_patterns_match_as_in_falco(pattern: str, name: str, match: bool) -> None:
    cond = f"proc.name regex {_q(pattern)}"
    assert evaluate(cond, proc_name=name) is match
    assert (re2.compile(pattern, R._options()).fullmatch(name) is not None) is match


def test_plain_patterns_keep_their_sql() -> None:
    assert sql("fd.name regex 'a.c'") == "coalesce(regexp_full_match(e.fd_name, 'a.c'), false)"
    assert sql("fd.name regex '^/etc/.*$'") == (
        "coalesce(regexp_full_match(e.fd_name, '(?m)^/etc/.*$'), false)")
    assert R.to_duckdb("a{2}{3}") == "(?:a{2}){3}"
    assert R.to_duckdb("(a|b)*+[*+]?") == "(?:(a|b)*)+[*+]?"
    assert R.to_duckdb(r"\**\x{41}+?") == r"\**(?:\x{41}+)?"


_TOKENS = ["a", "b", ".", "*", "+", "?", "{2}", "{1,}", "{0,2}", "(", ")", "|", "^", "$",
           "[ab]", "[^a]", "\\.", "[[:alpha:]]", "{", "}", "\n", "]", "[]a]", "\\*", "\\x61"]
_TEXTS = ["", "a", "b", "aa", "ab", "ba", "abab", "aab", ".", "a\nb", "\n", "{", "}", "a{2}",
          "*", "]", "aaaa"]


def test_random_patterns_agree_with_re2_posix() -> None:
    """Every pattern RE2 (POSIX) accepts gives RE2's answer in DuckDB, on every text."""
    rng = random.Random(20261123)
    con = duckdb.connect()
    accepted = 0
    for _ in range(2500):
        p = "".join(rng.choice(_TOKENS) for _ in range(rng.randint(1, 7)))
        try:
            R.check(p)
        except R.RegexError:
            with pytest.raises(re2.error):
                re2.compile(p, R._options())
            continue
        accepted += 1
        rx = re2.compile(p, R._options())
        want = [rx.fullmatch(s) is not None for s in _TEXTS]
        got = con.execute("SELECT list_transform(?, lambda s: regexp_full_match(s, ?))",
                          [_TEXTS, R.to_duckdb(p)]).fetchall()[0][0]
        assert got == want, (p, R.to_duckdb(p))
    assert accepted > 1000
