"""Rule exceptions: validation and the condition text Falco builds from them.

Mirrors ``validate_exception_info`` (``rule_loader_collector.cpp``) and
``build_rule_exception_infos`` (``rule_loader_compiler.cpp``)::

    cond' = "(" cond ")" + for each exception with values: " and not " X
    scalar fields: X = "(" field " " comp " (" v1 ", " v2 ... "))"
    list fields:   X = "(" join(" or ", "(" join(" and ", " " f_k " " c_k " " v_k) ")") ")"

Values holding a blank are double-quoted unless they start with a quote; a
scalar value of a list operator (in/intersects/pmatch/<op> <modifier>) is
wrapped in parentheses unless it starts with ``(`` (so a list name inside
gets substituted). The text is built as a PosText so that a condition error
inside an exception points at the value in the YAML file.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..condition.parser import LIST_OPERATORS, MODIFIERS, OPERATORS
from . import diagnostics as d
from .diagnostics import LoadError
from .positions import PosText

if TYPE_CHECKING:
    from .collector import Entry, ExceptionInfo

#: string operators that accept a modifier (``rule_loader_cmpop.h``)
MODIFIABLE = frozenset({"=", "==", "!=", "contains", "icontains", "bcontains", "startswith",
                        "bstartswith", "endswith", "glob", "iglob", "regex"})


def normalize_comp(s: str) -> str:
    return s.strip(" \t\r\n")


def is_str_operator_with_modifier(op: str) -> bool:
    """``startswith oneof``, ``= anyof`` ...: a modifiable string op plus a modifier."""
    parts = op.split()
    return len(parts) == 2 and parts[0] in MODIFIABLE and parts[1] in MODIFIERS


def is_operator_for_list(op: str) -> bool:
    return op in LIST_OPERATORS or is_str_operator_with_modifier(op)


def _err(message: str, ex: ExceptionInfo) -> LoadError:
    return LoadError(d.VALIDATE, message, ex.loc, "exception", ex.name)


def validate_exception(ex: ExceptionInfo, field_ok: Callable[[str], bool] | None) -> None:
    """Fill default comps and check fields/comps; raises LoadError like Falco.

    ``field_ok`` tells whether a field expression is a valid left-hand side
    (None: skip the check, as Falco does for rules of an unknown source).
    """
    from .collector import Entry

    if ex.fields.is_list:
        if not ex.comps.is_valid():
            ex.comps = Entry(is_list=True, items=[Entry(item="=") for _ in ex.fields.items])
        if len(ex.fields.items) != len(ex.comps.items):
            raise _err("Fields and comps lists must have equal length", ex)
        for c in ex.comps.items:
            c.item = normalize_comp(c.item)
            if c.item not in OPERATORS and not is_str_operator_with_modifier(c.item):
                raise _err(f"'{c.item}' is not a supported comparison operator", ex)
        if field_ok is not None:
            for f in ex.fields.items:
                if not field_ok(f.item):
                    raise _err(f"'{f.item}' is not a supported filter field", ex)
    else:
        if not ex.comps.is_valid():
            ex.comps = Entry(is_list=False, item="in")
        if ex.comps.is_list:
            raise _err("Fields and comps must both be strings", ex)
        ex.comps.item = normalize_comp(ex.comps.item)
        if ex.comps.item not in LIST_OPERATORS and not is_str_operator_with_modifier(
                ex.comps.item):
            raise _err("When fields is a single value, comps must be one of (in, pmatch, "
                       "intersects) or a modifier operator (e.g. startswith oneof)", ex)
        if field_ok is not None and not field_ok(ex.fields.item):
            raise _err(f"'{ex.fields.item}' is not a supported filter field", ex)


def _text(e: Entry, at: int) -> PosText:
    return e.pt if e.pt is not None and e.pt.text == e.item else PosText.at(e.item, at)


def _quote(t: PosText) -> PosText:
    if " " in t.text and t.text[:1] not in ('"', "'"):
        return '"' + t + '"'
    return t


def _paren(t: PosText) -> PosText:
    return t if t.text[:1] == "(" else "(" + t + ")"


def build_exception_condition(cond: PosText, exceptions: list[ExceptionInfo]
                              ) -> tuple[PosText, set[str]]:
    """The rule condition with its exceptions, and the exception fields used."""
    fields_used: set[str] = set()
    out = "(" + cond + ")"
    for ex in exceptions:
        at = ex.pos
        icond: PosText | None = None
        if not ex.fields.is_list:
            for val in ex.values:
                if val.is_list:
                    raise _err("Expected values array to contain a list of strings", ex)
                head = (PosText.at(f"({ex.fields.item} {ex.comps.item} (", at)
                        if icond is None else icond + ", ")
                fields_used.add(ex.fields.item)
                icond = head + _quote(_text(val, at))
            if icond is not None:
                icond = icond + "))"
        else:
            parts: list[PosText] = []
            for values in ex.values:
                if len(ex.fields.items) != len(values.items):
                    raise _err("Fields and values lists must have equal length", ex)
                conj = PosText.at("(", at)
                for k, f in enumerate(ex.fields.items):
                    if k:
                        conj = conj + " and "
                    v = values.items[k]
                    comp = ex.comps.items[k].item
                    if v.is_list:
                        istr = PosText.at("(", at)
                        for j, item in enumerate(v.items):
                            if j:
                                istr = istr + ", "
                            istr = istr + _quote(_text(item, at))
                        istr = istr + ")"
                    else:
                        istr = _text(v, at)
                        istr = _paren(istr) if is_operator_for_list(comp) else _quote(istr)
                    conj = conj + " " + _text(f, at) + " " + comp + " " + istr
                    fields_used.add(f.item)
                parts.append(conj + ")")
            if parts:
                icond = PosText.at("(", at)
                for i, p in enumerate(parts):
                    icond = icond + (" or " if i else "") + p
                icond = icond + ")"
        if icond is not None and icond.text:
            out = out + " and not " + icond
    return out, fields_used
