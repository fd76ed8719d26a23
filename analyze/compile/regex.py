"""The ``regex`` operator with libsinsp's dialect: RE2 in POSIX syntax, evaluated by DuckDB.

libsinsp compiles a ``regex`` value with ``re2::RE2::POSIX`` (egrep syntax:
no Perl classes ``\\d \\s \\w``, no ``\\b``, no ``(?:...)``/``(?i)`` groups, no
``\\pN``; ``^``/``$`` also match at line boundaries) and throws ``invalid
regex pattern: <RE2's error>`` for a pattern RE2 rejects
(``sinsp_filtercheck.cpp``, ``add_filter_value``); an event matches when the
whole value matches (``Match(..., ANCHOR_BOTH)``). DuckDB's ``regexp_full_match``
is RE2 too, with its Perl-like default syntax. So:

* :func:`check` parses the pattern with RE2's own POSIX options (the
  ``google-re2`` binding): Falco's accept/reject, with RE2's message;
* :func:`to_duckdb` rewrites a pattern :func:`check` accepted into Perl syntax
  with the same meaning: repetitions of a repetition (``a**``, ``a{2}{3}``,
  which POSIX syntax allows and Perl syntax rejects) get a non-capturing group,
  and a pattern with ``^`` or ``$`` runs in multi-line mode (``(?m)``).
"""

from __future__ import annotations

import functools
import re

_BRACE = re.compile(r"\{\d+(?:,\d*)?\}")


class RegexError(ValueError):
    """A pattern libsinsp's RE2 (POSIX syntax) rejects; the message is Falco's."""


@functools.cache
def _options() -> object:
    import re2

    opts = re2.Options()
    opts.posix_syntax = True  # RE2::POSIX: posix_syntax and longest_match
    opts.longest_match = True
    opts.log_errors = False
    return opts


def check(pattern: str) -> None:
    """Raise :class:`RegexError` (``invalid regex pattern: ...``) when libsinsp would."""
    import re2

    try:
        re2.compile(pattern, _options())
    except re2.error as err:
        msg = err.args[0] if err.args else str(err)
        if isinstance(msg, bytes):
            msg = msg.decode("utf-8", "replace")
        raise RegexError(f"invalid regex pattern: {msg}") from None


def _escape_end(p: str, i: int) -> int:
    """End of the escape starting at ``p[i] == '\\\\'``."""
    if i + 1 >= len(p):
        return len(p)
    c = p[i + 1]
    if c == "x" and i + 2 < len(p) and p[i + 2] == "{":
        j = p.find("}", i + 3)
        return len(p) if j < 0 else j + 1
    if c == "x":
        return min(i + 4, len(p))
    if c.isdigit():
        j = i + 2
        while j < len(p) and j < i + 4 and p[j].isdigit():
            j += 1
        return j
    return i + 2


def _class_end(p: str, i: int) -> int:
    """End of the bracket expression starting at ``p[i] == '['``."""
    j = i + 1
    if j < len(p) and p[j] == "^":
        j += 1
    if j < len(p) and p[j] == "]":  # a leading ] is literal
        j += 1
    while j < len(p):
        c = p[j]
        if c == "\\":
            j = _escape_end(p, j)
            continue
        if c == "[" and j + 1 < len(p) and p[j + 1] in ":.=":
            k = p.find(p[j + 1] + "]", j + 2)
            if k >= 0:
                j = k + 2
                continue
        if c == "]":
            return j + 1
        j += 1
    return len(p)


def to_duckdb(pattern: str) -> str:
    """``pattern`` (accepted by :func:`check`) for DuckDB's ``regexp_full_match``."""
    out: list[str] = []
    groups: list[int] = []  # index in out of each open group's "("
    atom = -1  # index in out where the last atom starts, -1: none
    repeated = False  # the last atom already carries a repetition
    anchors = False
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c in "*+?" or (c == "{" and _BRACE.match(pattern, i)):
            j = _BRACE.match(pattern, i).end() if c == "{" else i + 1  # type: ignore[union-attr]
            if atom >= 0 and repeated:
                out.insert(atom, "(?:")
                out.append(")")
            out.append(pattern[i:j])
            repeated = atom >= 0
            i = j
            continue
        if c == "(":
            groups.append(len(out))
            out.append("(")
            atom, repeated = -1, False
            i += 1
            continue
        if c == ")":
            out.append(")")
            atom = groups.pop() if groups else -1
            repeated = False
            i += 1
            continue
        if c == "|":
            out.append(c)
            atom, repeated = -1, False
            i += 1
            continue
        anchors |= c in "^$"  # empty-width, but RE2 repeats them like any atom
        j = _escape_end(pattern, i) if c == "\\" else (
            _class_end(pattern, i) if c == "[" else i + 1)
        atom, repeated = len(out), False
        out.append(pattern[i:j])
        i = j
    return ("(?m)" if anchors else "") + "".join(out)
