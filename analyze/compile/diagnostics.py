"""Problems found while compiling a condition or an output template.

A :class:`CompileIssue` points at a :class:`~fcap.analyze.condition.ast.Span`
of the text it was found in; :mod:`fcap.analyze.compile.ruleset` maps spans to
``file:line:col`` through the rule's source mapping. Codes are Falco's load
result codes (``falco:userspace/engine/falco_load_result.cpp``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from fcap.analyze.condition.ast import Span

from fcap.errors import SourceError, SourceLocation

LOAD_ERR_COMPILE_CONDITION = "LOAD_ERR_COMPILE_CONDITION"
LOAD_ERR_COMPILE_OUTPUT = "LOAD_ERR_COMPILE_OUTPUT"
LOAD_UNKNOWN_FILTER = "LOAD_UNKNOWN_FILTER"
LOAD_NO_EVTTYPE = "LOAD_NO_EVTTYPE"
LOAD_DEPRECATED_ITEM = "LOAD_DEPRECATED_ITEM"
LOAD_UNSAFE_NA_CHECK = "LOAD_UNSAFE_NA_CHECK"
LOAD_COMPILE_CONDITION = "LOAD_COMPILE_CONDITION"  # libs filter-compiler warnings

EVT_DIR_DEPRECATION = (
    "due to the drop of enter events, 'evt.dir = <' always evaluates to true, and "
    "'evt.dir = >' always evaluates to false. The rule expression can be simplified by "
    "removing the condition on 'evt.dir'"
)


@dataclass(frozen=True)
class CompileIssue:
    """One error or warning, positioned in the condition or output text.

    ``unknown_field`` names the field (or event type) when the issue is an
    unknown field/event type: the errors ``skip-if-unknown-filter`` downgrades.
    ``in_output`` is True for issues in the output template.
    """

    severity: str  # "error" | "warning"
    code: str
    message: str
    span: Span = field(default_factory=Span)
    hint: str | None = None
    unknown_field: str | None = None
    in_output: bool = False


@dataclass(frozen=True)
class Diagnostic:
    """A compile diagnostic with its source location, for ``fcap rules validate``."""

    severity: str
    code: str
    message: str
    location: SourceLocation | None = None
    hint: str | None = None
    rule: str | None = None
    also_rules: tuple[str, ...] = ()  # other rules with the identical diagnostic (merged)

    def __str__(self) -> str:
        head = f"{self.location}: " if self.location else ""
        names = ((self.rule,) if self.rule else ()) + self.also_rules
        who = ""
        if len(names) == 1:
            who = f" (rule '{names[0]}')"
        elif names:
            who = " (rules " + ", ".join(f"'{n}'" for n in names) + ")"
        text = f"{head}{self.severity}: {self.code}: {self.message}{who}"
        if self.location and self.location.line_text:
            text += "\n" + self.location.render()
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


def merge_repeated(diags: Iterable[Diagnostic]) -> list[Diagnostic]:
    """Identical diagnostics at one location (a macro used by several rules reports
    once per rule) merged into the first, naming every rule; order kept."""
    out: list[Diagnostic] = []
    index: dict[tuple[object, ...], int] = {}
    for d in diags:
        key = (d.severity, d.code, d.message, str(d.location) if d.location else None, d.hint)
        if d.location is None or key not in index:
            if d.location is not None:
                index[key] = len(out)
            out.append(d)
            continue
        first = out[index[key]]
        if d.rule and d.rule != first.rule and d.rule not in first.also_rules:
            out[index[key]] = replace(first, also_rules=(*first.also_rules, d.rule))
    return out


class ConditionCompileError(SourceError):
    """A condition given as text (``compile_condition``) does not compile."""

    def __init__(self, issues: list[CompileIssue], text: str) -> None:
        first = next(i for i in issues if i.severity == "error")
        loc = _text_location(text, first.span)
        super().__init__(first.message, loc, hint=first.hint)
        self.issues = issues


def _text_location(text: str, span: Span) -> SourceLocation:
    """Location of ``span`` in a one-off condition text (file name ``<condition>``)."""
    start = min(max(span.start, 0), len(text))
    line_no = text.count("\n", 0, start) + 1
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", start)
    line_text = text[line_start : line_end if line_end >= 0 else len(text)]
    length = max(1, min(span.end, line_start + len(line_text)) - start)
    return SourceLocation("<condition>", line_no, start - line_start + 1, line_text, length)
