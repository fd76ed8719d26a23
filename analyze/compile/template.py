"""Output templates, parsed as libsinsp's ``sinsp_evt_formatter::set_format`` does.

Literal text is copied; each ``%`` starts a token: an optional decimal width
(the value is padded with blanks or truncated to it), then the *longest*
prefix of the rest that parses as a field (``proc.name``, ``proc.aname[2]``,
``evt.arg.flags``, ``container.mount.dest[/etc]``) or a transformer
(``tolower(proc.name)``) and resolves in the field catalog. So in
``%proc.name)`` or ``%fd.name.`` the token stops before ``)``/``.``. A ``%`` at
the end or before text that is no known field is an error (``unknown
filter``), which ``skip-if-unknown-filter`` turns into a warning.

Falco formats with a leading ``*`` (missing values print ``<NA>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from fcap.analyze.condition import ast
from fcap.analyze.fields.types import FieldType

from .diagnostics import LOAD_ERR_COMPILE_OUTPUT, CompileIssue
from .typecheck import Catalog, Operand

_FIELD_RE = re.compile(
    r"[a-zA-Z]+[a-zA-Z0-9_]*(?:\.[a-zA-Z]+[a-zA-Z0-9_]*)+"
    r"(?:\[(?:\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'|[^\]\[\"'\s]+)\])?"
)
_XFORM_RE = re.compile(r"(tolower|toupper|b64|basename|len)\(\s*")
TRANSFORMERS_IN_OUTPUT = ("tolower", "toupper", "b64", "basename", "len")


@dataclass(frozen=True)
class Token:
    """One piece of a template: literal ``text``, or a field with its operand.

    ``name`` is the token as written (the JSON ``output_fields`` key);
    ``transformed`` tokens are not reported in ``output_fields`` (libs skips
    them), but the fields they use are (``json_fields``).
    """

    text: str = ""
    name: str | None = None
    width: int = 0
    operand: Operand | None = None
    transformed: bool = False


@dataclass(frozen=True)
class Template:
    """A compiled template: tokens plus the fields reported in JSON ``output_fields``."""

    source: str
    tokens: tuple[Token, ...]
    json_fields: tuple[tuple[str, Operand], ...]


def _split_field(text: str) -> ast.Field:
    m = re.fullmatch(r"([^\[]+)(?:\[(.*)\])?", text, re.S)
    assert m is not None
    arg = m.group(2)
    if arg is not None and len(arg) >= 2 and arg[0] == arg[-1] and arg[0] in "'\"":
        arg = arg[1:-1]
    return ast.Field(m.group(1), arg)


class _Resolver:
    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.cache: dict[str, Operand | None] = {}

    def field(self, text: str) -> Operand | None:
        if text not in self.cache:
            f = _split_field(text)
            try:
                ref = self.catalog.lookup(f.name, f.arg)
                self.cache[text] = Operand(ref.sql, ref.type, ref.multi, ref.exists_sql, (ref.name,))
            except Exception:
                self.cache[text] = None
        return self.cache[text]

    def longest(self, rest: str) -> tuple[int, str, Operand, list[tuple[str, Operand]]] | None:
        """(length, name, operand, inner fields) of the longest known token at ``rest``."""
        m = _XFORM_RE.match(rest)
        if m:
            inner = _FIELD_RE.match(rest, m.end())
            if inner:
                close = re.compile(r"\s*\)").match(rest, inner.end())
                op = self.field(inner.group(0))
                if close and op is not None:
                    from .transformers import apply_transformer

                    t = ast.Transform(m.group(1), (_split_field(inner.group(0)),))
                    try:
                        xop = apply_transformer(t, [op])
                    except Exception:
                        return None
                    name = f"{m.group(1)}({inner.group(0)})"
                    return close.end(), name, xop, [(inner.group(0), op)]
            return None
        size = len(rest)
        while size > 0:
            fm = _FIELD_RE.match(rest[:size])
            if not fm:
                return None
            op = self.field(fm.group(0))
            if op is not None:
                return fm.end(), fm.group(0), op, []
            size = fm.end() - 1
        return None


def compile_template(text: str, catalog: Catalog) -> tuple[Template | None, list[CompileIssue]]:
    """Parse ``text``; returns the template, or None and the issues found."""
    fmt = text[1:] if text.startswith("*") else text
    res = _Resolver(catalog)
    tokens: list[Token] = []
    json_fields: dict[str, Operand] = {}
    issues: list[CompileIssue] = []
    if not fmt:
        issues.append(CompileIssue("error", LOAD_ERR_COMPILE_OUTPUT, "empty formatting token",
                                   in_output=True))
        return None, issues
    i, lit_start, n = 0, 0, len(fmt)
    while i < n:
        if fmt[i] != "%":
            i += 1
            continue
        if lit_start != i:
            tokens.append(Token(text=fmt[lit_start:i]))
        if i == n - 1:
            issues.append(CompileIssue("error", LOAD_ERR_COMPILE_OUTPUT,
                                       "invalid formatting syntax: formatting cannot end with a %",
                                       ast.Span(i, i + 1), in_output=True))
            return None, issues
        j = i + 1
        wm = re.match(r"[0-9]+", fmt[j:])
        width = 0
        if wm:
            width = int(wm.group(0))
            j += wm.end()
            if j >= n:
                issues.append(CompileIssue("error", LOAD_ERR_COMPILE_OUTPUT,
                                           "invalid formatting syntax: formatting cannot end "
                                           "with a number", ast.Span(i, n), in_output=True))
                return None, issues
        found = res.longest(fmt[j:])
        if found is None:
            word = re.match(r"[^\s%]*", fmt[j:])
            bad = word.group(0) if word else ""
            issues.append(CompileIssue(
                "error", LOAD_ERR_COMPILE_OUTPUT,
                f"unknown filter: invalid formatting token {bad or fmt[j:j + 1]!r}",
                ast.Span(i, j + max(len(bad), 1)), unknown_field=bad or "%", in_output=True))
            return None, issues
        length, name, op, inner = found
        transformed = bool(inner)
        tokens.append(Token(name=name, width=width, operand=op, transformed=transformed))
        for iname, iop in inner:
            json_fields.setdefault(iname, iop)
        if not transformed:
            json_fields.setdefault(name, op)
        i = j + length
        lit_start = i
    if lit_start < n:
        tokens.append(Token(text=fmt[lit_start:]))
    return Template(text, tuple(tokens), tuple(json_fields.items())), issues


def value_sql(op: Operand) -> str:
    """SQL giving the JSON text of a field value for one alert (NULL when missing)."""
    if op.type in (FieldType.IPADDR, FieldType.IPNET):
        return f"to_json(CAST({op.sql} AS VARCHAR))"
    if op.type is FieldType.BYTES:
        return f"to_json(CAST({op.sql} AS VARCHAR))"
    return f"to_json({op.sql})"
