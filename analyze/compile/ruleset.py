"""Compile a loaded :class:`RuleSet` (or one condition) to DuckDB SQL.

``compile_ruleset`` runs, per rule: the type pass, SQL generation, the
event-type set (folded into the predicate as Falco's pre-filter) and the
output template (with the container plugin's suggested fields appended, as
Falco >= 0.41 does by default). Rules that fail are left out and reported as
diagnostics with ``file:line:col``; with ``skip-if-unknown-filter: true`` an
unknown field only drops the rule with a warning.

``compile_condition(text)`` is the same pipeline for a one-off condition
(hunting, ``Capture.filter``): it returns the SQL predicate over alias ``e``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from fcap.analyze.condition import ast

from fcap.errors import SourceLocation

from . import evttypes, relax
from .diagnostics import (
    LOAD_DEPRECATED_ITEM,
    LOAD_NO_EVTTYPE,
    LOAD_UNKNOWN_FILTER,
    CompileIssue,
    ConditionCompileError,
    Diagnostic,
)
from .sqlgen import SqlGenerator
from .template import Template, compile_template
from .typecheck import Catalog, TypeChecker
from .values import sql_str

#: Fields the container plugin flags "suggested"; Falco appends ``name_with_underscores=%field``
#: for each to every syscall rule's output (``append_output: - suggested_output: true``).
SUGGESTED_OUTPUT_FIELDS = (
    "container.id",
    "container.name",
    "container.image.repository",
    "container.image.tag",
    "k8s.pod.name",
    "k8s.ns.name",
)
SYSCALL_SOURCE = "syscall"


def default_catalog() -> Catalog:
    """The project's field catalog module (``fcap.analyze.fields.catalog``)."""
    from fcap.analyze.fields import catalog

    return catalog  # type: ignore[return-value]


@dataclass(frozen=True)
class CompiledRule:
    """One rule ready for evaluation."""

    index: int  # position in Falco evaluation order
    name: str
    priority: Any  # fcap.analyze.rules Priority (IntEnum-like: .value 0..7)
    tags: frozenset[str]
    source: str
    enabled: bool
    desc: str
    condition_text: str
    predicate: str  # the condition alone, SQL over alias ``e`` (NULL counts as false)
    event_types: frozenset[str] | None  # None: every event type (no pre-filter)
    output: str  # the output template as evaluated (suggested fields appended)
    template: Template
    fields: frozenset[str] = frozenset()
    #: fields of the condition fcap does not provide (catalog status "not supported"):
    #: checks on them are always false, as for a field Falco cannot extract
    unsupported_fields: tuple[str, ...] = ()
    #: the condition's relaxation (:mod:`.relax`) for the replay's pre-filter scan;
    #: None: none (every event of the rule's types is then kept)
    relaxed: str | None = None

    @property
    def sql(self) -> str:
        """The predicate with the event-type pre-filter folded in."""
        return with_prefilter(self.predicate, self.event_types, self.evttype_sql)

    evttype_sql: str = "e.evt_type"


@dataclass(frozen=True)
class CompiledRuleset:
    """Every rule that compiled, in evaluation order, plus all diagnostics."""

    rules: tuple[CompiledRule, ...]
    diagnostics: tuple[Diagnostic, ...] = ()
    skipped: tuple[str, ...] = ()  # rules dropped by skip-if-unknown-filter or source

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "error")

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.severity == "warning")

    def rule(self, name: str) -> CompiledRule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)


def with_prefilter(pred: str, types: frozenset[str] | None, evttype_sql: str) -> str:
    if types is None:
        return pred
    if not types:
        return "false"
    rest = evttypes.UNIVERSE - types
    if len(rest) < len(types):  # co-finite set: exclude the few names left out
        names = ", ".join(sql_str(t) for t in sorted(rest))
        return f"({evttype_sql} NOT IN ({names}) AND {pred})"
    names = ", ".join(sql_str(t) for t in sorted(types))
    return f"({evttype_sql} IN ({names}) AND {pred})"


@dataclass
class _Result:
    predicate: str | None = None
    issues: list[CompileIssue] = field(default_factory=list)
    fields: set[str] = field(default_factory=set)
    notes: dict[str, str] = field(default_factory=dict)
    relaxed: str | None = None


def compile_expr(expr: ast.Expr, catalog: Catalog) -> _Result:
    """Type pass then SQL for one expanded condition AST."""
    typed = TypeChecker(catalog).run(expr)
    out = _Result(issues=_dedup(typed.issues), fields=set(typed.fields), notes=dict(typed.notes))
    if not typed.ok:
        return out
    gen = SqlGenerator(typed)
    sql = gen.emit(expr)
    out.issues += gen.issues
    if not any(i.severity == "error" for i in gen.issues):
        out.predicate = sql
        out.relaxed = relax.relaxed(typed, expr)
    return out


def _dedup(issues: list[CompileIssue]) -> list[CompileIssue]:
    """Warnings once per condition (Falco collects them in a set); errors all kept."""
    seen: set[tuple[str, str]] = set()
    out = []
    for i in issues:
        if i.severity == "warning":
            if (i.code, i.message) in seen:
                continue
            seen.add((i.code, i.message))
        out.append(i)
    return out


def unsupported(notes: dict[str, str]) -> tuple[str, ...]:
    """Fields whose catalog note says fcap does not provide them."""
    return tuple(sorted(f for f, n in notes.items() if n.lower().startswith(("not supported",
                                                                              "unsupported"))))


def _evttype_sql(catalog: Catalog) -> str:
    try:
        return catalog.lookup("evt.type", None).sql
    except Exception:  # pragma: no cover - catalog without evt.type
        return "e.evt_type"


def compile_condition(
    text: str, *, catalog: Catalog | None = None, prefilter: bool = True
) -> str:
    """Compile one condition (no macros) to a SQL predicate over alias ``e``.

    Raises :class:`ConditionCompileError` (a ``SourceError`` with a caret) when
    it does not parse or compile.
    """
    from fcap.analyze.condition.parser import parse_condition

    cat = catalog or default_catalog()
    expr = parse_condition(text)
    res = compile_expr(expr, cat)
    if res.predicate is None:
        raise ConditionCompileError(res.issues, text)
    types = evttypes.event_types(expr)
    pred = res.predicate
    if prefilter and not evttypes.is_all(types):
        pred = with_prefilter(pred, types, _evttype_sql(cat))
    return f"coalesce({pred}, false)"


def _locate(rule: Any, issue: CompileIssue) -> SourceLocation | None:
    """Map an issue's span to ``file:line:col`` through the rule's own mapping
    (``Rule.locate``); output issues point at the rule's ``output`` key."""
    if issue.in_output:
        return getattr(rule, "output_location", None) or getattr(rule, "location", None)
    fn: Callable[..., Any] | None = getattr(rule, "locate", None)
    if callable(fn):
        try:
            loc = fn(issue.span)
        except Exception:
            loc = None
        if loc is not None:
            return loc
    return getattr(rule, "condition_location", None) or getattr(rule, "location", None)


def _rule_output(rule: Any, suggested: Iterable[str]) -> str:
    out = rule.output or ""
    out = out.replace("%container.info", "")  # Falco >= 0.41: replaced by "" with a warning
    for f in suggested:
        out = out + " " + f.replace(".", "_") + "=%" + f
    return out


def compile_ruleset(
    ruleset: Any,
    *,
    catalog: Catalog | None = None,
    suggested_output: bool = True,
) -> CompiledRuleset:
    """Compile every rule of ``ruleset`` (a ``fcap.analyze.rules`` RuleSet)."""
    cat = catalog or default_catalog()
    evt_sql = _evttype_sql(cat)
    suggested = SUGGESTED_OUTPUT_FIELDS if suggested_output else ()
    compiled: list[CompiledRule] = []
    diags: list[Diagnostic] = []
    skipped: list[str] = []
    for index, rule in enumerate(ruleset.rules):
        source = getattr(rule, "source", SYSCALL_SOURCE) or SYSCALL_SOURCE
        if source != SYSCALL_SOURCE:
            skipped.append(rule.name)
            continue
        skip_unknown = bool(getattr(rule, "skip_if_unknown_filter", False))

        def report(issue: CompileIssue, rule: Any = rule) -> None:
            diags.append(Diagnostic(issue.severity, issue.code, issue.message,
                                    _locate(rule, issue), issue.hint, rule.name))

        if "%container.info" in (rule.output or ""):
            diags.append(Diagnostic(
                "warning", LOAD_DEPRECATED_ITEM,
                "%container.info is deprecated and no more useful, and will be dropped by Falco "
                "1.0.0. The container plugin will automatically add required fields to the "
                "output message.", getattr(rule, "location", None), None, rule.name))
        output = _rule_output(rule, suggested)
        template, t_issues = compile_template(output, cat)
        res = compile_expr(rule.condition, cat)
        issues = res.issues + t_issues
        errors = [i for i in issues if i.severity == "error"]
        if errors and skip_unknown and all(i.unknown_field for i in errors):
            for i in issues:
                if i.severity == "error":
                    i = CompileIssue("warning", LOAD_UNKNOWN_FILTER, i.message, i.span, i.hint,
                                     i.unknown_field, i.in_output)
                report(i)
            skipped.append(rule.name)
            continue
        for i in issues:
            report(i)
        if errors or res.predicate is None or template is None:
            continue
        types = evttypes.event_types(rule.condition)
        if len(types) > 100 and getattr(rule, "warn_evttypes", True):
            diags.append(Diagnostic("warning", LOAD_NO_EVTTYPE,
                                    "Rule matches too many evt.type values. This has a "
                                    "significant performance penalty.",
                                    getattr(rule, "location", None), None, rule.name))
        compiled.append(
            CompiledRule(
                index=index,
                name=rule.name,
                priority=rule.priority,
                tags=frozenset(getattr(rule, "tags", ()) or ()),
                source=source,
                enabled=bool(getattr(rule, "enabled", True)),
                desc=getattr(rule, "desc", "") or "",
                condition_text=getattr(rule, "condition_text", "") or "",
                predicate=res.predicate,
                event_types=None if evttypes.is_all(types) else types,
                output=output,
                template=template,
                fields=frozenset(res.fields),
                unsupported_fields=unsupported(res.notes),
                evttype_sql=evt_sql,
                relaxed=res.relaxed,
            )
        )
    return CompiledRuleset(tuple(compiled), tuple(diags), tuple(skipped))
