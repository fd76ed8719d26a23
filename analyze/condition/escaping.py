"""Quoted strings of the condition language, as libs reads and writes them.

Mirrors falcosecurity/libs ``userspace/libsinsp/filter/escaping.cpp``
(``unescape_str`` / ``escape_str``; tests ``test/filter_escaping.ut.cpp``):

* inside quotes ``\\b \\f \\n \\r \\t \\\\ \\/`` are recognised, plus ``\\xHH``
  (libs main, commit c7f51fe99, after 0.25.4);
* ``\\"`` only inside ``"..."`` and ``\\'`` only inside ``'...'``;
* quirk kept for old rules: ``\\<space>`` yields a backslash and drops the space;
* any other escape is an error.
"""

from __future__ import annotations

_SIMPLE = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t", " ": "\\", "\\": "\\", "/": "/"}
_HEX = frozenset("0123456789abcdefABCDEF")


class EscapeError(ValueError):
    """A quoted string holds an escape sequence libs rejects.

    ``index`` is the offset of the offending backslash in the quoted token.
    """

    def __init__(self, message: str, index: int) -> None:
        super().__init__(message)
        self.index = index


def unescape(token: str) -> str:
    """The value of a quoted token (with its delimiters), as libs ``unescape_str``."""
    delim = token[0]
    out: list[str] = []
    body_end = len(token) - 1
    i = 1
    while i < body_end:
        c = token[i]
        if c != "\\":
            out.append(c)
            i += 1
            continue
        i += 1
        if i >= body_end:
            # libs reads the closing delimiter as the escaped char; the lexer
            # never produces such a token, so this is unreachable in practice
            raise EscapeError("unterminated escape sequence", i - 1)
        e = token[i]
        if e in _SIMPLE:
            out.append(_SIMPLE[e])
        elif e in "\"'":
            if e != delim:
                other = "'" if e == '"' else '"'
                raise EscapeError(f"invalid \\{e} escape in {other}-quoted string", i - 1)
            out.append(e)
        elif e == "x":
            digits = token[i + 1 : i + 3]
            if i + 2 >= body_end:
                raise EscapeError("truncated hex char escape sequence", i - 1)
            if len(digits) != 2 or not set(digits) <= _HEX:
                raise EscapeError(f"invalid hex char escape sequence: {digits}", i - 1)
            out.append(chr(int(digits, 16)))
            i += 2
        else:
            raise EscapeError(f"unsupported string escape sequence: \\{e}", i - 1)
        i += 1
    return "".join(out)


def escape(value: str) -> str:
    """Quote ``value`` the way libs ``escape_str`` does (used when printing an AST).

    The value is returned unchanged unless it holds a blank, ``=``, a quote, a
    backslash or a control character; then it is double-quoted with escapes.
    """
    special = {"\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
               "\\": "\\\\", '"': '\\"'}
    should = False
    out = []
    for c in value:
        if c in special:
            should = True
            out.append(special[c])
        elif c in " ='\0":
            should = True
            out.append(c)
        else:
            out.append(c)
    text = "".join(out)
    return f'"{text}"' if should else text
