"""Type pass: resolve every field, check operators and convert values.

Runs before SQL generation. For each check of a condition it resolves the
field through the catalog (``lookup(name, arg) -> FieldRef``), applies the
transformers' type changes, checks that the operator is valid for the
resulting type (libs ``filter_compare.cpp`` ``flt_is_comparable``), converts
every right-hand value to the field's type and validates ``evt.type`` values.
Problems are collected as :class:`CompileIssue` (all of them, not only the
first); the result feeds :mod:`fcap.analyze.compile.sqlgen`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Protocol

from fcap.analyze.condition import ast
from fcap.analyze.condition.parser import TRANSFORMERS
from fcap.analyze.fields.types import FieldRef, FieldType

from . import regex
from . import values as V
from .diagnostics import (
    EVT_DIR_DEPRECATION,
    LOAD_COMPILE_CONDITION,
    LOAD_DEPRECATED_ITEM,
    LOAD_ERR_COMPILE_CONDITION,
    LOAD_UNSAFE_NA_CHECK,
    CompileIssue,
)
from .evtnames import EVENT_NAMES

EVTTYPE_FIELDS = frozenset({"evt.type", "syscall.type"})
DEPRECATED_FIELDS = frozenset(
    {"evt.dir", "evt.latency", "evt.latency.s", "evt.latency.ns", "evt.latency.human",
     "evt.wait_latency"}
)

NUMERIC_OPS = frozenset({"=", "==", "!=", "<", "<=", ">", ">=", "in", "intersects"})
BOOL_OPS = frozenset({"=", "==", "!=", "in", "intersects"})
IP_OPS = frozenset({"=", "==", "!=", "in", "intersects"})
STRING_OPS = frozenset(
    {"=", "==", "!=", "<", "<=", ">", ">=", "contains", "in", "icontains", "startswith",
     "glob", "pmatch", "endswith", "intersects", "iglob", "regex"}
)
BUFFER_OPS = frozenset(
    {"=", "==", "!=", "contains", "in", "startswith", "endswith", "intersects", "bcontains",
     "bstartswith"}
)
LIST_OPS = frozenset({"in", "intersects", "pmatch"})
STRING_TYPES = frozenset({FieldType.STRING})


class Catalog(Protocol):
    """What the compiler needs from the field catalog."""

    def lookup(self, name: str, arg: str | None = None) -> FieldRef: ...


@dataclass(frozen=True)
class Operand:
    """A typed left-hand side or ``val()`` operand: SQL over alias ``e`` and its type."""

    sql: str
    type: FieldType
    multi: bool = False
    exists_sql: str | None = None
    fields: tuple[str, ...] = ()


@dataclass
class Typed:
    """The type pass's result: per check node (by ``id``), its operands and values."""

    lhs: dict[int, Operand] = field(default_factory=dict)
    rhs: dict[int, Operand | list[object] | object] = field(default_factory=dict)
    issues: list[CompileIssue] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)  # field -> catalog note (partial/unsupported)

    @property
    def ok(self) -> bool:
        return not any(i.severity == "error" for i in self.issues)


def _ops_for(t: FieldType) -> frozenset[str]:
    if t in (FieldType.INT, FieldType.UINT, FieldType.ABSTIME, FieldType.RELTIME,
             FieldType.PORT, FieldType.DOUBLE):
        return NUMERIC_OPS
    if t is FieldType.BOOL:
        return BOOL_OPS
    if t in (FieldType.IPADDR, FieldType.IPNET):
        return IP_OPS
    if t is FieldType.BYTES:
        return BUFFER_OPS
    return STRING_OPS


_FIELDLIKE = re.compile(r"([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)+)(?:\[(.*)\])?\Z")
#: libs ``supported_field_transformers(true)``: the transformers plus ``val``
_VALUE_TRANSFORMERS = (*TRANSFORMERS, "val")


NA_UNSAFE_PREFIXES = ("ka.", "jevt.")
NA_CHECK_OPS = frozenset({"=", "!=", "in", "intersects", "pmatch"})


def _is_list_result(o: object) -> bool:
    from .transformers import is_list_result

    return is_list_result(o)


def _base_field(o: ast.Field | ast.Transform) -> str:
    """The name of the (first) field under a chain of transformers ('' if none)."""
    while isinstance(o, ast.Transform):
        nxt = next((a for a in o.args if isinstance(a, ast.Field | ast.Transform)), None)
        if nxt is None:
            return ""
        o = nxt
    return o.name


class TypeChecker:
    """Resolves and checks one condition AST (macros already expanded)."""

    def __init__(self, catalog: Catalog) -> None:
        self.catalog = catalog
        self.out = Typed()

    # -- entry -------------------------------------------------------------
    def run(self, expr: ast.Expr) -> Typed:
        self._expr(expr)
        return self.out

    def _error(self, msg: str, span: ast.Span, **kw: object) -> None:
        self.out.issues.append(
            CompileIssue("error", kw.pop("code", LOAD_ERR_COMPILE_CONDITION), msg, span, **kw)  # type: ignore[arg-type]
        )

    def _expr(self, e: ast.Expr) -> None:
        if isinstance(e, ast.And | ast.Or):
            for c in e.children:
                self._expr(c)
        elif isinstance(e, ast.Not):
            self._expr(e.child)
        elif isinstance(e, ast.Exists):
            op = self._operand(e.lhs)
            if op is not None:
                self.out.lhs[id(e)] = op
        elif isinstance(e, ast.Compare):
            self._compare(e)
        elif isinstance(e, ast.Identifier):
            self._error(f"undefined macro or list '{e.name}'", e.span)
        else:  # pragma: no cover - defensive
            self._error(f"unexpected node {type(e).__name__}", getattr(e, "span", ast.Span()))

    # -- operands ------------------------------------------------------------
    def resolve_field(self, f: ast.Field) -> FieldRef | None:
        if f.name in DEPRECATED_FIELDS:
            self.out.issues.append(
                CompileIssue("warning", LOAD_DEPRECATED_ITEM, EVT_DIR_DEPRECATION
                             if f.name == "evt.dir" else
                             "field is not available due to the drop of enter events.", f.span)
            )
        try:
            ref = self.catalog.lookup(f.name, f.arg)
        except Exception as err:  # the catalog's UnknownFieldError (or any lookup failure)
            suggestions = list(getattr(err, "suggestions", None) or [])
            hint = f"did you mean {suggestions[0]}?" if suggestions else getattr(err, "hint", None)
            msg = getattr(err, "message", None) or str(err)
            self._error(msg, f.span, hint=hint, unknown_field=str(f))
            return None
        self.out.fields.add(ref.name)
        if ref.note:
            self.out.notes[ref.name] = ref.note
        return ref

    def _operand(self, o: ast.Field | ast.Transform) -> Operand | None:
        if isinstance(o, ast.Field):
            ref = self.resolve_field(o)
            if ref is None:
                return None
            return Operand(ref.sql, ref.type, ref.multi, ref.exists_sql, (ref.name,))
        return self._transform(o)

    def _transform(self, t: ast.Transform) -> Operand | None:
        from .transformers import apply_transformer

        if t.name.lower() == "getopt":
            return self._getopt(t)
        args = self._transform_args(t, flatten=True)
        if args is None:
            return None
        try:
            return apply_transformer(t, args)
        except V.ValueError_ as err:
            self._error(str(err), t.span)
            return None

    def _transform_args(self, t: ast.Transform, *, flatten: bool) -> list | None:
        """A transformer's arguments: operands for fields and nested transformers, values
        for literals; a parenthesised list is spliced in (``flatten``: join/concat) or kept
        as one tuple argument (getopt). None after reporting an error."""
        args: list = []
        for a in t.args:
            if isinstance(a, ast.ListLiteral | ast.TransformerList):
                items = [self._transform_arg(item) for item in a.items]
                if any(x is None for x in items):
                    return None
                if flatten:
                    args.extend(items)
                else:
                    args.append(tuple(items))
            elif isinstance(a, ast.Field | ast.Transform | ast.Literal):
                arg = self._transform_arg(a)
                if arg is None:
                    return None
                args.append(arg)
            else:
                self._error(f"unsupported argument of {t.name}()", t.span)
                return None
        return args

    def _transform_arg(self, a: ast.Field | ast.Transform | ast.Literal) -> Operand | str | None:
        """One transformer argument: a literal's value, else the operand (None: error)."""
        return a.value if isinstance(a, ast.Literal) else self._operand(a)

    def _getopt(self, t: ast.Transform) -> Operand | None:
        """``getopt``: its arguments keep their structure (a parenthesised list is one
        argument, the list of argv strings, unlike join/concat's flattened operands)."""
        from .transformers import GetoptError, apply_getopt

        args = self._transform_args(t, flatten=False)
        if args is None:
            return None
        try:
            return apply_getopt(t, args)
        except GetoptError as err:
            self._error(str(err), t.span, hint=err.hint)
        except V.ValueError_ as err:
            self._error(str(err), t.span)
        return None

    def _list_check(self, c: ast.Compare, lhs: Operand) -> Operand | None:
        """libs ``flt_is_comparable`` for a list-typed operand (a ``getopt(...)`` result):
        only ``in``, ``intersects`` (and ``exists``). ``in`` is true when every element is
        in the set (an empty list included); the operand is rewritten so that the any-of
        comparison the SQL generator emits for multi-valued operands gives that."""
        op = "=" if c.op == "==" else c.op
        if op not in ("in", "intersects") or c.modifier is not None:
            name = f"{c.op} {c.modifier}" if c.modifier else c.op
            self._error(f"'{name}' operator not supported list filters", c.span,
                        hint="compare a list with 'in' or 'intersects', or select one option "
                             "with getopt(...)[x]")
            return None
        if not isinstance(c.rhs, ast.ListLiteral):
            self._error("fcap compares a getopt() list only with a list of values", c.rhs.span,
                        hint='e.g. getopt(...) intersects (t, "value")')
            return None
        if op == "in" and c.rhs.items:
            items = "[" + ", ".join(V.sql_str(i.value) for i in c.rhs.items) + "]"
            sql = (f"(CASE WHEN list_has_all({items}, {lhs.sql}) THEN {items}[1:1] "
                   f"WHEN {lhs.sql} IS NOT NULL THEN []::VARCHAR[] END)")
            return Operand(sql, lhs.type, True, lhs.exists_sql, lhs.fields)
        return lhs

    # -- checks ------------------------------------------------------------
    def _compare(self, c: ast.Compare) -> None:
        lhs = self._operand(c.lhs)
        if lhs is None:
            return
        if _is_list_result(c.lhs):
            lhs = self._list_check(c, lhs)
            if lhs is None:
                return
        self.out.lhs[id(c)] = lhs
        op = "=" if c.op == "==" else c.op
        allowed = _ops_for(lhs.type)
        if op not in allowed:
            kind = {NUMERIC_OPS: "numeric", BOOL_OPS: "boolean", IP_OPS: "ip address and network",
                    BUFFER_OPS: "buffer", STRING_OPS: "string"}[allowed]
            self._error(f"'{c.op}' operator not supported for {kind} filters", c.span)
            return
        is_evttype = isinstance(c.lhs, ast.Field) and c.lhs.name in EVTTYPE_FIELDS and not c.lhs.arg
        rhs = c.rhs
        if isinstance(rhs, ast.FieldValue | ast.Transform):
            # val(field) or a transformer (libs: a field_transformer_expr on the right side)
            if op in ("pmatch", "regex"):
                self._error(f"operator '{c.op}' doesn't support right-hand side fields", rhs.span)
                return
            if is_evttype:
                self._error("right-hand field comparisons on `evt.type` checks are not "
                            "supported by event code search", rhs.span)
                return
            other = self._operand(rhs.field if isinstance(rhs, ast.FieldValue) else rhs)
            if other is not None:
                self.out.rhs[id(c)] = other
            return
        if isinstance(rhs, ast.Field):
            self._error("a field cannot be the right-hand side; use val(field)", rhs.span)
            return
        items: list[ast.Literal]
        if isinstance(rhs, ast.ListLiteral):
            if op not in LIST_OPS and c.modifier is None:
                self._error(f"'{c.op}' does not take a list", rhs.span)
                return
            items = list(rhs.items)
        elif isinstance(rhs, ast.Literal):
            if op in LIST_OPS or c.modifier is not None:
                self._error(f"'{c.op}' requires a list", rhs.span)
                return
            items = [rhs]
        else:  # pragma: no cover - defensive
            self._error("unexpected right-hand side", c.span)
            return
        # Falco's filter_warning_resolver: only k8s-audit/json fields (ka.*, jevt.*) yield
        # "<NA>" as a string, so only their equality checks against "<NA>" are unsafe
        na_unsafe = op in NA_CHECK_OPS and _base_field(c.lhs).startswith(NA_UNSAFE_PREFIXES)
        converted: list[object] = []
        for item in items:
            self._value_warnings(item)
            if item.value == "<NA>" and na_unsafe:
                self.out.issues.append(
                    CompileIssue("warning", LOAD_UNSAFE_NA_CHECK,
                                 "Unsafe <NA> comparison in condition", item.span)
                )
            if is_evttype and item.value not in EVENT_NAMES:
                self._error(f"unknown event type {item.value}", item.span,
                            unknown_field=item.value)
                continue
            try:
                converted.append(self._convert(item.value, lhs.type, op))
            except V.ValueError_ as err:
                self._error(str(err), item.span, hint=getattr(err, "hint", None))
        self.out.rhs[id(c)] = converted

    def _value_warnings(self, item: ast.Literal) -> None:
        """libs ``check_value_and_add_warnings``: a constant that, without its whitespace,
        names a known field or looks like a transformer call (a missing ``val()`` or a
        transformer written as a string) gets a warning; the check is still compiled."""
        nospaces = "".join(item.value.split())
        m = _FIELDLIKE.match(nospaces)
        if m is not None:
            try:
                self.catalog.lookup(m.group(1), m.group(2))
            except Exception:  # not a field: no warning (libs ignores parse failures)
                pass
            else:
                self.out.issues.append(CompileIssue(
                    "warning", LOAD_COMPILE_CONDITION,
                    f"'{item.value}' may be a valid field misused as a const string value",
                    item.span, "use val(field) to compare with another field"))
        for t in _VALUE_TRANSFORMERS:
            if (len(nospaces) >= len(t) + 2 and nospaces.startswith(t + "(")
                    and nospaces.endswith(")")):
                self.out.issues.append(CompileIssue(
                    "warning", LOAD_COMPILE_CONDITION,
                    f"'{item.value}' may be a valid field transformer misused as a const "
                    "string value", item.span, f"write {t}(field) without quotes or spaces"))

    def _convert(self, text: str, t: FieldType, op: str) -> object:
        if op in ("bcontains", "bstartswith"):
            try:
                return bytes.fromhex(text)
            except ValueError:
                raise V.ValueError_(f"{text} is not a valid hex string") from None
        if t is FieldType.IPADDR and op != "pmatch":
            return V.parse_ip(text)
        if op == "regex":
            _check_regex(text)
        return V.convert(text, t)


def _check_regex(pattern: str) -> None:
    """libsinsp's check: RE2 in POSIX syntax (see :mod:`.regex`)."""
    try:
        regex.check(pattern)
    except regex.RegexError as err:
        raise V.ValueError_(str(err)) from None
