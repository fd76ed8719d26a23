"""Compile collected items: nested lists, list substitution, parsing, macro
expansion with Falco's visibility order, and exceptions.

Mirrors ``falco:userspace/engine/rule_loader_compiler.cpp`` (and
``filter_macro_resolver.cpp``, ``filter_warning_resolver.cpp``). Field and
type checking, ``filter_warning_resolver``'s warnings (deprecated ``evt.dir``,
unsafe ``<NA>`` checks) and the ``%container.info`` output rewrite are done
by the rule compiler (``fcap.analyze.compile``) on the resulting rules. Falco stops at the first compile error; here
each failing macro or rule is reported and left out, and compilation goes on.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field

from ..condition.ast import And, Compare, Expr, Identifier, ListLiteral, Not, Or
from ..condition.parser import LIST_OPERATORS, ConditionSyntaxError, parse_condition
from ..condition.printer import to_string
from . import diagnostics as d
from .collector import Collector, RuleInfo
from .diagnostics import LoadError
from .exceptions import build_exception_condition
from .listsub import list_text, resolve_list
from .model import ExceptionDef, ListDef, MacroDef, Rule
from .positions import PosText, SourceMaps

#: ``falco_load_result.cpp`` deprecated fields (checked in outputs here; the rule
#: compiler checks conditions)
DEPRECATED_OUTPUT_FIELDS = ("evt.dir", "evt.latency", "evt.latency.s", "evt.latency.ns",
                            "evt.latency.human", "evt.wait_latency")


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


def _compares(e: Expr):
    if isinstance(e, And | Or):
        for c in e.children:
            yield from _compares(c)
    elif isinstance(e, Not):
        yield from _compares(e.child)
    elif isinstance(e, Compare):
        yield e


@dataclass
class _Lists:
    names: list[str]
    items: dict[str, list[str]]
    text: dict[str, str]
    used: set[str] = field(default_factory=set)


class Compiler:
    def __init__(self, col: Collector, sink: d.Sink, maps: SourceMaps) -> None:
        self.col = col
        self.sink = sink
        self.maps = maps
        self.macro_ast: dict[str, Expr | None] = {}
        self.macro_text: dict[str, str] = {}
        self.macro_used: set[str] = set()
        self.broken_macros: set[str] = set()

    # -- lists ----------------------------------------------------------------------
    def compile_lists(self) -> _Lists:
        lists = self.col.lists
        items: dict[str, list[str]] = {}
        used: set[str] = set()
        for info in lists.values():
            out: list[str] = []
            for item in info.items:
                ref = lists.get(item)
                if ref is not None and ref.index < info.visibility:
                    used.add(ref.name)
                    out.extend(ref.items)
                else:
                    out.append(item)
            items[info.name] = out
        names = list(lists)
        return _Lists(names, items, {n: list_text(items[n]) for n in names}, used)

    def substitute(self, cond: PosText, lists: _Lists) -> PosText:
        for name in lists.names:
            if name in cond.text:
                cond, used = resolve_list(cond, name, lists.text[name])
                if used:
                    lists.used.add(name)
        return cond

    def parse(self, cond: PosText, lists: _Lists, origin: str, kind: str, name: str
              ) -> Expr | None:
        text = self.substitute(cond, lists)
        self.maps.texts[origin] = text
        try:
            ast = parse_condition(text.text, origin=origin)
        except ConditionSyntaxError as e:
            self.sink.error(d.COMPILE_CONDITION, e.message,
                            self.maps.span_location(text, e.offset, e.offset + e.length),
                            item_type=kind, item_name=name, hint=e.hint)
            return None
        self._list_typos(ast, lists, kind, name)
        return ast

    def _list_typos(self, ast: Expr, lists: _Lists, kind: str, name: str) -> None:
        """fcap: a bare list item that is not a list but nearly a list name is
        probably a misspelled list (Falco compares with the text silently)."""
        if not lists.names:
            return
        for c in _compares(ast):
            if not isinstance(c.rhs, ListLiteral) or not (c.op in LIST_OPERATORS or c.modifier):
                continue
            for item in c.rhs.items:
                v = item.value
                if item.quoted or len(v) < 6 or "_" not in v or not _NAME.fullmatch(v):
                    continue
                close = difflib.get_close_matches(v, lists.names, n=1, cutoff=0.85)
                if close and close[0] != v:
                    self.sink.warning(
                        d.LIST_NAME_TYPO, f"'{v}' is not a list; it is compared as a string",
                        self.maps.locate(item.span), item_type=kind, item_name=name,
                        hint=f"did you mean list '{close[0]}'?")

    # -- macros ---------------------------------------------------------------------
    def _expand(self, expr: Expr, visible: dict[str, Expr | None], path: list[str],
                errors: list[tuple[str, Identifier, str | None]]) -> Expr:
        if isinstance(expr, And | Or):
            kids = tuple(self._expand(c, visible, path, errors) for c in expr.children)
            return type(expr)(kids, expr.span)
        if isinstance(expr, Not):
            return Not(self._expand(expr.child, visible, path, errors), expr.span)
        if isinstance(expr, Identifier):
            name = expr.name
            if name in visible and visible[name] is not None:
                if name in path:
                    errors.append((f"reference loop in macro '{name}'", expr, None))
                    return expr
                path.append(name)
                out = self._expand(visible[name], visible, path, errors)
                path.pop()
                self.macro_used.add(name)
                return out
            if name in self.broken_macros:
                # already reported at the macro; the rule is left out silently
                self.macro_used.add(name)
                errors.append(("", expr, None))
            else:
                hint = d.did_you_mean(name, self.col.macros)
                if name in self.col.macros:
                    hint = f"macro '{name}' is defined later than this macro's definition"
                errors.append((f"Undefined macro '{name}' used in filter.", expr, hint))
            return expr
        return expr

    def _report(self, errors, kind: str, name: str, origin: str) -> None:
        for message, ident, hint in errors[:1]:  # Falco reports the first one
            if not message:
                continue
            loc = self.maps.locate(ident.span, default_origin=origin)
            self.sink.error(d.VALIDATE, message, loc, item_type=kind, item_name=name, hint=hint)

    def compile_macros(self, lists: _Lists) -> None:
        for m in self.col.macros.values():
            ast = self.parse(m.cond, lists, f"macro:{m.name}", "macro", m.name)
            self.macro_ast[m.name] = ast
            self.macro_text[m.name] = self.maps.texts[f"macro:{m.name}"].text
            if ast is None:
                self.broken_macros.add(m.name)
        for m in self.col.macros.values():
            ast = self.macro_ast[m.name]
            if ast is None:
                continue
            visible = {n: self.macro_ast[n] for n, o in self.col.macros.items()
                       if o.index < m.visibility}
            errors: list = []
            out = self._expand(ast, visible, [], errors)
            if errors:
                self._report(errors, "macro", m.name, f"macro:{m.name}")
                self.broken_macros.add(m.name)
                self.macro_ast[m.name] = None
            else:
                self.macro_ast[m.name] = out

    # -- rules ----------------------------------------------------------------------
    def compile_rule(self, r: RuleInfo, lists: _Lists) -> Rule | None:
        origin = f"rule:{r.name}"
        cond = r.cond if r.cond is not None else PosText("", [0])
        fields_used: set[str] = set()
        try:
            if r.exceptions:
                cond, fields_used = build_exception_condition(cond, r.exceptions)
        except LoadError as e:
            self.sink.add(e)
            return None
        ast = self.parse(cond, lists, origin, "rule", r.name)
        if ast is None:
            return None
        errors: list = []
        ast = self._expand(ast, self.macro_ast, [], errors)
        if errors:
            self._report(errors, "rule", r.name, origin)
            return None
        for f in DEPRECATED_OUTPUT_FIELDS:
            if f in r.output:  # Falco: check_deprecated_fields_in_output (a substring test)
                self.sink.warning(d.DEPRECATED_ITEM, f"usage of deprecated field '{f}' has been "
                                  f"detected in the rule output", r.output_loc,
                                  item_type="rule", item_name=r.name)
        return Rule(
            name=r.name, desc=r.desc, condition=ast, condition_text=self.maps.texts[origin].text,
            output=r.output, priority=r.priority, enabled=r.enabled, tags=frozenset(r.tags),
            source=r.source, warn_evttypes=r.warn_evttypes,
            skip_if_unknown_filter=r.skip_if_unknown_filter, capture=r.capture,
            capture_duration=r.capture_duration, exception_fields=frozenset(fields_used),
            raw_condition=r.cond.text if r.cond is not None else "",
            exceptions=tuple(_exception_def(e) for e in r.exceptions),
            location=r.loc, condition_location=r.cond_loc, output_location=r.output_loc,
            maps=self.maps)

    def compile(self) -> tuple[list[Rule], list[MacroDef], list[ListDef]]:
        lists = self.compile_lists()
        self.compile_macros(lists)
        rules: list[Rule] = []
        for r in self.col.rules.values():
            if r.unknown_source:
                continue
            rule = self.compile_rule(r, lists)
            if rule is not None:
                rules.append(rule)
        macros = []
        for m in self.col.macros.values():
            ast = self.macro_ast.get(m.name)
            used = m.name in self.macro_used
            if not used:
                self.sink.warning(d.UNUSED_MACRO, "Macro not referred to by any other rule/macro",
                                  m.loc, item_type="macro", item_name=m.name)
            if ast is not None:
                macros.append(MacroDef(m.name, ast, self.macro_text[m.name], used, m.loc))
        out_lists = []
        for name in lists.names:
            info = self.col.lists[name]
            used = name in lists.used
            if not used:
                self.sink.warning(d.UNUSED_LIST, "List not referred to by any other rule/macro",
                                  info.loc, item_type="list", item_name=name)
            out_lists.append(ListDef(name, tuple(lists.items[name]), used, info.loc))
        return rules, macros, out_lists


def _entry_value(e):
    return tuple(_entry_value(i) for i in e.items) if e.is_list else e.item


def _exception_def(e) -> ExceptionDef:
    return ExceptionDef(e.name, _entry_value(e.fields), _entry_value(e.comps),
                        tuple(_entry_value(v) for v in e.values))


def compiled_condition_string(rule: Rule) -> str:
    """The condition as Falco's tests print it (libs ``as_string``)."""
    return to_string(rule.condition)
