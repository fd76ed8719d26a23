"""Positions: from a character of a (derived) condition text back to a file.

Every text the loader builds — a YAML scalar's value, an appended condition,
a condition after list substitution, exception text — is a :class:`PosText`:
the string plus, for each character, a *position code* ``file_id << 32 |
offset`` into one of the registered files. Concatenating and splicing
PosTexts keeps the codes, so a :class:`~fcap.analyze.condition.ast.Span`
of the final condition maps back to ``file:line:col`` (:class:`SourceMaps`).

A YAML scalar's value differs from its source text (folded ``>`` and literal
``|`` blocks, plain multi-line scalars, quotes and escapes);
:func:`scalar_postext` aligns the value with the raw source characters.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from fcap.errors import SourceLocation

from ..condition.ast import Span

_SHIFT = 32
_MASK = (1 << _SHIFT) - 1
_SKIPPABLE = frozenset(" \t\r\n\\\"'|>-+")


def code(file_id: int, offset: int) -> int:
    return (file_id << _SHIFT) | offset


@dataclass
class PosText:
    """A string with one position code per character, plus one for its end."""

    text: str
    pos: list[int]

    def __post_init__(self) -> None:
        if len(self.pos) != len(self.text) + 1:
            raise ValueError("PosText needs len(text) + 1 positions")

    @classmethod
    def at(cls, text: str, where: int) -> PosText:
        """Synthetic text whose characters all map to one position."""
        return cls(text, [where] * (len(text) + 1))

    def __add__(self, other: PosText | str) -> PosText:
        if isinstance(other, str):
            other = PosText.at(other, self.pos[-1])
        return PosText(self.text + other.text, self.pos[:-1] + other.pos)

    def __radd__(self, other: str) -> PosText:
        return PosText.at(other, self.pos[0]) + self

    def slice(self, a: int, b: int) -> PosText:
        return PosText(self.text[a:b], [*self.pos[a:b], self.pos[b] if b < len(self.pos) else self.pos[-1]])

    def strip(self) -> PosText:
        a = len(self.text) - len(self.text.lstrip())
        b = len(self.text.rstrip())
        return self.slice(a, max(a, b))


def scalar_postext(value: str, raw: str, base: int) -> PosText:
    """Align a scalar's ``value`` with its ``raw`` source starting at code ``base``.

    Greedy: each value character matches the next equal raw character (a
    folded blank matches a line break), skipping indentation, quotes, block
    indicators and escape backslashes; an unmatched character (an escape such
    as ``\\n``) consumes one raw character.
    """
    out: list[int] = []
    p = 0
    n = len(raw)
    for c in value:
        blank = c in " \n"
        while p < n:
            r = raw[p]
            if r == c or (blank and r in " \n\r"):
                break
            if r in _SKIPPABLE:
                p += 1
                continue
            break
        if p < n:
            out.append(base + p)
            p += 1
        else:
            out.append(base + max(n - 1, 0))
    out.append(base + min(p, n))
    return PosText(value, out)


@dataclass
class _File:
    name: str
    text: str
    line_starts: list[int]


@dataclass
class SourceMaps:
    """Registered files and, per origin (``rule:NAME``, ``macro:NAME``), the
    PosText of the condition the parser saw."""

    files: list[_File] = field(default_factory=list)
    texts: dict[str, PosText] = field(default_factory=dict)

    def add_file(self, name: str, text: str) -> int:
        starts = [0]
        i = text.find("\n")
        while i >= 0:
            starts.append(i + 1)
            i = text.find("\n", i + 1)
        self.files.append(_File(name, text, starts))
        return len(self.files) - 1

    def location(self, pos_code: int, length: int = 1) -> SourceLocation:
        """``file:line:col`` and the line text of a position code."""
        f = self.files[pos_code >> _SHIFT]
        off = min(pos_code & _MASK, len(f.text))
        i = bisect.bisect_right(f.line_starts, off) - 1
        start = f.line_starts[i]
        end = f.text.find("\n", start)
        line_text = f.text[start : end if end >= 0 else len(f.text)].rstrip("\r")
        col = off - start + 1
        length = max(1, min(length, len(line_text) - col + 1))
        return SourceLocation(f.name, i + 1, col, line_text, length)

    def span_location(self, pt: PosText, start: int, end: int) -> SourceLocation:
        """Location of ``pt.text[start:end]`` (caret run when on one line)."""
        start = max(0, min(start, len(pt.text)))
        end = max(start + 1, min(end, len(pt.text)))
        a = pt.pos[start]
        b = pt.pos[end - 1] + 1 if end - 1 < len(pt.text) else a + 1
        length = 1
        if b >> _SHIFT == a >> _SHIFT and b > a:
            f = self.files[a >> _SHIFT]
            if "\n" not in f.text[a & _MASK : b & _MASK]:
                length = b - a
        return self.location(a, length)

    def locate(self, span: Span, default_origin: str | None = None) -> SourceLocation | None:
        origin = span.origin or default_origin
        pt = self.texts.get(origin) if origin else None
        if pt is None:
            return None
        return self.span_location(pt, span.start, span.end)
