"""The collector: definitions, appends and replacements, in Falco's order.

Mirrors ``falco:userspace/engine/rule_loader_collector.cpp``. One collector is
shared by every file of a load. Redefining a list/macro/rule by name replaces
it but keeps its first position (``index``); every definition, append or
replace bumps the item's ``visibility`` (the global counter at that moment),
which decides which lists and macros it may reference.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from fcap.errors import SourceLocation

from . import diagnostics as d
from .diagnostics import LoadError
from .exceptions import validate_exception
from .model import Priority
from .positions import PosText
from .version import EngineVersion, Version

SYSCALL_SOURCE = "syscall"
#: event sources fcap evaluates (Falco: the sources of loaded plugins + syscall)
KNOWN_SOURCES = frozenset({SYSCALL_SOURCE})


@dataclass
class Entry:
    """``rule_exception_info::entry``: a scalar or a list of entries."""

    is_list: bool = False
    item: str = ""
    items: list[Entry] = field(default_factory=list)
    pt: PosText | None = None
    defined: bool = False

    def is_valid(self) -> bool:
        return bool(self.items) if self.is_list else self.item != ""


@dataclass
class ExceptionInfo:
    name: str
    fields: Entry
    comps: Entry
    values: list[Entry]
    loc: SourceLocation
    pos: int  # position code of the exception item (for generated text)


@dataclass
class ListInfo:
    name: str
    items: list[str]
    loc: SourceLocation
    index: int = 0
    visibility: int = 0


@dataclass
class MacroInfo:
    name: str
    cond: PosText
    loc: SourceLocation
    index: int = 0
    visibility: int = 0


@dataclass
class RuleInfo:
    name: str
    loc: SourceLocation
    cond: PosText | None = None
    output: str = ""
    desc: str = ""
    priority: Priority = Priority.DEBUG
    source: str = SYSCALL_SOURCE
    enabled: bool = True
    tags: set[str] = field(default_factory=set)
    exceptions: list[ExceptionInfo] = field(default_factory=list)
    warn_evttypes: bool = True
    skip_if_unknown_filter: bool = False
    capture: bool = False
    capture_duration: int = 0
    cond_loc: SourceLocation | None = None
    output_loc: SourceLocation | None = None
    index: int = 0
    visibility: int = 0
    unknown_source: bool = False


@dataclass
class RuleUpdate:
    """``rule_update_info``: the keys of an append/override item (None = absent)."""

    name: str
    loc: SourceLocation
    source: str = ""
    cond: PosText | None = None
    output: str | None = None
    desc: str | None = None
    tags: set[str] | None = None
    exceptions: list[ExceptionInfo] | None = None
    priority: Priority | None = None
    capture: bool | None = None
    capture_duration: int | None = None
    enabled: bool | None = None
    warn_evttypes: bool | None = None
    skip_if_unknown_filter: bool | None = None

    def has_any_value(self) -> bool:
        return any(v is not None for v in (
            self.cond, self.output, self.desc, self.tags, self.exceptions, self.priority,
            self.capture, self.capture_duration, self.enabled, self.warn_evttypes,
            self.skip_if_unknown_filter))


def _err(message: str, loc: SourceLocation, kind: str, name: str) -> LoadError:
    return LoadError(d.VALIDATE, message, loc, kind, name)


class Collector:
    def __init__(self, sink: d.Sink) -> None:
        self.sink = sink
        self.cur_index = 0
        self.lists: dict[str, ListInfo] = {}
        self.macros: dict[str, MacroInfo] = {}
        self.rules: dict[str, RuleInfo] = {}
        self.required_engine_version: Version | None = None
        self.required_engine_loc: SourceLocation | None = None
        self.required_plugin_versions: list[list[tuple[str, str]]] = []
        self.required_plugin_locs: list[SourceLocation] = []

    def _next(self) -> int:
        i = self.cur_index
        self.cur_index += 1
        return i

    def _define(self, table: dict, info) -> None:
        i = self._next()
        prev = table.get(info.name)
        info.index = prev.index if prev else i
        info.visibility = i
        table[info.name] = info

    # -- versions ------------------------------------------------------------
    def define_engine_version(self, v: Version, loc: SourceLocation) -> None:
        engine = EngineVersion
        if not engine.compatible_with(v):
            raise LoadError(d.VALIDATE, f"Rules require engine version {v}, but engine version "
                            f"is {engine}", loc, "required_engine_version", "",
                            hint=f"fcap implements Falco's rules engine {engine}")
        if self.required_engine_version is None or self.required_engine_version < v:
            self.required_engine_version = v
            self.required_engine_loc = loc

    def define_plugin_versions(self, alternatives: list[tuple[str, str]],
                               loc: SourceLocation) -> None:
        names: set[str] = set()
        for name, version in alternatives:
            if not Version.parse(version):
                raise _err(f"Invalid required version '{version}' for plugin '{name}'", loc,
                           "required_plugin_versions", name)
            if name in names:
                raise _err(f"Defined multiple alternative version requirements for plugin "
                           f"'{name}'", loc, "required_plugin_versions", name)
            names.add(name)
        self.required_plugin_versions.append(alternatives)
        self.required_plugin_locs.append(loc)

    # -- lists and macros ------------------------------------------------------
    def define_list(self, info: ListInfo) -> None:
        self._define(self.lists, info)

    def append_list(self, info: ListInfo) -> None:
        prev = self.lists.get(info.name)
        if prev is None:
            raise _err(d.ERROR_NO_PREVIOUS_LIST, info.loc, "list", info.name)
        prev.items.extend(info.items)
        prev.visibility = self._next()

    def define_macro(self, info: MacroInfo) -> None:
        self._define(self.macros, info)

    def append_macro(self, info: MacroInfo) -> None:
        prev = self.macros.get(info.name)
        if prev is None:
            raise _err(d.ERROR_NO_PREVIOUS_MACRO, info.loc, "macro", info.name)
        prev.cond = prev.cond + " " + info.cond
        prev.visibility = self._next()

    # -- rules -------------------------------------------------------------------
    def _find_prev_rule(self, name: str, source: str, loc: SourceLocation) -> RuleInfo | None:
        prev = self.rules.get(name)
        if prev and prev.source and source and prev.source != source:
            raise _err("Rule has been re-defined with a different source", loc, "rule", name)
        return prev

    def define_rule(self, info: RuleInfo, fields_ok) -> None:
        self._find_prev_rule(info.name, info.source, info.loc)
        if info.source not in KNOWN_SOURCES:
            info.unknown_source = True
            self.sink.warning(d.UNKNOWN_SOURCE, f"Unknown source {info.source}, skipping",
                              info.loc, item_type="rule", item_name=info.name,
                              hint="fcap evaluates the syscall source only")
        for ex in info.exceptions:
            if not ex.fields.is_valid():
                raise _err("Rule exception item must have fields property with a list of fields",
                           ex.loc, "exception", ex.name)
            validate_exception(ex, None if info.unknown_source else fields_ok)
        self._define(self.rules, info)

    def append_rule(self, info: RuleUpdate, fields_ok) -> None:
        prev = self._find_prev_rule(info.name, info.source, info.loc)
        if prev is None:
            raise _err(d.ERROR_NO_PREVIOUS_RULE_APPEND, info.loc, "rule", info.name)
        if not info.has_any_value():
            raise _err("Appended rule must have exceptions or condition property", info.loc,
                       "rule", info.name)
        check = None if prev.unknown_source else fields_ok
        if info.cond is not None and info.cond.text:
            prev.cond = (prev.cond + " " + info.cond) if prev.cond is not None else info.cond
        if info.output:
            prev.output += " " + info.output
        if info.desc:
            prev.desc += " " + info.desc
        if info.tags is not None:
            prev.tags |= info.tags
        for ex in info.exceptions or ():
            old = next((e for e in prev.exceptions if e.name == ex.name), None)
            if old is None:
                if not ex.fields.is_valid():
                    raise _err("Rule exception must have fields property with a list of fields",
                               ex.loc, "exception", ex.name)
                if not ex.values:
                    raise _err("Rule exception must have values property with a list of values",
                               ex.loc, "exception", ex.name)
                validate_exception(ex, check)
                prev.exceptions.append(ex)
            else:
                if ex.fields.is_valid():
                    raise _err("Can not append exception fields to existing exception, only "
                               "values", ex.loc, "exception", ex.name)
                if ex.comps.is_valid():
                    raise _err("Can not append exception comps to existing exception, only "
                               "values", ex.loc, "exception", ex.name)
                old.values.extend(ex.values)
        prev.visibility = self._next()

    def replace_rule(self, info: RuleUpdate) -> None:
        prev = self._find_prev_rule(info.name, info.source, info.loc)
        if prev is None:
            raise _err(d.ERROR_NO_PREVIOUS_RULE_REPLACE, info.loc, "rule", info.name)
        if not info.has_any_value():
            raise _err("The rule must have at least one field that can be replaced", info.loc,
                       "rule", info.name)
        for key in ("cond", "output", "desc", "tags", "exceptions", "priority", "capture",
                    "capture_duration", "enabled", "warn_evttypes", "skip_if_unknown_filter"):
            v = getattr(info, key)
            if v is not None:
                setattr(prev, key, v)
        prev.visibility = self._next()

    def enable_rule(self, name: str, enabled: bool, loc: SourceLocation) -> None:
        prev = self.rules.get(name)
        if prev is None:
            raise _err("Rule has 'enabled' key but no rule by that name already exists", loc,
                       "rule", name)
        prev.enabled = enabled
