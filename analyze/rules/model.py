"""The loaded ruleset: priorities, diagnostics, rules, and the RuleSet.

These are the results of :func:`fcap.analyze.rules.load_rules`. Everything is
a frozen dataclass; a :class:`RuleSet` also knows how to map a condition
:class:`~fcap.analyze.condition.ast.Span` back to a file position
(:meth:`RuleSet.locate`), through the :class:`~.positions.SourceMaps` the
loader filled while reading YAML, appending, substituting lists and building
exception text.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from fcap.errors import SourceLocation

from ..condition.ast import Expr, Span
from .positions import SourceMaps


class Priority(enum.IntEnum):
    """Falco rule priorities, most to least severe (``falco_common.h``)."""

    EMERGENCY = 0
    ALERT = 1
    CRITICAL = 2
    ERROR = 3
    WARNING = 4
    NOTICE = 5
    INFORMATIONAL = 6
    DEBUG = 7

    @classmethod
    def parse(cls, text: str) -> Priority:
        """Case-insensitive name; ``info`` means Informational (``parse_priority``).

        Raises ValueError for anything else.
        """
        t = str(text).strip().lower() if text is not None else ""
        if t == "info":
            return cls.INFORMATIONAL
        for p in cls:
            if p.name.lower() == t:
                return p
        raise ValueError(f"Unknown priority value: {text}")

    @property
    def label(self) -> str:
        """The name Falco prints (``Informational``, ``Warning`` ...)."""
        return self.name.capitalize()

    def __str__(self) -> str:
        return self.label


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True)
class Diagnostic:
    """One loader error or warning, with Falco's code (``LOAD_ERR_*``/``LOAD_*``).

    ``item_type``/``item_name`` name the rules-file item as Falco's
    ``validate_errors`` do (``rule``, ``macro``, ``list``, ``exception``,
    ``required_engine_version`` ...).
    """

    severity: Severity
    code: str
    message: str
    location: SourceLocation | None = None
    hint: str | None = None
    item_type: str = ""
    item_name: str = ""

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        head = f"{self.location}: " if self.location else ""
        what = f" ({self.item_type} '{self.item_name}')" if self.item_type and self.item_name else ""
        text = f"{head}{self.severity.value}: {self.message}{what} [{self.code}]"
        if self.location and self.location.line_text:
            text += "\n" + self.location.render()
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text


@dataclass(frozen=True)
class ExceptionDef:
    """A rule exception as written (after append merging)."""

    name: str
    fields: str | tuple[str, ...]
    comps: str | tuple[str, ...]
    values: tuple


@dataclass(frozen=True)
class Rule:
    """A compiled-for-evaluation rule: macros expanded, lists substituted,
    exceptions applied (``condition_text`` is the text Falco parses)."""

    name: str
    desc: str
    condition: Expr
    condition_text: str
    output: str
    priority: Priority
    enabled: bool = True
    tags: frozenset[str] = frozenset()
    source: str = "syscall"
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    exceptions: tuple[ExceptionDef, ...] = ()
    exception_fields: frozenset[str] = frozenset()
    #: the condition as collected (after appends/overrides), before exceptions
    #: and list substitution (Falco's ``describe_rule`` ``info.condition``)
    raw_condition: str = ""
    location: SourceLocation | None = None
    condition_location: SourceLocation | None = None
    output_location: SourceLocation | None = None
    maps: SourceMaps | None = field(default=None, compare=False, repr=False)

    def locate(self, span: Span) -> SourceLocation | None:
        """The file position of a span of :attr:`condition` (or of a macro in it)."""
        if self.maps is None:
            return None
        return self.maps.locate(span, default_origin=f"rule:{self.name}")


@dataclass(frozen=True)
class MacroDef:
    name: str
    condition: Expr
    condition_text: str
    used: bool
    location: SourceLocation | None = None


@dataclass(frozen=True)
class ListDef:
    name: str
    items: tuple[str, ...]
    used: bool
    location: SourceLocation | None = None


@dataclass(frozen=True)
class RuleSet:
    """Everything :func:`load_rules` read.

    ``rules`` holds every rule whose source fcap evaluates (``syscall``), in
    Falco's evaluation order (order of first definition), enabled or not; a
    rule whose condition does not compile is left out (there is an error).
    """

    rules: tuple[Rule, ...]
    macros: tuple[MacroDef, ...] = ()
    lists: tuple[ListDef, ...] = ()
    diagnostics: tuple[Diagnostic, ...] = ()
    required_engine_version: str | None = None
    required_plugin_versions: tuple[tuple[tuple[str, str], ...], ...] = ()
    files: tuple[str, ...] = ()
    maps: SourceMaps | None = field(default=None, compare=False, repr=False)

    @property
    def errors(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if d.is_error)

    @property
    def warnings(self) -> tuple[Diagnostic, ...]:
        return tuple(d for d in self.diagnostics if not d.is_error)

    @property
    def ok(self) -> bool:
        return not self.errors

    def rule(self, name: str) -> Rule:
        for r in self.rules:
            if r.name == name:
                return r
        raise KeyError(name)

    def locate(self, span: Span, rule: str | None = None) -> SourceLocation | None:
        """The file position of ``span``; ``rule`` names the rule whose
        condition it belongs to when the span has no origin."""
        if self.maps is None:
            return None
        return self.maps.locate(span, default_origin=f"rule:{rule}" if rule else None)
